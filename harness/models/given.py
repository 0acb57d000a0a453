"""``given``: a model trained elsewhere, loaded from a file and scored as it is.

Formats (``format = "auto"`` tells them by the file's suffix):

- ``torch_export`` (``.pt2``, ``torch.export.save``): a program that needs no Python
  class of the user's; export it with a dynamic batch dimension (with ``cam_layer`` the
  program is unflattened — ``torch.export.unflatten`` — so CAM hooks reach that module);
- ``torchscript`` (``torch.jit.save``); ``.pt``/``.pth`` files must say which they are;
- ``state_dict``: ``factory = "package.module:function"`` builds the network (called with
  ``factory_args``), then the weights are read with ``torch.load(weights_only=True)``;
- ``skops`` (``.skops``): a scikit-learn classifier, only with trusted types
  (:mod:`harness.models.estimators`); ``xgboost`` (``.json``/``.ubj``); ``lightgbm``
  (``.txt``).

Nothing is unpickled (see :mod:`harness.models.torch_files`). A torch model receives the
dataset's features as they are (``preprocessing = "none"``) or standardised first
(``"standardize"``: with the ``mean``/``std`` it was trained with — one per feature, or per
channel for images — or else the training split's), so nothing is standardised twice;
it returns class logits (``output = "logits"``) or probabilities. A model whose inputs or
classes do not match the dataset is refused before anything is explained, naming both.
Nothing is trained: ``train_seconds`` is 0 and the score says "given".
"""

from __future__ import annotations

import importlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from harness.component import Params, SuiteFile
from harness.datasets.base import Dataset, Modality
from harness.errors import optional_import
from harness.models.base import TRAITS, ModelRecipe, TrainedModel, model_registry
from harness.models.cnn import channel_standardize
from harness.models.estimators import (
    PROBABILITY_FLOOR,
    SKLEARN_TRUSTED,
    FittedEstimator,
    LightGBMBooster,
    SklearnEstimator,
    XGBoostBooster,
)
from harness.models.mlp import Standardize, feature_standardize
from harness.models.torch_files import load_exported_program, load_state_dict, load_torchscript

Format = Literal[
    "auto", "torch_export", "torchscript", "state_dict", "skops", "xgboost", "lightgbm"
]

ESTIMATOR_FORMATS: dict[str, type[FittedEstimator]] = {
    "skops": SklearnEstimator,
    "xgboost": XGBoostBooster,
    "lightgbm": LightGBMBooster,
}
SUFFIX_FORMATS = {
    ".pt2": "torch_export",
    ".skops": "skops",
    ".json": "xgboost",
    ".ubj": "xgboost",
    ".txt": "lightgbm",
}


class GivenParams(Params):
    path: SuiteFile = Field(description="the model file (in a suite, relative to its folder)")
    format: Format = Field("auto", description="how the file is read; auto: by its suffix")
    factory: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="state_dict: 'package.module:function' that builds the untrained network",
    )
    factory_args: dict[str, int | float | str | bool | list[int]] = Field(
        default_factory=dict, description="keyword arguments of the factory"
    )
    preprocessing: Literal["none", "standardize"] = Field(
        "none", description="torch: inputs as the dataset gives them, or standardised first"
    )
    mean: list[float] | None = Field(None, description="standardize: the model's own means")
    std: list[float] | None = Field(None, description="standardize: the model's own stds (> 0)")
    output: Literal["logits", "probabilities"] = Field(
        "logits", description="torch: what the model returns per class"
    )
    traits: list[str] = Field(
        default_factory=list, description="torch: architecture traits (e.g. convolutional)"
    )
    cam_layer: str | None = Field(None, description="torch CNNs: the feature map for CAMs")
    trusted_types: list[str] = Field(
        default_factory=list, description="skops: types to trust beyond the built-in list"
    )

    @field_validator("traits")
    @classmethod
    def _known_traits(cls, traits: list[str]) -> list[str]:
        unknown = sorted(set(traits) - TRAITS.keys())
        if unknown:
            raise ValueError(f"unknown trait {unknown[0]!r}; known: {', '.join(sorted(TRAITS))}")
        return traits

    @model_validator(mode="after")
    def _consistent(self) -> GivenParams:
        fmt = self.resolved_format()
        torch_only = {
            "factory": self.factory,
            "mean": self.mean,
            "std": self.std,
            "cam_layer": self.cam_layer,
        }
        if fmt in ESTIMATOR_FORMATS:
            used = [k for k, v in torch_only.items() if v is not None]
            if used or self.preprocessing != "none" or self.output != "logits" or self.traits:
                raise ValueError(
                    f"format '{fmt}' is not a torch network: preprocessing, output, traits, "
                    f"{', '.join(torch_only)} do not apply (put a scaler in a scikit-learn "
                    "Pipeline instead)"
                )
        if (fmt == "state_dict") != (self.factory is not None):
            raise ValueError(
                "format 'state_dict' and factory go together: the factory builds "
                "the network, the file holds its weights"
            )
        if self.trusted_types and fmt != "skops":
            raise ValueError("trusted_types applies to skops files only")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give mean and std together")
        if self.mean is not None and self.preprocessing != "standardize":
            raise ValueError("mean and std are for preprocessing = 'standardize'")
        if self.std is not None and min(self.std) <= 0:
            raise ValueError("std must be > 0")
        return self

    def resolved_format(self) -> str:
        """The format, told by the file's suffix when ``auto``."""
        if self.format != "auto":
            return self.format
        if self.factory is not None:
            return "state_dict"
        suffix = self.path.suffix.lower()
        if suffix not in SUFFIX_FORMATS:
            raise ValueError(
                f"cannot tell the format of {self.path.name} by its suffix; set format = "
                "'torchscript' (torch.jit.save), or give factory for a state dict, or use "
                f"one of {', '.join(SUFFIX_FORMATS)}"
            )
        return SUFFIX_FORMATS[suffix]


