"""``suppressor_share`` ↓: how much of an explanation lands on suppressor features —
features independent of the label that a good model uses to cancel noise (XAI-TRIS;
Haufe et al. 2014). An explanation of *what carries the signal* should put none there;
an explanation of *what the model computes* (a gradient of a linear model: its weights)
puts ρ / (1 + ρ) of it there for a suppressor of correlation ρ (see
:mod:`harness.datasets.suppressor_tabular`).

Per explained row (a table's row, or an image: the suppressor flags are then a mask of
pixels): Σ_{suppressors} |a| / Σ |a|; the value is the mean over rows (rows whose map is
zero are left out and counted).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily


@metric_registry.register("suppressor_share")
class SuppressorShare(Metric):
    """Share of |attribution| on suppressor features (mean over rows); lower is better."""

    value_range = (0.0, 1.0)
    family: ClassVar[MetricFamily] = "agreement"
    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset(
        {"attributions", "global_importance", "suppressors"}
    )
    unit = "share of |attribution|"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "per row": "Σ over suppressors of |a| / Σ |a|",
        "value": "mean over rows with a non-zero map",
    }

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.suppressors is not None and evidence.attributions is not None
        suppressors = np.asarray(evidence.suppressors, dtype=bool).ravel()  # features or pixels
        maps = np.asarray(evidence.attributions, dtype=float)
        magnitudes = np.abs(maps).reshape(len(maps), -1)
        if magnitudes.shape[1] != len(suppressors):
            return MetricResult.undefined(
                f"maps have {magnitudes.shape[1]} features, the suppressor flags "
                f"{len(suppressors)} (features grouped into columns?)"
            )
        totals = magnitudes.sum(axis=1)
        kept = totals > 0
        if not kept.any():
            return MetricResult.undefined("every map is zero")
        shares = magnitudes[kept][:, suppressors].sum(axis=1) / totals[kept]
        note = f"{int((~kept).sum())} zero maps left out" if not kept.all() else ""
        return MetricResult(float(shares.mean()), note)
