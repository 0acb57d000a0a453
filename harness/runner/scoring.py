"""Scoring: metrics computed from what running a cell produced — a pass of its own.

A run scores each cell from its live products; a rescoring (:mod:`harness.rescoring`)
scores a stored run's cells from what the run stored (explanations, predictions, the
model from the cache). Both go through :class:`CellProducts` → :func:`evidence_for` →
:func:`score_cell`, so a metric added later gets the value it would have had.

Across-seeds metrics (one value per dataset × model × explainer, from every seed's
global importance) are computed in the same pass once the seeds are stored, from the
stored per-seed importances (:func:`score_across_seeds`), and appended as rows of their
own: nothing stored is ever updated.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import nn

from harness.artifacts import GLOBAL_IMPORTANCE, SECONDS, metric_array
from harness.datasets.base import Dataset
from harness.errors import first_line
from harness.explainers.base import Explanation
from harness.metrics.base import Evidence, Metric, MetricResult, conventions_hash
from harness.metrics.reexplaining import ExplainFunction, Reexplainer
from harness.records import ScoreRecord, ScoreStatus
from harness.runner.plan import Cell
from harness.store import ResultsStore
from harness.suite import ExecutionOptions, Resolved


@dataclass(frozen=True)
class CellProducts:
    """What running one cell produced: everything its metrics are computed from.

    ``rows``: the explained test rows (indices); ``targets``: their explained classes;
    ``test_predictions``: the explained model's class for every test row;
    ``test_probabilities``: its class probabilities (rows × classes; None in runs stored
    before they were kept); ``validation_probabilities``: the same on the validation split
    (None without one); seconds are wall time. ``twin_*``: a by-design model's black-box
    twin. ``predict_proba``: the explained model as a function, or None when it is not
    available (a rescoring whose run kept no model). ``class_explanations``: every
    class's map of the explained rows (rows, classes, …), with ``explain_classes = "all"``.
    ``design_test_predictions``: the design reference's predictions, for a post-hoc
    cell's ``correct_by_both`` images. ``model_given``: the model was trained outside
    the harness and loaded (``train_seconds`` is 0). ``network``/``explain_again``: the
    explained model's torch network and the cell's explainer as a function of
    (network, inputs, targets, test rows) — None where the explainer cannot run again.
    """

    rows: np.ndarray
    targets: np.ndarray
    test_predictions: np.ndarray
    explanation: Explanation
    explain_seconds: float
    train_seconds: float
    twin_test_predictions: np.ndarray | None = None
    twin_train_seconds: float | None = None
    test_probabilities: np.ndarray | None = None
    twin_test_probabilities: np.ndarray | None = None
    validation_probabilities: np.ndarray | None = None
    twin_validation_probabilities: np.ndarray | None = None
    class_explanations: np.ndarray | None = None
    history: dict[str, np.ndarray] | None = None
    design_test_predictions: np.ndarray | None = None
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = None
    model_given: bool = False
    network: nn.Module | None = None
    explain_again: ExplainFunction | None = None
    #: (inputs, their test rows) → the explainer's baseline for maps multiplied by the
    #: input (:meth:`Explainer.input_baseline`), or None
    input_baseline: Callable[[np.ndarray, np.ndarray], np.ndarray | None] | None = None


def scored_images(
    products: CellProducts, dataset: Dataset, options: ExecutionOptions
) -> np.ndarray:
    """Which explained rows explanation metrics score (booleans), by ``select_images``:
    all; predicted as class K (``target = "class:K"``); or correctly classified by the
    model and its partner — a by-design model's twin, or a post-hoc cell's design
    reference. Raises ``ValueError`` when the partner's predictions are missing."""
    rows = products.rows
    predicted = products.test_predictions[rows]
    if options.select_images == "predicted_positive":
        return np.asarray(predicted == options.target_class)
    if options.select_images == "all":
        return np.ones(len(rows), dtype=bool)
    partner = products.twin_test_predictions
    if partner is None:
        partner = products.design_test_predictions
    if partner is None:
        raise ValueError(
            "select_images = 'correct_by_both' but this cell stored no partner predictions "
            "(twin or design reference); run the suite again"
        )
    truth = dataset.y_test[rows]
    return np.asarray((predicted == truth) & (partner[rows] == truth))


