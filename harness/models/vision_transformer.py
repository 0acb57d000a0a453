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
explainers (captum's) explain it as they explain any network; the ``pytorch_grad_cam``
family reads the last block's tokens reshaped to the token grid
(:mod:`harness.explainers.cam_library`); captum's ``grad_cam`` needs a convolutional
feature map and is skipped.

**By design** (:meth:`VisionTransformerRecipe.backbone`): Soft-CAM's idea on tokens — the
patch tokens' final representations (after the last LayerNorm; the class token dropped)
laid out on the token grid are the backbone's feature map, so ``softcam`` puts its
per-token linear class-evidence layer there and the logit of class c is the mean of its
evidence over the tokens; its twin is the same ViT with its usual class-token head.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from harness.component import SuiteFile
from harness.datasets.base import Dataset, Modality
from harness.errors import optional_import
from harness.models.base import ModelRecipe, model_registry
from harness.models.cnn import independent_stream
from harness.models.timm_cnns import standardized
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
        return standardized(self.network(dataset), dataset, self.params.normalisation)

    def backbone(self, dataset: Dataset) -> tuple[nn.Module, int]:
        """Standardisation and the patch tokens' final representations on the token grid
        (images, channels, rows, columns) — the same construction as :meth:`build`."""
        twin = self.build(dataset)
        vit = twin.get_submodule("network")
        tokens = TokenFeatures(vit)
        features = nn.Sequential(
            OrderedDict(standardize=twin.get_submodule("standardize"), tokens=tokens)
        )
        return features, int(vit.embed_dim)  # type: ignore[arg-type]


class TokenFeatures(nn.Module):
    """A ViT's ``forward_features`` (final LayerNorm included) with the prefix tokens
    dropped and the patch tokens on the token grid, channels first."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.vit = vit
        self.reshape = token_reshape(vit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reshape(self.vit.forward_features(x))  # type: ignore[operator]


def vision_transformer(network: nn.Module) -> nn.Module:
    """The timm VisionTransformer inside ``network`` (a module whose ``patch_embed`` knows
    its ``grid_size`` and whose ``blocks`` are a sequence — not an exported program's
    graph, which keeps the names only); ``ValueError`` when there is none."""
    for module in network.modules():
        blocks = getattr(module, "blocks", None)
        embed = getattr(module, "patch_embed", None)
        if isinstance(blocks, nn.Sequential | nn.ModuleList) and hasattr(embed, "grid_size"):
            return module
    raise ValueError("the model is not a vision transformer (no patch_embed and blocks)")


def token_grid(vit: nn.Module) -> tuple[int, int, int]:
    """(prefix tokens, grid rows, grid columns): tokens before the patches (the class
    token, register tokens), then the patches row by row."""
    embed: Any = vit.patch_embed
    rows, columns = embed.grid_size
    return int(getattr(vit, "num_prefix_tokens", 1)), int(rows), int(columns)


def token_reshape(vit: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """(images, tokens, channels) → (images, channels, rows, columns): the prefix tokens
    dropped, the patch tokens laid out on the model's token grid."""
    prefix, rows, columns = token_grid(vit)

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        grid = tokens[:, prefix:, :].reshape(tokens.shape[0], rows, columns, tokens.shape[2])
        return grid.permute(0, 3, 1, 2)

    return reshape
