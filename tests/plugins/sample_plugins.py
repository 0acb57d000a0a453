"""Plugins defined outside the harness, used by the tests through "module:Class" names."""

from __future__ import annotations

import time
from typing import ClassVar

import numpy as np

from harness.datasets import Dataset, DatasetCard, DatasetSource, GroundTruth
from harness.explainers import ExplainContext, Explainer, Explanation
from harness.metrics import Evidence, Metric, MetricResult
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


class HangingExplainer(Explainer):
    """Never returns (sleeps for an hour), to check the per-cell timeout."""

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        time.sleep(3600)
        raise AssertionError("the cell timeout should have stopped this")


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


class SquaresWithMasks(DatasetSource):
    """12×12 images, class 1 has a bright 3×3 square whose exact mask is the ground truth."""

    modality: ClassVar = "image"

    def ground_truth_kinds(self) -> frozenset[str]:
        return frozenset({"masks"})

    def load(self, seed: int) -> Dataset:
        rng = np.random.default_rng(seed)
        n = 80
        x = rng.normal(0, 0.1, size=(n, 1, 12, 12)).astype(np.float32)
        y = np.arange(n) % 2
        masks = np.zeros((n, 12, 12), dtype=bool)
        for i in np.flatnonzero(y):
            r, c = rng.integers(0, 9, size=2)
            masks[i, r : r + 3, c : c + 3] = True
            x[i, 0, r : r + 3, c : c + 3] += 1.0
        return Dataset(
            name=self.name,
            modality="image",
            x_train=x[:60],
            y_train=y[:60],
            x_test=x[60:],
            y_test=y[60:],
            feature_names=[f"p{i}" for i in range(144)],
            class_names=["empty", "square"],
            card=DatasetCard(source="generated in the tests", licence="none"),
            ground_truth=GroundTruth(masks=masks[60:]),
        )


class WarningExplainer(Explainer):
    """Raises a library-style warning twice, then explains like ``constant``."""

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        import warnings

        warnings.warn("heads up from a library", UserWarning, stacklevel=1)
        warnings.warn("heads up from a library", UserWarning, stacklevel=1)
        return Explanation(local=np.ones((len(inputs), *context.dataset.attribution_shape)))


class PositiveRate(Metric):
    """Share of test rows the model assigns to class 1 (a model metric, from a plugin)."""

    kind = "model"
    needs: ClassVar[frozenset[str]] = frozenset({"predictions"})

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.y_pred is not None
        return MetricResult(float(np.mean(evidence.y_pred == 1)))


class BrokenUntilFixed(Metric):
    """Mean absolute attribution — but it raises until ``XAI_TEST_METRIC_FIXED`` is set
    (a plugin metric with a bug, then its fix)."""

    needs: ClassVar[frozenset[str]] = frozenset({"attributions"})

    def compute(self, evidence: Evidence) -> MetricResult:
        import os

        if not os.environ.get("XAI_TEST_METRIC_FIXED"):
            raise ZeroDivisionError("a bug in the plugin")
        assert evidence.attributions is not None
        return MetricResult(float(np.abs(evidence.attributions).mean()))


class InfiniteMetric(Metric):
    """Returns infinity: an impossible value, stored as a failed score."""

    def compute(self, evidence: Evidence) -> MetricResult:
        return MetricResult(float("inf"))


class MisdeclaredMetric(Metric):
    """Declares a need the harness does not provide ('mask' for 'masks')."""

    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "mask"})

    def compute(self, evidence: Evidence) -> MetricResult:
        return MetricResult(0.0)


class SeesOnlyWhatItNeeds(Metric):
    """Needs the model's predictions only: 1 when that is all it receives."""

    kind = "model"
    needs: ClassVar[frozenset[str]] = frozenset({"predictions"})

    def compute(self, evidence: Evidence) -> MetricResult:
        withheld = (evidence.attributions, evidence.inputs, evidence.predict_proba,
                    evidence.global_importance, evidence.explain_seconds)  # fmt: skip
        given = evidence.y_pred is not None and evidence.y_true is not None
        return MetricResult(float(given and all(v is None for v in withheld)))


class BrokenAcrossSeeds(Metric):
    """An across-seeds statistic that raises."""

    across_seeds: ClassVar[bool] = True
    needs: ClassVar[frozenset[str]] = frozenset({"global_importance"})

    def compute_across_seeds(self, importances: list[np.ndarray]) -> MetricResult:
        raise RuntimeError("a bug across seeds")


class ConstantMetric(Metric):
    """Reads the maps and returns 0.5 whatever they are: no information (meta-evaluation:
    resilient, never reactive)."""

    needs: ClassVar[frozenset[str]] = frozenset({"attributions"})
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)

    def compute(self, evidence: Evidence) -> MetricResult:
        return MetricResult(0.5)


class NoiseMetric(Metric):
    """Reads the maps and returns a uniform draw, afresh at every call (seeded by the
    call count: reproducible within a process): pure noise."""

    needs: ClassVar[frozenset[str]] = frozenset({"attributions"})
    value_range: ClassVar[tuple[float, float] | None] = (0.0, 1.0)
    calls: ClassVar[list[int]] = [0]

    def compute(self, evidence: Evidence) -> MetricResult:
        self.calls[0] += 1
        return MetricResult(float(np.random.default_rng(self.calls[0]).random()))