def evidence_for(
    dataset: Dataset,
    products: CellProducts,
    references: dict[str, np.ndarray],
    options: ExecutionOptions,
) -> Evidence:
    """The :class:`Evidence` metrics read, from a cell's products and its dataset
    (importance and ground truth per original column); per-image evidence is limited to
    the images ``options.select_images`` selects."""
    masks = dataset.ground_truth.masks
    truth = dataset.ground_truth.importance
    chosen = scored_images(products, dataset, options)
    rows = products.rows[chosen]
    inputs = dataset.x_test[rows]
    baseline_of = products.input_baseline
    local = products.explanation.local
    per_class = products.class_explanations
    return Evidence(
        y_true=dataset.y_test,
        y_pred=products.test_predictions,
        y_score=products.test_probabilities,
        twin_y_score=products.twin_test_probabilities,
        y_val=dataset.y_val,
        history=products.history,
        val_score=products.validation_probabilities,
        twin_val_score=products.twin_validation_probabilities,
        attributions=None if local is None else local[chosen],
        class_attributions=None if per_class is None else per_class[chosen],
        image_selection=options.select_images,
        global_importance=dataset.per_column(products.explanation.global_importance),
        importance=None if truth is None else dataset.per_column(truth),
        suppressors=dataset.ground_truth.suppressors,
        masks=None if masks is None else masks[rows],
        explain_seconds=products.explain_seconds,
        n_explained=len(products.rows),
        train_seconds=products.train_seconds,
        model_given=products.model_given,
        twin_y_pred=products.twin_test_predictions,
        twin_train_seconds=products.twin_train_seconds,
        reference_importance=references,
        inputs=inputs,
        input_baseline=None if baseline_of is None else baseline_of(inputs, rows),
        targets=products.targets[chosen],
        explained_labels=dataset.y_test[rows],
        predict_proba=products.predict_proba,
        train_mean=dataset.train_mean,
        train_std=dataset.train_std,
        reexplain=_reexplainer(products, rows),
        rows=rows,
    )


def _reexplainer(products: CellProducts, rows: np.ndarray) -> Reexplainer | None:
    """The cell's explainer as a function over the scored rows (``rows``: their indices
    in the test split), or None."""
    again, network = products.explain_again, products.network
    if again is None or network is None:
        return None
    return Reexplainer(
        network,
        lambda net, inputs, targets, positions: again(net, inputs, targets, rows[positions]),
    )


#: Why a metric that calls the model has none, when nothing more specific is known.
NOT_KEPT = "which was not kept (no cache)"


def score_cell(
    cell: Cell, metrics: list[Resolved[Metric]], evidence: Evidence, model_absence: str = NOT_KEPT
) -> tuple[list[ScoreRecord], dict[str, np.ndarray]]:
    """Every per-cell metric's score record, and the arrays metrics return (stored as
    ``<metric id>.<key>``, with the seconds each took as ``<metric id>.seconds``).
    Across-seeds metrics are left to :func:`score_across_seeds`.
    ``model_absence`` says why the model is missing, for metrics that call it."""
    records: list[ScoreRecord] = []
    arrays: dict[str, np.ndarray] = {}
    for metric in metrics:
        reason = cell.metric_skips.get(metric.id)
        if metric.component.across_seeds and reason is None:
            continue  # scored once its seeds are stored
        per_image = "attributions" in metric.component.needs
        if reason is not None:
            value, note = math.nan, f"skipped: {reason}"
        elif "model" in metric.component.needs and evidence.predict_proba is None:
            value, note = math.nan, f"needs the explained model, {model_absence}"
        elif "reexplain" in metric.component.needs and evidence.reexplain is None:
            value, note = (
                math.nan,
                f"needs the explained model to run the explainer again, {model_absence}",
            )
        elif per_image and evidence.attributions is not None and not len(evidence.attributions):
            value, note = math.nan, f"no explained image selected ({evidence.image_selection})"
        else:
            restricted = evidence.restricted_to(metric.component.needs)
            started = time.perf_counter()
            result, problem = _outcome(
                functools.partial(metric.component.compute, restricted),
                metric.component.value_range,
            )
            elapsed = time.perf_counter() - started
            arrays[metric_array(metric.id, SECONDS)] = np.array(elapsed)
            if result is None:
                images = evidence.image_selection if per_image else "all"
                records.append(_failed_score(metric, str(problem), images))
                continue
            value, note = float(result.value), result.note
            arrays |= {metric_array(metric.id, key): a for key, a in result.arrays.items()}
        images = evidence.image_selection if per_image else "all"
        records.append(score_record(metric, None if math.isnan(value) else value, note, images))
    return records, arrays


