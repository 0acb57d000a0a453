"""Control explainers that calibrate metrics: ``oracle`` (the ground truth) and ``random``."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness.explainers.base import (
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
)
from harness.models.base import TrainedModel


@explainer_registry.register("oracle")
class Oracle(Explainer):
    """The dataset's ground-truth importance as the explanation (best possible score).

    Every row gets the same attribution: the ground-truth importance vector.
    """

    needs_ground_truth: ClassVar[frozenset[str]] = frozenset({"importance"})

    def explain(
        self,
        model: TrainedModel,
        inputs: np.ndarray,
        targets: np.ndarray,
        context: ExplainContext,
    ) -> Explanation:
        importance = context.dataset.ground_truth.importance
        if importance is None:
            raise ValueError(f"dataset '{context.dataset.name}' has no ground-truth importance")
        return Explanation(
            local=np.tile(importance, (len(inputs), 1)),
            global_scores=np.asarray(importance, dtype=float),
            signed=False,
        )


@explainer_registry.register("random")
class Random(Explainer):
    """Uniform random attributions in [0, 1), drawn from the cell seed (chance level)."""

    def explain(
        self,
        model: TrainedModel,
        inputs: np.ndarray,
        targets: np.ndarray,
        context: ExplainContext,
    ) -> Explanation:
        rng = np.random.default_rng(context.seed)
        return Explanation(local=rng.random(inputs.shape), signed=False)
