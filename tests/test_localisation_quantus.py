"""Differential tests against Quantus where its definitions match ours.

Deliberate differences (see the README): Quantus breaks ties in the rank metrics by
``argsort`` order (we share tied slots), counts a constant map as a pointing-game hit
(we count a miss) and can normalise over the batch (we never do). So the comparison uses
continuous maps, non-negative for mass accuracy, and Quantus's normalisation off.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from harness.metrics import Evidence, metric_registry

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    quantus = pytest.importorskip(
        "quantus",
        reason="quantus (the [test] extra) cannot be imported; its opencv needs libGL.so.1",
        exc_type=ImportError,
    )


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(7)
    n = 24
    maps = rng.random((n, 1, 32, 32))  # continuous: no ties
    masks = np.zeros((n, 1, 32, 32))
    for i in range(n):
        r, c = rng.integers(0, 26, size=2)
        h, w = rng.integers(2, 7, size=2)
        masks[i, 0, r : r + h, c : c + w] = 1
    inputs = rng.random((n, 1, 32, 32))
    return maps, masks, inputs


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        ("relevance_rank_accuracy", "RelevanceRankAccuracy"),
        ("relevance_mass_accuracy", "RelevanceMassAccuracy"),
    ],
)
def test_equal_to_quantus_per_image(batch, ours: str, reference: str) -> None:
    maps, masks, inputs = batch
    metric = getattr(quantus, reference)(
        normalise=False, abs=False, disable_warnings=True, display_progressbar=False
    )
    expected = metric(
        model=None, x_batch=inputs, y_batch=np.zeros(len(maps), int), a_batch=maps,
        s_batch=masks, channel_first=True,
    )  # fmt: skip
    mine = metric_registry.get(ours)()
    for i, value in enumerate(expected):
        evidence = Evidence(attributions=maps[i : i + 1, 0], masks=masks[i : i + 1, 0] > 0)
        assert mine.compute(evidence).value == pytest.approx(value, abs=1e-12)