def unscored(metrics: list[Resolved[Metric]], note: str) -> list[ScoreRecord]:
    """One row per metric, without a value, for a cell that did not run (``note`` says
    why), so it shows in every metric's column."""
    return [score_record(metric, None, note) for metric in metrics]


def _outcome(
    compute: Callable[[], MetricResult], value_range: tuple[float, float] | None = None
) -> tuple[MetricResult | None, str | None]:
    """A metric's result, or why it failed instead: it raised, or gave a value that
    cannot be stored as it is (infinite, NaN without a note saying why, or outside the
    metric's declared ``value_range`` by more than float rounding)."""
    try:
        result = compute()
    except Exception as error:  # the metric's failure, not the cell's or the run's
        return None, f"{type(error).__name__}: {first_line(error)}"
    value = float(result.value)
    if math.isinf(value):
        return None, f"it returned {value}"
    if math.isnan(value) and not result.note:
        return None, "it returned NaN without saying why"
    if value_range is not None and not math.isnan(value):
        low, high = value_range
        slack = 1e-9 * max(1.0, high - low)
        if not low - slack <= value <= high + slack:
            return None, f"it returned {value:g}, outside its range [{low:g}, {high:g}]"
    return result, None


def _failed_score(metric: Resolved[Metric], problem: str, images: str = "all") -> ScoreRecord:
    return score_record(metric, None, f"metric '{metric.id}' failed: {problem}", images, "failed")


def score_record(
    metric: Resolved[Metric],
    value: float | None,
    note: str,
    images: str = "all",
    status: ScoreStatus = "ok",
) -> ScoreRecord:
    """A score row, with the facts of its metric (kind, direction, across seeds); a
    per-image metric scored on a selection of the explained images (``images``, see
    ``select_images``) records it among its conventions."""
    component = metric.component
    conventions = component.conventions()
    if images != "all":
        conventions["images"] = images
    return ScoreRecord(
        metric=metric.id,
        metric_name=component.name,
        value=value,
        higher_is_better=component.higher_is_better,
        unit=component.unit,
        conventions=conventions,
        conventions_hash=conventions_hash(conventions),
        note=note,
        kind=component.kind,
        across_seeds=component.across_seeds,
        status=status,
        family=component.family,
        metric_version=component.version,
        role=component.role,
        value_range=component.value_range,
    )


def score_across_seeds(
    metrics: list[Resolved[Metric]], cells: list[Cell], store: ResultsStore, run_id: str
) -> list[tuple[str, ScoreRecord]]:
    """Append the across-seeds scores of ``run_id`` that are not stored yet: per dataset
    × model × explainer, computed from the global importance every ok seed stored, one
    row per ok cell (the same value on each). Returns the failed ones, by cell id."""
    chosen = [m for m in metrics if m.component.across_seeds]
    failures: list[tuple[str, ScoreRecord]] = []
    if not chosen:
        return failures
    statuses = store.cell_statuses(run_id)
    stored = store.scored(run_id)
    importances = store.arrays(run_id, GLOBAL_IMPORTANCE)
    groups: dict[tuple[str, str, str], list[str]] = {}
    for cell in cells:
        if statuses.get(cell.cell_id, ("", None))[0] == "ok" and cell.cell_id in importances:
            identity = (cell.dataset.id, cell.model.id, cell.explainer.id)
            groups.setdefault(identity, []).append(cell.cell_id)
    skipped = {(cell.cell_id, m) for cell in cells for m in cell.metric_skips}
    for metric in chosen:
        for group in groups.values():
            cell_ids = [c for c in group if (c, metric.id) not in skipped]
            missing = [c for c in cell_ids if (c, metric.id) not in stored]
            if not missing:
                continue
            seeds = [importances[c] for c in cell_ids]
            result, problem = _outcome(
                functools.partial(metric.component.compute_across_seeds, seeds),
                metric.component.value_range,
            )
            if result is None:
                failed = _failed_score(metric, str(problem))
                for cell_id in missing:
                    store.add_scores(run_id, cell_id, [failed])
                    failures.append((cell_id, failed))
                continue
            value = None if math.isnan(result.value) else result.value
            note = result.note or f"across {len(cell_ids)} seeds: one value for all of them"
            for cell_id in missing:
                store.add_scores(run_id, cell_id, [score_record(metric, value, note)])
    return failures
