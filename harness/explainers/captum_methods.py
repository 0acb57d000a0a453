"""Gradient and perturbation attribution methods from captum, on the model's class logits.

Each wrapper calls one captum ``attribute`` for all rows at once (captum batches
internally where it can) and, for images, pools the per-channel attributions into one
map per image with the declared ``channel_pooling``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from harness.component import Params
from harness.datasets.base import Modality
from harness.explainers.base import (
    ChannelPooling,
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
    pool_channels,
)
from harness.models.base import TrainedModel

if TYPE_CHECKING:  # captum is imported where it is used, so listing and validating stay light
    from captum.attr import Attribution


class CaptumParams(Params):
    channel_pooling: ChannelPooling = Field(
        "sum_abs", description="images: pool channels by Σ|a| (default) or Σa"
    )


class _CaptumExplainer(Explainer):
    """Shared call: ``method(module).attribute(x, target=…, **attribute_kwargs)``."""

    needs_gradients: ClassVar[bool] = True
    signed: ClassVar[bool] = True
    params: CaptumParams

    def method(self, model: TrainedModel) -> Attribution:
        raise NotImplementedError

    def attribute_kwargs(
        self, model: TrainedModel, inputs: torch.Tensor, context: ExplainContext
    ) -> dict[str, Any]:
        return {}

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        x = torch.as_tensor(inputs, device=model.device)
        attributions = self.method(model).attribute(
            x,
            target=torch.as_tensor(targets, device=model.device),
            **self.attribute_kwargs(model, x, context),
        )
        local = attributions.detach().cpu().numpy()
        if context.dataset.modality == "image":
            pooling = self.params.channel_pooling
            local = pool_channels(local, pooling)
            return Explanation(local=local, signed=self.signed, channel_pooling=pooling)
        return Explanation(local=local, signed=self.signed)


Baseline = Literal["zero", "train_mean", "channel_mean", "blur"]


def make_baseline(
    kind: Baseline, inputs: torch.Tensor, context: ExplainContext, blur_sigma: float
) -> torch.Tensor | float:
    """Reference input: zeros, the training-split mean, (images) the mean colour of each
    channel over the training images (a flat image), or a Gaussian-blurred copy."""
    if kind == "zero":
        return 0.0
    if kind == "train_mean":
        return torch.as_tensor(context.dataset.train_mean[None], device=inputs.device)
    if kind == "channel_mean":
        mean = context.dataset.train_mean
        if mean.ndim != 3:
            raise ValueError("baseline 'channel_mean' needs images; use 'zero' or 'train_mean'")
        flat = np.broadcast_to(mean.mean(axis=(1, 2), keepdims=True), mean.shape)
        return torch.as_tensor(np.ascontiguousarray(flat)[None], device=inputs.device)
    if context.dataset.modality != "image":
        raise ValueError("baseline 'blur' needs images; use 'zero' or 'train_mean'")
    from torchvision.transforms.functional import gaussian_blur

    size = 2 * int(np.ceil(3 * blur_sigma)) + 1
    return gaussian_blur(inputs, kernel_size=[size, size], sigma=[blur_sigma, blur_sigma])


def baseline_array(
    kind: Baseline, inputs: np.ndarray, context: ExplainContext, blur_sigma: float = 1.0
) -> np.ndarray:
    """:func:`make_baseline` as an array that broadcasts to ``inputs``."""
    tensor = torch.as_tensor(np.ascontiguousarray(inputs))
    baseline = make_baseline(kind, tensor, context, blur_sigma)
    if isinstance(baseline, torch.Tensor):
        return baseline.detach().cpu().numpy()
    return np.full((1, *inputs.shape[1:]), baseline, dtype=np.float64)


class IntegratedGradientsParams(CaptumParams):
    n_steps: int = Field(50, ge=1, le=10_000, description="points on the straight-line path")
    method: Literal["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right"] = (
        "gausslegendre"
    )
    baseline: Baseline = Field(
        "zero",
        description="zeros (raw input units), the training-split mean row, the mean colour "
        "per channel (images; the Soft-CAM paper's), or blur",
    )
    blur_sigma: float = Field(
        5.0, gt=0, le=1000, description="baseline 'blur': Gaussian σ in pixels"
    )
    internal_batch_size: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="path points evaluated per forward pass (None: all at once)",
    )


@explainer_registry.register("integrated_gradients")
class IntegratedGradientsExplainer(_CaptumExplainer):
    """Integrated Gradients (Sundararajan et al. 2017) via captum, on the class logit.

    Signed attributions in input units; they sum to logit(x) − logit(baseline) up to the
    integration error.
    """

    params: IntegratedGradientsParams

    def method(self, model: TrainedModel) -> Attribution:
        from captum.attr import IntegratedGradients

        return IntegratedGradients(model.module)

    def attribute_kwargs(
        self, model: TrainedModel, inputs: torch.Tensor, context: ExplainContext
    ) -> dict[str, Any]:
        p = self.params
        return {
            "baselines": make_baseline(p.baseline, inputs, context, p.blur_sigma),
            "n_steps": p.n_steps,
            "method": p.method,
            "internal_batch_size": p.internal_batch_size,
        }

    def input_baseline(self, inputs: np.ndarray, context: ExplainContext) -> np.ndarray:
        return baseline_array(self.params.baseline, inputs, context, self.params.blur_sigma)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return 2.0 * self.params.n_steps


class SaliencyParams(CaptumParams):
    abs: bool = Field(True, description="absolute gradient (captum's default) or signed")


@explainer_registry.register("saliency")
class SaliencyExplainer(_CaptumExplainer):
    """Gradient of the class logit with respect to the input (Simonyan et al. 2014), captum."""

    params: SaliencyParams

    def method(self, model: TrainedModel) -> Attribution:
        from captum.attr import Saliency

        return Saliency(model.module)

    def attribute_kwargs(
        self, model: TrainedModel, inputs: torch.Tensor, context: ExplainContext
    ) -> dict[str, Any]:
        return {"abs": self.params.abs}


@explainer_registry.register("input_x_gradient")
class InputXGradientExplainer(_CaptumExplainer):
    """Input × gradient of the class logit (Shrikumar et al. 2016), captum; signed."""

    def method(self, model: TrainedModel) -> Attribution:
        from captum.attr import InputXGradient

        return InputXGradient(model.module)

    def input_baseline(self, inputs: np.ndarray, context: ExplainContext) -> np.ndarray:
        return baseline_array("zero", inputs, context)


class DeepLiftParams(CaptumParams):
    baseline: Literal["zero", "train_mean"] = "zero"


@explainer_registry.register("deeplift")
class DeepLiftExplainer(_CaptumExplainer):
    """DeepLIFT, Rescale rule (Shrikumar et al. 2017), captum; signed, on the class logit."""

    incompatible_traits: ClassVar[dict[str, str]] = {
        "reused_activations": "captum's DeepLift needs one activation module per use, "
        "and this architecture reuses its ReLU modules",
        "attention": "DeepLIFT has no rule for attention",
    }
    params: DeepLiftParams

    def method(self, model: TrainedModel) -> Attribution:
        from captum.attr import DeepLift

        return DeepLift(model.module)

    def attribute_kwargs(
        self, model: TrainedModel, inputs: torch.Tensor, context: ExplainContext
    ) -> dict[str, Any]:
        return {"baselines": make_baseline(self.params.baseline, inputs, context, 1.0)}

    def input_baseline(self, inputs: np.ndarray, context: ExplainContext) -> np.ndarray:
        return baseline_array(self.params.baseline, inputs, context)


@explainer_registry.register("guided_backprop")
class GuidedBackpropExplainer(_CaptumExplainer):
    """Guided backpropagation (Springenberg et al. 2015), captum: ReLU-gated gradients."""

    def method(self, model: TrainedModel) -> Attribution:
        from captum.attr import GuidedBackprop

        return GuidedBackprop(model.module)


class FeatureAblationParams(CaptumParams):
    baseline: Literal["zero", "train_mean"] = Field(
        "zero", description="value an ablated feature is replaced with"
    )
    patch_size: int = Field(
        4, ge=1, le=4096, description="images: ablate square patches of this many pixels per side"
    )
    perturbations_per_eval: int = Field(
        16,
        ge=1,
        le=1_000_000,
        description="ablations evaluated per forward pass (captum's batching)",
    )


@explainer_registry.register("feature_ablation")
class FeatureAblationExplainer(_CaptumExplainer):
    """Occlusion of one feature (tabular) or one square patch (images) at a time, captum.

    Attribution = logit(x) − logit(x with the feature or patch set to the baseline).
    """

    needs_gradients: ClassVar[bool] = False
    params: FeatureAblationParams

    def method(self, model: TrainedModel) -> Attribution:
        from captum.attr import FeatureAblation

        return FeatureAblation(model.module)

    def input_baseline(self, inputs: np.ndarray, context: ExplainContext) -> np.ndarray | None:
        """Tables only: one feature ablated at a time gives (x − b)-multiplied maps; an
        image patch's value is shared by its pixels, which is not."""
        if context.dataset.modality == "image":
            return None
        return baseline_array(self.params.baseline, inputs, context)

    def attribute_kwargs(
        self, model: TrainedModel, inputs: torch.Tensor, context: ExplainContext
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "baselines": make_baseline(self.params.baseline, inputs, context, 1.0),
            "perturbations_per_eval": self.params.perturbations_per_eval,
        }
        if context.dataset.modality == "image":
            kwargs["feature_mask"] = patch_mask(inputs.shape[2:], self.params.patch_size).to(
                inputs.device
            )
        return kwargs

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        """One forward pass per feature (per patch of an image: patch_size² pixels)."""
        patch = self.params.patch_size**2 if modality == "image" else 1
        return 1.0 + max(n_features, 1) / patch


