"""``ft_transformer``: a small FT-Transformer-style model for tables (Gorishniy et al. 2021).

Each feature becomes a token ``x_j · W_j + b_j``; a learned CLS token is prepended; a
pre-norm Transformer encoder mixes the tokens; the CLS output is classified. An input
gate (e.g. ScoresActivation) scales the features before tokenisation.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field
from torch import nn

from harness.datasets.base import Dataset, Modality
from harness.models.base import ModelRecipe, model_registry
from harness.models.mlp import Standardize, feature_standardize
from harness.models.training import TrainingParams


class FeatureTokenizer(nn.Module):
    """(rows, features) → (rows, features, d_token): token_j = x_j · W_j + b_j."""

    def __init__(self, n_features: int, d_token: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features, d_token) / math.sqrt(d_token))
        self.bias = nn.Parameter(torch.zeros(n_features, d_token))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, None] * self.weight + self.bias


class TabularTransformer(nn.Module):
    """Standardise → [gate] → tokenise → CLS + encoder → LayerNorm → ReLU → linear head."""

    def __init__(
        self,
        standardize: Standardize,
        gate: nn.Module | None,
        n_features: int,
        n_classes: int,
        params: FTTransformerParams,
    ) -> None:
        super().__init__()
        self.standardize = standardize
        self.gate = gate if gate is not None else nn.Identity()
        self.tokenizer = FeatureTokenizer(n_features, params.d_token)
        self.cls = nn.Parameter(torch.zeros(1, 1, params.d_token))
        layer = nn.TransformerEncoderLayer(
            params.d_token,
            params.n_heads,
            dim_feedforward=params.ff_dim,
            dropout=params.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, params.n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(
            nn.LayerNorm(params.d_token), nn.ReLU(), nn.Linear(params.d_token, n_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.tokenizer(self.gate(self.standardize(x)))
        cls = self.cls.expand(len(tokens), -1, -1)
        return self.head(self.encoder(torch.cat([cls, tokens], dim=1))[:, 0])


class FTTransformerParams(TrainingParams):
    d_token: int = Field(32, ge=1, le=4096, description="token width (divisible by n_heads)")
    n_layers: int = Field(2, ge=1, le=64, description="encoder layers")
    n_heads: int = Field(4, ge=1, le=256, description="attention heads")
    ff_dim: int = Field(64, ge=1, le=65_536, description="feed-forward width in each layer")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout in attention and feed-forward")


@model_registry.register("ft_transformer")
class FTTransformer(ModelRecipe):
    """FT-Transformer-style tabular model: per-feature tokens, a CLS token, 2 encoder layers.

    Explainers that need DeepLIFT rules for every operation (deeplift, shap_deep) cannot
    handle its attention; gradient and perturbation methods can.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    traits: ClassVar[frozenset[str]] = frozenset({"attention"})
    accepts_gate: ClassVar[bool] = True
    params: FTTransformerParams

    def build(self, dataset: Dataset, gate: nn.Module | None = None) -> nn.Module:
        if self.params.d_token % self.params.n_heads:
            raise ValueError(
                f"d_token ({self.params.d_token}) must be divisible by n_heads "
                f"({self.params.n_heads})"
            )
        standardize = feature_standardize(dataset.x_train)
        return TabularTransformer(
            standardize, gate, dataset.n_features, dataset.n_classes, self.params
        )
