"""The results store: one SQLite file, ``<out>/harness.sqlite``, appended to by every run.

Long format: ``runs`` (suite text, resolved config, environment, stage timings),
``cells`` (one row per dataset × model × explainer × seed, with status and timings) and
``scores`` (one row per cell and metric: value, direction, conventions and their hash,
and the metric's kind) and ``arrays`` (per cell: its explanation, predictions and global
importance, what was recorded while training — ``.npy`` bytes, zlib-compressed when
large, read back with ``allow_pickle=False``). Rows are only ever appended: a statistic
known later (across seeds) is a row of its own, a rescoring a new run.
A score that could not be computed is stored with value NULL and a ``note`` saying why,
so reports show missing entries instead of hiding them. Each cell is written in its own
transaction, so a killed run loses at most the cell in flight.

Readers open the file read-only (it may sit on read-only media); a damaged or foreign
file, a full disk or a read-only folder is a one-line :class:`StoreError`, never a
traceback; run ids read back are checked against their format before they name folders.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import io
import json
import os
import re
import secrets
import shutil
import sqlite3
import time
import typing
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np
import pandas as pd

from harness.errors import HarnessError, StoreError
from harness.records import (
    RESULT_COLUMNS,
    CellRecord,
    CellStatus,
    ExplainerRole,
    MetricKind,
    ScoreRecord,
)
from harness.run_lock import run_is_live
from harness.store_schema import SCHEMA_VERSION, check, create_or_migrate
from harness.sweeps import with_sweep_columns

STORE_FILENAME = "harness.sqlite"

#: Arrays larger than this (bytes of ``.npy``) are stored zlib-compressed.
COMPRESS_ABOVE = 64 * 1024


def _npy(array: np.ndarray) -> bytes:
    """``.npy`` bytes (no pickle), zlib-compressed when large (explanation maps)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    data = buffer.getvalue()
    return zlib.compress(data, 1) if len(data) > COMPRESS_ABOVE else data


def _from_npy(data: bytes) -> np.ndarray:
    """An array stored by :func:`_npy` (compressed or not), read without unpickling."""
    if not data.startswith(b"\x93NUMPY"):
        data = zlib.decompress(data)
    return np.load(io.BytesIO(data), allow_pickle=False)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


#: ``YYYYmmdd-HHMMSS-xxxxxx``: what :func:`new_run_id` makes. Run ids become folder names
#: (reports, figures), so one read from a store is checked against this first.
RUN_ID_PATTERN = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


def new_run_id() -> str:
    """Sortable, readable and unique: ``YYYYmmdd-HHMMSS-xxxxxx`` (UTC)."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def check_run_id(run_id: str, where: Path) -> str:
    """``run_id`` if it has the harness's format, else a :class:`StoreError` (a run id
    becomes a folder name, so a crafted one must never reach the file system)."""
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise StoreError(
            f"results store {where} holds a run id {str(run_id)[:60]!r} that the harness "
            "never writes (expected YYYYmmdd-HHMMSS-xxxxxx): the store was altered; restore "
            "it from a backup, or use another --out folder"
        )
    return run_id


#: Below this many free bytes, SQLite's "disk I/O error" is a full disk: writing its
#: journal failed for want of space (SQLite reports SQLITE_FULL only for the database).
_NEARLY_FULL = 1 << 20


def _out_of_space(exc: BaseException, path: Path) -> bool:
    """Whether ``exc`` comes from a full disk under ``path``."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    if "full" in str(exc):
        return True
    if "disk I/O error" not in str(exc):
        return False
    try:
        return shutil.disk_usage(path.parent).free < _NEARLY_FULL
    except OSError:
        return False


def _store_error(exc: BaseException, path: Path) -> StoreError:
    """The :class:`StoreError` for a low-level failure while using the store at ``path``
    (in one line: a decoding error's own text may span several)."""
    text = " ".join(str(exc).split())
    if _out_of_space(exc, path):
        return StoreError(
            f"no space left: the disk holding the results store {path} is full ({text}); "
            "the store is intact and cells stored so far are kept: free some space, then "
            "continue with `xai-harness run SUITE --out DIR --resume`"
        )
    if "readonly" in text or "read-only" in text:
        return StoreError(
            f"the results store {path} is read-only ({text}); reading works, but a run "
            "needs a writable folder: pass --out with one"
        )
    if "locked" in text or "busy" in text:
        return StoreError(
            f"the results store {path} stayed locked by another process ({text}); wait for "
            "it to finish and try again"
        )
    if "unable to open" in text:
        return StoreError(f"cannot open results store {path} ({text}); check the path")
    return StoreError(
        f"the results store {path} is damaged or was not written by xai-harness "
        f"({type(exc).__name__}: {text}); move it aside (`sqlite3 FILE .recover` may save "
        "its runs) and run again, which starts a new store — or use another --out folder"
    )


