"""What a plan will cost, estimated before anything runs: the models it trains and the
model evaluations its explainers make (each explainer's known per-row cost,
:meth:`~harness.explainers.base.Explainer.model_calls_per_row`, × the rows it explains).

Model evaluations are a unit that does not depend on the machine: a KernelSHAP cell with
100 rows, 2,068 coalitions and a background of 50 makes about 10 million, Integrated
Gradients with 50 steps 10,000 — the ratio, not a clock, says which cell dominates.
Metrics that explain again (MPRT, sensitivity, …) add to it and are not counted; the
meta-evaluation's re-explaining is (each meta-evaluated cell explains its rows again under
4 × ``perturbations`` perturbations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.datasets.base import DatasetSource
    from harness.runner.plan import Cell
    from harness.suite import Suite


@dataclass(frozen=True)
class PlanCost:
    """``trainings``: models the run trains (black boxes, twins included, and by-design
    models); ``model_calls``: model evaluations to explain, per explainer id, over every
    dataset and seed of the run (largest first)."""

    trainings: int
    model_calls: dict[str, float]

    @property
    def total_calls(self) -> float:
        return sum(self.model_calls.values())

    def summary(self) -> str:
        """One line: ``3 models to train; explaining ≈ 1.2 M model evaluations
        (shap_kernel 1.1 M, 92 %; integrated_gradients 64 k, 5 %; …)``."""
        total = self.total_calls
        shares = "; ".join(
            f"{name} {count_text(calls)}, {_share(calls / total)}"
            for name, calls in list(self.model_calls.items())[:3]
            if calls
        )
        more = " …" if sum(1 for c in self.model_calls.values() if c) > 3 else ""
        explaining = (
            f"explaining ≈ {count_text(total)} model evaluations ({shares}{more})"
            if total
            else "explaining: no model evaluations (controls and by-design maps only)"
        )
        plural = "s" if self.trainings != 1 else ""
        return f"{self.trainings} model{plural} to train; {explaining}"


def _share(fraction: float) -> str:
    return "<1%" if fraction < 0.005 else f"{fraction:.0%}"


def count_text(value: float) -> str:
    """``950``, ``64 k``, ``1.2 M``, ``3.4 G``."""
    for scale, unit in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if value >= scale:
            shown = value / scale
            return f"{shown:.2g}{unit}" if shown < 10 else f"{shown:.0f}{unit}"
    return f"{value:.0f}"


def _features(source: DatasetSource) -> int:
    """Inputs per row known from the dataset's parameters (pixels for images), else 0."""
    params = source.params
    size = getattr(params, "size", None)
    if source.modality == "image" and isinstance(size, int):
        return size * size
    columns = source.known_columns()
    features = getattr(params, "n_features", None)
    return len(columns) if columns else features if isinstance(features, int) else 0


def plan_cost(suite: Suite, cells: list[Cell]) -> PlanCost:
    """The estimated cost of the cells of ``suite`` that run (skipped ones cost nothing).
    Rows explained are the suite's ``explain_rows`` (or the explainer's): a test split
    smaller than that makes the estimate an upper bound."""
    from harness.runner.meta_perturbation import meta_evaluated

    running = [c for c in cells if not c.skip_reason]
    calls: dict[str, float] = {}
    meta = suite.spec.meta_evaluation
    for cell in running:
        rows = cell.explainer.explain_rows or suite.spec.execution.explain_rows
        explainer, source = cell.explainer.component, cell.dataset.component
        per_row = explainer.model_calls_per_row(_features(source), source.modality)
        again = any(m not in cell.metric_skips for m in meta.metrics) and meta_evaluated(cell, meta)
        times = 1 + 4 * meta.perturbations if again else 1
        calls[cell.explainer.id] = calls.get(cell.explainer.id, 0.0) + rows * per_row * times
    models = {c.model_key for c in running}
    by_design = {(c.model_key, c.explainer.id) for c in running if c.explainer.component.by_design}
    largest_first = dict(sorted(calls.items(), key=lambda item: -item[1]))
    return PlanCost(len(models) + len(by_design), largest_first)
