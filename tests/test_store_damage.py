"""Damage to the store and the file system (issue 13, points 5–9): a corrupted or foreign
store, a full disk, read-only media, path options of the wrong kind and crafted run ids
each give one ``error:`` line (or work, read-only), and no stored result is lost."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import load_results, run_suite
from harness.errors import HarnessError
from harness.store import ResultsStore
from harness.suite import parse_suite
from tests.conftest import ONE_SEED_SUITE, assert_user_error, cli


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder holding one complete run of the one-seed suite (no cache)."""
    out = tmp_path_factory.mktemp("stored")
    run_suite(parse_suite(ONE_SEED_SUITE), out)
    return out


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(ONE_SEED_SUITE)
    return path


def _copy(stored: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(stored, out)
    return out


def _sql(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as db:
        for statement in statements:
            db.execute(statement)
        db.commit()


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _malformed_page(path: Path) -> None:
    """Overwrite the root page of the scores table (its b-tree) with noise."""
    with closing(sqlite3.connect(path)) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'scores'").fetchone()
    data = bytearray(path.read_bytes())
    start = (root - 1) * page_size
    data[start : start + page_size] = np.random.default_rng(0).bytes(page_size)
    path.write_bytes(bytes(data))


def _other_program(path: Path) -> None:
    path.unlink()
    _sql(path, "CREATE TABLE users (id INTEGER, name TEXT)", "INSERT INTO users VALUES (1, 'x')")


def _foreign_runs_table(path: Path) -> None:
    path.unlink()
    _sql(path, "CREATE TABLE runs (id INTEGER, what TEXT)")


def _null_dataset(path: Path) -> None:
    """A cells table without its constraints (NOT NULL, primary key), holding a NULL
    dataset."""
    with closing(sqlite3.connect(path)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(cells)")]
        db.executescript(
            "PRAGMA legacy_alter_table = ON;"  # other tables keep referring to 'cells'
            f"ALTER TABLE cells RENAME TO old; CREATE TABLE cells ({', '.join(columns)});"
            "INSERT INTO cells SELECT * FROM old; DROP TABLE old;"
            "UPDATE cells SET dataset = NULL WHERE rowid = 1;"
        )


#: damage → (what it does to the store, whether a new `run` can still append safely)
DAMAGES: dict[str, tuple[Callable[[Path], None], bool]] = {
    "not an SQLite file": (_garbage, False),
    "truncated": (_truncated, False),
    "malformed page": (_malformed_page, False),
    "SQLite file of another program": (_other_program, False),
    "runs table of another program": (_foreign_runs_table, False),
    "newer schema": (lambda p: _sql(p, "UPDATE meta SET value = '99'"), False),
    "bad JSON in a column": (lambda p: _sql(p, "UPDATE runs SET config = '{oops'"), True),
    "NULL where an object is expected": (
        lambda p: _sql(p, "UPDATE runs SET config = 'null'"), True),
    "NULL in a required column": (_null_dataset, False),  # and its table lost its keys
    "text where a number is expected": (
        lambda p: _sql(p, "UPDATE scores SET value = 'abc' WHERE rowid = 1"), True),
    "an unknown cell status": (
        lambda p: _sql(p, "UPDATE cells SET status = '<b>' WHERE rowid = 1"), True),
    "conventions that are not an object": (
        lambda p: _sql(p, "UPDATE scores SET conventions = '[1]' WHERE rowid = 1"), True),
}  # fmt: skip


def _scores(frame: pd.DataFrame) -> pd.Series:
    """Non-timing scores by cell and metric; every cell ok and every score present."""
    assert (frame["status"] == "ok").all() and frame["value"].notna().all()
    kept = frame[frame["metric"] != "explain_seconds"]
    return kept.set_index(["cell_id", "metric"])["value"].sort_index()


COMMANDS = ["show", "report", "figures", "check", "run", "resume"]


def _command(command: str, out: Path, suite: Path, tmp_path: Path) -> list[str]:
    return {
        "show": ["show", "--out", str(out)],
        "report": ["report", "--out", str(out), "--to", str(tmp_path / "report")],
        "figures": ["figures", "--out", str(out), "--to", str(tmp_path / "figures")],
        "check": ["check", str(suite), "--out", str(out)],
        "run": ["run", str(suite), "--out", str(out), "--no-cache"],
        "resume": ["run", str(suite), "--out", str(out), "--no-cache", "--resume", "latest"],
    }[command]


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_or_foreign_store_is_one_error_line_on_every_command(
    damage: str, command: str, stored: Path, suite_file: Path, tmp_path: Path
) -> None:
    out = _copy(stored, tmp_path)
    spoil, appendable = DAMAGES[damage]
    spoil(out / "harness.sqlite")
    before = (out / "harness.sqlite").read_bytes()
    result = cli(*_command(command, out, suite_file, tmp_path))
    if command == "run" and appendable:
        # an old run's row is damaged, the file is sound: a new run appends and shows
        # only itself, every cell ok with every planned score equal to the undamaged
        # run's; the damaged row is left as it was
        assert result.exit_code == 0, result.stdout + result.stderr
        with closing(sqlite3.connect(out / "harness.sqlite")) as db:
            (new_run,) = db.execute("SELECT run_id FROM runs WHERE rowid = 2").fetchone()
        assert _scores(load_results(out, new_run)).equals(_scores(load_results(stored)))
        return
    assert_user_error(result, str(out / "harness.sqlite"))
    if not (command in ("run", "resume") and appendable):
        assert (out / "harness.sqlite").read_bytes() == before  # refused: nothing written


# --- point 6: a full disk ------------------------------------------------------------------


def _store_that_fills_up(monkeypatch: pytest.MonkeyPatch, pages: int) -> None:
    """Every store opened for writing holds at most ``pages`` pages: SQLite then reports
    SQLITE_FULL, 'database or disk is full', exactly as on a full disk."""
    set_up = ResultsStore._set_up

    def limited(self: ResultsStore) -> None:
        set_up(self)
        self._db.execute(f"PRAGMA max_page_count = {pages}")

    monkeypatch.setattr(ResultsStore, "_set_up", limited)


def test_a_full_disk_under_the_store_is_an_error_keeps_cells_and_resumes(
    stored: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run_suite(parse_suite(ONE_SEED_SUITE), out)  # a first run takes some pages
    with closing(sqlite3.connect(out / "harness.sqlite")) as db:
        used = db.execute("PRAGMA page_count").fetchone()[0]
    _store_that_fills_up(monkeypatch, used + 3)  # room for a cell or so, not a run
    with pytest.raises(HarnessError, match=r"is full .*free some space, then continue"):
        run_suite(parse_suite(ONE_SEED_SUITE), out)
    with ResultsStore(out, create=False) as store:
        first, second = store.run_ids()
        kept = store.cell_statuses(second)
        assert len(store.cell_statuses(first)) == 3 and len(kept) < 3
    monkeypatch.undo()  # space freed
    resumed = run_suite(parse_suite(ONE_SEED_SUITE), out, resume=second)
    assert resumed.resumed == len(kept) and resumed.counts["ok"] == 3
    frame = load_results(out)
    per_run = frame[frame["metric"] != "explain_seconds"].pivot_table(
        index=["cell_id", "metric"], columns="run_id", values="value"
    )
    pd.testing.assert_series_equal(per_run[first], per_run[second], check_names=False)


def test_a_full_disk_under_the_cache_is_an_error_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("harness.runner.cache.np.savez", no_space)
    cache = tmp_path / "cache"
    with pytest.raises(HarnessError, match=r"cannot write to the cache .*No space left"):
        run_suite(parse_suite(ONE_SEED_SUITE), tmp_path, cache_dir=cache)
    assert not list(cache.rglob(".tmp-*"))  # no half entry left behind
    monkeypatch.undo()
    resumed = run_suite(parse_suite(ONE_SEED_SUITE), tmp_path, cache_dir=cache, resume="latest")
    assert resumed.counts == {"ok": 3, "failed": 0, "skipped": 0}


@contextmanager
def _tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A real, small file system at ``folder`` (needs root with CAP_SYS_ADMIN)."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up ({mounted.stderr.strip()}); "
                    "the SQLite-level full-disk test above still runs")  # fmt: skip
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
def test_a_really_full_disk_through_the_command_line(suite_file: Path, tmp_path: Path) -> None:
    """On a 200 kB file system the first cells fit and a later one does not; after the
    file system grows, --resume completes the run."""
    with _tmpfs(tmp_path / "small", "200k") as small:
        command = ["xai-harness", "run", str(suite_file), "--out",
                   str(small), "--no-cache"]  # fmt: skip
        env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "200"}
        full = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        assert full.returncode == 2, full.stdout + full.stderr
        errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "full" in errors[0], full.stderr
        assert "Traceback" not in full.stderr
        with ResultsStore(small, create=False) as store:
            kept = store.cell_statuses(store.resolve_run_id(None))
        assert 1 <= len(kept) < 3, kept  # some cells were stored before the disk filled
        subprocess.run(["mount", "-o", "remount,size=20m", str(small)], check=True)
        resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True,
                                 env=env, check=False)  # fmt: skip
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"{len(kept)} kept from before" in " ".join(resumed.stdout.split())
        assert len(load_results(small).drop_duplicates("cell_id")) == 3


# --- point 7: read-only media ------------------------------------------------------------


@contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """``folder`` made read-only for this process: a read-only bind mount when running
    as root (permissions do not stop root), else the permission bits."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.iterdir()]}
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
        try:
            yield
        finally:
            for path, mode in modes.items():
                path.chmod(mode)
        return
    bound = subprocess.run(["mount", "--bind", str(folder), str(folder)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if bound.returncode != 0:
        pytest.skip(f"running as root without mount rights ({bound.stderr.strip()}); "
                    "cannot make a folder read-only for root")  # fmt: skip
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_results_folder_on_read_only_media_can_be_read(
    stored: Path, suite_file: Path, tmp_path: Path
) -> None:
    out = _copy(stored, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with _read_only(out):
        with pytest.raises(OSError):  # really read-only
            (out / "probe").write_text("x")
        assert cli("show", "--out", str(out)).exit_code == 0
        report = cli("report", "--out", str(out), "--to", str(tmp_path / "elsewhere"))
        assert report.exit_code == 0, report.stdout + report.stderr
        assert (tmp_path / "elsewhere" / "report.html").is_file()
        assert cli("check", str(suite_file), "--out", str(out)).exit_code in (0, 1)
        assert len(load_results(out)) == 15
        # the default report folder is inside the read-only one: said, not a traceback
        assert_user_error(cli("report", "--out", str(out)), "pass --to")
        # a run needs a writable store
        assert_user_error(cli("run", str(suite_file), "--out", str(out), "--no-cache"),
                          "--out", "cannot write there")  # fmt: skip
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before


# --- point 8: path options of the wrong kind -------------------------------------------


@pytest.mark.parametrize(
    ("option", "make", "message"),
    [
        ("--cache", "file", "is a file, not a folder"),
        ("--cache", "under a file", "cannot write there"),
        ("report --to", "file", "is a file, not a folder"),
        ("figures --to", "file", "is a file, not a folder"),
        ("check --junit", "folder", "is a folder; pass a file path"),
        ("check --junit", "under a file", "cannot write there"),
    ],
)
def test_path_options_of_the_wrong_kind_are_refused_before_anything_runs(
    option: str, make: str, message: str, stored: Path, suite_file: Path, tmp_path: Path
) -> None:
    out = _copy(stored, tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    path = {"file": blocker, "folder": tmp_path, "under a file": blocker / "sub"}[make]
    command, flag = option.split() if " " in option else ("run", option)
    args = {
        "run": ["run", str(suite_file), "--out", str(out)],
        "report": ["report", "--out", str(out)],
        "figures": ["figures", "--out", str(out)],
        "check": ["check", str(suite_file), "--out", str(out)],
    }[command]
    runs_before = load_results(out)["run_id"].nunique()
    assert_user_error(cli(*args, flag, str(path)), flag, message)
    assert load_results(out)["run_id"].nunique() == runs_before  # no run was created
    assert blocker.read_text() == "x"


# --- point 9: run ids read from a store ---------------------------------------------------


@pytest.mark.parametrize("command", ["report", "figures", "show"])
def test_a_crafted_run_id_never_becomes_a_path(command: str, stored: Path, tmp_path: Path) -> None:
    out = _copy(stored, tmp_path)
    crafted = "../../../escaped"
    _sql(out / "harness.sqlite", "PRAGMA foreign_keys = OFF",
         f"UPDATE runs SET run_id = '{crafted}'", f"UPDATE cells SET run_id = '{crafted}'",
         f"UPDATE scores SET run_id = '{crafted}'",
         f"UPDATE arrays SET run_id = '{crafted}'")  # fmt: skip
    listing_before = sorted(p.name for p in tmp_path.parent.iterdir())
    assert_user_error(cli(command, "--out", str(out)), "holds a run id", "was altered")
    assert not (tmp_path / "escaped").exists() and not (out.parent / "escaped").exists()
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == listing_before


def test_ids_and_figure_names_read_from_a_store_stay_inside_the_output_folder(
    stored: Path, tmp_path: Path
) -> None:
    """A store edited so that a dataset id and a declared figure name hold path parts:
    the figures are still written inside the folder named by --to."""
    out = _copy(stored, tmp_path)
    import json

    with closing(sqlite3.connect(out / "harness.sqlite")) as db:
        (config,) = db.execute("SELECT config FROM runs").fetchone()
        config = json.loads(config)
        config["figures"] = [{"kind": "runtime", "name": "../../outside"}]
        db.execute("UPDATE runs SET config = ?", (json.dumps(config),))
        db.execute("UPDATE cells SET dataset = '../../../ds'")
        db.commit()
    target = tmp_path / "figures"
    result = cli("figures", "--out", str(out), "--to", str(target))
    assert result.exit_code == 0, result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.suffix in (".png", ".pdf")]
    assert written and all(target in p.parents for p in written), written
