"""Processes (issue 13, points 10–11): local workers die with their parent, SIGTERM is
an interrupt like Ctrl-C, a Dask scheduler that cannot be reached or loses every worker
is reported within a bounded time, and the run can be resumed."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import psutil
import pytest

from harness import load_results
from harness.store import ResultsStore, run_status
from tests.conftest import assert_user_error, cli
from tests.test_reliability import KILL_SUITE

ENV = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "200"}


def _stored_cells(out: Path) -> int:
    try:
        with closing(sqlite3.connect(out / "harness.sqlite")) as db:
            return int(db.execute("SELECT COUNT(*) FROM cells").fetchone()[0])
    except sqlite3.Error:  # not created yet
        return 0


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def _pool_workers(parent: psutil.Process) -> list[psutil.Process]:
    """The spawned worker processes of a --jobs run (not its resource tracker)."""
    workers = []
    for child in parent.children(recursive=True):
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                workers.append(child)
        except psutil.NoSuchProcess:
            continue
    return workers


def _start_jobs_run(tmp_path: Path) -> tuple[subprocess.Popen[str], list[psutil.Process], Path]:
    """A ``--jobs 2`` run with its two workers up and a first cell stored. Its output goes
    to files (``stdout``, ``stderr`` in ``tmp_path``), not pipes: orphaned workers would
    hold a pipe open and make reading it hang."""
    suite = tmp_path / "killable.toml"
    suite.write_text(KILL_SUITE)
    out = tmp_path / "out"
    process = subprocess.Popen(
        ["xai-harness", "run", str(suite), "--out", str(out), "--jobs", "2", "--no-cache"],
        stdout=(tmp_path / "stdout").open("w"), stderr=(tmp_path / "stderr").open("w"),
        text=True, env=ENV,
    )  # fmt: skip
    parent = psutil.Process(process.pid)
    _wait_for(lambda: len(_pool_workers(parent)) == 2, 120, "two worker processes")
    workers = _pool_workers(parent)
    _wait_for(lambda: _stored_cells(out) >= 1, 120, "a first stored cell")
    return process, workers, out


@pytest.mark.slow
def test_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    process, workers, _ = _start_jobs_run(tmp_path)
    process.kill()  # SIGKILL: the parent cannot clean up
    process.wait()
    _gone, alive = psutil.wait_procs(workers, timeout=15)
    for orphan in alive:  # leave no orphan behind, whatever the verdict
        orphan.kill()
    assert not alive, f"orphaned workers still running: {[w.pid for w in alive]}"


@pytest.mark.slow
def test_sigterm_interrupts_like_ctrl_c_and_the_run_resumes(tmp_path: Path) -> None:
    process, workers, out = _start_jobs_run(tmp_path)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    stderr = (tmp_path / "stderr").read_text()
    assert process.returncode == 143, stderr
    assert "interrupted (SIGTERM)" in stderr and "Traceback" not in stderr, stderr
    _gone, alive = psutil.wait_procs(workers, timeout=15)
    for orphan in alive:
        orphan.kill()
    assert not alive
    with ResultsStore(out, create=False) as store:
        run_id = store.resolve_run_id(None)
        info = store.run_info(run_id)
        assert info["status"] == "interrupted" and run_status(store, info) == "interrupted"
        kept = len(store.cell_statuses(run_id))
    assert 1 <= kept < 12
    resumed = subprocess.run(
        ["xai-harness", "run", str(tmp_path / "killable.toml"), "--out", str(out), "--resume",
         "--jobs", "2", "--no-cache"],
        capture_output=True, text=True, env=ENV, check=False,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{kept} kept from before" in " ".join(resumed.stdout.split())
    assert load_results(out)["cell_id"].nunique() == 12


# --- Dask ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("tcp://127.0.0.1:9", "cannot reach a Dask scheduler there"),
        ("not an address", "cannot reach a Dask scheduler there"),
        ("foo://bar:1", "unknown address scheme"),
    ],
)
def test_an_unreachable_or_malformed_scheduler_is_one_line_within_bounded_time(
    address: str, message: str, tmp_path: Path
) -> None:
    suite = tmp_path / "killable.toml"
    suite.write_text(KILL_SUITE)
    out = tmp_path / "out"
    started = time.monotonic()
    result = cli("run", str(suite), "--out", str(out), "--executor", "dask",
                 "--scheduler", address)  # fmt: skip
    elapsed = time.monotonic() - started
    assert_user_error(result, "--scheduler", message)
    assert elapsed < 30, f"took {elapsed:.1f} s"  # the connect timeout is 10 s
    assert _stored_cells(out) == 0
    if (out / "harness.sqlite").exists():  # no run was stored for a run that never began
        with closing(sqlite3.connect(out / "harness.sqlite")) as db:
            assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def _dask_worker(address: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["dask", "worker", address, "--nworkers", "1", "--nthreads", "1", "--no-nanny",
         "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV,
    )  # fmt: skip


@pytest.mark.slow
def test_losing_every_dask_worker_is_reported_and_the_run_resumes(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    suite = tmp_path / "killable.toml"
    suite.write_text(KILL_SUITE)
    out = tmp_path / "out"
    with LocalCluster(n_workers=0, scheduler_port=0, dashboard_address=None,
                      host="127.0.0.1") as cluster:  # fmt: skip
        address = cluster.scheduler_address
        worker = _dask_worker(address)
        command = ["xai-harness", "run", str(suite), "--out", str(out), "--executor", "dask",
                   "--scheduler", address, "--worker-timeout", "3", "--no-cache"]  # fmt: skip
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=ENV)  # fmt: skip
        try:
            _wait_for(lambda: _stored_cells(out) >= 1, 180, "a first stored cell")
            worker.kill()  # the only worker dies mid-run
            worker.wait()
            stdout, stderr = run.communicate(timeout=90)  # not a silent hang
        finally:
            run.kill()
            worker.kill()
        assert run.returncode == 2, stdout + stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "no worker for 3 s" in errors[0], stderr
        assert "Traceback" not in stderr
        kept = _stored_cells(out)
        assert 1 <= kept < 12
        worker = _dask_worker(address)  # workers are back: continue the run
        try:
            resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True,
                                     env=ENV, check=False, timeout=300)  # fmt: skip
        finally:
            worker.kill()
            worker.wait()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{kept} kept from before" in " ".join(resumed.stdout.split())
    assert load_results(out)["cell_id"].nunique() == 12
