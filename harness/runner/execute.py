"""Serial execution of a plan: load → train (once per model key) → explain → score → store."""

from __future__ import annotations

import functools
import json
import signal
import threading
import time
import traceback
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from harness.datasets.base import Dataset
from harness.environment import collect_environment
from harness.errors import HarnessError
from harness.explainers.base import ExplainContext, Explanation
from harness.metrics.base import Evidence, Metric
from harness.models.base import TrainedModel
from harness.run_lock import RunLock
from harness.runner.cache import ResultCache
from harness.runner.plan import Cell, plan
from harness.runner.progress import ProgressReporter, SilentProgress
from harness.store import (
    CellRecord,
    CellStatus,
    ResultsStore,
    ScoreRecord,
    StoreError,
    new_run_id,
)
from harness.suite import ExecutionOptions, Resolved, Suite, load_suite

T = TypeVar("T")

#: Stages whose wall time is accounted for separately; the rest of a run is "overhead".
STAGES = ("data", "train", "explain", "score", "store")


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

    @property
    def any_failed(self) -> bool:
        return self.counts.get("failed", 0) > 0


class CellFailure(Exception):
    """A cell could not complete; the message says which stage and why."""


class CellTimeout(BaseException):
    """Raised inside a cell when its time is up (a BaseException, so that code under test
    which catches ``Exception`` cannot swallow it)."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeout` in this (main) thread after ``seconds`` of wall time.

    Uses ``SIGALRM``: Python code, sleeps and blocking I/O are interrupted; a single long
    native call (one torch kernel) finishes first. Without a limit, off the main thread, or
    on a platform without ``SIGALRM``, the block runs unlimited.
    """
    main = threading.current_thread() is threading.main_thread()
    if seconds is None or not hasattr(signal, "setitimer") or not main:
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise CellTimeout(f"timed out after {seconds:g} s (execution.cell_timeout)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class StageClock:
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started


@dataclass
class _Trained:
    model: TrainedModel
    test_predictions: np.ndarray
    cache_key: str | None = None


class _Memo:
    """Remembers results (or exceptions) of the current group only, per variant.

    Cells are ordered by group (a dataset and seed, or a model key), so a group's
    results are dropped as soon as the next group starts: at most one group is in memory.
    """

    def __init__(self) -> None:
        self._group: object = None
        self._values: dict[object, object] = {}

    def get(self, group: object, compute: Callable[[], T], variant: object = None) -> T:
        if group != self._group:
            self._group, self._values = group, {}
        if variant not in self._values:
            try:
                self._values[variant] = compute()
            except (Exception, CellTimeout) as exc:  # remembered: the group fails alike
                self._values[variant] = exc
        value = self._values[variant]
        if isinstance(value, Exception | CellTimeout):
            raise value
        return value  # type: ignore[return-value]


#: One cell's outcome, as a run stores it.
CellOutcome = tuple[Cell, CellRecord, list[ScoreRecord], dict[str, np.ndarray]]
#: Cells of one model group still to run, with the global importance of the group's
#: explainers already known (references for ``spearman_ref``).
GroupWork = tuple[list[Cell], dict[str, np.ndarray]]


class Executor(Protocol):
    """Runs groups of cells and yields their outcomes, in any order."""

    def describe(self) -> dict[str, Any]:
        """How cells run (stored with the run, so parallel timings are told apart)."""
        ...

    def open(self) -> None:
        """Acquire what running needs (a cluster); called before the run is stored."""
        ...

    def close(self) -> None:
        """Release what :meth:`open` acquired (called however the run ends)."""
        ...

    def run(
        self,
        suite: Suite,
        work: list[GroupWork],
        clock: StageClock,
        progress: ProgressReporter,
        cache: ResultCache | None,
    ) -> Iterator[CellOutcome]: ...


def model_groups(cells: list[Cell]) -> list[list[Cell]]:
    """Consecutive cells that share a trained model (the plan orders them so)."""
    groups: list[list[Cell]] = []
    for cell in cells:
        if groups and groups[-1][0].model_key == cell.model_key:
            groups[-1].append(cell)
        else:
            groups.append([cell])
    return groups


def run_group(
    suite: Suite,
    cells: list[Cell],
    references: dict[str, np.ndarray],
    clock: StageClock,
    progress: ProgressReporter,
    memos: tuple[_Memo, _Memo] | None = None,
    cache: ResultCache | None = None,
) -> Iterator[CellOutcome]:
    """Run one model group's cells in order in this process (the model is trained once)."""
    datasets, models = memos or (_Memo(), _Memo())
    device = resolve_device(suite.spec.execution.device)
    context = _CellContext(suite, device, datasets, models, clock, progress, cache)
    references = dict(references)
    for cell in cells:
        with warnings.catch_warnings(record=True) as caught:
            record, scores, arrays = _run_cell(cell, context, references)
        if caught:
            record = replace(record, warnings=_distinct_warnings(caught))
        if "global_importance" in arrays:
            references[cell.explainer.id] = arrays["global_importance"]
        yield cell, record, scores, arrays


class SerialExecutor:
    """Every cell in this process, one after another (the default)."""

    def describe(self) -> dict[str, Any]:
        return {"kind": "serial", "jobs": 1}

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def run(
        self,
        suite: Suite,
        work: list[GroupWork],
        clock: StageClock,
        progress: ProgressReporter,
        cache: ResultCache | None,
    ) -> Iterator[CellOutcome]:
        memos = (_Memo(), _Memo())  # consecutive groups share a dataset load
        for cells, references in work:
            yield from run_group(suite, cells, references, clock, progress, memos, cache)


def resolve_device(option: str) -> torch.device:
    """``cpu``, ``cuda`` (must be available) or ``auto`` (CUDA when available)."""
    if option == "cuda" and not torch.cuda.is_available():
        raise HarnessError(
            "execution.device = 'cuda' but torch sees no CUDA device; use 'cpu' or 'auto'"
        )
    if option == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(option)


def run_suite(
    suite: Suite | str | Path,
    out_dir: str | Path = "results",
    *,
    progress: ProgressReporter | None = None,
    resume: str | None = None,
    executor: Executor | None = None,
    cache_dir: str | Path | None = None,
) -> RunSummary:
    """Run every cell of ``suite`` (a :class:`Suite`, a path or a bundled name) serially.

    Appends one run to ``<out_dir>/harness.sqlite``; each cell is stored as it finishes.
    An exception or non-finite output in one cell marks that cell ``failed`` and the run
    goes on. ``resume`` (a run id or prefix, or ``"latest"`` for the suite's latest run)
    continues a stored run of the same suite configuration instead: its stored cells are
    kept as they are and only the missing ones run. ``executor`` runs the cells (default:
    :class:`SerialExecutor`, in this process); this process stays the only store writer.
    ``cache_dir`` keeps trained models and explanations by content (see
    :mod:`harness.runner.cache`): what is found there is reused, not recomputed.
    """
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    progress = progress or SilentProgress()
    executor = executor or SerialExecutor()
    cache = ResultCache(cache_dir) if cache_dir is not None else None
    options = suite.spec.execution
    resolve_device(options.device)  # fails before the run begins when it is missing
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    cells = plan(suite)
    clock = StageClock()
    run_started = time.perf_counter()

    with ResultsStore(out_dir) as store, ExitStack() as held:
        executor.open()  # e.g. reach the Dask scheduler: fails before a run is stored
        held.callback(executor.close)
        if resume is None:
            run_id = new_run_id()
            held.enter_context(RunLock(store.folder, run_id))
            store.begin_run(
                suite_name=suite.name,
                suite_path=str(suite.path) if suite.path else None,
                suite_text=suite.text,
                config=suite.resolved_config(),
                environment={**collect_environment(), "executor": executor.describe()},
                run_id=run_id,
            )
            stored: dict[str, tuple[str, str | None]] = {}
            previous_seconds: dict[str, float] = {}
        else:
            run_id = _run_to_resume(store, suite, resume)
            held.enter_context(RunLock(store.folder, run_id))  # one writer per run
            stored = store.cell_statuses(run_id)
            previous_seconds = store.run_info(run_id)["stage_seconds"] or {}
            store.reopen_run(run_id)
        saved_importance = store.arrays(run_id, "global_importance") if stored else {}
        counts = {"ok": 0, "failed": 0, "skipped": 0}
        failures: list[tuple[str, str]] = []
        importances: dict[tuple[str, str, str], dict[str, np.ndarray]] = defaultdict(dict)
        progress.start(f"{suite.name} ({run_id})", len(cells))
        status = "interrupted"  # unless the loop completes: Ctrl-C, or a store failure
        missing: list[str] = []
        completed = False

        def keep(cell: Cell, record: CellRecord, importance: np.ndarray | None) -> None:
            counts[record.status] += 1
            if record.status == "failed":
                failures.append((cell.cell_id, record.error or ""))
            if importance is not None:
                identity = (cell.dataset.id, cell.model.id, cell.explainer.id)
                importances[identity][cell.cell_id] = importance

        try:
            work = []
            for group in model_groups(cells):
                references: dict[str, np.ndarray] = {}
                for cell in (c for c in group if c.cell_id in stored):  # resumed: as stored
                    state, error = stored[cell.cell_id]
                    importance = saved_importance.get(cell.cell_id)
                    if importance is not None:
                        references[cell.explainer.id] = importance
                    keep(cell, _cell_record(cell, state, error=error), importance)  # type: ignore[arg-type]
                    progress.cell_done(cell.cell_id, "stored")
                pending = [c for c in group if c.cell_id not in stored]
                if pending:
                    work.append((pending, references))
            for cell, record, scores, arrays in executor.run(suite, work, clock, progress, cache):
                with clock.time("store"):
                    store.record_cell(run_id, record, scores, arrays)
                keep(cell, record, arrays.get("global_importance"))
                progress.cell_done(record.cell_id, record.status)
            with clock.time("score"):
                _score_across_seeds(suite, importances, store, run_id)
            now_stored = store.cell_statuses(run_id)
            missing = [c.cell_id for c in cells if c.cell_id not in now_stored]
            if not missing:  # a run is ok only when every planned cell is stored
                status = "failed" if counts["failed"] else "ok"
            completed = True
        finally:
            progress.finish()
            total = time.perf_counter() - run_started
            stage_seconds = {**clock.seconds, "total": total}
            # parallel executors add up their workers' stage seconds, which can exceed
            # the wall time: the overhead is what the wall time does not account for
            stage_seconds["overhead"] = max(0.0, total - sum(clock.seconds.values()))
            for stage, seconds in previous_seconds.items():  # a resumed run adds up
                stage_seconds[stage] = stage_seconds.get(stage, 0.0) + seconds
            _finish(store, run_id, status, stage_seconds, failing=not completed)
    if missing:
        raise HarnessError(
            f"run {run_id}: {len(missing)} planned cells were not stored (first: "
            f"{missing[0]}); the run is marked 'interrupted' — continue it with --resume"
        )
    reused = dict(cache.hits) if cache is not None else {}
    return RunSummary(run_id, store.path, counts, stage_seconds, failures, len(stored), reused)


def _finish(
    store: ResultsStore, run_id: str, status: str, stage_seconds: dict[str, float], *,
    failing: bool,
) -> None:  # fmt: skip
    """Record the run's end. When that fails too (the disk is still full) while another
    error is on its way out (``failing``), that error is the one to report: the run then
    stays ``running`` in the store, which readers show as interrupted once this process
    is gone."""
    try:
        store.finish_run(run_id, status=status, stage_seconds=stage_seconds)
    except StoreError:
        if not failing:
            raise


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
    return run_id


@dataclass
class _CellContext:
    """What every cell of a group shares: the suite, the device, the memos of loaded data
    and trained models, the stage clock, the progress reporter and the cache."""

    suite: Suite
    device: torch.device
    datasets: _Memo
    models: _Memo
    clock: StageClock
    progress: ProgressReporter
    cache: ResultCache | None

    @property
    def options(self) -> ExecutionOptions:
        return self.suite.spec.execution


CellResult = tuple[CellRecord, list[ScoreRecord], dict[str, np.ndarray]]


def _not_run(cell: Cell, suite: Suite, status: CellStatus, reason: str) -> CellResult:
    """A skipped or failed cell: its record, a placeholder score per metric, no arrays."""
    return (
        _cell_record(cell, status, error=reason),
        _unscored(suite, f"cell {status}: {reason}"),
        {},
    )


def _run_cell(cell: Cell, context: _CellContext, references: dict[str, np.ndarray]) -> CellResult:
    """Run one cell: its record, its scores, and its arrays (global importance, history)."""
    if cell.skip_reason:
        return _not_run(cell, context.suite, "skipped", cell.skip_reason)
    try:
        with deadline(context.options.cell_timeout):
            return _timed_cell(cell, context, references)
    except CellTimeout as timeout:
        return _not_run(cell, context.suite, "failed", str(timeout))


def _timed_cell(cell: Cell, context: _CellContext, references: dict[str, np.ndarray]) -> CellResult:
    """The body of :func:`_run_cell` that the cell timeout applies to."""
    suite, options, device, cache = context.suite, context.options, context.device, context.cache
    datasets, models, clock, progress = (
        context.datasets, context.models, context.clock, context.progress
    )  # fmt: skip
    try:
        progress.stage(cell.cell_id, "loading")
        with clock.time("data"):
            dataset = datasets.get(
                (cell.dataset.id, cell.seed),
                lambda: _stage("loading the dataset", cell.dataset.component.load, cell.seed),
            )
        progress.stage(cell.cell_id, "training")
        with clock.time("train"):
            twin = models.get(cell.model_key, lambda: _train(cell, dataset, device, cache=cache))
            trained = twin
            if cell.explainer.component.by_design:
                trained = models.get(
                    cell.model_key,
                    lambda: _train(cell, dataset, device, by_design=True, cache=cache),
                    variant=cell.explainer.id,
                )
        progress.stage(cell.cell_id, "explaining")
        with clock.time("explain"):
            rows = np.arange(min(options.explain_rows, len(dataset.x_test)))
            targets = (
                trained.test_predictions[rows]
                if options.target == "prediction"
                else dataset.y_test[rows]
            )
            explanation, explain_seconds = _explain_or_reuse(
                cell, trained, dataset, rows, targets, context
            )
        progress.stage(cell.cell_id, "scoring")
        with clock.time("score"):
            started = time.perf_counter()
            masks = dataset.ground_truth.masks  # of the explained rows only, below
            truth = dataset.ground_truth.importance
            truth = None if truth is None else dataset.per_column(truth)
            importance = dataset.per_column(explanation.global_importance)
            evidence = Evidence(
                y_true=dataset.y_test,
                y_pred=trained.test_predictions,
                attributions=explanation.local,
                global_importance=importance,
                importance=truth,
                masks=None if masks is None else masks[rows],
                explain_seconds=explain_seconds,
                n_explained=len(rows),
                train_seconds=trained.model.train_seconds,
                twin_y_pred=twin.test_predictions if trained is not twin else None,
                twin_train_seconds=twin.model.train_seconds if trained is not twin else None,
                reference_importance=references,
                inputs=dataset.x_test[rows],
                targets=targets,
                predict_proba=trained.model.predict_proba,
                train_mean=dataset.train_mean,
            )
            scores, metric_arrays = _stage("scoring", _score, cell, suite, evidence)
            score_seconds = time.perf_counter() - started
    except CellFailure as failure:
        return _not_run(cell, suite, "failed", str(failure))
    arrays = _cell_arrays(explanation, dataset, trained.model, rows, importance, truth)
    return (
        _cell_record(
            cell,
            "ok",
            train_seconds=trained.model.train_seconds,
            explain_seconds=explain_seconds,
            score_seconds=score_seconds,
            n_explained=len(rows),
            torch_threads=torch.get_num_threads(),
        ),
        scores,
        arrays | metric_arrays,
    )


#: Image cells keep the maps of this many explained images (float32), for galleries.
GALLERY_IMAGES = 8


def _cell_arrays(
    explanation: Explanation,
    dataset: Dataset,
    model: TrainedModel,
    rows: np.ndarray,
    importance: np.ndarray,
    truth: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """What a cell stores for reports: its global importance and the dataset's
    ground-truth importance (if any; for tables per original column, named in
    ``column_names``), the dataset's card (source, licence, citation, what loading
    dropped), what the model recorded while training, and for images the first explained
    images with their maps and masks (``gallery_*``). ``importance`` and ``truth`` are
    already per column."""
    arrays = {"global_importance": importance, **model.history}
    if truth is not None:
        arrays["ground_truth_importance"] = truth
    if dataset.modality == "tabular":
        arrays["column_names"] = np.array(dataset.column_names)
    card = dataset.card
    arrays["dataset_card"] = np.array([card.source, card.licence, card.citation, card.notes])
    if dataset.modality == "image" and explanation.local is not None:
        shown = rows[:GALLERY_IMAGES]
        arrays["gallery_maps"] = explanation.local[:GALLERY_IMAGES].astype(np.float32)
        arrays["gallery_images"] = dataset.x_test[shown].astype(np.float32)
        if dataset.ground_truth.masks is not None:
            arrays["gallery_masks"] = dataset.ground_truth.masks[shown]
    return arrays


def _distinct_warnings(caught: list[warnings.WarningMessage]) -> str:
    """One line per distinct warning: ``Category: first line of the message``."""
    lines = {
        f"{w.category.__name__}: {str(w.message).strip().splitlines()[0][:300]}"
        for w in caught
        if str(w.message).strip()
    }
    return "\n".join(sorted(lines))


def _cell_record(cell: Cell, status: CellStatus, **measured: Any) -> CellRecord:
    return CellRecord(
        cell_id=cell.cell_id,
        dataset=cell.dataset.id,
        model=cell.model.id,
        explainer=cell.explainer.id,
        seed=cell.seed,
        dataset_name=cell.dataset.name,
        model_name=cell.model.name,
        explainer_name=cell.explainer.name,
        status=status,
        explainer_role=cell.explainer.component.role(),
        **measured,
    )


def _stage(what: str, function: Callable[..., T], *args: object) -> T:
    """Call ``function``; any exception becomes a :class:`CellFailure` naming the stage."""
    try:
        return function(*args)
    except CellFailure:
        raise
    except Exception as exc:
        origin = traceback.extract_tb(exc.__traceback__)[-1]
        raise CellFailure(
            f"{what} failed: {type(exc).__name__}: {exc} "
            f"({Path(origin.filename).name}:{origin.lineno})"
        ) from exc


def _train(
    cell: Cell,
    dataset: Dataset,
    device: torch.device,
    *,
    by_design: bool = False,
    cache: ResultCache | None = None,
) -> _Trained:
    """Train the cell's recipe, or (``by_design``) let the cell's explainer build its model;
    with a ``cache``, reuse a stored model of the same key instead, or store this one."""
    if cache is not None:
        key = cache.model_key(cell, dataset, device, by_design)
        stored = cache.load_model(key, cell, dataset, device, by_design)
        if stored is not None:
            return _Trained(*stored, cache_key=key)
        trained = _train(cell, dataset, device, by_design=by_design)
        cache.save_model(key, trained.model, trained.test_predictions)
        return replace(trained, cache_key=key)
    recipe = cell.model.component
    if by_design:
        fit = functools.partial(cell.explainer.component.fit_model, recipe)
        model = _stage(f"training the {cell.explainer.id} model", fit, dataset, cell.seed, device)
    else:
        model = _stage("training", recipe.fit, dataset, cell.seed, device)
    return _Trained(model, _stage("predicting", model.predict, dataset.x_test))


def _explain_or_reuse(
    cell: Cell,
    trained: _Trained,
    dataset: Dataset,
    rows: np.ndarray,
    targets: np.ndarray,
    context: _CellContext,
) -> tuple[Explanation, float]:
    """The cell's explanation and its seconds: from the cache when stored there (with the
    seconds measured then), else computed and stored."""
    cache = context.cache
    if cache is None or trained.cache_key is None:
        return _stage("explaining", _explain, cell, trained.model, dataset, rows, targets)
    key = cache.explanation_key(trained.cache_key, cell, len(rows), context.options.target)
    stored = cache.load_explanation(key, len(rows), dataset.attribution_shape)
    if stored is not None:
        return stored
    explanation, seconds = _stage(
        "explaining", _explain, cell, trained.model, dataset, rows, targets
    )
    cache.save_explanation(key, explanation, seconds)
    return explanation, seconds


def _explain(
    cell: Cell, model: TrainedModel, dataset: Dataset, rows: np.ndarray, targets: np.ndarray
) -> tuple[Explanation, float]:
    """Warm up on one row, then time the explainer call on all rows (wall seconds).

    ``rows`` are indices into the test split.
    """
    explainer = cell.explainer.component
    inputs = dataset.x_test[rows]
    warm_up = ExplainContext(dataset=dataset, seed=cell.seed, rows=rows[:1])
    explainer.explain(model, inputs[:1], targets[:1], warm_up)
    context = ExplainContext(dataset=dataset, seed=cell.seed, rows=rows)
    started = time.perf_counter()
    explanation = explainer.explain(model, inputs, targets, context)
    seconds = time.perf_counter() - started
    problem = explanation.problem(len(rows), dataset.attribution_shape)
    if problem is not None:
        raise CellFailure(f"explainer '{cell.explainer.id}' {problem}")
    return explanation, seconds


def _score(
    cell: Cell, suite: Suite, evidence: Evidence
) -> tuple[list[ScoreRecord], dict[str, np.ndarray]]:
    """Every metric's score record, and the arrays metrics return (``<metric id>.<key>``)."""
    records: list[ScoreRecord] = []
    arrays: dict[str, np.ndarray] = {}
    for metric in suite.metrics:
        reason = cell.metric_skips.get(metric.id)
        if reason is not None:
            value, note = float("nan"), f"skipped: {reason}"
        elif metric.component.across_seeds:
            value, note = float("nan"), "pending: computed across seeds after all cells"
        else:
            result = metric.component.compute(evidence)
            value, note = result.value, result.note
            arrays |= {f"{metric.id}.{key}": a for key, a in result.arrays.items()}
        records.append(_score_record(metric, None if np.isnan(value) else value, note))
    return records, arrays


def _score_across_seeds(
    suite: Suite,
    importances: dict[tuple[str, str, str], dict[str, np.ndarray]],
    store: ResultsStore,
    run_id: str,
) -> None:
    """Compute across-seeds metrics per dataset × model × explainer; write every seed's row."""
    for metric in (m for m in suite.metrics if m.component.across_seeds):
        for by_cell in importances.values():
            result = metric.component.compute_across_seeds(list(by_cell.values()))
            value = None if np.isnan(result.value) else result.value
            note = result.note or f"across {len(by_cell)} seeds: one value for all of them"
            for cell_id in by_cell:
                store.update_score(run_id, cell_id, metric.id, value, note)


def _unscored(suite: Suite, note: str) -> list[ScoreRecord]:
    """Placeholder rows, so a skipped or failed cell shows in every metric's column."""
    return [_score_record(metric, None, note) for metric in suite.metrics]


def _score_record(metric: Resolved[Metric], value: float | None, note: str) -> ScoreRecord:
    component = metric.component
    return ScoreRecord(
        metric=metric.id,
        metric_name=component.name,
        value=value,
        higher_is_better=component.higher_is_better,
        unit=component.unit,
        conventions=component.conventions(),
        conventions_hash=component.conventions_hash(),
        note=note,
        kind=component.kind,
        across_seeds=component.across_seeds,
    )
