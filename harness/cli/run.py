"""``xai-harness run``: run a suite, store every score, print the leaderboard."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from harness.cli.app import (
    MLFLOW_DEFAULT,
    MlflowOption,
    OutOption,
    app,
    err,
    log_to_mlflow,
    out,
    user_errors,
)
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.runner.executor import Executor
    from harness.runner.run import RunSummary
    from harness.suite import Suite

#: The suite ``run`` runs when none is named (a bundled suite).
DEFAULT_SUITE = "quick"


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run is marked interrupted and can be resumed."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ExecutorKind(StrEnum):
    local = "local"
    dask = "dask"


def job_count(jobs: str, suite: Suite, cached: bool) -> int:
    """``--jobs``: a positive count, or ``auto`` (:func:`harness.runner.parallel.
    automatic_jobs`)."""
    from harness.runner.parallel import automatic_jobs

    if jobs.strip().lower() == "auto":
        return automatic_jobs(suite, cached)
    try:
        count = int(jobs)
    except ValueError:
        count = 0
    if count < 1:
        raise HarnessError(
            f"--jobs {jobs!r}: give a number of processes (1 or more) or 'auto' (also "
            "read from $XAI_HARNESS_JOBS)"
        )
    return count


def _executor(
    kind: ExecutorKind, jobs: int, scheduler: str | None, worker_timeout: float, device: str
) -> Executor:
    from harness.environment import cuda_devices
    from harness.runner.executor import SerialExecutor
    from harness.runner.parallel import DaskExecutor, ProcessExecutor

    if kind is ExecutorKind.dask:
        return DaskExecutor(
            scheduler,
            workers=jobs if jobs > 1 else 2,
            worker_timeout=worker_timeout,
            gpus=len(cuda_devices()) if device in ("cuda", "auto") else 0,
        )
    if scheduler is not None:
        raise HarnessError("--scheduler goes with --executor dask")
    return ProcessExecutor(jobs) if jobs > 1 else SerialExecutor()


@app.command()
@user_errors
def run(
    suite: Annotated[
        str, typer.Argument(help="suite file or bundled suite name", show_default=True)
    ] = DEFAULT_SUITE,
    out_dir: OutOption = Path("results"),
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", min=1, help="run seeds 0 … N-1 instead of the suite's seeds"),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="continue a stored run of this suite: `--resume` alone (or `--resume latest`)"
            " takes its latest run, `--resume RUN_ID` that one; stored cells are kept, only "
            "missing ones run",
        ),
    ] = None,
    jobs: Annotated[
        str,
        typer.Option(
            "--jobs",
            envvar="XAI_HARNESS_JOBS",
            help="run on N local processes (model groups, and each model to train); auto: "
            "as many as the usable cores hold at the suite's threads per cell (1: serial)",
        ),
    ] = "auto",
    executor: Annotated[
        ExecutorKind,
        typer.Option("--executor", help="local (serial, or --jobs processes) or dask"),
    ] = ExecutorKind.local,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="dask: scheduler address (default: a LocalCluster)"),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache", help="cache folder for models and explanations (default: <out>/cache)"
        ),
    ] = None,
    worker_timeout: Annotated[
        float,
        typer.Option(
            "--worker-timeout",
            min=1,
            help="dask: stop (resumably) after this many seconds without any worker",
        ),
    ] = 120.0,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="recompute everything; read and write no cache")
    ] = False,
    openml_cache: Annotated[
        Path | None,
        typer.Option(
            "--openml-cache",
            help="root of the OpenML cache for datasets without their own `cache_dir` "
            "(sets OPENML_CACHE_DIR for this run)",
        ),
    ] = None,
    mlflow: MlflowOption = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="after the run, print where its time went: seconds per stage, the "
            "costliest cell stages and metrics (each cell stores them)",
        ),
    ] = False,
) -> None:
    """Run a suite, store every score and print the leaderboard."""
    from harness.output_paths import writable_folder
    from harness.runner.progress import RichProgress
    from harness.runner.run import run_suite
    from harness.suite import load_suite

    if openml_cache is not None:
        os.environ["OPENML_CACHE_DIR"] = str(openml_cache.expanduser().resolve())
    loaded = load_suite(suite, seeds=list(range(seeds)) if seeds else None)
    writable_folder(out_dir, "--out")
    cache_dir = None if no_cache else (cache or Path(out_dir) / "cache")
    if cache_dir is not None:
        writable_folder(cache_dir, "--cache")
    workers = job_count(jobs, loaded, cache_dir is not None)
    chosen = _executor(executor, workers, scheduler, worker_timeout, loaded.spec.execution.device)
    try:
        with terminate_as_interrupt():
            summary = run_suite(
                loaded,
                out_dir,
                progress=RichProgress(err),
                resume=resume,
                executor=chosen,
                cache_dir=cache_dir,
                cache=cache_dir is not None,
            )
    except KeyboardInterrupt as stop:
        err.print(
            f"interrupted{' (SIGTERM)' if isinstance(stop, Terminated) else ''}: the cells "
            f"finished so far are stored in {out_dir}; the run is marked 'interrupted'; "
            f"continue it with `xai-harness run {suite} --out {out_dir} --resume`"
        )
        raise typer.Exit(143 if isinstance(stop, Terminated) else 130) from None
    print_run_tables(out_dir, summary.run_id)
    print_summary(summary)
    if profile:
        print_profile(out_dir, summary.run_id)
    if mlflow is not None:
        log_to_mlflow(mlflow, out_dir, summary.run_id)
    if summary.any_failed:
        raise typer.Exit(1)


def print_run_tables(out_dir: Path, run_id: str) -> None:
    """The leaderboards of a stored run, on the terminal."""
    from harness.report.aggregate import all_tables, summarise
    from harness.report.render import print_tables
    from harness.store import ResultsStore

    with ResultsStore(out_dir, create=False) as store:
        print_tables(out, all_tables(summarise(store.results(run_id)), "compact"))


def print_profile(out_dir: Path, run_id: str) -> None:
    """Where the run's time went (:mod:`harness.report.profile`)."""
    from harness.report.profile import profile_lines
    from harness.store import ResultsStore

    with ResultsStore(out_dir, create=False) as store:
        for line in profile_lines(store, run_id):
            out.print(line, highlight=False, soft_wrap=True)


