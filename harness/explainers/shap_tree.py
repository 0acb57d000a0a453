"""``shap_tree``: exact SHAP values of tree ensembles with shap's ``TreeExplainer``.

Conventions (parameters, stored with the suite of every run):

- ``feature_perturbation = "tree_path_dependent"`` (shap's default: the trees' own cover
  counts stand for the data distribution, no background) or ``"interventional"``
  (``background_size`` training rows, drawn with the cell's seed, are the background:
  features are removed by marginalising over them).
- ``output = "raw"``: what the trees add up to — log-odds for gradient boosting, class
  probabilities for random forests; ``"probability"`` (needs ``interventional``; binary
  boosters only, as shap cannot explain a softmax exactly).

A binary booster has one output, for class 1; class 0 is explained by its negation
(its log-odds, or 1 − p, change by exactly the opposite amounts). Values are the
explained class's, one per feature, signed.
"""

from __future__ import annotations

import warnings
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from harness.component import Params
from harness.datasets.base import Modality
from harness.explainers.base import ExplainContext, Explainer, Explanation, explainer_registry
from harness.explainers.shap_methods import sample_rows, select_class, shap_module
from harness.models.base import TrainedModel


class ShapTreeParams(Params):
    feature_perturbation: Literal["tree_path_dependent", "interventional"] = Field(
        "tree_path_dependent",
        description="trees' cover counts (no background) or a background of training rows",
    )
    background_size: int = Field(
        100, ge=1, le=100_000, description="interventional: training rows in the background"
    )
    output: Literal["raw", "probability"] = Field(
        "raw",
        description="the trees' sum (log-odds for boosting, probability for forests) or the "
        "class probability (interventional only)",
    )

    @model_validator(mode="after")
    def _probability_needs_a_background(self) -> ShapTreeParams:
        if self.output == "probability" and self.feature_perturbation != "interventional":
            raise ValueError(
                "output = 'probability' needs feature_perturbation = 'interventional' (shap "
                "explains the probability of a tree ensemble only against a background)"
            )
        return self


@explainer_registry.register("shap_tree")
class ShapTreeExplainer(Explainer):
    """shap TreeExplainer: exact SHAP values of a tree ensemble (forests, boosting)."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    requires_traits: ClassVar[frozenset[str]] = frozenset({"tree_ensemble"})
    params: ShapTreeParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        if model.estimator is None:
            raise ValueError("shap_tree explains tree ensembles; this model is a torch network")
        p = self.params
        background = None
        if p.feature_perturbation == "interventional":
            background = sample_rows(context.dataset.x_train, p.background_size, context.seed)
        try:
            explainer = shap_module().TreeExplainer(
                model.estimator.native,
                data=background,
                feature_perturbation=p.feature_perturbation,
                model_output=p.output,
            )
            with warnings.catch_warnings():  # lightgbm: a note on shap's output format
                warnings.simplefilter("ignore", UserWarning)
                values = np.asarray(explainer.shap_values(inputs), dtype=np.float64)
        except Exception as error:
            if "Additivity check failed" in str(error):
                raise ValueError(
                    "shap's TreeExplainer failed its own additivity check (its SHAP values do "
                    "not add up to the model's output; known for very deep trees, e.g. forests "
                    "grown without max_depth on many sparse features, shap#4042): limit the "
                    "trees' max_depth"
                ) from error
            classes = model.estimator.n_classes
            if p.output == "probability" and classes > 2:
                raise ValueError(
                    f"shap explains a boosted ensemble's probability for two classes only "
                    f"(a softmax is not additive over trees); this model has {classes}: "
                    "use output = 'raw' (log-odds)"
                ) from error
            raise
        if values.ndim == 2:  # one output: class 1 of a binary model
            sign = np.where(np.asarray(targets) == 1, 1.0, -1.0)
            return Explanation(local=values * sign[:, None])
        return Explanation(local=select_class(values, targets))

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        """Walks the trees; the network is never called."""
        return 0.0
