"""Stability of an explainer's global importance across seeds."""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np

from harness.metrics.agreement import AgreementParams, compare_importances, spearman
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry


@metric_registry.register("stability")
class Stability(Metric):
    """Mean pairwise Spearman ρ of an explainer's global importance across seeds, in [-1, 1].

    One value per dataset × model × explainer, stored on every seed's row. A seed
    changes the data, the split, the model's initialisation and the explainer's sampling,
    so this is the stability of the whole pipeline. Pairs whose ρ is undefined (a
    constant explanation) are left out; with none left the value is missing.
    """

    needs: ClassVar[frozenset[str]] = frozenset({"global_importance"})
    across_seeds: ClassVar[bool] = True
    fixed_conventions: ClassVar[dict[str, str]] = {
        "aggregate": "across seeds: mean over pairs of seeds",
        "ties": "average ranks",
    }
    params: AgreementParams

    def compute(self, evidence: Evidence) -> MetricResult:
        raise NotImplementedError("stability is computed across seeds, after all cells")

    def compute_across_seeds(self, importances: list[np.ndarray]) -> MetricResult:
        if len(importances) < 2:
            return MetricResult.undefined("stability needs results from at least 2 seeds")
        rhos = [
            compare_importances(a, b, spearman, sign=self.params.sign, other_name="other seed")
            for a, b in itertools.combinations(importances, 2)
        ]
        defined = [r.value for r in rhos if not np.isnan(r.value)]
        if not defined:
            return MetricResult.undefined(rhos[0].note)
        return MetricResult(float(np.mean(defined)))