def print_summary(summary: RunSummary) -> None:
    """The run's counts, wall time per stage, and each distinct failure once."""
    from harness.runner.timing import STAGES

    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    if summary.resumed:
        counts += f"; {summary.resumed} kept from before, not recomputed"
    if any(summary.reused.values()):
        counts += (
            f"; from the cache: {summary.reused['models']} models, "
            f"{summary.reused['explanations']} explanations"
        )
    if summary.failed_scores:
        counts += f"; {summary.failed_scores} scores failed"
    out.print(f"run {summary.run_id} stored in {summary.store_path} ({counts})")
    stages = summary.stage_seconds
    parts = " · ".join(
        f"{stage} {stages[stage]:.1f} s" for stage in (*STAGES, "overhead") if stage in stages
    )
    out.print(f"wall {stages['total']:.1f} s: {parts}")
    print_failures(summary)


def print_failures(summary: RunSummary) -> None:
    """Each distinct failure of a run — a cell's, or a metric's — once."""
    by_error: dict[str, list[str]] = {}
    for cell_id, error in summary.failures:
        by_error.setdefault(error, []).append(cell_id)
    for error, cells in by_error.items():  # one line per distinct failure
        where = cells[0] if len(cells) == 1 else f"{len(cells)} cells ({cells[0]}, …)"
        out.print(Text.assemble(("failed", "red"), f" {where}: {error}"), highlight=False)


def optional_resume_value(args: list[str]) -> list[str]:
    """Options that may stand alone get their implied value: ``--resume`` (resume the
    latest run) gets ``latest`` when no run id follows (end of the line, or another option
    next); ``--mlflow`` gets :data:`~harness.cli.app.MLFLOW_DEFAULT` unless a URI (text
    with a ``:``, e.g. ``sqlite:///mlflow.db``) follows — so ``run --mlflow quick`` runs
    the suite ``quick``."""
    fixed = list(args)
    for option, implied, given in (
        ("--resume", "latest", lambda arg: not arg.startswith("-")),
        ("--mlflow", MLFLOW_DEFAULT, lambda arg: ":" in arg and not arg.startswith("-")),
    ):
        for index, arg in enumerate(fixed):
            if arg == option and (index + 1 == len(fixed) or not given(fixed[index + 1])):
                fixed.insert(index + 1, implied)
                break
    return fixed
