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

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.datasets.base import Dataset
from harness.explainers.base import Explanation
from harness.metrics.base import Evidence, Metric
from harness.records import ScoreRecord
from harness.runner.plan import Cell
from harness.store import ResultsStore
from harness.suite import Resolved


@dataclass(frozen=True)
class CellProducts:
    """What running one cell produced: everything its metrics are computed from.

    ``rows``: the explained test rows (indices); ``targets``: their explained classes;
    ``test_predictions``: the explained model's class for every test row; seconds are
    wall time. ``twin_*``: a by-design model's black-box twin. ``predict_proba``: the
    explained model as a function, or None when it is not available (a rescoring whose
    run kept no model).
    """

    rows: np.ndarray
    targets: np.ndarray
    test_predictions: np.ndarray
    explanation: Explanation
    explain_seconds: float
    train_seconds: float
    twin_test_predictions: np.ndarray | None = None
    twin_train_seconds: float | None = None
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = None


def evidence_for(
    dataset: Dataset, products: CellProducts, references: dict[str, np.ndarray]
) -> Evidence:
    """The :class:`Evidence` metrics read, from a cell's products and its dataset
    (importance and ground truth per original column)."""
    masks = dataset.ground_truth.masks
    truth = dataset.ground_truth.importance
    rows = products.rows
    return Evidence(
        y_true=dataset.y_test,
        y_pred=products.test_predictions,
        attributions=products.explanation.local,
        global_importance=dataset.per_column(products.explanation.global_importance),
        importance=None if truth is None else dataset.per_column(truth),
        masks=None if masks is None else masks[rows],
        explain_seconds=products.explain_seconds,
        n_explained=len(rows),
        train_seconds=products.train_seconds,
        twin_y_pred=products.twin_test_predictions,
        twin_train_seconds=products.twin_train_seconds,
        reference_importance=references,
        inputs=dataset.x_test[rows],
        targets=products.targets,
        predict_proba=products.predict_proba,
        train_mean=dataset.train_mean,
    )


def score_cell(
    cell: Cell, metrics: list[Resolved[Metric]], evidence: Evidence
) -> tuple[list[ScoreRecord], dict[str, np.ndarray]]:
    """Every per-cell metric's score record, and the arrays metrics return (stored as
    ``<metric id>.<key>``). Across-seeds metrics are left to :func:`score_across_seeds`."""
    records: list[ScoreRecord] = []
    arrays: dict[str, np.ndarray] = {}
    for metric in metrics:
        reason = cell.metric_skips.get(metric.id)
        if metric.component.across_seeds and reason is None:
            continue  # scored once its seeds are stored
        if reason is not None:
            value, note = math.nan, f"skipped: {reason}"
        elif "model" in metric.component.needs and evidence.predict_proba is None:
            value, note = math.nan, "needs the explained model, which was not kept (no cache)"
        else:
            result = metric.component.compute(evidence)
            value, note = result.value, result.note
            arrays |= {f"{metric.id}.{key}": a for key, a in result.arrays.items()}
        records.append(score_record(metric, None if math.isnan(value) else value, note))
    return records, arrays


def unscored(metrics: list[Resolved[Metric]], note: str) -> list[ScoreRecord]:
    """One row per metric, without a value, for a cell that did not run (``note`` says
    why), so it shows in every metric's column."""
    return [score_record(metric, None, note) for metric in metrics]


def score_record(metric: Resolved[Metric], value: float | None, note: str) -> ScoreRecord:
    """A score row, with the facts of its metric (kind, direction, across seeds)."""
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


def score_across_seeds(
    metrics: list[Resolved[Metric]], cells: list[Cell], store: ResultsStore, run_id: str
) -> None:
    """Append the across-seeds scores of ``run_id`` that are not stored yet: per dataset
    × model × explainer, computed from the global importance every ok seed stored, one
    row per ok cell (the same value on each)."""
    chosen = [m for m in metrics if m.component.across_seeds]
    if not chosen:
        return
    statuses = store.cell_statuses(run_id)
    stored = store.scored(run_id)
    importances = store.arrays(run_id, "global_importance")
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
            result = metric.component.compute_across_seeds([importances[c] for c in cell_ids])
            value = None if math.isnan(result.value) else result.value
            note = result.note or f"across {len(cell_ids)} seeds: one value for all of them"
            for cell_id in missing:
                store.add_scores(run_id, cell_id, [score_record(metric, value, note)])
