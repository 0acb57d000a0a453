"""The explainer contract: what an explainer declares, receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from harness.component import Component
from harness.datasets.base import Dataset, Modality
from harness.models.base import TrainedModel
from harness.registry import Registry

Scope = Literal["local", "global"]
Granularity = Literal["feature", "pixel", "patch"]


@dataclass(frozen=True)
class Explanation:
    """What an explainer returns.

    ``local``: attributions, explained rows × features (signed when ``signed``).
    ``global_scores``: one score per feature. Local explainers leave it ``None``; their
    global importance is the mean |attribution| over the explained rows.
    """

    local: np.ndarray | None = None
    global_scores: np.ndarray | None = None
    signed: bool = True

    def __post_init__(self) -> None:
        if self.local is None and self.global_scores is None:
            raise ValueError("an Explanation needs local attributions or global scores")

    @property
    def global_importance(self) -> np.ndarray:
        """Global scores if given, else mean |local attribution| per feature."""
        if self.global_scores is not None:
            return self.global_scores
        assert self.local is not None
        return np.abs(self.local.reshape(len(self.local), -1)).mean(axis=0)

    def is_finite(self) -> bool:
        """True when no attribution or score is NaN or infinite."""
        return all(
            bool(np.isfinite(part).all())
            for part in (self.local, self.global_scores)
            if part is not None
        )


@dataclass(frozen=True)
class ExplainContext:
    """What an explainer may read besides the model and the rows: the dataset and the seed.

    ``seed`` is the cell's seed; every stochastic explainer must derive its randomness
    from it.
    """

    dataset: Dataset
    seed: int


class Explainer(Component):
    """Explains a trained model's predictions for given rows and target classes.

    Declares the modalities it handles, its scope, its output granularity, whether it
    needs gradients through the model, and which ground truth it reads (controls only).
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular", "image"})
    scope: ClassVar[Scope] = "local"
    granularity: ClassVar[Granularity] = "feature"
    needs_gradients: ClassVar[bool] = False
    needs_ground_truth: ClassVar[frozenset[str]] = frozenset()

    def explain(
        self,
        model: TrainedModel,
        inputs: np.ndarray,
        targets: np.ndarray,
        context: ExplainContext,
    ) -> Explanation:
        """Attributions for ``inputs`` (rows × features) towards class indices ``targets``."""
        raise NotImplementedError


explainer_registry: Registry[type[Explainer]] = Registry(
    "explainer", Explainer, "xai_harness.explainers"
)