#: What writing to a damaged, foreign, read-only or full store raises.
_WRITE_FAILURES = (sqlite3.Error, OSError)
#: What reading one raises: also values that cannot be decoded (bad JSON, NULL, text
#: where a number belongs), which only a damaged or foreign store holds.
_READ_FAILURES = (
    *_WRITE_FAILURES,
    pd.errors.DatabaseError,
    json.JSONDecodeError,
    zlib.error,
    TypeError,
    ValueError,
    KeyError,
)

M = TypeVar("M", bound=Callable[..., Any])


def _guarded(failures: tuple[type[BaseException], ...]) -> Callable[[M], M]:
    """Turn ``failures`` inside a store method into a one-line :class:`StoreError`
    (writes catch only database and file-system errors, so a bug elsewhere — say an
    unserialisable convention — keeps its own traceback)."""

    def decorate(method: M) -> M:
        @functools.wraps(method)
        def wrapper(self: ResultsStore, *args: Any, **kwargs: Any) -> Any:
            try:
                return method(self, *args, **kwargs)
            except HarnessError:
                raise
            except failures as exc:
                raise _store_error(exc, self.path) from exc

        return wrapper  # type: ignore[return-value]

    return decorate


_writes = _guarded(_WRITE_FAILURES)
_reads = _guarded(_READ_FAILURES)


def _retry_while_locked(action: Callable[[], None], patience: float = 30.0) -> None:
    """Run ``action``, retrying while another process holds the database (switching to
    WAL mode or creating the schema does not wait for SQLite's busy timeout)."""
    waited, pause = 0.0, 0.05
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or waited >= patience:
                raise
            time.sleep(pause)
            waited += pause
            pause = min(pause * 2, 1.0)


