"""``timm``: any CNN of the timm model zoo by name, as a black-box classifier.

The network is ``standardize → timm model`` (the model's own global pooling and head,
with the dataset's classes and channels). Weights are random unless ``weights`` names a
local file — a state dict written by ``torch.save`` (read with ``weights_only=True``) or
a ``.safetensors`` file; nothing is downloaded from the hub. The head is left out of
loaded weights (it has the wrong number of classes) and drawn from its own seeded stream,
like the other CNN recipes' heads.

Class-activation maps read ``cam_layer`` when given, else the last top-level module that
runs in the model's ``forward_features`` (e.g. ``layer4`` of a ResNet, ``bn2`` of an
EfficientNet): the feature map global pooling averages. Soft-CAM's backbone is everything
before global pooling: standardisation and ``forward_features``.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import cache
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from harness.component import SuiteFile
from harness.datasets.base import Dataset, Modality
from harness.errors import optional_import
from harness.models.base import ModelRecipe, model_registry
from harness.models.cnn import independent_stream, weights_standardize
from harness.models.torchvision_cnns import load_pretrained
from harness.models.training import TrainingParams


class TimmParams(TrainingParams):
    architecture: str = Field(
        "resnet18",
        pattern=r"^[a-z0-9_.]+$",
        description="timm model name (timm.list_models()), a CNN with global pooling",
    )
    weights: SuiteFile | None = Field(
        None, description="local state dict (.pth/.pt or .safetensors); None: random init"
    )
    cam_layer: str | None = Field(
        None, description="module (dotted name inside the timm model) for CAMs; None: auto"
    )
    normalisation: Literal["dataset", "imagenet"] = Field(
        "dataset",
        description="input standardisation: the training images' channel statistics, or the "
        "mean and std of the architecture's pretrained weights (timm's pretrained_cfg)",
    )


class _ForwardFeatures(nn.Module):
    """A timm model up to global pooling (its ``forward_features``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)  # type: ignore[operator]


@model_registry.register("timm")
class TimmCNN(ModelRecipe):
    """A timm CNN by name (random init or local weights, no download); its pooling + head."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    #: timm blocks add residuals and apply activations in place (conservative for all)
    traits: ClassVar[frozenset[str]] = frozenset({"convolutional", "inplace_residual"})
    params: TimmParams

    def network(self, dataset: Dataset) -> nn.Module:
        """The timm model for the dataset's channels and classes, weights loaded."""
        timm = _timm()
        try:
            model = timm.create_model(
                self.params.architecture,
                pretrained=False,
                num_classes=dataset.n_classes,
                in_chans=dataset.x_train.shape[1],
            )
        except RuntimeError as error:  # timm: "Unknown model (…)"
            raise ValueError(f"timm: {error}; see timm.list_models()") from error
        if not hasattr(model, "forward_features") or not hasattr(model, "reset_classifier"):
            raise ValueError(f"timm model '{self.params.architecture}' has no classifier head")
        with independent_stream("black-box head"):  # not the by-design layer's numbers
            model.reset_classifier(dataset.n_classes)
        if self.params.weights is not None:
            head = model.pretrained_cfg.get("classifier", "fc")
            load_pretrained(model, self.params.weights, drop=f"{head}.")
        return model

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        return standardized(self.network(dataset), dataset, self.params.normalisation)

    def backbone(self, dataset: Dataset) -> tuple[nn.Module, int]:
        """Standardisation and ``forward_features`` (same construction as :meth:`build`)."""
        twin = self.build(dataset)
        model = twin.get_submodule("network")
        features = nn.Sequential(
            OrderedDict(
                standardize=twin.get_submodule("standardize"), features=_ForwardFeatures(model)
            )
        )
        return features, int(model.num_features)  # type: ignore[arg-type]

    def cam_layer_name(self) -> str | None:
        if self.params.cam_layer is not None:
            return f"network.{self.params.cam_layer}"
        return f"network.{_last_feature_module(self.params.architecture)}"


def standardized(network: nn.Module, dataset: Dataset, normalisation: str) -> nn.Module:
    """``standardize → network`` for a timm model: the training images' channel statistics,
    or (``"imagenet"``) the mean and std of the architecture's pretrained weights (timm's
    ``pretrained_cfg``; 0.5 and 0.5 for a model built without one)."""
    config: Any = getattr(network, "pretrained_cfg", None) or {}
    standardize = weights_standardize(
        dataset.x_train,
        normalisation,
        tuple(config.get("mean", (0.5,))),
        tuple(config.get("std", (0.5,))),
    )
    return nn.Sequential(OrderedDict(standardize=standardize, network=network))


@cache
def _timm() -> Any:
    """The ``timm`` package, imported on first use (seconds; not needed to list or validate)."""
    return optional_import("timm", "model recipe 'timm'")


@cache
def _last_feature_module(architecture: str) -> str:
    """The last top-level child of the timm model that runs in ``forward_features``
    (found by running it once on a small random image)."""
    model = _timm().create_model(architecture, pretrained=False, num_classes=2).eval()
    ran: list[str] = []
    hooks = [
        child.register_forward_hook(lambda module, args, out, name=name: ran.append(name))
        for name, child in model.named_children()
    ]
    try:
        with torch.no_grad():
            model.forward_features(torch.zeros(1, 3, 64, 64))
    finally:
        for hook in hooks:
            hook.remove()
    if not ran:
        raise ValueError(
            f"timm model '{architecture}': no module runs in forward_features; set cam_layer"
        )
    return ran[-1]
