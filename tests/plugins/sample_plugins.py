"""Plugins defined outside the harness, used by the tests through "module:Class" names."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness.datasets import Dataset, DatasetCard, DatasetSource
from harness.explainers import ExplainContext, Explainer, Explanation
from harness.models import TrainedModel


class FailingExplainer(Explainer):
    """Always raises, to check that one failing cell does not stop a run."""

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        raise RuntimeError("deliberate failure for the test")


class NaNExplainer(Explainer):
    """Returns NaN attributions, which the runner must reject."""

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        return Explanation(local=np.full(inputs.shape, np.nan))


class FeatureIndexExplainer(Explainer):
    """Attribution = feature index + 1 for every row (a deterministic, known ranking)."""

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        return Explanation(local=np.tile(np.arange(1.0, inputs.shape[1] + 1), (len(inputs), 1)))


class BlobsWithoutTruth(DatasetSource):
    """Two Gaussian blobs and no ground truth, to check capability-based skipping."""

    modality: ClassVar = "tabular"

    def load(self, seed: int) -> Dataset:
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, 200)
        x = (rng.normal(size=(200, 4)) + y[:, None] * 2).astype(np.float32)
        return Dataset(
            name=self.name,
            modality="tabular",
            x_train=x[:150],
            y_train=y[:150],
            x_test=x[150:],
            y_test=y[150:],
            feature_names=[f"f{i}" for i in range(4)],
            class_names=["a", "b"],
            card=DatasetCard(source="generated in the tests", licence="none"),
        )
