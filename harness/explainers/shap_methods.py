"""SHAP explainers from the ``shap`` package.

Model-agnostic ones (``shap_kernel``, ``shap_permutation``) explain the predicted class
*probability*; the gradient-based ones (``shap_deep``, ``shap_gradient``) explain the class
*logit* of the torch module. All return the SHAP values of the explained class only.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from harness.component import Params
from harness.datasets.base import Modality
from harness.datasets.streamed_images import Rows
from harness.explainers.base import (
    ChannelPooling,
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
    pool_channels,
)
from harness.models.base import TrainedModel


def shap_module() -> Any:
    """The ``shap`` package, imported on first use (it takes seconds and is not needed to
    list or validate); its own deprecation warnings at import are silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import shap

    return shap


#: Additivity tolerance of shap's own DeepExplainer check (absolute, logit units).
ADDITIVITY_TOLERANCE = 0.01


@contextmanager
def numpy_global_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (which shap draws from) and restore its state afterwards."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def sample_rows(x: Rows, size: int, seed: int) -> np.ndarray:
    """``size`` rows of ``x`` drawn without replacement with the seed (all rows if fewer),
    as an array (images on disk: only these are decoded)."""
    if len(x) <= size:
        return np.asarray(x)
    return x[np.sort(np.random.default_rng(seed).choice(len(x), size, replace=False))]


