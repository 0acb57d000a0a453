"""Metrics of the trained model itself."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry


@metric_registry.register("accuracy")
class Accuracy(Metric):
    """Test-split accuracy of the model the explainer ran on (fraction in [0, 1])."""

    needs: ClassVar[frozenset[str]] = frozenset({"predictions"})
    fixed_conventions: ClassVar[dict[str, str]] = {"split": "test"}

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.y_true is not None and evidence.y_pred is not None
        if len(evidence.y_true) == 0:
            return MetricResult.undefined("empty test split")
        return MetricResult(float(np.mean(evidence.y_true == evidence.y_pred)))
