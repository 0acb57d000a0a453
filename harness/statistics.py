"""The one statistics module: percentile-bootstrap intervals, used by leaderboards,
claims and figures alike (same resampling, same constants, same generator)."""

from __future__ import annotations

import math

import numpy as np

#: Two-sided confidence of every interval the harness reports.
CONFIDENCE = 0.95
#: Bootstrap resamples per interval.
RESAMPLES = 10_000


def resample_indices(n: int, seed: int = 0, resamples: int = RESAMPLES) -> np.ndarray:
    """``resamples`` × ``n`` indices drawn with replacement from a generator seeded with
    ``seed`` (the same seed gives the same resamples: intervals are reproducible)."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def percentile_interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap ``samples`` (percentile method)."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``; NaNs when fewer than 2."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    means = values[resample_indices(len(values), seed, resamples)].mean(axis=1)
    return percentile_interval(means, confidence)
