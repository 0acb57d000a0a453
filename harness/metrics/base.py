"""The metric contract: pure functions over a cell's evidence, with declared conventions."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from harness.component import Component
from harness.datasets.base import Modality
from harness.errors import HarnessError, did_you_mean
from harness.records import MetricFamily, MetricKind, MetricRole
from harness.registry import Registry

if TYPE_CHECKING:
    from harness.metrics.reexplaining import Reexplainer


@dataclass(frozen=True)
class Evidence:
    """Everything a metric may read for one cell. Fields a cell cannot supply are ``None``.

    ``y_true``/``y_pred``: test labels and the model's predicted classes (int);
    ``y_score``: its class probabilities on the test split (rows × classes).
    ``history``: what the explained model recorded while training (e.g.
    ``score_trajectory``, ``epoch_seconds``).
    ``y_val``/``val_score``/``twin_val_score``: labels of the validation split and the
    model's (and twin's) class probabilities on it, when the suite holds one out.
    ``attributions``: local attributions for the explained rows (rows × features).
    ``global_importance``: one score per feature (mean |attribution| for local explainers).
    ``importance``: ground-truth importance per feature (0 = irrelevant).
    ``suppressors``: per feature, whether it is a suppressor (label-independent, used by a
    good model to cancel noise; see :class:`~harness.datasets.base.GroundTruth`).
    ``masks``: ground-truth masks of the explained rows (images, height, width), boolean.
    ``explain_seconds``: wall time of the explainer call (after warm-up), seconds, for
    ``n_explained`` rows. ``train_seconds``: wall time of training the explained model
    (0 with ``model_given``: trained outside the harness and loaded from a file).
    ``twin_*``: for by-design explainers, the same of the recipe's black-box twin.
    ``reference_importance``: global importance of the explainers already run on the same
    dataset, model recipe and seed, by explainer id.
    ``inputs``/``targets``/``explained_labels``: the explained rows, their explained
    classes and their true labels;
    ``predict_proba``: the explained model as a function (rows → class probabilities);
    ``train_mean``: the mean training row (a perturbation baseline); ``train_std``: the
    standard deviation of each input position over the training rows (population), the
    unit of perturbations declared relative to the data.
    ``reexplain``: the cell's explainer as a function, for metrics that explain again
    (randomised models, other classes, perturbed inputs; see
    :class:`~harness.metrics.reexplaining.Reexplainer`); None when the model was not kept
    (a rescoring without the run's cache).
    ``class_attributions``: every class's map of the explained rows (rows, classes, …),
    when the suite explains all classes. ``image_selection``: which explained images the
    per-image fields hold (``select_images``: all, predicted_positive, correct_by_both).
    """

    y_true: np.ndarray | None = None
    y_pred: np.ndarray | None = None
    attributions: np.ndarray | None = None
    global_importance: np.ndarray | None = None
    importance: np.ndarray | None = None
    suppressors: np.ndarray | None = None
    masks: np.ndarray | None = None
    explain_seconds: float | None = None
    n_explained: int | None = None
    train_seconds: float | None = None
    model_given: bool = False
    twin_y_pred: np.ndarray | None = None
    y_score: np.ndarray | None = None
    twin_y_score: np.ndarray | None = None
    twin_train_seconds: float | None = None
    reference_importance: dict[str, np.ndarray] | None = None
    inputs: np.ndarray | None = None
    targets: np.ndarray | None = None
    predict_proba: Callable[[np.ndarray], np.ndarray] | None = None
    train_mean: np.ndarray | None = None
    train_std: np.ndarray | None = None
    #: for maps multiplied by the input (a = (x − b) ∘ …), the explainer's baseline b
    #: for the scored rows (broadcasts to ``inputs``); None for maps per unit of input
    input_baseline: np.ndarray | None = None
    reexplain: Reexplainer | None = None
    class_attributions: np.ndarray | None = None
    explained_labels: np.ndarray | None = None
    y_val: np.ndarray | None = None
    history: dict[str, np.ndarray] | None = None
    val_score: np.ndarray | None = None
    twin_val_score: np.ndarray | None = None
    image_selection: str = "all"
    #: the test indices of the scored explained rows (for the harness, not for metrics)
    rows: np.ndarray | None = None

    def restricted_to(self, needs: frozenset[str]) -> Evidence:
        """This evidence with only the fields ``needs`` (names of :data:`NEEDS`) give:
        a metric receives what it declared, and nothing it did not."""
        given = {"image_selection", "rows"} | {f for need in needs for f in NEEDS[need][1]}
        withheld: dict[str, Any] = {
            f.name: False if f.name == "model_given" else None
            for f in fields(self)
            if f.name not in given
        }
        return replace(self, **withheld)

    def row(self, position: int) -> Evidence:
        """This evidence for the explained row at ``position`` alone: the per-row fields
        (maps, inputs, targets, labels, masks, baseline) cut to that row, the explainer
        run again on it as on that row; the rest (the test split's predictions, the
        model, the training statistics) as they are."""
        one = slice(position, position + 1)
        rows = None if self.inputs is None else len(self.inputs)

        def cut(value: np.ndarray | None) -> np.ndarray | None:
            return value if value is None else value[one]

        baseline = self.input_baseline
        if baseline is not None and baseline.ndim and len(baseline) == rows:
            baseline = baseline[one]
        return replace(
            self,
            attributions=cut(self.attributions),
            class_attributions=cut(self.class_attributions),
            masks=cut(self.masks),
            inputs=cut(self.inputs),
            targets=cut(self.targets),
            explained_labels=cut(self.explained_labels),
            rows=cut(self.rows),
            input_baseline=baseline,
            reexplain=None if self.reexplain is None else self.reexplain.at([position]),
        )


@dataclass(frozen=True)
class MetricResult:
    """A metric's value; NaN with a ``note`` saying why when the value is undefined.

    ``arrays`` are stored with the cell as ``<metric id>.<key>`` (e.g. a mean curve, for
    figures).
    """

    value: float
    note: str = ""
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def undefined(cls, reason: str) -> MetricResult:
        return cls(math.nan, reason)


class Metric(Component):
    """A score of one cell: direction, required evidence and conventions are declared.

    ``fixed_conventions`` are the choices the implementation makes that are not
    parameters (e.g. tie handling); they are stored with every score together with the
    parameters, so two scores with the same name can be told apart.
    """

    higher_is_better: ClassVar[bool] = True
    #: what the metric reads: names from :data:`NEEDS` (checked when it is registered)
    needs: ClassVar[frozenset[str]] = frozenset()
    #: the data it applies to (others: skipped with the reason)
    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular", "image"})
    unit: ClassVar[str] = ""
    #: ``explanation`` (quality of the explanation), ``model`` (of the explained model),
    #: ``cost`` (time) or ``reference`` (what a trivial map scores, to compare with);
    #: leaderboards rank explainers by their explanation metrics only.
    kind: ClassVar[MetricKind] = "explanation"
    #: the family it belongs to (figures and report cards choose metrics by family)
    family: ClassVar[MetricFamily] = "other"
    #: what it is to figures (:data:`~harness.records.MetricRole`; "" for none)
    role: ClassVar[MetricRole] = ""
    #: the version of its definition: raised when what the metric computes changes, so
    #: stored scores of two versions are never compared as like with like
    version: ClassVar[int] = 1
    fixed_conventions: ClassVar[dict[str, Any]] = {}
    #: the values it can take, (low, high) in its unit; None when unbounded. Stored with
    #: each score: figures keep their axes within it, leaderboards mark an entry whose
    #: seeds span over half of it.
    value_range: ClassVar[tuple[float, float] | None] = None

    #: True for statistics over an explainer's seeds (one value per dataset × model ×
    #: explainer), computed after all cells by :meth:`compute_across_seeds`.
    across_seeds: ClassVar[bool] = False

    def references(self) -> list[str]:
        """Ids of other explainers of the suite whose results this metric reads."""
        return []

    def compute_across_seeds(self, importances: list[np.ndarray]) -> MetricResult:
        """Across-seeds metrics: the value from each seed's global importance."""
        raise NotImplementedError

    def conventions(self) -> dict[str, Any]:
        """Fixed conventions and parameters together, as stored with each score."""
        return {**self.fixed_conventions, **self.config()}

    def conventions_hash(self) -> str:
        """Short content hash of :meth:`conventions` (12 hex digits)."""
        return conventions_hash(self.conventions())

    def compute(self, evidence: Evidence) -> MetricResult:
        raise NotImplementedError

    def row_values(self, evidence: Evidence) -> np.ndarray:
        """The metric on each explained row alone (float64; NaN where undefined there),
        for the meta-evaluation (:mod:`harness.meta_consistency`): :meth:`compute` on each
        row's evidence (:meth:`Evidence.row`). A metric whose value is a mean over rows
        may override it with one batched pass that gives the same values."""
        rows = 0 if evidence.inputs is None else len(evidence.inputs)
        return np.array([self.compute(evidence.row(i)).value for i in range(rows)], dtype=float)


_ROWS = ("inputs", "targets", "explained_labels", "train_mean", "train_std")

#: What a metric may declare it ``needs`` — a closed vocabulary, checked when a metric
#: is registered or named in a suite — what each stands for, and the :class:`Evidence`
#: fields it gives (a metric receives those of its needs only).
NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "attributions": ("the local maps of the explained rows",
                     ("attributions", "class_attributions", "input_baseline", *_ROWS)),
    "predictions": ("the model's predictions and probabilities on the test and validation "
                    "splits", ("y_true", "y_pred", "y_score", "y_val", "val_score")),
    "model": ("the explained model as a function (predict_proba)", ("predict_proba", *_ROWS)),
    "reexplain": ("the cell's explainer, to run it again (e.g. on a changed model)",
                  ("reexplain", "predict_proba", *_ROWS)),
    "importance": ("the dataset's ground-truth feature importance", ("importance",)),
    "suppressors": ("which features are suppressors (label-independent)", ("suppressors",)),
    "masks": ("the dataset's ground-truth masks", ("masks",)),
    "twin": ("the by-design model's black-box twin",
             ("twin_y_pred", "twin_y_score", "twin_val_score", "twin_train_seconds")),
    "global_importance": ("the explainer's global importance", ("global_importance",)),
    "reference": ("other explainers' global importance (named by the metric)",
                  ("reference_importance",)),
    "train_seconds": ("the model's training time and record",
                      ("train_seconds", "model_given", "history")),
    "explain_seconds": ("the explainer's time", ("explain_seconds",)),
    "n_explained": ("the number of explained rows", ("n_explained",)),
}  # fmt: skip


def check_needs(cls: type[Metric], name: str) -> None:
    """Refuse a metric class whose ``needs`` the harness does not provide."""
    unknown = sorted(set(cls.needs) - NEEDS.keys())
    if unknown:
        raise HarnessError(
            f"metric '{name}' declares needs '{unknown[0]}', which the harness does not "
            f"provide{did_you_mean(unknown[0], NEEDS)} Valid needs: {', '.join(NEEDS)}"
        )


def conventions_hash(conventions: dict[str, Any]) -> str:
    """Short content hash of a score's conventions (12 hex digits)."""
    text = json.dumps(conventions, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


metric_registry: Registry[type[Metric]] = Registry(
    "metric", Metric, "xai_harness.metrics", check=check_needs
)
