"""One cell: load its dataset, train (or reuse) its model, explain, score, and say what
to store — with the cell timeout, failure isolation and the cache.

Cells of one model group share a :class:`CellContext`: the memos keep the group's
dataset and trained models, so each is loaded or trained once. What running produced
(:class:`~harness.runner.scoring.CellProducts`) is scored by :mod:`harness.runner.scoring`
and stored in full through :mod:`harness.artifacts` (explanation, targets, predictions,
the model's cache key), so a later rescoring needs neither the explainer nor a retrained
model.
"""

from __future__ import annotations

import functools
import time
import traceback
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from harness.artifacts import products_arrays
from harness.datasets.base import Dataset, with_validation_split
from harness.datasets.explained_rows import explained_rows
from harness.errors import HarnessError
from harness.explainers.base import ExplainContext, Explainer, Explanation
from harness.models.base import TrainedModel
from harness.models.batched import split_after_out_of_memory
from harness.records import CellRecord, CellStatus, ScoreRecord
from harness.runner.cache import CacheError, ResultCache
from harness.runner.meta_perturbation import score_meta_rows
from harness.runner.plan import Cell
from harness.runner.progress import ProgressReporter
from harness.runner.scoring import CellProducts, evidence_for, score_cell, unscored
from harness.runner.threads import apply_policy
from harness.runner.timing import CellTimeout, StageClock, deadline
from harness.suite import ExecutionOptions, Resolved, Suite

T = TypeVar("T")

#: One cell's record, score rows and arrays, as a run stores them.
CellResult = tuple[CellRecord, list[ScoreRecord], dict[str, np.ndarray]]


class CellFailure(Exception):
    """A cell could not complete; the message says which stage and why."""


