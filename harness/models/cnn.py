"""Image classifiers: ``small_cnn`` (fast on a CPU) and torchvision's ``resnet18``.

Both are black-box models: convolutional features → global average pooling → linear
head. Inputs are standardised per channel with training-split statistics by a layer
inside the model.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

import numpy as np
from pydantic import Field
from torch import nn
from torchvision.models import ResNet, resnet18

from harness.datasets.base import Dataset, Modality
from harness.models.base import ModelRecipe, model_registry
from harness.models.mlp import Standardize
from harness.models.training import TrainingParams


def channel_standardize(x_train: np.ndarray) -> Standardize:
    """Per-channel (x − mean) / std over the training images (statistics shaped C×1×1)."""
    return Standardize(
        x_train.mean(axis=(0, 2, 3))[:, None, None], x_train.std(axis=(0, 2, 3))[:, None, None]
    )


class SmallCNNParams(TrainingParams):
    channels: list[int] = Field(
        [16, 32, 64, 64], min_length=1, description="filters of each 3×3 conv block"
    )


@model_registry.register("small_cnn")
class SmallCNN(ModelRecipe):
    """Small CNN: 3×3 conv + ReLU blocks (2×2 max-pool between them), GAP, linear head.

    The last block is not pooled; its ReLU output (``features``) is the Grad-CAM layer.
    Every ReLU is its own module, so DeepLIFT-style explainers can hook each use.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    traits: ClassVar[frozenset[str]] = frozenset({"convolutional"})
    cam_layer: ClassVar[str | None] = "features"
    Params = SmallCNNParams
    params: SmallCNNParams

    def backbone(self, dataset: Dataset) -> tuple[nn.Module, int]:
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
        return nn.Sequential(
            OrderedDict(
                **dict(backbone.named_children()),
                pool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                head=nn.Linear(width, dataset.n_classes),
            )
        )


@model_registry.register("resnet18")
class ResNet18(ModelRecipe):
    """torchvision ResNet-18 (random init), first conv adapted to the channel count.

    Grad-CAM layer: ``network.layer4``. Its blocks add residuals in place and reuse their
    ReLU modules, which some explainers cannot handle (the planner skips them, saying why).
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    traits: ClassVar[frozenset[str]] = frozenset(
        {"convolutional", "inplace_residual", "reused_activations"}
    )
    cam_layer: ClassVar[str | None] = "network.layer4"

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        network = resnet18(weights=None, num_classes=dataset.n_classes)
        channels = dataset.x_train.shape[1]
        if channels != 3:
            network.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return nn.Sequential(
            OrderedDict(standardize=channel_standardize(dataset.x_train), network=network)
        )

    def backbone(self, dataset: Dataset) -> tuple[nn.Module, int]:
        """Everything before ``avgpool`` (same construction order as :meth:`build`)."""
        twin = self.build(dataset)
        network = twin.get_submodule("network")
        assert isinstance(network, ResNet)
        layers = [twin.get_submodule("standardize")] + [
            getattr(network, name)
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        ]
        return nn.Sequential(*layers), network.fc.in_features
