"""Metrics of the trained model itself."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry


@metric_registry.register("accuracy")
class Accuracy(Metric):
    """Test-split accuracy of the model the explainer ran on (fraction in [0, 1])."""

    kind = "model"

    needs: ClassVar[frozenset[str]] = frozenset({"predictions"})
    fixed_conventions: ClassVar[dict[str, str]] = {"split": "test"}

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.y_true is not None and evidence.y_pred is not None
        if len(evidence.y_true) == 0:
            return MetricResult.undefined("empty test split")
        return MetricResult(float(np.mean(evidence.y_true == evidence.y_pred)))


def design_and_twin_accuracy(evidence: Evidence) -> tuple[float, float]:
    """Test accuracy of the by-design model and of its black-box twin (fractions)."""
    assert evidence.y_true is not None and evidence.y_pred is not None
    assert evidence.twin_y_pred is not None
    return (
        float(np.mean(evidence.y_true == evidence.y_pred)),
        float(np.mean(evidence.y_true == evidence.twin_y_pred)),
    )


@metric_registry.register("accuracy_gain_pp")
class AccuracyGainPoints(Metric):
    """Accuracy of the by-design model minus its black-box twin's, in percentage points.

    Twin: the same recipe and seed without the by-design change.
    """

    kind = "model"

    needs: ClassVar[frozenset[str]] = frozenset({"predictions", "twin"})
    unit: ClassVar[str] = "pp"
    fixed_conventions: ClassVar[dict[str, str]] = {"split": "test", "unit": "percentage points"}

    def compute(self, evidence: Evidence) -> MetricResult:
        design, twin = design_and_twin_accuracy(evidence)
        return MetricResult(100 * (design - twin))


@metric_registry.register("accuracy_gain_rel")
class AccuracyGainRelative(Metric):
    """Relative accuracy gain over the black-box twin, in % of the twin's accuracy.

    100 · (acc_design − acc_twin) / acc_twin; undefined when the twin's accuracy is 0.
    """

    kind = "model"

    needs: ClassVar[frozenset[str]] = frozenset({"predictions", "twin"})
    unit: ClassVar[str] = "%"
    fixed_conventions: ClassVar[dict[str, str]] = {"split": "test", "unit": "% of twin accuracy"}

    def compute(self, evidence: Evidence) -> MetricResult:
        design, twin = design_and_twin_accuracy(evidence)
        if twin == 0:
            return MetricResult.undefined("the twin's accuracy is 0")
        return MetricResult(100 * (design - twin) / twin)
