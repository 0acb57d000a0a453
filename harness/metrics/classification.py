"""How well the explained model classifies: the test-split scores the Soft-CAM paper reports.

Each is scikit-learn's own function on the stored predictions and class probabilities
of the test split (default) or of the validation split (``split = "validation"``, when
the suite holds one out with ``execution.validation_fraction``: for choosing a penalty
or a checkpoint without looking at the test split). ``positive_class`` names the class
the binary scores are about (the disease class; default 1); with more than two classes,
``roc_auc`` and
``average_precision`` are one-vs-rest macro averages, and ``sensitivity`` /
``specificity`` treat ``positive_class`` against all others. ``gain_over_twin`` is the
by-design model's score minus its black-box twin's.
"""

from __future__ import annotations

import warnings
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily

ClassificationScore = Literal[
    "accuracy", "roc_auc", "average_precision", "sensitivity", "specificity", "balanced_accuracy"
]


Split = Literal["test", "validation"]


class PositiveClassParams(Params):
    positive_class: int = Field(
        1, ge=0, le=100_000, description="class index the binary scores are about (disease)"
    )
    split: Split = Field(
        "test", description="scored split: test, or the validation split (model selection)"
    )


def split_outputs(
    evidence: Evidence, split: Split, *, twin: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | str:
    """(labels, predictions, probabilities) of the model (or its twin) on ``split``, or
    why they are missing."""
    if split == "test":
        assert evidence.y_true is not None
        predictions = evidence.twin_y_pred if twin else evidence.y_pred
        assert predictions is not None
        return evidence.y_true, predictions, evidence.twin_y_score if twin else evidence.y_score
    scores = evidence.twin_val_score if twin else evidence.val_score
    if evidence.y_val is None or scores is None:
        return "no validation split; set execution.validation_fraction"
    return evidence.y_val, scores.argmax(axis=1), scores


def classification_score(
    name: ClassificationScore,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
    positive: int,
) -> MetricResult:
    """``name`` of the predictions (and probabilities: rows × classes) against the labels,
    as a fraction in [0, 1]; undefined (with the reason) where the score is."""
    from sklearn import metrics

    classes = y_score.shape[1] if y_score is not None else int(max(y_true.max(), y_pred.max())) + 1
    if len(y_true) == 0:
        return MetricResult.undefined("empty test split")
    if name == "accuracy":
        return MetricResult(float(metrics.accuracy_score(y_true, y_pred)))
    if name == "balanced_accuracy":  # the mean recall over the classes present in y_true
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
            warnings.filterwarnings("ignore", "A single label was found")
            return MetricResult(float(metrics.balanced_accuracy_score(y_true, y_pred)))
    if positive >= max(classes, 2):
        return MetricResult.undefined(f"positive_class {positive} but {classes} classes")
    is_positive = y_true == positive
    if name in ("sensitivity", "specificity"):
        wanted = is_positive if name == "sensitivity" else ~is_positive
        if not wanted.any():
            what = "positive" if name == "sensitivity" else "negative"
            return MetricResult.undefined(f"no {what} test row (class {positive})")
        return MetricResult(float(np.mean((y_pred == positive)[wanted] == (name == "sensitivity"))))
    if y_score is None:
        return MetricResult.undefined(
            "needs the model's test probabilities, which this run did not store; run again"
        )
    if len(np.unique(y_true)) < 2:
        return MetricResult.undefined("only one class in the test split")
    if classes == 2:
        function = metrics.roc_auc_score if name == "roc_auc" else metrics.average_precision_score
        return MetricResult(float(function(is_positive, y_score[:, positive])))
    present = np.unique(y_true)
    if len(present) < classes:
        return MetricResult.undefined(f"only {len(present)} of {classes} classes in the test split")
    if name == "roc_auc":
        return MetricResult(float(metrics.roc_auc_score(y_true, y_score, multi_class="ovr")))
    onehot = np.eye(classes, dtype=bool)[y_true]
    return MetricResult(float(metrics.average_precision_score(onehot, y_score, average="macro")))


class _Classification(Metric):
    value_range = (0.0, 1.0)
    family: ClassVar[MetricFamily] = "model"
    kind = "model"
    needs: ClassVar[frozenset[str]] = frozenset({"predictions"})
    score: ClassVar[ClassificationScore]
    params: PositiveClassParams

    def compute(self, evidence: Evidence) -> MetricResult:
        outputs = split_outputs(evidence, self.params.split)
        if isinstance(outputs, str):
            return MetricResult.undefined(outputs)
        return classification_score(self.score, *outputs, self.params.positive_class)


@metric_registry.register("roc_auc")
class ROCAUC(_Classification):
    """Test-split ROC-AUC of the class probabilities (scikit-learn ``roc_auc_score``):
    binary — of ``positive_class``; more classes — one-vs-rest macro average. In [0, 1]."""

    score = "roc_auc"
    fixed_conventions: ClassVar[dict[str, str]] = {"multi-class": "one-vs-rest, macro average"}


@metric_registry.register("average_precision")
class AveragePrecision(_Classification):
    """Test-split average precision (area under the precision–recall curve, scikit-learn
    ``average_precision_score``) of ``positive_class``; more classes — macro one-vs-rest."""

    score = "average_precision"
    fixed_conventions: ClassVar[dict[str, str]] = ROCAUC.fixed_conventions


@metric_registry.register("sensitivity")
class Sensitivity(_Classification):
    """Test-split sensitivity (recall) of ``positive_class``: TP / (TP + FN), in [0, 1]."""

    score = "sensitivity"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "multi-class": "positive_class against all others"
    }


@metric_registry.register("specificity")
class Specificity(_Classification):
    """Test-split specificity for ``positive_class``: TN / (TN + FP), in [0, 1]."""

    score = "specificity"
    fixed_conventions: ClassVar[dict[str, str]] = Sensitivity.fixed_conventions


@metric_registry.register("balanced_accuracy")
class BalancedAccuracy(_Classification):
    """Test-split balanced accuracy: the mean recall over classes (scikit-learn), [0, 1]."""

    score = "balanced_accuracy"


class GainParams(PositiveClassParams):
    score: ClassificationScore = Field(
        "roc_auc", description="the classification score compared with the twin's"
    )


@metric_registry.register("gain_over_twin")
class GainOverTwin(Metric):
    """A by-design model's classification ``score`` minus its black-box twin's, in
    percentage points (100 × the difference of the fractions); positive: by design wins."""

    value_range = (-100.0, 100.0)

    family: ClassVar[MetricFamily] = "model"

    kind = "model"
    needs: ClassVar[frozenset[str]] = frozenset({"predictions", "twin"})
    unit: ClassVar[str] = "pp"
    fixed_conventions: ClassVar[dict[str, str]] = {"unit": "percentage points"}
    params: GainParams

    def compute(self, evidence: Evidence) -> MetricResult:
        p = self.params
        design_outputs = split_outputs(evidence, p.split)
        twin_outputs = split_outputs(evidence, p.split, twin=True)
        if isinstance(design_outputs, str) or isinstance(twin_outputs, str):
            return MetricResult.undefined(str(design_outputs))
        design = classification_score(p.score, *design_outputs, p.positive_class)
        twin = classification_score(p.score, *twin_outputs, p.positive_class)
        if np.isnan(design.value) or np.isnan(twin.value):
            return MetricResult.undefined(design.note or f"twin: {twin.note}")
        return MetricResult(100 * (design.value - twin.value))
