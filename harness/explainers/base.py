"""The explainer contract: what an explainer declares, receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from harness.component import Component
from harness.datasets.base import Dataset, Modality
from harness.models.base import ModelRecipe, TrainedModel
from harness.records import ExplainerRole
from harness.registry import Registry

Scope = Literal["local", "global"]


@dataclass(frozen=True)
class Explanation:
    """What an explainer returns.

    ``local``: attributions, one per explained row, shaped like the row without the
    channel axis — (rows, features) or (rows, height, width); signed when ``signed``.
    Pixel attributions computed per channel are pooled by ``channel_pooling``
    (``"sum_abs"``: Σ_c |a_c|; ``"sum"``: Σ_c a_c); None when there was nothing to pool.
    ``global_scores``: one score per feature. Local explainers leave it ``None``; their
    global importance is the mean |attribution| over the explained rows.
    """

    local: np.ndarray | None = None
    global_scores: np.ndarray | None = None
    signed: bool = True
    channel_pooling: str | None = None

    def __post_init__(self) -> None:
        if self.local is None and self.global_scores is None:
            raise ValueError("an Explanation needs local attributions or global scores")

    @cached_property
    def global_importance(self) -> np.ndarray:
        """Global scores if given, else mean |local attribution| per feature (or pixel)."""
        if self.global_scores is not None:
            return self.global_scores
        assert self.local is not None
        return np.abs(self.local).mean(axis=0)

    def is_finite(self) -> bool:
        """True when no attribution or score is NaN or infinite."""
        return all(
            bool(np.isfinite(part).all())
            for part in (self.local, self.global_scores)
            if part is not None
        )

    def problem(self, rows: int, attribution_shape: tuple[int, ...]) -> str | None:
        """Why this cannot be the explanation of ``rows`` inputs whose attributions have
        ``attribution_shape`` (wrong shape, not numbers, NaN or infinite), or None.

        Applied alike to a fresh explanation and to one read back from the cache.
        """
        parts = [
            ("attributions", self.local, (rows, *attribution_shape)),
            ("global scores", self.global_scores, attribution_shape),
        ]
        for name, part, shape in parts:
            if part is None:
                continue
            part = np.asarray(part)
            if part.dtype.kind not in "biuf":
                return f"returned {name} of dtype {part.dtype}; expected real numbers"
            if part.shape != shape:
                return f"returned {name} of shape {part.shape}; expected {shape}"
        if not self.is_finite():
            return "returned NaN or infinite values"
        return None


@dataclass(frozen=True)
class ExplainContext:
    """What an explainer may read besides the model and the rows.

    ``rows``: indices of the explained inputs in ``dataset.x_test`` (controls read the
    ground truth of exactly these rows). ``seed`` is the cell's seed; every stochastic
    explainer must derive its randomness from it.
    """

    dataset: Dataset
    seed: int
    rows: np.ndarray


class Explainer(Component):
    """Explains a trained model's predictions for given rows and target classes.

    Declares the modalities it handles, its scope, whether it needs gradients through
    the model, which ground truth it reads per modality (controls only), which model
    traits it needs and which it cannot handle (with why). *By-design* explainers
    (``by_design``) change the model: the runner calls :meth:`fit_model` instead of
    training the recipe, and also trains the recipe's plain black-box twin (same seed) so
    accuracy and training time can be compared. *Controls* (``control``: oracle, random,
    …) are references every metric is tested against, not methods to rank.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular", "image"})
    scope: ClassVar[Scope] = "local"
    needs_gradients: ClassVar[bool] = False
    needs_ground_truth: ClassVar[dict[Modality, str]] = {}
    requires_traits: ClassVar[frozenset[str]] = frozenset()
    #: the model must have at least one of these traits (e.g. a feature map or tokens)
    requires_any_traits: ClassVar[frozenset[str]] = frozenset()
    incompatible_traits: ClassVar[dict[str, str]] = {}
    by_design: ClassVar[bool] = False
    control: ClassVar[bool] = False

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        """Rows the model evaluates to explain one row (a forward pass counts 1, a
        backward pass 1 more): the per-row cost ``validate`` estimates a plan's cost
        from. Default: a forward and a backward pass; controls 0; by-design explainers
        read their model's own output (1). ``n_features``: inputs per row (pixels per
        channel for images; 0 when unknown before loading)."""
        return 0.0 if self.control else 1.0 if self.by_design else 2.0

    @classmethod
    def role(cls) -> ExplainerRole:
        """``by_design``, ``control`` or ``post_hoc``: stored with each of its cells."""
        return "by_design" if cls.by_design else "control" if cls.control else "post_hoc"

    @classmethod
    def recipe_skip_reason(cls, recipe: type[ModelRecipe]) -> str | None:
        """Why this explainer cannot work with ``recipe`` (beyond traits), or None."""
        return None

    def fit_model(
        self, recipe: ModelRecipe, dataset: Dataset, seed: int, device: torch.device
    ) -> TrainedModel:
        """By-design explainers: build and train their own model from the host ``recipe``."""
        raise NotImplementedError(f"explainer '{self.name}' is post-hoc; it trains no model")

    def architecture(self, recipe: ModelRecipe, dataset: Dataset, seed: int) -> nn.Module:
        """By-design explainers: the untrained network ``fit_model`` trains (the cache
        rebuilds it to load stored weights)."""
        raise NotImplementedError(f"explainer '{self.name}' is post-hoc; it builds no model")

    def explain(
        self,
        model: TrainedModel,
        inputs: np.ndarray,
        targets: np.ndarray,
        context: ExplainContext,
    ) -> Explanation:
        """Attributions for ``inputs`` (rows × features) towards class indices ``targets``."""
        raise NotImplementedError

    def input_baseline(self, inputs: np.ndarray, context: ExplainContext) -> np.ndarray | None:
        """For a map multiplied by the input — a = (x − b) ∘ (…), as Integrated Gradients,
        DeepLIFT, input × gradient, SHAP and single-feature ablation give — its reference
        b for ``inputs`` (an array that broadcasts to them); None for a map per unit of
        input (gradients, CAMs, LIME's weights, controls). Metrics that compare a map
        with the change of the output under a perturbation (infidelity) need to know
        which (captum's ``multiply_by_inputs``)."""
        return None


ChannelPooling = Literal["sum_abs", "sum"]


def pool_channels(attributions: np.ndarray, how: ChannelPooling) -> np.ndarray:
    """(rows, channels, height, width) → (rows, height, width) by Σ|a| or Σa over channels."""
    if how == "sum_abs":
        return np.abs(attributions).sum(axis=1)
    return attributions.sum(axis=1)


explainer_registry: Registry[type[Explainer]] = Registry(
    "explainer", Explainer, "xai_harness.explainers"
)
