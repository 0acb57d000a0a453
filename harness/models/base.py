"""Model recipes (how to build and train a model for a dataset) and the trained result."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from harness import artifacts
from harness.component import Component, Params
from harness.datasets.base import Dataset, Modality
from harness.datasets.streamed_images import Rows
from harness.models.batched import forward_in_batches
from harness.models.estimators import EstimatorForward, FittedEstimator
from harness.models.training import (
    EpochObserver,
    Penalty,
    TrainingParams,
    mixed_precision,
    train_classifier,
)
from harness.registry import Registry

#: What models record while training (``TrainedModel.history``) that metrics read; cells
#: store each under its own name, and a rescoring reads them back from there.
HISTORY_KEYS = artifacts.HISTORY_KEYS


@dataclass
class TrainedModel:
    """A trained classifier: ``module`` maps raw dataset inputs (float32) to class logits.

    Any preprocessing the recipe needs (e.g. standardisation) is a layer inside
    ``module``, so explainers attribute to the dataset's own features. ``cam_layer`` is
    the dotted name of the feature map that class-activation methods use (None: not a CNN).
    ``history`` holds what was recorded during training (e.g. a score trajectory).
    ``estimator``: a model that is not a torch network (a tree ensemble…); ``module`` is
    then its :class:`~harness.models.estimators.EstimatorForward` and probabilities come
    from the estimator itself. ``given``: trained outside the harness and loaded from a
    file (``train_seconds`` is 0: nothing was trained). ``amp``: the mixed precision its
    forward passes without gradients run in (``"none"``, ``"bf16"``, ``"fp16"``);
    explainers call ``module`` in float32.
    """

    module: nn.Module
    device: torch.device
    train_seconds: float
    epochs_trained: int
    differentiable: bool = True
    cam_layer: str | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)
    estimator: FittedEstimator | None = None
    given: bool = False
    amp: str = "none"

    @classmethod
    def of_estimator(
        cls, estimator: FittedEstimator, train_seconds: float, *, given: bool = False
    ) -> TrainedModel:
        """A fitted estimator as a trained model (on the CPU, no gradients)."""
        return cls(
            module=EstimatorForward(estimator),
            device=torch.device("cpu"),
            train_seconds=train_seconds,
            epochs_trained=0,
            differentiable=False,
            estimator=estimator,
            given=given,
        )

    def logits(self, x: Rows) -> np.ndarray:
        """Class logits for ``x`` (rows like the dataset's), without gradients, in
        batches bounded in memory (:mod:`harness.models.batched`); a batch the device has
        no memory for is split and retried, with a warning the cell records.

        Any float dtype is accepted (explainers such as lime and shap pass float64).
        """
        with mixed_precision(self.device, self.amp):
            return forward_in_batches(self.module, x, self.device)

    def predict_proba(self, x: Rows) -> np.ndarray:
        """Class probabilities, rows × classes: the softmax of the logits, or an
        estimator's own."""
        if self.estimator is not None:
            return self.estimator.predict_proba(np.asarray(x))
        logits = self.logits(x)
        return np.asarray(torch.softmax(torch.from_numpy(logits), dim=1).numpy())

    def predict(self, x: Rows) -> np.ndarray:
        """Predicted class index per row (int64)."""
        return self.logits(x).argmax(axis=1).astype(np.int64)


#: Architecture traits a recipe may declare; explainers name the ones they cannot handle.
TRAITS = {
    "convolutional": "has convolutional feature maps (class-activation maps possible)",
    "inplace_residual": "adds residuals in place (torchvision ResNet blocks: out += identity)",
    "reused_activations": "calls one activation module several times (torchvision ResNet)",
    "attention": "uses attention (softmax over tokens), which has no DeepLIFT rule",
    "tokens": "cuts images into patch tokens with a class token (a vision transformer)",
    "tree_ensemble": "is a tree ensemble (what shap's TreeExplainer explains exactly)",
}


class ModelRecipe(Component):
    """How to build and train a model for a dataset; the seed fixes init and batch order.

    ``traits`` (keys of :data:`TRAITS`) let the planner skip explainers that cannot
    handle the architecture; ``cam_layer`` names the feature map for class-activation maps.
    Recipes with ``accepts_gate`` take an input *gate* module, placed right after input
    standardisation, before the first linear or embedding layer (by-design methods such as
    ScoresActivation insert themselves there). ``given`` recipes train nothing: they load
    a model trained elsewhere. What the planner reads goes through
    :meth:`has_gradients` and :meth:`model_traits`, which a recipe whose model depends on
    its parameters (a given model file) overrides.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    differentiable: ClassVar[bool] = True
    traits: ClassVar[frozenset[str]] = frozenset()
    cam_layer: ClassVar[str | None] = None
    accepts_gate: ClassVar[bool] = False
    given: ClassVar[bool] = False
    params: Params

    def has_gradients(self) -> bool:
        """Whether gradients flow through this recipe's models (torch networks)."""
        return self.differentiable

    def model_traits(self) -> frozenset[str]:
        """The traits (keys of :data:`TRAITS`) of this recipe's models."""
        return self.traits

    def files_fingerprint(self) -> str:
        """SHA-256 of the files this recipe's parameters name (weights, a model file), so
        a changed file is another model to the cache."""
        from harness.inputs import path_fingerprint

        digest = hashlib.sha256()
        for path in self.input_paths().values():
            digest.update(path_fingerprint(path).encode())
        return digest.hexdigest()

    def load_fitted(self, path: Path) -> FittedEstimator:
        """Estimator recipes: read back a model their :meth:`fit` produced and the cache
        stored with :meth:`FittedEstimator.save`."""
        raise NotImplementedError(f"model recipe '{self.name}' trains torch networks")

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        """The untrained network for ``dataset`` (raw inputs in, logits out).

        ``gate`` (only when ``accepts_gate``) goes between standardisation and the first layer.
        """
        raise NotImplementedError

    def cam_layer_name(self) -> str | None:
        """The feature map of this recipe's black box for class-activation maps (the
        class's ``cam_layer`` unless a parameter changes the architecture)."""
        return self.cam_layer

    def backbone(self, dataset: Dataset) -> tuple[nn.Module, int] | None:
        """CNNs: the layers before global pooling (input standardisation included) and the
        number of channels of their output feature map; None for other models."""
        return None

    def fit(
        self,
        dataset: Dataset,
        seed: int,
        device: torch.device,
        *,
        observer: EpochObserver | None = None,
        architecture: Callable[[Dataset], nn.Module] | None = None,
        penalty: Penalty | None = None,
    ) -> TrainedModel:
        """Build with ``seed`` and train on the training split; ``train_seconds`` is wall time.

        The seed is set before any layer is created, so a by-design variant (another
        ``architecture`` built from this recipe's parts, e.g. with an input gate) and its
        twin start from the same weights wherever they share layers — except the black
        box's head, which CNN recipes draw from a stream of its own
        (:func:`harness.models.cnn.independent_stream`) so that it is not the by-design
        layer replacing it. ``penalty`` is added
        to the loss.
        Trained convolutional models are kept in channels-last memory format (any input
        layout works; inference is faster on CPUs).
        """
        if not isinstance(self.params, TrainingParams):
            raise TypeError(f"model recipe '{self.name}' must override fit()")
        torch.manual_seed(seed)
        started = time.perf_counter()
        module = (architecture(dataset) if architecture else self.build(dataset)).to(device)
        log = train_classifier(
            module,
            dataset.x_train,
            dataset.y_train,
            self.params,
            seed=seed,
            device=device,
            observer=observer,
            penalty=penalty,
        )
        module.eval()
        if "convolutional" in self.traits:  # faster CPU inference (1.3–1.5× measured)
            module = module.to(memory_format=torch.channels_last)
        return TrainedModel(
            module=module,
            device=device,
            train_seconds=time.perf_counter() - started,
            epochs_trained=log.epoch,
            differentiable=self.has_gradients(),
            cam_layer=self.cam_layer_name(),
            history={artifacts.LEARNING_RATE: np.array(log.learning_rates)},
            amp=self.params.amp,
        )


model_registry: Registry[type[ModelRecipe]] = Registry(
    "model recipe", ModelRecipe, "xai_harness.models"
)
