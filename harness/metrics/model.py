"""Metrics of the trained model itself."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.metrics.classification import Split, split_outputs
from harness.records import MetricFamily, MetricRole


class SplitParams(Params):
    split: Split = Field(
        "test", description="scored split: test, or the validation split (model selection)"
    )


@metric_registry.register("accuracy")
class Accuracy(Metric):
    """Accuracy of the model the explainer ran on (fraction in [0, 1]), on the test split
    or (``split = "validation"``) on the validation split."""

    value_range = (0.0, 1.0)

    role: ClassVar[MetricRole] = "accuracy"

    family: ClassVar[MetricFamily] = "model"

    kind = "model"

    needs: ClassVar[frozenset[str]] = frozenset({"predictions"})
    params: SplitParams

    def compute(self, evidence: Evidence) -> MetricResult:
        outputs = split_outputs(evidence, self.params.split)
        if isinstance(outputs, str):
            return MetricResult.undefined(outputs)
        labels, predictions, _ = outputs
        if len(labels) == 0:
            return MetricResult.undefined(f"empty {self.params.split} split")
        return MetricResult(float(np.mean(labels == predictions)))


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

    value_range = (-100.0, 100.0)

    role: ClassVar[MetricRole] = "accuracy_gain"

    family: ClassVar[MetricFamily] = "model"

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

    role: ClassVar[MetricRole] = "accuracy_gain_relative"

    family: ClassVar[MetricFamily] = "model"

    kind = "model"

    needs: ClassVar[frozenset[str]] = frozenset({"predictions", "twin"})
    unit: ClassVar[str] = "%"
    fixed_conventions: ClassVar[dict[str, str]] = {"split": "test", "unit": "% of twin accuracy"}

    def compute(self, evidence: Evidence) -> MetricResult:
        design, twin = design_and_twin_accuracy(evidence)
        if twin == 0:
            return MetricResult.undefined("the twin's accuracy is 0")
        return MetricResult(100 * (design - twin) / twin)
