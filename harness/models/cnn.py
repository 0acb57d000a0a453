"""``small_cnn``: a few conv blocks, fast on a CPU (torchvision's networks: ``torchvision_cnns``).

A black-box model: convolutional features → global average pooling → linear
head. Inputs are standardised per channel with training-split statistics by a layer
inside the model.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from harness.datasets.base import Dataset, Modality
from harness.datasets.streamed_images import Rows, channel_moments
from harness.models.base import ModelRecipe, model_registry
from harness.models.mlp import Standardize
from harness.models.training import TrainingParams


def channel_standardize(x_train: Rows) -> Standardize:
    """Per-channel (x − mean) / std over the training images (statistics shaped C×1×1;
    batch by batch for images on disk)."""
    mean, std = channel_moments(x_train)
    return Standardize(mean[:, None, None], std[:, None, None])


#: torchvision's ImageNet statistics (RGB), which its pretrained weights expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def weights_standardize(
    x_train: Rows, normalisation: str, mean: tuple[float, ...], std: tuple[float, ...]
) -> Standardize:
    """The input standardisation of a CNN: the training images' own channel statistics
    (``"dataset"``), or those the pretrained weights were trained with (``"imagenet"``:
    ``mean``/``std`` per RGB channel; for grey images their averages)."""
    if normalisation == "dataset":
        return channel_standardize(x_train)
    channels = x_train.shape[1]
    means, stds = np.asarray(mean), np.asarray(std)
    if channels != len(means):
        means, stds = np.full(channels, means.mean()), np.full(channels, stds.mean())
    return Standardize(means[:, None, None], stds[:, None, None])


class SmallCNNParams(TrainingParams):
    channels: list[Annotated[int, Field(ge=1, le=8192)]] = Field(
        [16, 32, 64, 64], min_length=1, max_length=32, description="filters of each 3×3 conv block"
    )
    pooling: Literal["average", "none"] = Field(
        "average",
        description="average: global average pooling, then the linear head (blind to where "
        "a pattern is); none: the linear head reads every position of the last feature map "
        "(a pattern's place can carry the class, as in XAI-TRIS's suppressor images)",
    )


@model_registry.register("small_cnn")
class SmallCNN(ModelRecipe):
    """Small CNN: 3×3 conv + ReLU blocks (2×2 max-pool between them), GAP, linear head
    (``pooling = "none"``: the head reads every position instead).

    The last block is not pooled; its ReLU output (``features``) is the Grad-CAM layer.
    Every ReLU is its own module, so DeepLIFT-style explainers can hook each use.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    traits: ClassVar[frozenset[str]] = frozenset({"convolutional"})
    cam_layer: ClassVar[str | None] = "features"
    params: SmallCNNParams

    def backbone(self, dataset: Dataset) -> tuple[nn.Sequential, int]:
        blocks: list[nn.Module] = []
        width = dataset.x_train.shape[1]
        for index, channels in enumerate(self.params.channels):
            if index:
                blocks.append(nn.MaxPool2d(2))
            blocks += [nn.Conv2d(width, channels, 3, padding=1), nn.ReLU()]
            width = channels
        layers = OrderedDict(
            standardize=channel_standardize(dataset.x_train), features=nn.Sequential(*blocks)
        )
        return nn.Sequential(layers), width

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        backbone, width = self.backbone(dataset)
        if self.params.pooling == "average":
            return gap_linear_classifier(backbone, width, dataset.n_classes)
        with torch.no_grad():
            shape = backbone(torch.zeros(1, *dataset.x_train.shape[1:])).shape
        return nn.Sequential(
            OrderedDict(
                **dict(backbone.named_children()),
                flatten=nn.Flatten(),
                head=black_box_head(int(np.prod(shape[1:])), dataset.n_classes),
            )
        )


def gap_linear_classifier(backbone: nn.Sequential, width: int, n_classes: int) -> nn.Sequential:
    """The black box on a CNN backbone: its layers, then global average pooling (``pool``),
    ``flatten`` and a linear ``head`` from ``width`` channels to the class logits.

    The head is drawn from its own seeded stream (:func:`independent_stream`)."""
    return nn.Sequential(
        OrderedDict(
            **dict(backbone.named_children()),
            pool=nn.AdaptiveAvgPool2d(1),
            flatten=nn.Flatten(),
            head=black_box_head(width, n_classes),
        )
    )


def black_box_head(width: int, n_classes: int) -> nn.Linear:
    """The black box's linear head, drawn from the ``"black-box head"`` stream."""
    with independent_stream("black-box head"):
        return nn.Linear(width, n_classes)


@contextmanager
def independent_stream(stream: str) -> Iterator[None]:
    """Draw what is created inside from a random stream of its own, seeded by the current
    torch seed and the name ``stream``; the global generator is left as it was.

    Why: a recipe and a by-design variant built with one seed share their backbone's
    initial weights by design, but the black box's head must not be drawn from the same
    numbers as the by-design layer that replaces it (Soft-CAM's 1×1 evidence conv has the
    head's shape and fan-in: both would start — and, seeing the same batches, end —
    identical, and the twin would be the by-design model itself, not a control).
    """
    digest = hashlib.sha256(f"{torch.initial_seed()}:{stream}".encode()).digest()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int.from_bytes(digest[:8], "little") % 2**63)
        yield