@model_registry.register("given")
class GivenModel(ModelRecipe):
    """A model trained elsewhere, loaded from a file (torch or tree ensemble), not trained."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular", "image"})
    given: ClassVar[bool] = True
    params: GivenParams

    def has_gradients(self) -> bool:
        return self.params.resolved_format() not in ESTIMATOR_FORMATS

    def model_traits(self) -> frozenset[str]:
        fmt = self.params.resolved_format()
        if fmt in ("xgboost", "lightgbm") or (fmt == "skops" and _skops_trees(self.params.path)):
            return frozenset({"tree_ensemble"})
        return frozenset(self.params.traits)

    def cam_layer_name(self) -> str | None:
        return self.params.cam_layer

    def fit(self, dataset: Dataset, seed: int, device: torch.device, **_: Any) -> TrainedModel:
        """Load the model and check it takes the dataset's rows (nothing is trained)."""
        p = self.params
        fmt = p.resolved_format()
        if fmt in ESTIMATOR_FORMATS:
            estimator = ESTIMATOR_FORMATS[fmt].load(p.path, p.trusted_types)
            _check_estimator(estimator, dataset, p.path)
            return TrainedModel.of_estimator(estimator, 0.0, given=True)
        network = self._network(fmt, dataset)
        layers: dict[str, nn.Module] = {}
        if p.preprocessing == "standardize":
            layers["standardize"] = self._standardize(dataset)
        layers["network"] = network
        if p.output == "probabilities":
            layers["log"] = _LogProbabilities()
        module = nn.Sequential(OrderedDict(layers)).to(device).eval()
        _check_network(module, dataset, p.path, device)
        inside = "network.program." if fmt == "torch_export" else "network."
        cam_layer = None if p.cam_layer is None else inside + p.cam_layer
        return TrainedModel(
            module=module,
            device=device,
            train_seconds=0.0,
            epochs_trained=0,
            cam_layer=cam_layer,
            given=True,
        )

    def _network(self, fmt: str, dataset: Dataset) -> nn.Module:
        path = self.params.path
        if fmt == "torch_export":
            program = load_exported_program(path)
            _check_exported_shape(program, dataset, path)
            if self.params.cam_layer is not None:  # CAM hooks need the module hierarchy
                return _Exported(torch.export.unflatten(program))
            return _Exported(program.module())
        if fmt == "torchscript":
            return load_torchscript(path)
        assert self.params.factory is not None
        module_name, function = self.params.factory.split(":")
        try:
            build = getattr(importlib.import_module(module_name), function)
        except (ImportError, AttributeError) as error:
            raise ValueError(
                f"factory '{self.params.factory}' cannot be imported ({error}); is its "
                "package installed or on PYTHONPATH?"
            ) from error
        network = build(**self.params.factory_args)
        if not isinstance(network, nn.Module):
            raise ValueError(
                f"factory '{self.params.factory}' returned "
                f"{type(network).__name__}, not a torch nn.Module"
            )
        try:
            network.load_state_dict(load_state_dict(path))
        except RuntimeError as error:
            raise ValueError(
                f"{path}: weights do not fit the factory's network: {str(error).splitlines()[0]}"
            ) from error
        return network

    def _standardize(self, dataset: Dataset) -> Standardize:
        p = self.params
        x = dataset.x_train
        shape = (-1, 1, 1) if x.ndim == 4 else (-1,)
        width = x.shape[1]
        if p.mean is None or p.std is None:
            return channel_standardize(x) if x.ndim == 4 else feature_standardize(x)
        if len(p.mean) != width or len(p.std) != width:
            what = "channels" if x.ndim == 4 else "features"
            raise ValueError(
                f"mean and std have {len(p.mean)} and {len(p.std)} values; dataset "
                f"'{dataset.name}' has {width} {what}"
            )
        return Standardize(np.reshape(p.mean, shape), np.reshape(p.std, shape))