def select_class(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(rows, *input shape, classes) → (rows, *input shape): each row's target class."""
    return np.moveaxis(np.asarray(values), -1, 1)[np.arange(len(targets)), targets]


def _finish(values: np.ndarray, context: ExplainContext, pooling: ChannelPooling) -> Explanation:
    if context.dataset.modality == "image":
        return Explanation(local=pool_channels(values, pooling), channel_pooling=pooling)
    return Explanation(local=values)


class ShapKernelParams(Params):
    background: Literal["kmeans", "sample"] = Field(
        "kmeans", description="training rows summarised by shap.kmeans, or a random sample"
    )
    background_size: int = Field(50, ge=1, le=100_000, description="k of k-means, or rows sampled")
    nsamples: int | Literal["auto"] = Field(
        "auto", description="coalitions evaluated per row ('auto': 2·features + 2048)"
    )
    l1_reg: str | float | bool = Field(
        False,
        description="shap's feature selection before the regression: False (default) "
        "keeps every feature; shap's own default 'num_features(10)' zeroes all but 10 "
        "features of every row whenever it is set (shap 0.51), whatever the sample size",
    )


@explainer_registry.register("shap_kernel")
class ShapKernel(Explainer):
    """KernelSHAP (Lundberg & Lee 2017): shap.KernelExplainer on class probabilities.

    Background: shap.kmeans summary (weighted centroids) or a seeded sample of training
    rows. Coalition sampling draws from numpy's global RNG, seeded with the cell seed.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    params: ShapKernelParams

    def background(self, context: ExplainContext) -> Any:
        x_train = context.dataset.x_train
        if self.params.background == "kmeans":
            return shap_module().kmeans(x_train, min(self.params.background_size, len(x_train)))
        return sample_rows(x_train, self.params.background_size, context.seed)

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        explainer = shap_module().KernelExplainer(model.predict_proba, self.background(context))
        with numpy_global_seed(context.seed):
            values = explainer.shap_values(
                inputs, nsamples=self.params.nsamples, l1_reg=self.params.l1_reg, silent=True
            )
        return Explanation(local=select_class(values, targets))

    def input_baseline(self, inputs: np.ndarray, context: ExplainContext) -> np.ndarray:
        """The background's (weighted) mean row: SHAP values sum to f(x) − E_background f."""
        background = self.background(context)
        if hasattr(background, "weights"):  # shap.kmeans: weighted centroids
            weights = np.asarray(background.weights, dtype=np.float64)
            return (weights @ np.asarray(background.data)) / weights.sum()
        return np.asarray(background, dtype=np.float64).mean(axis=0)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        """Every coalition sample is evaluated over the whole background."""
        p = self.params
        samples = 2 * n_features + 2048 if p.nsamples == "auto" else p.nsamples
        return float(samples * p.background_size)


class ShapPermutationParams(Params):
    background_size: int = Field(
        100, ge=1, le=100_000, description="training rows sampled as background"
    )
    max_evals: int = Field(
        500, ge=1, le=10_000_000, description="model evaluations per explained row"
    )
    batch_size: int | Literal["auto"] = Field("auto", description="rows per model call")


@explainer_registry.register("shap_permutation")
class ShapPermutation(Explainer):
    """Permutation SHAP: shap.PermutationExplainer on class probabilities, seeded.

    Background: a seeded sample of training rows behind an ``Independent`` masker.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    params: ShapPermutationParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        p = self.params
        background = sample_rows(context.dataset.x_train, p.background_size, context.seed)
        masker = shap_module().maskers.Independent(background, max_samples=p.background_size)
        with numpy_global_seed(context.seed):  # the explainer reseeds the global RNG itself
            explainer = shap_module().PermutationExplainer(
                model.predict_proba, masker, seed=context.seed
            )
            result = explainer(inputs, max_evals=p.max_evals, batch_size=p.batch_size, silent=True)
        return Explanation(local=select_class(result.values, targets))

    def input_baseline(self, inputs: np.ndarray, context: ExplainContext) -> np.ndarray:
        """The background sample's mean row."""
        background = sample_rows(context.dataset.x_train, self.params.background_size, context.seed)
        return np.asarray(background, dtype=np.float64).mean(axis=0)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        """Every evaluation runs over the whole background."""
        return float(self.params.max_evals * self.params.background_size)


class ShapTorchParams(Params):
    background_size: int = Field(50, ge=1, le=100_000, description="training rows/images sampled")
    channel_pooling: ChannelPooling = Field("sum_abs", description="images: Σ|a| or Σa")


def _ranked_or_all(
    call: Callable[..., Any], x: torch.Tensor, targets: np.ndarray, logits: np.ndarray
) -> np.ndarray:
    """SHAP values of each row's target class, computing only that class when possible.

    When every target is the row's top logit, shap's ``ranked_outputs=1`` explains just
    that class; otherwise every class is explained and the target's column selected.
    """
    if np.array_equal(logits.argmax(axis=1), targets):
        values, ranks = call(x, ranked_outputs=1)
        if np.array_equal(np.asarray(ranks)[:, 0], targets):  # ties may be ranked otherwise
            return np.asarray(values)[..., 0]
    return select_class(call(x), targets)


class ShapDeepParams(ShapTorchParams):
    check_additivity: bool = Field(
        True, description="fail if the values do not sum to logit(x) − mean background logit"
    )


@explainer_registry.register("shap_deep")
class ShapDeep(Explainer):
    """DeepSHAP: shap.DeepExplainer (DeepLIFT with a background sample) on the class logit.

    Additivity is checked on the explained class by the harness: shap's own check is
    wrong with ``ranked_outputs`` (it compares against the wrong outputs).
    """

    needs_gradients: ClassVar[bool] = True
    incompatible_traits: ClassVar[dict[str, str]] = {
        "inplace_residual": "shap's backward hooks fail on in-place residual additions "
        "(torchvision ResNet blocks)",
        "reused_activations": "shap's DeepExplainer needs one activation module per use",
        "attention": "DeepLIFT (shap's DeepExplainer) has no rule for attention",
    }
    params: ShapDeepParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        background = sample_rows(context.dataset.x_train, self.params.background_size, context.seed)
        reference = torch.as_tensor(background, device=model.device)
        explainer = shap_module().DeepExplainer(model.module, reference)
        x = torch.as_tensor(inputs, device=model.device)
        logits = model.logits(inputs)

        def call(batch: torch.Tensor, **kwargs: Any) -> Any:
            return explainer.shap_values(batch, check_additivity=False, **kwargs)

        values = _ranked_or_all(call, x, targets, logits)
        if self.params.check_additivity:
            rows = np.arange(len(targets))
            expected = logits[rows, targets] - model.logits(background).mean(axis=0)[targets]
            gap = np.abs(values.reshape(len(values), -1).sum(axis=1) - expected).max()
            if gap > ADDITIVITY_TOLERANCE:
                raise ValueError(
                    f"DeepSHAP values miss the logit difference by up to {gap:.3g} "
                    f"(tolerance {ADDITIVITY_TOLERANCE}): an operation in the model is not "
                    "supported by shap; use shap_gradient, or check_additivity = false"
                )
        return _finish(values, context, self.params.channel_pooling)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return 2.0 * self.params.background_size


class ShapGradientParams(ShapTorchParams):
    nsamples: int = Field(
        200, ge=1, le=1_000_000, description="background/path samples per explained row"
    )
    local_smoothing: float = Field(0.0, ge=0, le=1e6, description="std of noise added to inputs")


@explainer_registry.register("shap_gradient")
class ShapGradient(Explainer):
    """GradientSHAP: shap.GradientExplainer (expected gradients) on the class logit, seeded."""

    needs_gradients: ClassVar[bool] = True
    incompatible_traits: ClassVar[dict[str, str]] = {
        "inplace_residual": "shap's backward hooks fail on in-place residual additions "
        "(torchvision ResNet blocks)",
    }
    params: ShapGradientParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        p = self.params
        background = sample_rows(context.dataset.x_train, p.background_size, context.seed)
        explainer = shap_module().GradientExplainer(
            model.module,
            torch.as_tensor(background, device=model.device),
            local_smoothing=p.local_smoothing,
        )

        def call(batch: torch.Tensor, **kwargs: Any) -> Any:
            return explainer.shap_values(batch, nsamples=p.nsamples, rseed=context.seed, **kwargs)

        x = torch.as_tensor(inputs, device=model.device)
        with numpy_global_seed(context.seed):  # shap reseeds the global RNG with rseed
            values = _ranked_or_all(call, x, targets, model.logits(inputs))
        return _finish(values, context, p.channel_pooling)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return 2.0 * self.params.nsamples
