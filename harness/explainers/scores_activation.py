"""ScoresActivation (Covaci et al., arXiv 2511.13809): global feature ranking by design.

A learnable score per input feature gates the inputs, ``y = x ⊙ softmax(s / T)``, right
before the host model's first linear or embedding layer; it is trained with the rest of
the model and ``softmax(s / T)`` *is* the global importance, readable at any epoch.
"""

from __future__ import annotations

import time
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from harness import artifacts
from harness.component import Params
from harness.datasets.base import Dataset, Modality
from harness.explainers.base import (
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
)
from harness.models.base import ModelRecipe, TrainedModel


class ScoresActivation(nn.Module):
    """``y = x ⊙ w`` with ``w = softmax(s / T)`` (× d when ``rescale``); ``s`` is learned.

    ``w`` is positive and sums to 1 (to d with ``rescale``, so the mean weight is 1).
    ``exempt_from_weight_decay`` keeps weight decay off ``s`` (decay would pull the
    scores towards uniform); ``learning_rate_multiplier`` scales the optimiser's step on
    ``s``; ``learn = False`` freezes ``s`` (the uniform-gate control: same layer, no
    learned scores).
    """

    def __init__(
        self,
        n_features: int,
        *,
        temperature: float = 1.0,
        rescale: bool = False,
        scores: torch.Tensor | None = None,
        exempt_from_weight_decay: bool = True,
        learning_rate_multiplier: float = 1.0,
        learn: bool = True,
    ) -> None:
        super().__init__()
        initial = torch.zeros(n_features) if scores is None else scores.clone().float()
        self.scores = nn.Parameter(initial, requires_grad=learn)
        self.temperature = temperature
        self.rescale = rescale
        self.exempt_from_weight_decay = exempt_from_weight_decay
        self.learning_rate_multiplier = learning_rate_multiplier

    def weights(self) -> torch.Tensor:
        """softmax(s / T): one positive weight per feature, summing to 1."""
        return torch.softmax(self.scores / self.temperature, dim=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.weights()
        if self.rescale:
            weights = weights * len(weights)
        return x * weights


class ScoresActivationParams(Params):
    init: Literal["zeros", "normal"] = Field(
        "zeros", description="initial scores: zeros (uniform weights 1/d) or N(0, init_std²)"
    )
    init_std: float = Field(0.01, gt=0, le=1e3, description="std of the 'normal' initialisation")
    temperature: float = Field(1.0, gt=0, le=1e6, description="T in softmax(s / T)")
    rescale: bool = Field(False, description="multiply the weights by d (mean weight 1)")
    weight_decay_on_scores: bool = Field(
        False, description="apply the recipe's weight decay to s too (off: it pulls to uniform)"
    )
    scores_learning_rate: float = Field(
        1.0,
        gt=0,
        le=1e6,
        description="multiplier of the recipe's learning rate for s (Adam moves each score "
        "by about the learning rate per step)",
    )
    learn_scores: bool = Field(
        True,
        description="false: s frozen at its initial value — the uniform-gate control (with "
        "init 'zeros': weights 1/d, × d with rescale), separating the effect of learning "
        "the scores from that of scaling the inputs",
    )


@explainer_registry.register("scores_activation")
class ScoresActivationExplainer(Explainer):
    """ScoresActivation (arXiv 2511.13809): a softmax-gated input layer trained with the model.

    By design: wraps the tabular model recipe, trains it with the layer, and reads the
    global importance softmax(s / T) from the trained model (explaining costs a read).
    The score trajectory per epoch is kept as ``score_trajectory`` (epoch 0 = initial, up
    to the epoch whose weights the model keeps — with early stopping, the restored one),
    and the wall seconds from the start of training to the end of each of those epochs
    as ``epoch_seconds`` (the cost of reading a ranking after that epoch).
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    scope: ClassVar[Literal["local", "global"]] = "global"
    by_design: ClassVar[bool] = True
    params: ScoresActivationParams

    @classmethod
    def recipe_skip_reason(cls, recipe: type[ModelRecipe]) -> str | None:
        if not recipe.accepts_gate:
            return f"model recipe '{recipe.name}' has no input gate for the score layer"
        return None

    def layer(self, n_features: int, seed: int) -> ScoresActivation:
        """A fresh layer; a 'normal' initialisation draws from its own seeded generator."""
        scores = None
        if self.params.init == "normal":
            generator = torch.Generator().manual_seed(seed)
            scores = torch.randn(n_features, generator=generator) * self.params.init_std
        return ScoresActivation(
            n_features,
            temperature=self.params.temperature,
            rescale=self.params.rescale,
            scores=scores,
            exempt_from_weight_decay=not self.params.weight_decay_on_scores,
            learning_rate_multiplier=self.params.scores_learning_rate,
            learn=self.params.learn_scores,
        )

    def fit_model(
        self, recipe: ModelRecipe, dataset: Dataset, seed: int, device: torch.device
    ) -> TrainedModel:
        trajectory: list[np.ndarray] = []
        seconds: list[float] = []
        started = time.perf_counter()

        def record(module: nn.Module, epoch: int) -> None:
            gate = next(m for m in module.modules() if isinstance(m, ScoresActivation))
            trajectory.append(gate.weights().detach().cpu().numpy().copy())
            seconds.append(time.perf_counter() - started)

        trained = recipe.fit(
            dataset,
            seed,
            device,
            observer=record,
            architecture=lambda data: self.architecture(recipe, data, seed),
        )
        # up to the epoch the model ends with (early stopping restores an earlier one)
        kept = trained.epochs_trained + 1
        trained.history[artifacts.SCORE_TRAJECTORY] = np.stack(trajectory[:kept])
        trained.history[artifacts.EPOCH_SECONDS] = np.array(seconds[:kept])
        return trained

    def architecture(self, recipe: ModelRecipe, dataset: Dataset, seed: int) -> nn.Module:
        """The host recipe's network with this score layer as its input gate."""
        if not recipe.accepts_gate:
            raise ValueError(f"model recipe '{recipe.name}' does not take an input gate")
        return recipe.build(dataset, gate=self.layer(dataset.n_features, seed))

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        layers = [m for m in model.module.modules() if isinstance(m, ScoresActivation)]
        if len(layers) != 1:
            raise ValueError(
                f"expected one ScoresActivation layer in the model, found {len(layers)}"
            )
        weights = layers[0].weights().detach().cpu().numpy().astype(float)
        return Explanation(global_scores=weights, signed=False)
