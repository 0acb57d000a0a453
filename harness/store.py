"""The results store: one SQLite file, ``<out>/harness.sqlite``, appended to by every run.

Long format: ``runs`` (suite text, resolved config, environment, stage timings),
``cells`` (one row per dataset × model × explainer × seed, with status and timings) and
``scores`` (one row per cell and metric: value, direction, conventions and their hash)
and ``arrays`` (per cell: its global importance and what was recorded while training,
as ``.npy`` bytes read back with ``allow_pickle=False``).
A score that could not be computed is stored with value NULL and a ``note`` saying why,
so reports show missing entries instead of hiding them. Each cell is written in its own
transaction, so a killed run loses at most the cell in flight.
"""

from __future__ import annotations

import io
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from harness.errors import HarnessError

STORE_FILENAME = "harness.sqlite"
SCHEMA_VERSION = 1

CellStatus = Literal["ok", "failed", "skipped"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    suite_name TEXT NOT NULL,
    suite_path TEXT,
    suite_text TEXT NOT NULL,
    config TEXT NOT NULL,
    environment TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    stage_seconds TEXT
);
CREATE TABLE IF NOT EXISTS cells (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    cell_id TEXT NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    explainer TEXT NOT NULL,
    seed INTEGER NOT NULL,
    dataset_name TEXT NOT NULL,
    model_name TEXT NOT NULL,
    explainer_name TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    train_seconds REAL,
    explain_seconds REAL,
    score_seconds REAL,
    n_explained INTEGER,
    torch_threads INTEGER,
    warnings TEXT,
    finished_at TEXT NOT NULL,
    PRIMARY KEY (run_id, cell_id)
);
CREATE TABLE IF NOT EXISTS scores (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    metric_name TEXT NOT NULL,
    value REAL,
    higher_is_better INTEGER NOT NULL,
    unit TEXT NOT NULL,
    conventions TEXT NOT NULL,
    conventions_hash TEXT NOT NULL,
    note TEXT,
    PRIMARY KEY (run_id, cell_id, metric),
    FOREIGN KEY (run_id, cell_id) REFERENCES cells(run_id, cell_id)
);
CREATE TABLE IF NOT EXISTS arrays (
    run_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, cell_id, name),
    FOREIGN KEY (run_id, cell_id) REFERENCES cells(run_id, cell_id)
);
"""

#: Columns of :func:`load_results`, in order.
RESULT_COLUMNS = [
    "run_id",
    "dataset",
    "model",
    "explainer",
    "seed",
    "metric",
    "value",
    "higher_is_better",
    "status",
    "note",
    "error",
    "unit",
    "cell_id",
    "dataset_name",
    "model_name",
    "explainer_name",
    "metric_name",
    "conventions",
    "conventions_hash",
    "train_seconds",
    "explain_seconds",
    "score_seconds",
    "n_explained",
    "torch_threads",
    "warnings",
]


@dataclass(frozen=True)
class CellRecord:
    """One finished (or skipped, or failed) cell. Timings are wall seconds.

    ``warnings``: the distinct warnings libraries raised while the cell ran, one per line.
    """

    cell_id: str
    dataset: str
    model: str
    explainer: str
    seed: int
    dataset_name: str
    model_name: str
    explainer_name: str
    status: CellStatus
    error: str | None = None
    train_seconds: float | None = None
    explain_seconds: float | None = None
    score_seconds: float | None = None
    n_explained: int | None = None
    torch_threads: int | None = None
    warnings: str | None = None


@dataclass(frozen=True)
class ScoreRecord:
    """One metric of one cell; ``value`` is None when it could not be computed (see ``note``)."""

    metric: str
    metric_name: str
    value: float | None
    higher_is_better: bool
    unit: str
    conventions: dict[str, Any]
    conventions_hash: str
    note: str = ""


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """Sortable, readable and unique: ``YYYYmmdd-HHMMSS-xxxxxx`` (UTC)."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


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
    """Read and append runs in ``<folder>/harness.sqlite``."""

    def __init__(self, folder: str | Path, *, create: bool = True) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILENAME
        if not create and not self.path.is_file():
            raise HarnessError(
                f"no results store at {self.path}; run `xai-harness run` first "
                "or pass --out with the folder that holds harness.sqlite"
            )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            _retry_while_locked(self._set_up)
        except (OSError, sqlite3.DatabaseError) as exc:
            raise HarnessError(f"cannot open results store {self.path}: {exc}") from exc

    def _set_up(self) -> None:
        """WAL mode, foreign keys and the schema (idempotent)."""
        if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._db:
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    def begin_run(
        self,
        *,
        suite_name: str,
        suite_path: str | None,
        suite_text: str,
        config: dict[str, Any],
        environment: dict[str, Any],
    ) -> str:
        """Append a new run in status ``running``; returns its id."""
        run_id = new_run_id()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs (run_id, suite_name, suite_path, suite_text, config, "
                "environment, started_at, status) VALUES (?, ?, ?, ?, ?, ?, ?, 'running')",
                (
                    run_id,
                    suite_name,
                    suite_path,
                    suite_text,
                    json.dumps(config),
                    json.dumps(environment),
                    _now(),
                ),
            )
        return run_id

    def record_cell(
        self,
        run_id: str,
        cell: CellRecord,
        scores: list[ScoreRecord],
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        """Write a cell, its scores and its arrays atomically."""
        with self._transaction() as db:
            row = asdict(cell)
            columns = [*row, "run_id", "finished_at"]
            db.execute(
                f"INSERT INTO cells ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [*row.values(), run_id, _now()],
            )
            db.executemany(
                "INSERT INTO scores (run_id, cell_id, metric, metric_name, value, "
                "higher_is_better, unit, conventions, conventions_hash, note) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        cell.cell_id,
                        s.metric,
                        s.metric_name,
                        s.value,
                        int(s.higher_is_better),
                        s.unit,
                        json.dumps(s.conventions, sort_keys=True),
                        s.conventions_hash,
                        s.note or None,
                    )
                    for s in scores
                ],
            )
            db.executemany(
                "INSERT INTO arrays (run_id, cell_id, name, data) VALUES (?, ?, ?, ?)",
                [(run_id, cell.cell_id, name, _npy(a)) for name, a in (arrays or {}).items()],
            )

    def update_score(
        self, run_id: str, cell_id: str, metric: str, value: float | None, note: str
    ) -> None:
        """Set a score computed after its cell (e.g. an across-seeds statistic)."""
        with self._transaction() as db:
            db.execute(
                "UPDATE scores SET value = ?, note = ? "
                "WHERE run_id = ? AND cell_id = ? AND metric = ?",
                (value, note or None, run_id, cell_id, metric),
            )

    def array_names(self, run_id: str) -> list[str]:
        """The names of the arrays stored by the cells of a run, sorted."""
        rows = self._db.execute(
            "SELECT DISTINCT name FROM arrays WHERE run_id = ? ORDER BY name", (run_id,)
        ).fetchall()
        return [row[0] for row in rows]

    def arrays(self, run_id: str, name: str) -> dict[str, np.ndarray]:
        """The array ``name`` of every cell of a run that stored one, by cell id."""
        rows = self._db.execute(
            "SELECT cell_id, data FROM arrays WHERE run_id = ? AND name = ?", (run_id, name)
        )
        return {cell_id: np.load(io.BytesIO(data), allow_pickle=False) for cell_id, data in rows}

    def finish_run(self, run_id: str, *, status: str, stage_seconds: dict[str, float]) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, stage_seconds = ? WHERE run_id = ?",
                (_now(), status, json.dumps(stage_seconds), run_id),
            )

    def run_ids(self) -> list[str]:
        """All run ids, oldest first."""
        rows = self._db.execute("SELECT run_id FROM runs ORDER BY rowid")
        return [row[0] for row in rows]

    def cell_statuses(self, run_id: str) -> dict[str, tuple[str, str | None]]:
        """Stored cells of a run: cell id → (status, error)."""
        rows = self._db.execute(
            "SELECT cell_id, status, error FROM cells WHERE run_id = ?", (run_id,)
        )
        return {cell_id: (status, error) for cell_id, status, error in rows}

    def reopen_run(self, run_id: str) -> None:
        """Mark a stored run ``running`` again, to resume it."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL WHERE run_id = ?",
                (run_id,),
            )

    def latest_run_of(self, suite_name: str) -> str | None:
        """The latest run of the suite called ``suite_name`` (None if there is none)."""
        row = self._db.execute(
            "SELECT run_id FROM runs WHERE suite_name = ? ORDER BY rowid DESC LIMIT 1",
            (suite_name,),
        ).fetchone()
        return row[0] if row else None

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

    def run_info(self, run_id: str) -> dict[str, Any]:
        """The ``runs`` row with its JSON columns decoded."""
        cursor = self._db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        row = cursor.fetchone()
        if row is None:
            raise HarnessError(f"no run '{run_id}' in {self.path}")
        info = dict(zip([c[0] for c in cursor.description], row, strict=True))
        for key in ("config", "environment", "stage_seconds"):
            info[key] = json.loads(info[key]) if info[key] else None
        return info

    def results(self, run_id: str | None = None) -> pd.DataFrame:
        """One row per (cell, metric), every run or one run; see :data:`RESULT_COLUMNS`."""
        query = (
            "SELECT c.run_id, c.dataset, c.model, c.explainer, c.seed, s.metric, s.value, "
            "s.higher_is_better, c.status, s.note, c.error, s.unit, c.cell_id, "
            "c.dataset_name, c.model_name, c.explainer_name, s.metric_name, s.conventions, "
            "s.conventions_hash, c.train_seconds, c.explain_seconds, c.score_seconds, "
            "c.n_explained, c.torch_threads, c.warnings "
            "FROM cells c JOIN scores s ON s.run_id = c.run_id AND s.cell_id = c.cell_id "
            "JOIN runs r ON r.run_id = c.run_id"
        )
        params: tuple[str, ...] = ()
        if run_id is not None:
            query += " WHERE c.run_id = ?"
            params = (run_id,)
        query += " ORDER BY r.rowid, c.rowid, s.rowid"
        frame = pd.read_sql_query(query, self._db, params=params)
        frame["higher_is_better"] = frame["higher_is_better"].astype(bool)
        frame["value"] = frame["value"].astype(float)
        return frame[RESULT_COLUMNS]


def load_results(out_dir: str | Path = "results", run_id: str | None = None) -> pd.DataFrame:
    """Scores stored under ``out_dir`` as a tidy DataFrame, one row per cell × metric.

    All runs by default, or one run (a unique id prefix is enough). Columns include
    ``run_id, dataset, model, explainer, seed, metric, value, higher_is_better, status``
    (dataset/model/explainer are the suite's ``id`` labels); ``value`` is NaN where a
    score could not be computed, with the reason in ``note`` (and ``error`` for failed
    cells).
    """
    store = ResultsStore(out_dir, create=False)
    try:
        return store.results(None if run_id is None else store.resolve_run_id(run_id))
    finally:
        store.close()


def load_arrays(
    out_dir: str | Path = "results", name: str = "global_importance", run_id: str | None = None
) -> dict[str, np.ndarray]:
    """Arrays stored with the cells of a run (latest by default), by cell id.

    Names: ``global_importance`` (every completed cell), ``ground_truth_importance``
    (cells whose dataset has one), ``score_trajectory`` (ScoresActivation cells:
    epochs + 1 × features, row 0 = initial weights).
    """
    store = ResultsStore(out_dir, create=False)
    try:
        return store.arrays(store.resolve_run_id(run_id), name)
    finally:
        store.close()
