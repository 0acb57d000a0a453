"""``mlp``: a fully connected network on standardised tabular inputs."""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from harness.datasets.base import Dataset, Modality
from harness.datasets.streamed_images import Rows
from harness.models.base import ModelRecipe, model_registry
from harness.models.training import TrainingParams


class Standardize(nn.Module):
    """``(x - mean) / std`` with statistics fixed from the training split (std 0 → 1)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        std = np.where(std > 0, std, 1.0)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def feature_standardize(x_train: Rows) -> Standardize:
    """Per-feature (x − mean) / std over the training rows (tables, held in memory)."""
    rows = np.asarray(x_train)
    return Standardize(rows.mean(axis=0), rows.std(axis=0))


class MLPParams(TrainingParams):
    hidden: list[Annotated[int, Field(ge=1, le=65_536)]] = Field(
        [64, 64], max_length=64, description="width of each hidden layer (1…65,536)"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer")


@model_registry.register("mlp")
class MLP(ModelRecipe):
    """Multi-layer perceptron (ReLU) on standardised inputs, trained with Adam."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    accepts_gate: ClassVar[bool] = True
    params: MLPParams

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        layers: list[nn.Module] = [feature_standardize(dataset.x_train)]
        if gate is not None:
            layers.append(gate)
        width = dataset.n_features
        for hidden in self.params.hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if self.params.dropout:
                layers.append(nn.Dropout(self.params.dropout))
            width = hidden
        layers.append(nn.Linear(width, dataset.n_classes))
        return nn.Sequential(*layers)