class ResultsStore:
    """Read and append runs in ``<folder>/harness.sqlite``; a context manager.

    ``create=True`` (runs) opens the store for appending, creating it and its schema when
    missing. ``create=False`` (everything that reads) opens an existing store read-only:
    nothing is written, no WAL set-up or schema creation is needed, so a store on
    read-only media can be read. Every failure — a damaged or foreign file, a full disk,
    a read-only folder — is a one-line :class:`StoreError`.
    """

    def __init__(self, folder: str | Path, *, create: bool = True) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILENAME
        self.read_only = not create
        self.version = 0  #: the store's schema version (set when it is opened)
        if self.folder.exists() and not self.folder.is_dir():
            raise StoreError(f"--out {self.folder} is a file, not a folder; pass a folder")
        if not create and not self.path.is_file():
            raise HarnessError(
                f"no results store at {self.path}; run `xai-harness run` first "
                "or pass --out with the folder that holds harness.sqlite"
            )
        try:
            if create:
                self.folder.mkdir(parents=True, exist_ok=True)
                if not os.access(self.folder, os.W_OK):
                    raise sqlite3.OperationalError("the folder is read-only")
                self._db = sqlite3.connect(self.path, timeout=30)
                _retry_while_locked(self._set_up)
            else:
                self._db = self._open_read_only()
        except HarnessError:
            raise
        except (OSError, sqlite3.Error) as exc:
            raise _store_error(exc, self.path) from exc

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _open_read_only(self) -> sqlite3.Connection:
        """A read-only connection. A WAL store whose ``-shm`` file cannot be created (its
        folder is on read-only media) is opened as immutable instead."""
        uri = f"file:{quote(str(self.path.resolve()))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=30)
        try:
            self.version = self._checked_version(db)
        except sqlite3.OperationalError as exc:
            db.close()
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise
            db = sqlite3.connect(uri + "&immutable=1", uri=True)
            self.version = self._checked_version(db)
        return db

    def _checked_version(self, db: sqlite3.Connection) -> int:
        version = check(db, self.path)
        if version == 0 and self.read_only:
            raise StoreError(f"{self.path} is an empty file, not a results store; run first")
        return version

    def _set_up(self) -> None:
        """Check the file (its schema, and SQLite's quick check of every page, so nothing
        is appended to a damaged file), then WAL mode, foreign keys, and the schema created
        or migrated to this harness's version."""
        self._checked_version(self._db)
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(3)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(f"quick_check: {'; '.join(map(str, problems))}")
        if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        create_or_migrate(self._db, self.path)
        self.version = SCHEMA_VERSION

    def close(self) -> None:
        """Close; a writer first moves what the WAL holds into the main file, so the
        file alone is complete even when a reader is still open (best effort)."""
        if not self.read_only:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    @_writes
    def begin_run(
        self,
        *,
        suite_name: str,
        suite_path: str | None,
        suite_text: str,
        config: dict[str, Any],
        environment: dict[str, Any],
        run_id: str | None = None,
        source_run: str | None = None,
    ) -> str:
        """Append a new run in status ``running`` (with ``run_id``, or a new id); returns
        its id. Its machine and commit (from ``environment``) are stored as columns of
        their own; ``source_run`` links a rescoring to the run it rescored."""
        run_id = run_id or new_run_id()
        machine, commit = machine_and_commit(environment)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (run_id, suite_name, suite_path, suite_text, config, "
                "environment, started_at, status, machine, git_commit, source_run) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
                (
                    run_id,
                    suite_name,
                    suite_path,
                    suite_text,
                    json.dumps(config),
                    json.dumps(environment),
                    _now(),
                    machine,
                    commit,
                    source_run,
                ),
            )
        return run_id

    @_writes
    def record_cell(
        self,
        run_id: str,
        cell: CellRecord,
        scores: list[ScoreRecord],
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write a cell, its scores and its arrays atomically."""
        try:
            self._insert_cell(run_id, cell, scores, arrays or {})
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"cell {cell.cell_id} of run {run_id} could not be stored ({exc}): it is "
                "stored already, or a metric repeats; nothing of this cell was written"
            ) from exc

    def _insert_cell(
        self,
        run_id: str,
        cell: CellRecord,
        scores: list[ScoreRecord],
        arrays: dict[str, np.ndarray],
    ) -> None:
        with self._transaction() as db:
            row = asdict(cell)
            columns = [*row, "run_id", "finished_at"]
            db.execute(
                f"INSERT INTO cells ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [*row.values(), run_id, _now()],
            )
            self._insert_scores(db, run_id, cell.cell_id, scores)
            db.executemany(
                "INSERT INTO arrays (run_id, cell_id, name, data) VALUES (?, ?, ?, ?)",
                [(run_id, cell.cell_id, name, _npy(a)) for name, a in arrays.items()],
            )

    @staticmethod
    def _insert_scores(
        db: sqlite3.Connection, run_id: str, cell_id: str, scores: list[ScoreRecord]
    ) -> None:
        db.executemany(
            "INSERT INTO scores (run_id, cell_id, metric, metric_name, value, higher_is_better, "
            "unit, conventions, conventions_hash, note, kind, across_seeds, status, family, "
            "metric_version, role, range_low, range_high) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run_id,
                    cell_id,
                    s.metric,
                    s.metric_name,
                    s.value,
                    int(s.higher_is_better),
                    s.unit,
                    json.dumps(s.conventions, sort_keys=True),
                    s.conventions_hash,
                    s.note or None,
                    s.kind,
                    int(s.across_seeds),
                    s.status,
                    s.family,
                    s.metric_version,
                    s.role,
                    *(s.value_range or (None, None)),
                )
                for s in scores
            ],
        )

    @_writes
    def add_scores(self, run_id: str, cell_id: str, scores: list[ScoreRecord]) -> None:
        """Append scores to a stored cell (an across-seeds statistic, known once every
        seed is stored); rows already stored are never changed."""
        with self._transaction() as db:
            self._insert_scores(db, run_id, cell_id, scores)

    @_reads
    def scored(self, run_id: str) -> set[tuple[str, str]]:
        """The (cell id, metric id) pairs of a run that have a stored score row."""
        rows = self._db.execute("SELECT cell_id, metric FROM scores WHERE run_id = ?", (run_id,))
        return {(str(cell_id), str(metric)) for cell_id, metric in rows}

    def _array_runs(self, run_id: str) -> list[str]:
        """The run, then the run it rescored, and so on to the run that ran the cells:
        a rescoring stores only the arrays it computed, so a cell's arrays resolve
        through the whole chain (the nearest run that has one wins)."""
        chain = [run_id]
        while self.version >= 2:
            row = self._db.execute(
                "SELECT source_run FROM runs WHERE run_id = ?", (chain[-1],)
            ).fetchone()
            if not row or not row[0]:
                break
            source = check_run_id(row[0], self.path)
            if source in chain:
                raise ValueError(f"runs.source_run of run {chain[-1]} leads back to {source}")
            chain.append(source)
        return chain

    @_reads
    def array_names(self, run_id: str) -> list[str]:
        """The names of the arrays stored by the cells of a run (or of the runs it
        rescored), sorted."""
        names: set[str] = set()
        for run in self._array_runs(run_id):
            rows = self._db.execute("SELECT DISTINCT name FROM arrays WHERE run_id = ?", (run,))
            names |= {str(row[0]) for row in rows}
        return sorted(names)

    @_reads
    def arrays(self, run_id: str, name: str) -> dict[str, np.ndarray]:
        """The array ``name`` of every cell of a run that stored one, by cell id —
        through the chain of runs it rescored, the nearest run's where several have one."""
        found: dict[str, np.ndarray] = {}
        for run in reversed(self._array_runs(run_id)):
            rows = self._db.execute(
                "SELECT cell_id, data FROM arrays WHERE run_id = ? AND name = ?", (run, name)
            ).fetchall()
            found |= {str(cell_id): _from_npy(data) for cell_id, data in rows}
        return found

    @_writes
    def finish_run(self, run_id: str, *, status: str, stage_seconds: dict[str, float]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, stage_seconds = ? WHERE run_id = ?",
                (_now(), status, json.dumps(stage_seconds), run_id),
            )

    @_reads
    def run_ids(self) -> list[str]:
        """All run ids, oldest first (each checked against the harness's format)."""
        rows = self._db.execute("SELECT run_id FROM runs ORDER BY rowid")
        return [check_run_id(row[0], self.path) for row in rows]

    @_reads
    def cell_records(self, run_id: str) -> dict[str, CellRecord]:
        """The stored cells of a run as records, by cell id, in the order stored."""
        names = [f.name for f in dataclasses.fields(CellRecord)]
        rows = self._db.execute(
            f"SELECT {', '.join(names)} FROM cells WHERE run_id = ? ORDER BY rowid", (run_id,)
        ).fetchall()
        records = {}
        for row in rows:
            values = dict(zip(names, row, strict=True))
            if values["status"] not in typing.get_args(CellStatus):
                raise ValueError(f"cells.status of {values['cell_id']!r} is {values['status']!r}")
            values["explainer_role"] = values["explainer_role"] or "post_hoc"
            records[str(values["cell_id"])] = CellRecord(**values)
        return records

    @_reads
    def score_records(self, run_id: str) -> dict[str, list[ScoreRecord]]:
        """The stored scores of a run as records, by cell id."""
        since_3 = (
            "status, family, metric_version, role"
            if self.version >= 3
            else "NULL, NULL, NULL, NULL"
        ) + (", range_low, range_high" if self.version >= 4 else ", NULL, NULL")
        rows = self._db.execute(
            "SELECT cell_id, metric, metric_name, value, higher_is_better, unit, conventions, "
            f"conventions_hash, note, kind, across_seeds, {since_3} FROM scores "
            "WHERE run_id = ? ORDER BY rowid",
            (run_id,),
        ).fetchall()
        records: dict[str, list[ScoreRecord]] = {}
        for row in rows:
            cell_id, metric, name, value, higher, unit, conventions, digest, note, kind = row[:10]
            record = ScoreRecord(
                metric=metric,
                metric_name=name,
                value=None if value is None else float(value),
                higher_is_better=bool(higher),
                unit=unit,
                conventions=json.loads(conventions),
                conventions_hash=digest,
                note=note or "",
                kind=kind or "explanation",
                across_seeds=bool(row[10]),
                status="failed" if row[11] == "failed" else "ok",
                family=row[12],
                metric_version=None if row[13] is None else int(row[13]),
                role=row[14],
                value_range=None if row[15] is None else (float(row[15]), float(row[16])),
            )
            records.setdefault(str(cell_id), []).append(record)
        return records

    @_reads
    def cell_arrays(self, run_id: str, cell_id: str) -> dict[str, np.ndarray]:
        """Every array one cell stored, by name — through the chain of runs it rescored,
        the nearest run's where several have one."""
        found: dict[str, np.ndarray] = {}
        for run in reversed(self._array_runs(run_id)):
            rows = self._db.execute(
                "SELECT name, data FROM arrays WHERE run_id = ? AND cell_id = ?", (run, cell_id)
            ).fetchall()
            found |= {str(name): _from_npy(data) for name, data in rows}
        return found

    @_reads
    def cell_statuses(self, run_id: str) -> dict[str, tuple[str, str | None]]:
        """Stored cells of a run: cell id → (status, error)."""
        rows = self._db.execute(
            "SELECT cell_id, status, error FROM cells WHERE run_id = ?", (run_id,)
        ).fetchall()
        for cell_id, status, _ in rows:
            if status not in typing.get_args(CellStatus):
                raise ValueError(f"cells.status of {cell_id!r} is {status!r}")
        return {str(cell_id): (str(status), error) for cell_id, status, error in rows}

    @_writes
    def reopen_run(self, run_id: str) -> None:
        """Mark a stored run ``running`` again, to resume it."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?",
                (run_id,),
            )

    @_reads
    def latest_run_of(self, suite_name: str) -> str | None:
        """The latest run of the suite called ``suite_name`` (None if there is none)."""
        row = self._db.execute(
            "SELECT run_id FROM runs WHERE suite_name = ? ORDER BY rowid DESC LIMIT 1",
            (suite_name,),
        ).fetchone()
        return check_run_id(row[0], self.path) if row else None

    def resolve_run_id(self, run_id: str | None) -> str:
        """``run_id`` if stored (a unique prefix is enough), else the latest run when None."""
        ids = self.run_ids()
        if not ids:
            raise HarnessError(f"the results store {self.path} holds no runs yet")
        if run_id is None:
            return ids[-1]
        matches = [i for i in ids if i.startswith(run_id)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise HarnessError(
                f"no run '{run_id}' in {self.path}; stored runs: {', '.join(ids[-5:])}"
                + (" (latest 5)" if len(ids) > 5 else "")
            )
        raise HarnessError(f"run id prefix '{run_id}' is ambiguous: {', '.join(matches)}")

    @_reads
    def run_info(self, run_id: str) -> dict[str, Any]:
        """The ``runs`` row with its JSON columns decoded and ``cells``, the number of
        cells it stored."""
        cursor = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cursor.fetchone()
        if row is None:
            raise HarnessError(f"no run '{run_id}' in {self.path}")
        info = dict(zip([c[0] for c in cursor.description], row, strict=True))
        check_run_id(info["run_id"], self.path)
        for key in ("config", "environment", "stage_seconds"):
            info[key] = json.loads(info[key]) if info[key] else None
            required = key != "stage_seconds"  # which an unfinished run does not have yet
            if (info[key] is not None or required) and not isinstance(info[key], dict):
                raise TypeError(f"runs.{key} of run {run_id} is not a JSON object")
        for key in ("suite_name", "status", "started_at"):
            if not isinstance(info[key], str):
                raise TypeError(f"runs.{key} of run {run_id} is {info[key]!r}, not text")
        (cells,) = self._db.execute(
            "SELECT COUNT(*) FROM cells WHERE run_id = ?", (run_id,)
        ).fetchone()
        info["cells"] = int(cells)
        return info

    def run_with_cells(self, run_id: str | None) -> tuple[str, dict[str, Any]]:
        """The resolved run id and its info, refusing a run that stored no cell (killed
        before its first cell finished): there is nothing to show, report or check."""
        resolved = self.resolve_run_id(run_id)
        info = self.run_info(resolved)
        if info["cells"] == 0:
            raise HarnessError(
                f"run {resolved} (suite '{info['suite_name']}', {run_status(self, info)}) "
                "stored no cell: it stopped before its first cell finished; continue it with "
                f"`xai-harness run SUITE --out {self.folder} --resume {resolved}`, or name "
                "another run"
            )
        return resolved, info

    @_reads
    def results(self, run_id: str | None = None) -> pd.DataFrame:
        """One row per (cell, metric), every run or one run; see :data:`RESULT_COLUMNS`."""
        facts = (
            (
                "s.kind AS metric_kind, s.across_seeds, c.explainer_role"
                if self.version >= 2  # older stores hold no facts: filled below
                else "NULL AS metric_kind, NULL AS across_seeds, NULL AS explainer_role"
            )
            + (
                ", s.status AS score_status, s.family AS metric_family, s.metric_version, "
                "s.role AS metric_role"
                if self.version >= 3
                else ", NULL AS score_status, NULL AS metric_family, NULL AS metric_version, "
                "NULL AS metric_role"
            )
            + (
                ", s.range_low, s.range_high"
                if self.version >= 4
                else ", NULL AS range_low, NULL AS range_high"
            )
        )
        query = (
            "SELECT c.run_id, c.dataset, c.model, c.explainer, c.seed, s.metric, s.value, "
            "s.higher_is_better, c.status, s.note, c.error, s.unit, c.cell_id, "
            "c.dataset_name, c.model_name, c.explainer_name, s.metric_name, s.conventions, "
            "s.conventions_hash, c.train_seconds, c.explain_seconds, c.score_seconds, "
            f"c.n_explained, c.torch_threads, c.warnings, {facts} "
            "FROM cells c JOIN scores s ON s.run_id = c.run_id AND s.cell_id = c.cell_id "
            "JOIN runs r ON r.run_id = c.run_id"
        )
        params: tuple[str, ...] = ()
        if run_id is not None:
            query += " WHERE c.run_id = ?"
            params = (run_id,)
        query += " ORDER BY r.rowid, c.rowid, s.rowid"
        frame = pd.read_sql_query(query, self._db, params=params)
        # a failed score of an ok cell reads as failed (the cell's other scores are ok)
        failed = (frame.pop("score_status") == "failed").to_numpy()
        frame["status"] = frame["status"].where(~failed, "failed")
        frame[["metric_kind", "across_seeds", "explainer_role"]] = frame[
            ["metric_kind", "across_seeds", "explainer_role"]
        ].astype(object)
        if frame[["metric_kind", "across_seeds", "explainer_role"]].isna().to_numpy().any():
            from harness.store_legacy import fill_frame_facts

            frame = fill_frame_facts(frame)  # rows written before facts were stored
        _check_results(frame)
        frame["higher_is_better"] = frame["higher_is_better"].astype(bool)
        frame["value"] = frame["value"].astype(float)
        frame["seed"] = frame["seed"].astype(np.int64)
        frame["across_seeds"] = (
            frame["across_seeds"].map(lambda v: None if pd.isna(v) else bool(v)).astype(object)
        )
        # family and version: None for rows stored before they were kept (not guessed)
        frame["metric_family"] = (
            frame["metric_family"].map(lambda v: None if pd.isna(v) else str(v)).astype(object)
        )
        frame["metric_role"] = (
            frame["metric_role"].map(lambda v: None if pd.isna(v) else str(v)).astype(object)
        )
        frame[["range_low", "range_high"]] = frame[["range_low", "range_high"]].astype(float)
        frame["metric_version"] = (
            frame["metric_version"].map(lambda v: None if pd.isna(v) else int(v)).astype(object)
        )
        configs = self._configs(frame["run_id"].unique())
        ordered = self._in_suite_order(frame, configs)[RESULT_COLUMNS]
        return with_sweep_columns(ordered, configs)

    def _configs(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored suite configuration of each run."""
        configs = {}
        for run_id in run_ids:
            (config,) = self._db.execute(
                "SELECT config FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            configs[str(run_id)] = json.loads(config) or {}
        return configs

    def _in_suite_order(
        self, frame: pd.DataFrame, configs: dict[str, dict[str, Any]]
    ) -> pd.DataFrame:
        """Rows by cell as stored, and within a cell by the order of the metrics in its
        run's suite (an across-seeds score, appended later, takes its suite place)."""
        if frame.empty:
            return frame
        order: dict[tuple[str, str], int] = {}
        for run_id, config in configs.items():
            metrics = config.get("metrics") or []
            for position, entry in enumerate(metrics):
                order[(str(run_id), str(entry["id"]))] = position
        cells = frame.groupby(["run_id", "cell_id"], sort=False).ngroup()
        keys = zip(frame["run_id"], frame["metric"], strict=True)
        places = [order.get(key, len(order)) for key in keys]
        position = pd.DataFrame({"cell": cells, "place": places}, index=frame.index)
        chosen = position.sort_values(["cell", "place"], kind="stable").index
        return frame.loc[chosen].reset_index(drop=True)


#: Result columns that are never NULL in a store the harness wrote.
_REQUIRED = [
    "run_id",
    "dataset",
    "model",
    "explainer",
    "seed",
    "metric",
    "status",
    "cell_id",
    "metric_name",
    "conventions",
    "higher_is_better",
]


def _check_results(frame: pd.DataFrame) -> None:
    """Raise ``ValueError`` naming the first value a harness never stores: a NULL where
    a value is required, an unknown status, a seed or value that is not a number, or
    conventions that are not a JSON object."""
    for column in _REQUIRED:
        if frame[column].isna().any():
            row = frame.loc[frame[column].isna()].iloc[0]
            raise ValueError(f"scores/cells column '{column}' is NULL (cell {row['cell_id']!r})")
    for column, allowed in (
        ("status", CellStatus),
        ("metric_kind", MetricKind),
        ("explainer_role", ExplainerRole),
    ):
        unknown = set(frame[column].dropna()) - set(typing.get_args(allowed))
        if unknown:
            raise ValueError(f"{column} holds {sorted(map(str, unknown))[:3]}")
    pd.to_numeric(frame["seed"], errors="raise")
    pd.to_numeric(frame["value"], errors="raise")
    for text in frame["conventions"].unique():
        if not isinstance(json.loads(text), dict):
            raise ValueError(f"scores.conventions {str(text)[:40]!r} is not a JSON object")


def machine_and_commit(environment: dict[str, Any]) -> tuple[str | None, str | None]:
    """A run's machine — ``host (CPU, N cores[, GPU])`` — and its git commit (with
    ``-dirty`` when the checkout had changes), from its stored environment."""
    machine = environment.get("machine") or {}
    git = environment.get("git") or {}
    label = None
    if machine:
        parts = [str(machine.get("cpu", "unknown CPU")), f"{machine.get('cores', '?')} cores"]
        if machine.get("cuda_device"):
            parts.append(str(machine["cuda_device"]))
        label = f"{machine.get('hostname', 'unknown host')} ({', '.join(parts)})"
    commit = git.get("commit")
    if commit and git.get("dirty"):
        commit = f"{commit}-dirty"
    return label, commit


def run_status(store: ResultsStore, info: dict[str, Any]) -> str:
    """A run's status as stored, except that a run stored as ``running`` whose process is
    gone (killed, or the machine went down) is ``interrupted``."""
    status = str(info["status"])
    if status == "running" and not run_is_live(store.folder, info["run_id"]):
        return "interrupted"
    return status


def load_results(out_dir: str | Path = "results", run_id: str | None = None) -> pd.DataFrame:
    """Scores stored under ``out_dir`` as a tidy DataFrame, one row per cell × metric.

    All runs by default, or one run (a unique id prefix is enough). Columns include
    ``run_id, dataset, model, explainer, seed, metric, value, higher_is_better, status``
    (dataset/model/explainer are the suite's ``id`` labels; a metric computed once from
    every seed, ``across_seeds`` True — e.g. ``stability`` — repeats its one value on each
    seed's row, with that row's seed), ``dataset_base``,
    ``model_base``, ``explainer_base`` (the entry a swept id was generated from) and one
    column per swept parameter; ``value`` is NaN where a
    score could not be computed, with the reason in ``note`` (and ``error`` for failed
    cells).
    """
    with ResultsStore(out_dir, create=False) as store:
        return store.results(None if run_id is None else store.resolve_run_id(run_id))


def load_arrays(
    out_dir: str | Path = "results", name: str = "global_importance", run_id: str | None = None
) -> dict[str, np.ndarray]:
    """Arrays stored with the cells of a run (latest by default), by cell id.

    Names: ``global_importance`` (every completed cell), ``ground_truth_importance``
    (cells whose dataset has one), ``score_trajectory`` (ScoresActivation cells:
    epochs + 1 × features, row 0 = initial weights), ``column_names`` (tabular cells:
    the names of the importance's entries). :func:`harness.load_importance` gives the
    global importance as a DataFrame with those names.
    """
    with ResultsStore(out_dir, create=False) as store:
        return store.arrays(store.resolve_run_id(run_id), name)
