"""Stability of an explainer's global importance across seeds."""

from __future__ import annotations

import itertools
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.metrics.agreement import AgreementParams, compare_importances, spearman
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily


class _AcrossSeedPairs(Metric):
    """A statistic over every pair of an explainer's seeds (one value per dataset × model
    × explainer, stored on every seed's row): the mean of :meth:`pair_value` over the
    pairs where it is defined; missing with fewer than 2 seeds or no defined pair."""

    family: ClassVar[MetricFamily] = "robustness"

    needs: ClassVar[frozenset[str]] = frozenset({"global_importance"})
    across_seeds: ClassVar[bool] = True

    def compute(self, evidence: Evidence) -> MetricResult:
        raise NotImplementedError(f"{self.name} is computed across seeds, after all cells")

    def prepare(self, importance: np.ndarray) -> Any:
        """What each seed contributes to its pairs (its importance by default)."""
        return importance

    def pair_value(self, a: Any, b: Any) -> MetricResult:
        raise NotImplementedError

    def compute_across_seeds(self, importances: list[np.ndarray]) -> MetricResult:
        if len(importances) < 2:
            return MetricResult.undefined(f"{self.name} needs results from at least 2 seeds")
        prepared = [self.prepare(importance) for importance in importances]
        pairs = [self.pair_value(a, b) for a, b in itertools.combinations(prepared, 2)]
        defined = [r.value for r in pairs if not np.isnan(r.value)]
        if not defined:
            return MetricResult.undefined(pairs[0].note)
        return MetricResult(float(np.mean(defined)))


@metric_registry.register("stability")
class Stability(_AcrossSeedPairs):
    """Mean pairwise Spearman ρ of an explainer's global importance across seeds, in [-1, 1].

    One value per dataset × model × explainer, stored on every seed's row. A seed
    changes the data, the split, the model's initialisation and the explainer's sampling,
    so this is the stability of the whole pipeline (``execution.data_seed`` holds the
    data fixed, so that seeds vary the model and the sampling only). Pairs whose ρ is
    undefined (a constant explanation) are left out; with none left the value is missing.
    """

    value_range = (-1.0, 1.0)

    fixed_conventions: ClassVar[dict[str, str]] = {
        "aggregate": "across seeds: mean over pairs of seeds",
        "ties": "average ranks",
    }
    params: AgreementParams

    def pair_value(self, a: np.ndarray, b: np.ndarray) -> MetricResult:
        return compare_importances(a, b, spearman, sign=self.params.sign, other_name="other seed")


class TopKStabilityParams(Params):
    k: int = Field(5, ge=1, le=1_000_000, description="size of the top-k feature set")


def top_set(importance: np.ndarray, k: int) -> set[int]:
    """Indices of the k highest |importance| values and of every value tied with the
    k-th (so a tie never decides membership by feature order)."""
    values = np.abs(np.asarray(importance, dtype=float))
    kth = np.sort(values)[::-1][min(k, len(values)) - 1]
    return set(np.flatnonzero(values >= kth).tolist())


@metric_registry.register("topk_stability")
class TopKStability(_AcrossSeedPairs):
    """Mean pairwise Jaccard index of the top-k feature sets (by |global importance|)
    across seeds, in [0, 1]: 1 when every seed picks the same k features.

    One value per dataset × model × explainer, stored on every seed's row. Features tied
    with the k-th value all join the set (which may then hold more than k). With
    ``execution.data_seed`` the seeds vary the model and the sampling only.
    """

    value_range = (0.0, 1.0)

    fixed_conventions: ClassVar[dict[str, str]] = {
        "aggregate": "across seeds: mean over pairs of seeds",
        "ties": "every feature tied with the k-th |importance| is in the set",
    }
    params: TopKStabilityParams

    def prepare(self, importance: np.ndarray) -> set[int]:
        return top_set(importance, self.params.k)

    def pair_value(self, a: set[int], b: set[int]) -> MetricResult:
        return MetricResult(len(a & b) / len(a | b))
