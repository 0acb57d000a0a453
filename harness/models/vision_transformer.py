"""``vit``: a vision transformer (timm's ``VisionTransformer``) as a black-box classifier.

The network is ``standardize → VisionTransformer``: the image cut into square patches,
each a token (a linear embedding plus a learned position), a class token prepended, a
stack of pre-norm transformer blocks, and the class token's output classified (timm's
``global_pool = "token"``). Either a timm architecture by name (``architecture``, e.g.
``vit_tiny_patch16_224`` or ``deit_tiny_patch16_224``, at the dataset's image size) or a
small ViT built from ``patch_size``, ``embed_dim``, ``depth`` and ``heads`` — trainable
from scratch on a CPU (e.g. patch 8 on 64-px images: an 8 × 8 token grid). Weights are
random unless ``weights`` names a local file (a state dict, ``weights_only``, or
``.safetensors``; the head left out); nothing is downloaded.

Attention explainers (:mod:`harness.explainers.attention`) read the attention weights of
each block, which timm's fused attention (``F.scaled_dot_product_attention``) never
forms: they switch it off for the call and back on after. Gradient and perturbation
explainers (captum's) explain it as they explain any network; class-activation maps,
which need a spatial feature map, do not apply yet (the recipe is not ``convolutional``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import nn

from harness.component import SuiteFile
from harness.datasets.base import Dataset, Modality
from harness.errors import optional_import
from harness.models.base import ModelRecipe, model_registry
from harness.models.cnn import independent_stream, weights_standardize
from harness.models.torchvision_cnns import load_pretrained
from harness.models.training import TrainingParams


class ViTParams(TrainingParams):
    architecture: str | None = Field(
        None,
        pattern=r"^[a-z0-9_.]+$",
        description="timm ViT name (e.g. vit_tiny_patch16_224, deit_tiny_patch16_224), "
        "built at the dataset's image size; None: a small ViT from the fields below",
    )
    patch_size: int = Field(8, ge=1, le=1024, description="pixels per patch side (small ViT)")
    embed_dim: int = Field(64, ge=4, le=4096, description="token width (small ViT)")
    depth: int = Field(4, ge=1, le=64, description="transformer blocks (small ViT)")
    heads: int = Field(4, ge=1, le=64, description="attention heads (small ViT)")
    mlp_ratio: float = Field(2.0, gt=0, le=16, description="MLP width / token width")
    weights: SuiteFile | None = Field(
        None, description="local state dict (.pth/.pt or .safetensors); None: random init"
    )
    normalisation: Literal["dataset", "imagenet"] = Field(
        "dataset",
        description="input standardisation: the training images' channel statistics, or "
        "the architecture's pretrained mean and std (timm's pretrained_cfg)",
    )


@model_registry.register("vit")
class VisionTransformerRecipe(ModelRecipe):
    """A vision transformer (timm; a named architecture or a small ViT), class-token head."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    traits: ClassVar[frozenset[str]] = frozenset({"attention", "tokens"})
    params: ViTParams

    def network(self, dataset: Dataset) -> nn.Module:
        """The timm VisionTransformer for the dataset's image size, channels and classes."""
        timm = optional_import("timm", "model 'vit'", "timm")
        channels, height, width = dataset.x_train.shape[1:]
        if height != width:
            raise ValueError(f"model 'vit' takes square images; these are {height} × {width}")
        p = self.params
        common: dict[str, Any] = {"num_classes": dataset.n_classes, "in_chans": channels}
        if p.architecture is not None:
            try:
                model = timm.create_model(
                    p.architecture, pretrained=False, img_size=height, **common
                )
            except (RuntimeError, TypeError) as error:  # unknown name, or not a ViT
                raise ValueError(
                    f"timm: {error}; name a ViT of timm.list_models('vit*')"
                ) from error
        else:
            if height % p.patch_size:
                raise ValueError(
                    f"patch_size {p.patch_size} does not divide the image size {height}; "
                    "choose a divisor"
                )
            if p.embed_dim % p.heads:
                raise ValueError(f"embed_dim {p.embed_dim} is not a multiple of heads {p.heads}")
            vision = optional_import("timm.models.vision_transformer", "model 'vit'", "timm")
            model = vision.VisionTransformer(
                img_size=height, patch_size=p.patch_size, embed_dim=p.embed_dim,
                depth=p.depth, num_heads=p.heads, mlp_ratio=p.mlp_ratio, **common,
            )  # fmt: skip
        if not hasattr(model, "blocks") or not hasattr(model, "patch_embed"):
            raise ValueError(f"timm model '{p.architecture}' is not a vision transformer")
        with independent_stream("black-box head"):
            model.reset_classifier(dataset.n_classes)
        if p.weights is not None:
            load_pretrained(model, p.weights, drop="head.")
        return model

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        network = self.network(dataset)
        config: Any = getattr(network, "pretrained_cfg", None) or {}
        standardize = weights_standardize(
            dataset.x_train,
            self.params.normalisation,
            tuple(config.get("mean", (0.5,))),
            tuple(config.get("std", (0.5,))),
        )
        return nn.Sequential(OrderedDict(standardize=standardize, network=network))
