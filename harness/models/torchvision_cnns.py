"""torchvision backbones: ``resnet18``, ``resnet50`` and ``vgg16`` as black-box classifiers.

The ResNets are ``standardize → backbone → global average pooling → linear head`` (the
black box that Soft-CAM's by-design variant replaces; ``backbone()`` returns the part
before the pooling); VGG-16's black box is torchvision's own classifier by default (the
Soft-CAM paper's), see :class:`VGG16`. Heads are drawn from their own seeded stream, so a
twin never starts from the numbers of the by-design layer that replaces its head.
Weights are random (``weights=None``) unless ``weights`` names a local state-dict file,
e.g. torchvision's ImageNet checkpoint: it is read with ``torch.load(weights_only=True)``
(no arbitrary unpickling), the classification head is left out (it has the wrong number
of classes) and, for one-channel images, the first convolution's RGB kernels are summed.
Nothing is downloaded.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field
from torch import nn

from harness.component import SuiteFile
from harness.datasets.base import Dataset, Modality
from harness.models.base import ModelRecipe, model_registry
from harness.models.cnn import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    gap_linear_classifier,
    independent_stream,
    weights_standardize,
)
from harness.models.torch_files import load_state_dict
from harness.models.training import TrainingParams


class TorchvisionParams(TrainingParams):
    weights: SuiteFile | None = Field(
        None,
        description="local state-dict file for the torchvision network (head left out; in a "
        "suite, relative to its folder); None: random initialisation",
    )
    normalisation: Literal["dataset", "imagenet"] = Field(
        "dataset",
        description="input standardisation: the training images' channel statistics, or "
        "ImageNet's (what torchvision's pretrained weights expect)",
    )


def load_pretrained(module: nn.Module, path: Path, *, within: str = "", drop: str = "") -> None:
    """Load the tensors of the state dict in ``path`` (``torch.save``, read with
    ``weights_only``, or ``.safetensors``) whose keys start with ``within``
    (prefix removed) into ``module``, leaving out keys that then start with ``drop``.

    3-channel kernels meant for a 1-channel layer are summed over the colour axis. Raises
    ``ValueError`` naming the file when it holds no state dict or does not fit the module.
    """
    state = load_state_dict(path)
    chosen = {k[len(within) :]: v for k, v in state.items() if k.startswith(within)}
    chosen = {k: v for k, v in chosen.items() if not (drop and k.startswith(drop))}
    own = module.state_dict()
    for key, tensor in chosen.items():
        target = own.get(key)
        grey = target is not None and target.ndim == 4 and target.shape[1] == 1
        if grey and tensor.ndim == 4 and tensor.shape[1] == 3:
            chosen[key] = tensor.sum(dim=1, keepdim=True)
    try:
        missing, unexpected = module.load_state_dict(chosen, strict=False)
    except RuntimeError as error:
        raise ValueError(f"{path}: weights do not fit the network: {error}") from error
    missing = [k for k in missing if not (drop and k.startswith(drop))]
    if missing or unexpected:
        raise ValueError(
            f"{path}: weights do not fit the network (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )


class ResNetParams(TorchvisionParams):
    stem: Literal["imagenet", "no_maxpool"] = Field(
        "imagenet",
        description="'no_maxpool' drops the stem's max-pool: output stride 16 instead of 32 "
        "(4×4 feature maps at 64 px instead of 2×2), about 2× the compute",
    )


class _Torchvision(ModelRecipe):
    """Shared by the torchvision recipes: the input standardisation they declare."""

    params: TorchvisionParams

    def standardize(self, dataset: Dataset) -> nn.Module:
        return weights_standardize(
            dataset.x_train, self.params.normalisation, IMAGENET_MEAN, IMAGENET_STD
        )


class _ResNet(_Torchvision):
    """torchvision ResNet, first conv adapted to the channel count; head ``network.fc``.

    Grad-CAM layer: ``network.layer4``. Its blocks add residuals in place and reuse their
    ReLU modules, which some explainers cannot handle (the planner skips them, saying why).
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    traits: ClassVar[frozenset[str]] = frozenset(
        {"convolutional", "inplace_residual", "reused_activations"}
    )
    cam_layer: ClassVar[str | None] = "network.layer4"
    #: the torchvision constructor, by name (torchvision is imported when a model is built)
    architecture: ClassVar[str]
    params: ResNetParams

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        import torchvision.models

        constructor = getattr(torchvision.models, type(self).architecture)
        network = constructor(weights=None, num_classes=dataset.n_classes)
        with independent_stream("black-box head"):  # not the by-design layer's numbers
            network.fc.reset_parameters()
        channels = dataset.x_train.shape[1]
        if channels != 3:
            network.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if self.params.weights is not None:
            load_pretrained(network, self.params.weights, drop="fc.")
        if self.params.stem == "no_maxpool":
            network.maxpool = nn.Identity()
        return nn.Sequential(OrderedDict(standardize=self.standardize(dataset), network=network))

    def backbone(self, dataset: Dataset) -> tuple[nn.Module, int]:
        """Everything before ``avgpool`` (same construction order as :meth:`build`)."""
        twin = self.build(dataset)
        network = twin.get_submodule("network")
        from torchvision.models import ResNet

        assert isinstance(network, ResNet)
        layers = [twin.get_submodule("standardize")] + [
            getattr(network, name)
            for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        ]
        return nn.Sequential(*layers), network.fc.in_features