class _Exported(nn.Module):
    """An exported program's module, which behaves as it was exported (inference) and
    cannot be switched between training and evaluation: ``train()`` leaves it alone."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.program(x)

    def train(self, mode: bool = True) -> _Exported:
        self.training = mode
        return self


class _LogProbabilities(nn.Module):
    """Probabilities → logits (their logarithm, floored like an estimator's)."""

    def forward(self, probabilities: torch.Tensor) -> torch.Tensor:
        return torch.log(probabilities.clamp_min(PROBABILITY_FLOOR))


def _shape(dims: tuple[int | str, ...] | list[Any]) -> str:
    return "(rows, " + ", ".join(str(d) for d in dims) + ")"


def _check_exported_shape(program: Any, dataset: Dataset, path: Path) -> None:
    """The exported program's declared input against the dataset's rows."""
    user_inputs = set(program.graph_signature.user_inputs)
    shapes = [
        node.meta["val"].shape
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in user_inputs
    ]
    expected = tuple(dataset.x_train.shape[1:])
    if len(shapes) != 1:
        raise ValueError(
            f"{path}: the program takes {len(shapes)} inputs; the harness gives "
            f"one tensor {_shape(expected)}"
        )
    (shape,) = shapes
    declared = tuple(int(d) if isinstance(d, int) else str(d) for d in shape[1:])
    if declared != expected:
        raise ValueError(
            f"{path}: the model takes inputs {_shape(declared)}; dataset '{dataset.name}' "
            f"gives {_shape(expected)}"
        )
    if isinstance(shape[0], int):
        raise ValueError(
            f"{path}: exported for exactly {shape[0]} rows; export with a dynamic batch "
            "dimension: dynamic_shapes=({0: torch.export.Dim('batch')},)"
        )


def _check_network(module: nn.Module, dataset: Dataset, path: Path, device: torch.device) -> None:
    """Two training rows through the model: it must take them and give one logit per class."""
    rows = torch.as_tensor(dataset.x_train[:2], dtype=torch.float32, device=device)
    expected = tuple(dataset.x_train.shape[1:])
    try:
        with torch.no_grad():
            out = module(rows)
    except Exception as error:
        raise ValueError(
            f"{path}: the model does not take dataset '{dataset.name}''s inputs "
            f"{_shape(expected)}: {type(error).__name__}: {str(error).splitlines()[0][:200]}"
        ) from error
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, dataset.n_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{path}: the model returns {got} for 2 rows; dataset '{dataset.name}' needs "
            f"(2, {dataset.n_classes}): one output per class ({', '.join(dataset.class_names)})"
        )


def _check_estimator(estimator: FittedEstimator, dataset: Dataset, path: Path) -> None:
    if estimator.n_features != dataset.n_features:
        raise ValueError(
            f"{path}: the model takes {_shape([estimator.n_features])}; dataset "
            f"'{dataset.name}' gives {_shape([dataset.n_features])} (after its own encoding: "
            f"{', '.join(dataset.feature_names[:5])}{', …' if dataset.n_features > 5 else ''})"
        )
    if estimator.n_classes != dataset.n_classes:
        raise ValueError(
            f"{path}: the model predicts {estimator.n_classes} classes; dataset "
            f"'{dataset.name}' has {dataset.n_classes} ({', '.join(dataset.class_names)})"
        )


def _skops_trees(path: Path) -> bool:
    """Whether the skops file holds scikit-learn trees (read from its schema, nothing built)."""
    skops_io = optional_import("skops.io", "scikit-learn models", "skops")
    try:
        return bool(set(skops_io.get_untrusted_types(file=path)) & set(SKLEARN_TRUSTED))
    except Exception:  # a damaged file is refused when it is loaded, with the reason
        return False