def patch_mask(size: torch.Size | tuple[int, ...], patch: int) -> torch.Tensor:
    """Integer map (1, 1, H, W) numbering square patches row by row (shared by all channels)."""
    height, width = int(size[0]), int(size[1])
    rows = torch.arange(height) // patch
    cols = torch.arange(width) // patch
    per_row = (width + patch - 1) // patch
    return (rows[:, None] * per_row + cols[None, :])[None, None]


def cam_layer(model: TrainedModel, name: str | None, explainer: str) -> nn.Module:
    """The feature map class-activation methods use: the module ``name``, else the
    model's declared ``cam_layer``, else its last ``Conv2d`` (plugin models)."""
    name = name or model.cam_layer
    if name is not None:
        return model.module.get_submodule(name)
    convolutions = [m for m in model.module.modules() if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise ValueError(f"{explainer} found no Conv2d layer; name one with params.layer")
    return convolutions[-1]


class GradCamParams(Params):
    layer: str | None = Field(
        None, description="dotted module name of the feature map (default: the recipe's)"
    )
    relu: bool = Field(True, description="keep only positive evidence (Grad-CAM's ReLU)")
    interpolation: Literal["bilinear", "nearest", "bicubic"] = Field(
        "bilinear", description="upsampling of the map to the input size"
    )


@explainer_registry.register("grad_cam")
class GradCamExplainer(Explainer):
    """Grad-CAM (Selvaraju et al. 2017): captum ``LayerGradCam`` on the last feature map.

    The map (native at feature-map resolution) is upsampled to the input size; the
    layer is the recipe's declared feature map, or the last ``Conv2d`` of a plugin model.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    needs_gradients: ClassVar[bool] = True
    requires_traits: ClassVar[frozenset[str]] = frozenset({"convolutional"})
    params: GradCamParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        from captum.attr import LayerAttribution, LayerGradCam

        x = torch.as_tensor(inputs, device=model.device)
        layer = cam_layer(model, self.params.layer, self.name)
        maps = LayerGradCam(model.module, layer).attribute(
            x,
            target=torch.as_tensor(targets, device=model.device),
            relu_attributions=self.params.relu,
        )
        upsampled = LayerAttribution.interpolate(
            maps, tuple(x.shape[2:]), interpolate_mode=self.params.interpolation
        )
        return Explanation(
            local=upsampled[:, 0].detach().cpu().numpy(), signed=not self.params.relu
        )