def resolve_device(option: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` (must be available) or ``auto`` (CUDA when
    available)."""
    if option.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(option.split(":")[1]) if ":" in option else 0
        if index >= count:
            seen = f"{count} CUDA device{'s' if count != 1 else ''}"
            raise HarnessError(
                f"execution.device = '{option}' but torch sees {seen}; use 'cpu' or 'auto'"
                + (f", or cuda:0…cuda:{count - 1}" if count else "")
            )
    if option == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(option)


class Memo:
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


@dataclass
class Trained:
    """A trained model, its class probabilities on the test split (rows × classes), its
    cache key (if cached) and its class probabilities on the validation split (when the
    dataset has one). Its predictions are the most probable classes."""

    model: TrainedModel
    test_probabilities: np.ndarray
    cache_key: str | None = None
    validation_probabilities: np.ndarray | None = None

    @property
    def test_predictions(self) -> np.ndarray:
        return self.test_probabilities.argmax(axis=1).astype(np.int64)


@dataclass
class CellContext:
    """What every cell of a group shares: the suite, the device, the memos of loaded data
    and trained models, the stage clock, the progress reporter and the cache."""

    suite: Suite
    device: torch.device
    datasets: Memo
    models: Memo
    clock: StageClock
    progress: ProgressReporter
    cache: ResultCache | None
    #: the threads a cell may use (:mod:`harness.runner.threads`)
    thread_budget: int = 1

    @property
    def options(self) -> ExecutionOptions:
        return self.suite.spec.execution


def not_run(cell: Cell, suite: Suite, status: CellStatus, reason: str) -> CellResult:
    """A skipped or failed cell: its record, a row per metric saying why, no arrays."""
    return (
        cell_record(cell, status, error=reason),
        unscored(suite.metrics, f"cell {status}: {reason}"),
        {},
    )


def run_cell(cell: Cell, context: CellContext, references: dict[str, np.ndarray]) -> CellResult:
    """Run one cell: its record, its scores, and its arrays (products, reports' arrays)."""
    if cell.skip_reason:
        return not_run(cell, context.suite, "skipped", cell.skip_reason)
    try:
        with deadline(context.options.cell_timeout):
            return _timed_cell(cell, context, references)
    except CellTimeout as timeout:
        return not_run(cell, context.suite, "failed", str(timeout))


def _timed_cell(cell: Cell, context: CellContext, references: dict[str, np.ndarray]) -> CellResult:
    """The body of :func:`run_cell` that the cell timeout applies to."""
    suite, options, device, cache = context.suite, context.options, context.device, context.cache
    clock, progress = context.clock, context.progress
    try:
        progress.stage(cell.cell_id, "loading")
        with clock.time("data"):
            dataset = context.datasets.get(
                (cell.dataset.id, cell.seed),
                lambda: _stage("loading the dataset", load_cell_dataset, cell, cache, options),
            )
        apply_policy(options.threads, tuple(dataset.x_train.shape[1:]), context.thread_budget)
        given = cell.model.component.given  # loading a model file is not training
        progress.stage(cell.cell_id, "loading the model" if given else "training")
        with clock.time("data" if given else "train"):
            twin = context.models.get(cell.model_key, lambda: _train(cell, dataset, device, cache))
            trained = twin
            explained_design = design_explained(cell, suite)
            if explained_design is not None:
                trained = _by_design_model(cell, explained_design, context, dataset, device)
            partner = design_partner(cell, suite)
            design = None
            if partner is not None:
                design = _by_design_model(cell, partner, context, dataset, device)
        progress.stage(cell.cell_id, "explaining")
        with clock.time("explain"):
            rows = explained_rows(
                dataset.y_test,
                cell.explainer.explain_rows or options.explain_rows,
                options.explain_sample,
                cell_data_seed(cell, options),
            )
            targets = _stage(
                "choosing the explained class",
                explained_classes,
                options.target,
                trained,
                dataset,
                rows,
            )
            explanation, explain_seconds = _explain_or_reuse(
                cell, trained, dataset, rows, targets, options.target, context
            )
            per_class = None
            if options.explain_classes == "all" and explanation.local is not None:
                known = {options.target_class: explanation.local}  # class:K: explained already
                per_class = _every_class(cell, trained, dataset, rows, context, known)
        products = CellProducts(
            rows=rows,
            targets=targets,
            test_predictions=trained.test_predictions,
            test_probabilities=trained.test_probabilities,
            validation_probabilities=trained.validation_probabilities,
            explanation=explanation,
            explain_seconds=explain_seconds,
            train_seconds=trained.model.train_seconds,
            twin_test_predictions=twin.test_predictions if trained is not twin else None,
            twin_test_probabilities=twin.test_probabilities if trained is not twin else None,
            twin_validation_probabilities=(
                twin.validation_probabilities if trained is not twin else None
            ),
            twin_train_seconds=twin.model.train_seconds if trained is not twin else None,
            predict_proba=trained.model.predict_proba,
            class_explanations=per_class,
            history=trained.model.history,
            design_test_predictions=None if design is None else design.test_predictions,
            model_given=trained.model.given,
            network=trained.model.module,
            explain_again=functools.partial(explain_again, cell, trained.model, dataset),
            input_baseline=functools.partial(baseline_of, cell, dataset),
        )
        progress.stage(cell.cell_id, "scoring")
        with clock.time("score"):
            started = time.perf_counter()
            evidence = _stage(
                "selecting images", evidence_for, dataset, products, references, options
            )
            scores, metric_arrays = _stage("scoring", score_cell, cell, suite.metrics, evidence)
            meta_scores, meta_arrays = score_meta_rows(
                cell, suite.metrics, evidence, suite.spec.meta_evaluation
            )
            scores, metric_arrays = scores + meta_scores, metric_arrays | meta_arrays
            score_seconds = time.perf_counter() - started
    except CellFailure as failure:
        return not_run(cell, suite, "failed", str(failure))
    arrays = products_arrays(
        products, dataset, trained.model.history, trained.cache_key, evidence.global_importance
    )
    record = cell_record(
        cell,
        "ok",
        train_seconds=trained.model.train_seconds,
        explain_seconds=explain_seconds,
        score_seconds=score_seconds,
        n_explained=len(rows),
        torch_threads=torch.get_num_threads(),
    )
    return record, scores, arrays | metric_arrays


def distinct_warnings(caught: list[warnings.WarningMessage]) -> str:
    """One line per distinct warning: ``Category: first line of the message``."""
    lines = {
        f"{w.category.__name__}: {str(w.message).strip().splitlines()[0][:300]}"
        for w in caught
        if str(w.message).strip()
    }
    return "\n".join(sorted(lines))


def cell_record(cell: Cell, status: CellStatus, **measured: Any) -> CellRecord:
    """The stored row of a cell: its ids, names, status, explainer role and timings."""
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
    """Call ``function``; any exception becomes a :class:`CellFailure` naming the stage —
    except a cache that cannot be written (a full disk), which stops the run."""
    try:
        return function(*args)
    except (CellFailure, CacheError):
        raise
    except Exception as exc:
        origin = traceback.extract_tb(exc.__traceback__)[-1]
        raise CellFailure(
            f"{what} failed: {type(exc).__name__}: {exc} "
            f"({Path(origin.filename).name}:{origin.lineno})"
        ) from exc


def cell_data_seed(cell: Cell, options: ExecutionOptions) -> int:
    """The seed that draws the cell's data (and its explained rows): the suite's
    ``data_seed`` when it holds the data fixed across seeds, else the cell's seed."""
    return cell.seed if options.data_seed is None else options.data_seed


def load_cell_dataset(cell: Cell, cache: ResultCache | None, options: ExecutionOptions) -> Dataset:
    """The cell's dataset — from the cache when its source is ``cacheable`` and it is
    stored there, else loaded (and stored) — with the suite's validation split held out
    of its training split. Both are drawn with the cell's seed, or with the suite's
    ``data_seed`` when it holds the data fixed across seeds."""
    seed = cell_data_seed(cell, options)
    dataset = _loaded_dataset(cell, cache, seed)
    if options.validation_fraction is None:
        return dataset
    return with_validation_split(dataset, options.validation_fraction, seed)


def _loaded_dataset(cell: Cell, cache: ResultCache | None, seed: int) -> Dataset:
    source = cell.dataset.component
    if cache is None or not source.cacheable:
        return source.load(seed)
    key = cache.dataset_key(cell, seed)
    stored = cache.load_dataset(key)
    if stored is not None:
        return stored
    dataset = source.load(seed)
    cache.save_dataset(key, dataset)
    return dataset


def _train(
    cell: Cell,
    dataset: Dataset,
    device: torch.device,
    cache: ResultCache | None,
    *,
    by_design: bool = False,
) -> Trained:
    """Train the cell's recipe, or (``by_design``) let the cell's explainer build its model;
    with a ``cache``, reuse a stored model of the same key instead, or store this one. A
    given model is loaded from its file each time (the cache key, which covers the file's
    content, still lets its explanations be reused)."""
    recipe = cell.model.component
    if recipe.given:
        model = _stage("loading the model", recipe.fit, dataset, cell.seed, device)
        key = None if cache is None else cache.model_key(cell, dataset, device, False)
        return _predicted(model, dataset, cell, key)
    if cache is not None:
        key = cache.model_key(cell, dataset, device, by_design)
        stored = cache.load_model(
            key,
            cell,
            dataset,
            device,
            functools.partial(untrained_network, cell, dataset, by_design),
        )
        if stored is not None:
            model, test, validation = stored
            return Trained(model, test, key, validation)
        trained = _train(cell, dataset, device, None, by_design=by_design)
        cache.save_model(
            key, trained.model, trained.test_probabilities, trained.validation_probabilities
        )
        return replace(trained, cache_key=key)
    if by_design:
        fit = functools.partial(cell.explainer.component.fit_model, recipe)
        model = _stage(f"training the {cell.explainer.id} model", fit, dataset, cell.seed, device)
    else:
        model = _stage("training", recipe.fit, dataset, cell.seed, device)
    return _predicted(model, dataset, cell)


def untrained_network(cell: Cell, dataset: Dataset, by_design: bool) -> torch.nn.Module:
    """The cell's network as it was before training (seeded as in training): the
    recipe's, or the by-design explainer's architecture on it — what stored weights are
    loaded into."""
    torch.manual_seed(cell.seed)
    recipe = cell.model.component
    if by_design:
        return cell.explainer.component.architecture(recipe, dataset, cell.seed)
    return recipe.build(dataset)


def _predicted(
    model: TrainedModel, dataset: Dataset, cell: Cell, key: str | None = None
) -> Trained:
    """``model`` with its class probabilities on the test and validation splits; a
    model whose outputs are not finite fails the cell, named as the cause."""
    test = _stage("predicting", model.predict_proba, dataset.x_test)
    validation = None
    if dataset.x_val is not None:
        validation = _stage("predicting", model.predict_proba, dataset.x_val)
    for split, probabilities in (("test", test), ("validation", validation)):
        if probabilities is None:
            continue
        bad = int((~np.isfinite(np.asarray(probabilities, np.float64))).any(axis=-1).sum())
        if bad:
            given = "loaded from its file" if model.given else "trained"
            raise CellFailure(
                f"model '{cell.model.id}' ({given}) gives non-finite outputs (NaN or inf) on "
                f"{bad} of {len(probabilities)} {split} rows — its weights may be NaN (a "
                "diverged training, a damaged file); nothing was explained or scored"
            )
    return Trained(model, test, key, validation)


def _every_class(
    cell: Cell,
    trained: Trained,
    dataset: Dataset,
    rows: np.ndarray,
    context: CellContext,
    known: Mapping[int | None, np.ndarray | None],
) -> np.ndarray:
    """Every class's local map of ``rows`` (rows, classes, …) for ``explain_classes =
    "all"``: ``known`` ones as given, the others from the cache or computed like the
    cell's own explanation."""
    maps = []
    for k in range(dataset.n_classes):
        given = known.get(k)
        if given is not None:
            maps.append(given)
            continue
        targets = np.full(len(rows), k, dtype=np.int64)
        explanation, _ = _explain_or_reuse(
            cell, trained, dataset, rows, targets, f"class:{k}", context
        )
        assert explanation.local is not None
        maps.append(explanation.local)
    return np.stack(maps, axis=1)


def explained_classes(
    target: str, trained: Trained, dataset: Dataset, rows: np.ndarray
) -> np.ndarray:
    """The class each explained row is explained for: the model's prediction, the true
    label, or class K for every row (``class:K``)."""
    if target == "prediction":
        return trained.test_predictions[rows]
    if target == "label":
        return dataset.y_test[rows]
    k = int(target.split(":")[1])
    if k >= dataset.n_classes:
        raise ValueError(
            f"execution.target = '{target}' but dataset '{dataset.name}' has "
            f"{dataset.n_classes} classes ({', '.join(dataset.class_names)}); use 0…"
            f"{dataset.n_classes - 1}"
        )
    return np.full(len(rows), k, dtype=np.int64)


def _by_design_model(
    cell: Cell,
    design: Resolved[Explainer],
    context: CellContext,
    dataset: Dataset,
    device: torch.device,
) -> Trained:
    """The model by-design explainer ``design`` builds on the cell's dataset, recipe and
    seed: trained once per group (whichever cell asks first), or from the cache."""
    owner = replace(cell, explainer=design)
    return context.models.get(
        cell.model_key,
        lambda: _train(owner, dataset, device, context.cache, by_design=True),
        variant=design.id,
    )


def design_explained(cell: Cell, suite: Suite) -> Resolved[Explainer] | None:
    """The by-design explainer whose model the cell explains: its own explainer when that
    is by design, the one a post-hoc explainer ``explains``, else None (the black box)."""
    if cell.explainer.component.by_design:
        return cell.explainer
    if cell.explainer.explains is not None:
        return suite.explainer(cell.explainer.explains)
    return None


def design_partner(cell: Cell, suite: Suite) -> Resolved[Explainer] | None:
    """For ``select_images = "correct_by_both"``, a post-hoc cell's partner: the suite's
    design-reference explainer, whose model of the same dataset, recipe and seed must also
    classify an image correctly. None when not needed (by-design cells pair with their
    twin)."""
    options = suite.spec.execution
    if options.select_images != "correct_by_both" or cell.explainer.component.by_design:
        return None
    return suite.design_reference


def models_trained_for(cell: Cell, suite: Suite) -> list[Resolved[Explainer] | None]:
    """The models the cell needs that training makes, by the by-design explainer that
    builds each (None: the recipe's black box, the twin) — in the order the cell uses
    them; a model loaded from a file (the ``given`` recipe) is not trained."""
    if cell.skip_reason:
        return []
    needed: list[Resolved[Explainer] | None] = []
    if not cell.model.component.given:
        needed.append(None)
    for design in (design_explained(cell, suite), design_partner(cell, suite)):
        if design is not None and all(d is None or d.id != design.id for d in needed):
            needed.append(design)
    return needed


def train_into_cache(
    cell: Cell, design: Resolved[Explainer] | None, suite: Suite, cache: ResultCache, budget: int
) -> None:
    """Train one model the cell needs (the black box, or ``design``'s by-design model) and
    store it in ``cache`` — unless it is stored there already — exactly as the cell would
    (same seed, data, threads and cache key), so the cell then loads it from the cache.
    Within the cell timeout; a failure is the cell's to report (it trains again, fails
    alike, and says why)."""
    options = suite.spec.execution
    device = resolve_device(options.device)
    with deadline(options.cell_timeout):
        dataset = load_cell_dataset(cell, cache, options)
        apply_policy(options.threads, tuple(dataset.x_train.shape[1:]), budget)
        if design is None:
            _train(cell, dataset, device, cache)
        else:
            _train(replace(cell, explainer=design), dataset, device, cache, by_design=True)


def _explain_or_reuse(
    cell: Cell,
    trained: Trained,
    dataset: Dataset,
    rows: np.ndarray,
    targets: np.ndarray,
    target: str,
    context: CellContext,
) -> tuple[Explanation, float]:
    """The cell's explanation of ``rows`` for ``targets`` (chosen by the option
    ``target``) and its seconds: from the cache when stored there (with the seconds
    measured then), else computed and stored."""
    cache, batch, clock = context.cache, context.options.explain_batch, context.clock
    if cache is None or trained.cache_key is None:
        return _stage(
            "explaining", _explain, cell, trained.model, dataset, rows, targets, batch, clock
        )
    key = cache.explanation_key(trained.cache_key, cell, rows, target, batch)
    stored = cache.load_explanation(key, len(rows), dataset.attribution_shape)
    if stored is not None:
        return stored
    explanation, seconds = _stage(
        "explaining", _explain, cell, trained.model, dataset, rows, targets, batch, clock
    )
    cache.save_explanation(key, explanation, seconds)
    return explanation, seconds


def _explain(
    cell: Cell,
    model: TrainedModel,
    dataset: Dataset,
    rows: np.ndarray,
    targets: np.ndarray,
    batch: int | None = None,
    clock: StageClock | None = None,
) -> tuple[Explanation, float]:
    """Warm up on one row, then time the explainer's calls on all rows (wall seconds of
    the calls alone): one call, or one per ``batch`` rows (``explain_batch``; local
    explainers only). Each call's rows are read (streamed images decoded) before its
    clock starts; that time is the run's ``decode`` stage (``clock``), not the
    explainer's.

    ``rows`` are indices into the test split.
    """
    explainer = cell.explainer.component
    warm_up = ExplainContext(dataset=dataset, seed=cell.seed, rows=rows[:1])
    explainer.explain(model, dataset.x_test[rows[:1]], targets[:1], warm_up)
    size = len(rows) if batch is None or explainer.scope == "global" else batch
    seconds = decoding = 0.0
    parts = []
    for start in range(0, len(rows), size):
        part = slice(start, start + size)
        context = ExplainContext(dataset=dataset, seed=cell.seed, rows=rows[part])
        read = time.perf_counter()
        inputs = dataset.x_test[rows[part]]
        started = time.perf_counter()
        parts.append(explain_within_memory(explainer, model, inputs, targets[part], context))
        seconds += time.perf_counter() - started
        decoding += started - read
    if clock is not None:
        clock.transfer("explain", "decode", decoding)
    explanation = joined(parts, explainer.name)
    problem = explanation.problem(len(rows), dataset.attribution_shape)
    if problem is not None:
        raise CellFailure(f"explainer '{cell.explainer.id}' {problem}")
    return explanation, seconds


def explain_again(
    cell: Cell,
    model: TrainedModel,
    dataset: Dataset,
    network: torch.nn.Module,
    inputs: np.ndarray,
    targets: np.ndarray,
    rows: np.ndarray,
) -> np.ndarray:
    """The cell's explainer, with the cell's seed, on ``inputs`` standing for test rows
    ``rows`` (perturbed copies, or the rows themselves) for classes ``targets``, explaining
    ``network`` — the model's own or a changed copy (e.g. randomised layers): the local
    maps, checked like the cell's own. For metrics (:mod:`harness.metrics.reexplaining`)."""
    explainer = cell.explainer.component
    variant = model if network is model.module else replace(model, module=network)
    context = ExplainContext(dataset=dataset, seed=cell.seed, rows=rows)
    explanation = explain_within_memory(explainer, variant, inputs, targets, context)
    problem = explanation.problem(len(rows), dataset.attribution_shape)
    if problem is not None or explanation.local is None:
        raise CellFailure(f"explainer '{cell.explainer.id}' explained again: {problem}")
    return np.asarray(explanation.local, dtype=np.float64)


def baseline_of(
    cell: Cell, dataset: Dataset, inputs: np.ndarray, rows: np.ndarray
) -> np.ndarray | None:
    """The cell's explainer's baseline for ``inputs`` (test rows ``rows``) when its maps
    are multiplied by the input (:meth:`Explainer.input_baseline`), else None."""
    context = ExplainContext(dataset=dataset, seed=cell.seed, rows=rows)
    return cell.explainer.component.input_baseline(inputs, context)


def explain_within_memory(
    explainer: Explainer,
    model: TrainedModel,
    inputs: np.ndarray,
    targets: np.ndarray,
    context: ExplainContext,
) -> Explanation:
    """``explainer.explain`` on all rows; when the device runs out of memory, on each half
    of the rows in turn (recursively, down to one row), the local attributions joined —
    with a :class:`~harness.models.batched.MemorySplitWarning` the cell records.
    Stochastic explainers then draw per part: the split is part of the result."""
    try:
        return explainer.explain(model, inputs, targets, context)
    except torch.OutOfMemoryError:
        if len(inputs) == 1:
            raise
    half = len(inputs) // 2
    split_after_out_of_memory(model.device)
    parts = [
        explain_within_memory(
            explainer, model, inputs[part], targets[part], replace(context, rows=context.rows[part])
        )
        for part in (slice(0, half), slice(half, None))
    ]
    return joined(parts, explainer.name)


def joined(parts: list[Explanation], explainer: str) -> Explanation:
    """Explanations of consecutive parts of the rows as one (local attributions joined)."""
    if len(parts) == 1:
        return parts[0]
    if any(part.local is None for part in parts):
        raise CellFailure(
            f"explainer '{explainer}' gives global scores only, which cannot be joined from "
            "parts of the rows (after running out of memory)"
        )
    return replace(parts[0], local=np.concatenate([part.local for part in parts]))
