"""Complexity: how concentrated a map is, from the map alone (no model, no ground truth).

Per explained row, on the magnitudes ``|a|`` of its map flattened (pixels of images,
channels already pooled; features of tables); the score is the mean over rows. A row
whose map is zero everywhere has no distribution to measure: it is left out and counted
in the note (all rows: undefined).

- ``sparseness``: Gini index of ``|a|`` (Chalasani et al. 2020): with the N values
  sorted ascending, ``Σ_k (2k − N − 1)·a_k / (N·Σ a)``; 0 for a constant map, (N−1)/N when
  one feature holds everything. Higher is better.
- ``complexity``: Shannon entropy (natural log) of ``p = |a| / Σ|a|`` (Bhatt et al.
  2020), ``0·log 0 = 0``; log N for a constant map, 0 for a single feature. Lower is better.
- ``effective_complexity``: the share of features whose ``|a|`` exceeds ``threshold`` ×
  the row's largest ``|a|`` (Nguyen & Martínez 2020 count features above a threshold;
  a share keeps maps of different sizes comparable). Lower is better.

Quantus computes the same three on the batch (``Sparseness``, ``Complexity``,
``EffectiveComplexity``); differences, tested: it adds 1e-7 to every value before the
Gini index and 1e-12 inside the logarithm, gives a count rather than a share, and
normalises by the maximum before thresholding only when ``normalise=True``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily


def magnitudes(attributions: np.ndarray) -> np.ndarray:
    """``|a|`` per row, flattened to (rows, features): float32 maps stay float32 (sums
    are taken in float64), anything else becomes float64."""
    maps = np.asarray(attributions)
    if maps.dtype != np.float32:
        maps = maps.astype(np.float64)
    return np.abs(maps.reshape(len(maps), -1))


def gini(values: np.ndarray) -> np.ndarray:
    """Gini index of each row of non-negative ``values`` (rows, N); NaN for a zero row.
    Sorted in the values' own precision, summed in float64."""
    ordered = np.sort(values, axis=1)
    n = ordered.shape[1]
    weights = (2 * np.arange(1, n + 1) - n - 1).astype(np.float64)
    total = ordered.sum(axis=1, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (ordered @ weights) / (n * total), np.nan)


def entropy(values: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of non-negative ``values`` normalised to sum 1;
    NaN for a zero row."""
    total = values.sum(axis=1, keepdims=True, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = values / total
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return np.where(total[:, 0] > 0, terms.sum(axis=1), np.nan)


def share_above(values: np.ndarray, threshold: float) -> np.ndarray:
    """Share of each row's ``values`` above ``threshold`` × the row's maximum; NaN for a
    zero row."""
    largest = values.max(axis=1, keepdims=True)
    share = (values > threshold * largest).mean(axis=1)
    return np.where(largest[:, 0] > 0, share, np.nan)


class _Complexity(Metric):
    family: ClassVar[MetricFamily] = "complexity"
    needs: ClassVar[frozenset[str]] = frozenset({"attributions"})
    fixed_conventions: ClassVar[dict[str, str]] = {
        "magnitude": "|a| of the map (channels pooled)",
        "aggregation": "mean over explained rows; all-zero maps left out and counted",
    }

    def per_row(self, values: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.attributions is not None
        scores = self.per_row(magnitudes(evidence.attributions))
        defined = ~np.isnan(scores)
        if not defined.any():
            return MetricResult.undefined("every map is zero: nothing to measure")
        zero = int((~defined).sum())
        note = f"{zero} of {len(scores)} maps are zero and left out" if zero else ""
        return MetricResult(float(scores[defined].mean()), note)


@metric_registry.register("sparseness")
class Sparseness(_Complexity):
    """Gini index of |a| per row (Chalasani et al. 2020); higher is sparser."""

    value_range = (0.0, 1.0)

    unit = "Gini index"

    def per_row(self, values: np.ndarray) -> np.ndarray:
        return gini(values)


@metric_registry.register("complexity")
class Complexity(_Complexity):
    """Entropy of |a| / Σ|a| per row, in nats (Bhatt et al. 2020); lower is simpler."""

    higher_is_better: ClassVar[bool] = False
    unit = "nats"

    def per_row(self, values: np.ndarray) -> np.ndarray:
        return entropy(values)


class EffectiveComplexityParams(Params):
    threshold: float = Field(
        1e-5, ge=0, lt=1, description="share of the row's largest |a| a feature must exceed"
    )


@metric_registry.register("effective_complexity")
class EffectiveComplexity(_Complexity):
    """Share of features with |a| above ``threshold`` × the row's largest; lower is simpler."""

    value_range = (0.0, 1.0)

    higher_is_better: ClassVar[bool] = False
    unit = "share of features"
    params: EffectiveComplexityParams

    def per_row(self, values: np.ndarray) -> np.ndarray:
        return share_above(values, self.params.threshold)
