"""A run: plan a suite, run its model groups through an executor, store every cell as it
finishes, then score the across-seeds statistics — or resume a stored run.

This process is the only writer of the store. A run is ``ok`` (or ``failed``, when a
cell failed) only when every planned cell is stored; otherwise — Ctrl-C, SIGTERM, a full
disk, a lost worker — it is ``interrupted`` and ``resume`` continues it, keeping every
stored cell as it is.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from harness.artifacts import GLOBAL_IMPORTANCE
from harness.environment import collect_environment
from harness.errors import HarnessError
from harness.inputs import check_unchanged, fingerprints
from harness.records import CellRecord, ScoreRecord
from harness.runner.cache import ResultCache
from harness.runner.cell import cell_record, resolve_device
from harness.runner.executor import Executor, GroupWork, SerialExecutor, model_groups
from harness.runner.lifecycle import stored_run
from harness.runner.meta_perturbation import score_meta_consistency
from harness.runner.plan import Cell, plan
from harness.runner.progress import ProgressReporter, SilentProgress
from harness.runner.scoring import score_across_seeds
from harness.runner.threads import describe as describe_threads
from harness.runner.threads import thread_budget
from harness.runner.timing import StageClock
from harness.store import STORE_FILENAME, ResultsStore, new_run_id
from harness.suite import Suite, load_suite


@dataclass
class RunSummary:
    """What a finished run reports: its id, cell counts and wall seconds per stage."""

    run_id: str
    store_path: Path
    counts: dict[str, int]
    stage_seconds: dict[str, float]
    failures: list[tuple[str, str]] = field(default_factory=list)
    resumed: int = 0  #: cells kept from the stored run when resuming (not recomputed)
    #: models and explanations taken from the cache (in this process; serial runs)
    reused: dict[str, int] = field(default_factory=dict)

    #: scores whose metric failed in cells that are otherwise ok
    failed_scores: int = 0

    @property
    def any_failed(self) -> bool:
        """A cell or a score failed (the exit code is then 1)."""
        return self.counts.get("failed", 0) > 0 or self.failed_scores > 0


@dataclass
class Tally:
    """Cell counts and failures of a run, as its cells are stored."""

    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0, "skipped": 0})
    failures: list[tuple[str, str]] = field(default_factory=list)
    failed_scores: int = 0

    def add(self, record: CellRecord, scores: list[ScoreRecord] | None = None) -> None:
        self.counts[record.status] += 1
        if record.status == "failed":
            self.failures.append((record.cell_id, record.error or ""))
            return
        self.add_failed_scores((record.cell_id, s) for s in scores or [])

    def add_failed_scores(self, scores: Iterable[tuple[str, ScoreRecord]]) -> None:
        """Count the failed ones of (cell id, score) pairs."""
        for cell_id, score in scores:
            if score.status == "failed":
                self.failed_scores += 1
                self.failures.append((cell_id, score.note))


def run_suite(
    suite: Suite | str | Path,
    out_dir: str | Path = "results",
    *,
    progress: ProgressReporter | None = None,
    resume: str | None = None,
    executor: Executor | None = None,
    cache_dir: str | Path | None = None,
    cache: bool = True,
) -> RunSummary:
    """Run every cell of ``suite`` (a :class:`Suite`, a path or a bundled name).

    Appends one run to ``<out_dir>/harness.sqlite``; each cell is stored as it finishes.
    An exception or non-finite output in one cell marks that cell ``failed`` and the run
    goes on. ``resume`` (a run id or prefix, or ``"latest"`` for the suite's latest run)
    continues a stored run of the same suite configuration instead: its stored cells are
    kept as they are and only the missing ones run. ``executor`` runs the cells (default:
    :class:`SerialExecutor`, in this process); this process stays the only store writer.
    Trained models and explanations are kept by content in ``cache_dir`` (default
    ``<out_dir>/cache``, as ``xai-harness run``; see :mod:`harness.runner.cache`): what is
    found there is reused, not recomputed; ``cache=False`` reads and writes no cache
    (``--no-cache``).
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    if resume is not None and (rescoring := _rescoring_to_resume(out_dir, suite, resume)):
        from harness.rescoring import continue_rescoring

        return continue_rescoring(out_dir, rescoring, cache_dir=cache_dir, progress=progress)
    if cache:
        cache_dir = cache_dir if cache_dir is not None else Path(out_dir) / "cache"
    progress = progress or SilentProgress()
    executor = executor or SerialExecutor()
    results_cache = ResultCache(cache_dir) if cache and cache_dir is not None else None
    options = suite.spec.execution
    resolve_device(options.device)  # fails before the run begins when it is missing
    if isinstance(options.threads, int):  # the policy sets it per cell otherwise
        torch.set_num_threads(options.threads)
    jobs = int(executor.describe().get("jobs", 1))
    cells = plan(suite)
    clock = StageClock()
    run_started = time.perf_counter()

    with ResultsStore(out_dir) as store, ExitStack() as held:
        executor.open()  # e.g. reach the Dask scheduler: fails before a run is stored
        held.callback(executor.close)
        if resume is None:
            run_id = new_run_id()
            begin = functools.partial(
                store.begin_run,
                suite_name=suite.name,
                suite_path=str(suite.path) if suite.path else None,
                suite_text=suite.text,
                config=suite.resolved_config(),
                environment={
                    **collect_environment(),
                    "executor": executor.describe(),
                    "thread_policy": describe_threads(options.threads, thread_budget(jobs)),
                    "inputs": fingerprints(suite),
                },
                run_id=run_id,
            )
            end = held.enter_context(stored_run(store, run_id, begin))
            stored: dict[str, tuple[str, str | None]] = {}
            previous_seconds: dict[str, float] = {}
        else:
            run_id = _run_to_resume(store, suite, resume)
            end = held.enter_context(
                stored_run(store, run_id, functools.partial(store.reopen_run, run_id))
            )
            stored = store.cell_statuses(run_id)
            previous_seconds = store.run_info(run_id)["stage_seconds"] or {}
        tally = Tally()
        progress.start(f"{suite.name} ({run_id})", len(cells))
        missing: list[str] = []
        try:
            work = _work(cells, stored, store, run_id, tally, progress)
            for _, record, scores, arrays in executor.run(
                suite, work, clock, progress, results_cache
            ):
                with clock.time("store"):
                    store.record_cell(run_id, record, scores, arrays)
                tally.add(record, scores)
                progress.cell_done(record.cell_id, record.status)
            with clock.time("score"):
                tally.add_failed_scores(score_across_seeds(suite.metrics, cells, store, run_id))
                score_meta_consistency(
                    suite.metrics, suite.spec.meta_evaluation, cells, store, run_id
                )
            now_stored = store.cell_statuses(run_id)
            missing = [c.cell_id for c in cells if c.cell_id not in now_stored]
            if not missing:  # a run is ok only when every planned cell is stored
                failed = tally.counts["failed"] or tally.failed_scores
                end.status = "failed" if failed else "ok"
            end.completed = True
        finally:
            progress.finish()
            stage_seconds = _stage_seconds(clock, time.perf_counter() - run_started)
            for stage, seconds in previous_seconds.items():  # a resumed run adds up
                stage_seconds[stage] = stage_seconds.get(stage, 0.0) + seconds
            end.stage_seconds = stage_seconds
    if missing:
        raise HarnessError(
            f"run {run_id}: {len(missing)} planned cells were not stored (first: "
            f"{missing[0]}); the run is marked 'interrupted' — continue it with --resume"
        )
    reused = dict(results_cache.hits) if results_cache is not None else {}
    return RunSummary(
        run_id,
        store.path,
        tally.counts,
        stage_seconds,
        tally.failures,
        len(stored),
        reused,
        tally.failed_scores,
    )


def _work(
    cells: list[Cell],
    stored: dict[str, tuple[str, str | None]],
    store: ResultsStore,
    run_id: str,
    tally: Tally,
    progress: ProgressReporter,
) -> list[GroupWork]:
    """The model groups still to run, each with the global importance of its explainers
    already stored (references); the stored cells are counted as they are."""
    saved_importance = store.arrays(run_id, GLOBAL_IMPORTANCE) if stored else {}
    work = []
    for group in model_groups(cells):
        references: dict[str, np.ndarray] = {}
        for cell in (c for c in group if c.cell_id in stored):  # resumed: as stored
            state, error = stored[cell.cell_id]
            if cell.cell_id in saved_importance:
                references[cell.explainer.id] = saved_importance[cell.cell_id]
            tally.add(cell_record(cell, state, error=error))  # type: ignore[arg-type]
            progress.cell_done(cell.cell_id, "stored")
        pending = [c for c in group if c.cell_id not in stored]
        if pending:
            work.append((pending, references))
    return work


def _stage_seconds(clock: StageClock, total: float) -> dict[str, float]:
    """Wall seconds per stage, the total, and the overhead the stages do not account for
    (at least 0: parallel executors add up their workers' stage seconds, which can exceed
    the wall time)."""
    seconds = {**clock.seconds, "total": total}
    seconds["overhead"] = max(0.0, total - sum(clock.seconds.values()))
    return seconds


def _rescoring_to_resume(out_dir: str | Path, suite: Suite, resume: str) -> str | None:
    """The run ``resume`` names when it is a rescoring (continued as one), else None."""
    if not (Path(out_dir) / STORE_FILENAME).is_file():
        return None
    with ResultsStore(out_dir, create=False) as store:
        run_id = (
            store.latest_run_of(suite.name) if resume == "latest" else store.resolve_run_id(resume)
        )
        if run_id is None or not store.run_info(run_id).get("source_run"):
            return None
        return run_id


def _run_to_resume(store: ResultsStore, suite: Suite, resume: str) -> str:
    """The run to continue: ``resume`` (an id or prefix) or, for ``"latest"``, the suite's
    latest run; refused when the suite's resolved configuration has changed since."""
    run_id = store.latest_run_of(suite.name) if resume == "latest" else store.resolve_run_id(resume)
    if run_id is None:
        raise HarnessError(
            f"no stored run of suite '{suite.name}' in {store.path} to resume; run it first"
        )
    info = store.run_info(run_id)
    now = json.loads(json.dumps(suite.resolved_config()))
    if info["suite_name"] != suite.name or info["config"] != now:
        raise HarnessError(
            f"run {run_id} was made with a different suite configuration (suite "
            f"'{info['suite_name']}'); resume it with the suite it ran, or start a new run"
        )
    check_unchanged(info["environment"].get("inputs"), suite, run_id, "resume")
    return run_id
