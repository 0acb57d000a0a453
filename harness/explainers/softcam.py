"""Soft-CAM (Djoumessi & Berens, arXiv 2505.17748): CNNs that are explainable by design.

The global average pooling and fully connected head of a CNN are replaced by a
*class-evidence layer*: a 1×1 convolution with one output map ``A_c`` per class on the
last feature map. The logit of class c is the spatial mean of ``A_c``; the explanation
is ``A_c`` itself (signed: positive = evidence for c), upsampled to the input size.
Training adds an ElasticNet penalty on the maps: ``λ1·Σ|A| + λ2·‖A‖₂`` (sparse: λ1 > 0,
ridge: λ2 > 0, dense: both 0).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from harness.component import Params
from harness.datasets.base import Dataset, Modality
from harness.explainers.base import (
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
)
from harness.models.base import ModelRecipe, TrainedModel


class SoftCAMNetwork(nn.Module):
    """backbone → 1×1 class-evidence conv → spatial mean = logits.

    The latest evidence maps (images, classes, h, w) are kept in ``last_maps`` for the
    training penalty.
    """

    def __init__(self, backbone: nn.Module, channels: int, n_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.evidence = nn.Conv2d(channels, n_classes, kernel_size=1)
        self.last_maps: torch.Tensor | None = None

    def evidence_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Class-evidence maps at feature-map resolution: (images, classes, h, w)."""
        return self.evidence(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.evidence_maps(x)
        self.last_maps = maps
        return maps.mean(dim=(2, 3))


def elastic_net_penalty(
    maps: torch.Tensor, l1: float, l2: float, *, first_image_only: bool = False
) -> torch.Tensor:
    """λ1·Σ|A| + λ2·‖A‖₂ per image (all classes' maps), averaged over the images.

    The L2 term is the norm, not squared (the paper's formula, as in the official code).
    ``first_image_only`` reproduces the official code's batch handling: only the batch's
    first image is penalised.
    """
    per_image = maps[:1] if first_image_only else maps
    flat = per_image.flatten(start_dim=1)
    return (l1 * flat.abs().sum(dim=1) + l2 * flat.norm(dim=1)).mean()


class SoftCAMParams(Params):
    l1: float = Field(0.0, ge=0, le=1e6, description="λ1: L1 penalty on the evidence maps (sparse)")
    l2: float = Field(
        0.0, ge=0, le=1e6, description="λ2: L2-norm penalty on the evidence maps (ridge)"
    )
    first_image_only: bool = Field(
        False, description="penalise only each batch's first image (the official code)"
    )
    interpolation: Literal["bilinear", "nearest", "bicubic"] = Field(
        "bilinear", description="upsampling of the maps to the input size"
    )


@explainer_registry.register("softcam")
class SoftCAM(Explainer):
    """Soft-CAM (arXiv 2505.17748): class-evidence maps replace pooling + head of a CNN.

    By design: builds the recipe's backbone with a 1×1 class-evidence layer (logits = the
    maps' spatial means), trains it with the ElasticNet penalty (λ1 sparse, λ2 ridge), and
    explains with the explained class's map, upsampled to the input, signed.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    by_design: ClassVar[bool] = True
    params: SoftCAMParams

    @classmethod
    def recipe_skip_reason(cls, recipe: type[ModelRecipe]) -> str | None:
        if recipe.backbone is ModelRecipe.backbone:
            return f"model recipe '{recipe.name}' exposes no convolutional backbone"
        return None

    def fit_model(
        self, recipe: ModelRecipe, dataset: Dataset, seed: int, device: torch.device
    ) -> TrainedModel:

        def penalty(module: nn.Module) -> torch.Tensor:
            assert isinstance(module, SoftCAMNetwork) and module.last_maps is not None
            p = self.params
            return elastic_net_penalty(
                module.last_maps, p.l1, p.l2, first_image_only=p.first_image_only
            )

        penalised = self.params.l1 > 0 or self.params.l2 > 0
        return recipe.fit(
            dataset,
            seed,
            device,
            penalty=penalty if penalised else None,
            architecture=lambda data: self.architecture(recipe, data, seed),
        )

    def architecture(self, recipe: ModelRecipe, dataset: Dataset, seed: int) -> nn.Module:
        """The recipe's backbone, then the 1×1 class-evidence layer."""
        parts = recipe.backbone(dataset)
        assert parts is not None
        return SoftCAMNetwork(parts[0], parts[1], dataset.n_classes)

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        network = model.module
        if not isinstance(network, SoftCAMNetwork):
            raise ValueError("softcam explains SoftCAM models only (trained by this explainer)")
        from captum.attr import LayerAttribution  # the same upsampling as Grad-CAM's

        x = torch.as_tensor(inputs, device=model.device)
        with torch.no_grad():
            maps = network.evidence_maps(x)
            chosen = maps[torch.arange(len(x)), torch.as_tensor(targets, device=model.device)]
            upsampled = LayerAttribution.interpolate(
                chosen[:, None], tuple(x.shape[2:]), interpolate_mode=self.params.interpolation
            )
        return Explanation(local=upsampled[:, 0].cpu().numpy(), signed=True)