@model_registry.register("resnet18")
class ResNet18(_ResNet):
    """torchvision ResNet-18 (random init or a local weights file); GAP + linear head."""

    architecture = "resnet18"


@model_registry.register("resnet50")
class ResNet50(_ResNet):
    """torchvision ResNet-50 (random init or a local weights file); GAP + linear head."""

    architecture = "resnet50"


class VGG16Params(TorchvisionParams):
    head: Literal["torchvision", "pointwise_gap"] = Field(
        "torchvision",
        description="black box: torchvision's classifier (7×7 pooling, 25088→4096→4096→C; "
        "the Soft-CAM paper's) or Soft-CAM's two 1×1 convs + GAP + linear",
    )


@model_registry.register("vgg16")
class VGG16(_Torchvision):
    """torchvision VGG-16: ``features`` (13 convs), then the black-box classifier.

    ``head = "torchvision"`` (default): torchvision's own classifier — adaptive 7×7
    average pooling, 25088→4096→4096→C with ReLU and dropout 0.5 — the black box the
    Soft-CAM paper compares with. ``head = "pointwise_gap"``: the two 1×1 convs
    512→4096→4096 that Soft-CAM adds to VGG (PAPERS.md), then GAP + linear: the twin and
    Soft-CAM then differ only in where the spatial mean is taken.

    Soft-CAM's backbone (:meth:`backbone`) is ``features`` + the two 1×1 convs
    (``pointwise``) whatever the head. ``weights`` loads ``features`` only. ReLUs are not
    in place, so every explainer's hooks work. Grad-CAM layer: the output of ``features``
    (torchvision head; 2×2 at 64 px) or of ``pointwise`` (``pointwise_gap``).
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    traits: ClassVar[frozenset[str]] = frozenset({"convolutional"})
    cam_layer: ClassVar[str | None] = "features"
    params: VGG16Params

    def features(self, dataset: Dataset) -> nn.Sequential:
        """torchvision's VGG-16 ``features`` for the dataset's channels, torchvision's init."""
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["D"])
        channels = dataset.x_train.shape[1]
        if channels != 3:
            features[0] = nn.Conv2d(channels, 64, kernel_size=3, padding=1)
        for layer in features:
            if isinstance(layer, nn.ReLU):
                layer.inplace = False
            if isinstance(layer, nn.Conv2d) and layer.bias is not None:  # torchvision's init
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        if self.params.weights is not None:
            load_pretrained(features, self.params.weights, within="features.")
        return features

    def backbone(self, dataset: Dataset) -> tuple[nn.Sequential, int]:
        pointwise = nn.Sequential(
            nn.Conv2d(512, 4096, kernel_size=1),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Conv2d(4096, 4096, kernel_size=1),
            nn.ReLU(),
            nn.Dropout(0.5),
        )
        layers = OrderedDict(
            standardize=self.standardize(dataset),
            features=self.features(dataset),
            pointwise=pointwise,
        )
        return nn.Sequential(layers), 4096

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        if self.params.head == "pointwise_gap":
            return gap_linear_classifier(*self.backbone(dataset), dataset.n_classes)
        from torchvision.models import vgg16

        features = self.features(dataset)
        with independent_stream("black-box head"):
            classifier = vgg16(weights=None, num_classes=dataset.n_classes).classifier
        for layer in classifier:
            if isinstance(layer, nn.ReLU):
                layer.inplace = False
        return nn.Sequential(
            OrderedDict(
                standardize=self.standardize(dataset),
                features=features,
                pool=nn.AdaptiveAvgPool2d((7, 7)),
                flatten=nn.Flatten(),
                classifier=classifier,
            )
        )

    def cam_layer_name(self) -> str | None:
        return "pointwise" if self.params.head == "pointwise_gap" else "features"
