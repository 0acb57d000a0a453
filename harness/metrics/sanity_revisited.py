"""MPRT repaired (Hedström et al. 2023, "Sanity Checks Revisited: An Exploration to
Repair the Model Parameter Randomisation Test"; Quantus's ``SmoothMPRT`` and
``EfficientMPRT``).

- ``smprt`` (lower is better): MPRT on *denoised* explanations — each map is the mean of
  the explainer's maps of ``samples`` copies of the input, ``samples − 1`` with Gaussian
  noise N(0, σ²), σ = ``noise`` × (max − min of that input), and the input itself — for
  the original model and after each layer is re-initialised (``order``: ``bottom_up``,
  cumulative from the input side, the paper's recommendation; ``top_down``;
  ``independent``). Similarity per row: Spearman's ρ of |map| (so Quantus's
  normalisation, a positive scale, does not matter). The noise is drawn once per model
  from ``seed`` — the same copies for every model state, so the layers differ by the
  model alone. Score: the mean over layers of the mean over rows (``value = "mean"``;
  Quantus's ``return_average_correlation`` also averages in the unrandomised model's
  own similarity, its key ``"original"`` not being the ``"orig"`` it skips) or the fully
  randomised model's (``"last"``). Stored per layer as ``<id>.similarity``.
- ``emprt`` (higher is better): the relative rise in explanation complexity from the
  original to the fully randomised model (every layer re-initialised), per row
  (H(a_random) − H(a)) / H(a), H the Shannon entropy (nats) of the map's histogram with
  ``bins`` equal-width bins over its own range (Quantus's ``discrete_entropy``, its
  default of 100 bins; no absolute value, no normalisation); the mean over rows. A
  constant map (H = 0) is left out and counted.

Layers are those holding parameters, re-initialised by
:func:`~harness.metrics.randomisation.randomise` (torch seeded with ``seed`` before each:
Quantus seeds with its ``seed + 1``). Equal to
Quantus 0.6 on the same explanation function and noise (tested).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy.stats import entropy
from torch import nn

from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.metrics.randomisation import (
    Similarity,
    curve_result,
    mean_defined,
    parameterised_layers,
    randomised_models,
    similarity_curve,
)
from harness.records import MetricFamily, MetricRole


class SmoothMPRTParams(Params):
    samples: int = Field(
        50, ge=1, le=10_000, description="maps averaged per row (the input itself is the last)"
    )
    noise: float = Field(
        0.1, ge=0, le=100, description="noise SD as a share of each input's range (max − min)"
    )
    order: Literal["bottom_up", "top_down", "independent"] = Field(
        "bottom_up", description="cumulative from the input side or the output, or one at a time"
    )
    value: Literal["mean", "last"] = Field(
        "mean", description="mean over layers, or the fully randomised model's similarity"
    )
    seed: int = Field(0, ge=0, description="draws the noise and the re-initialised weights")


class EfficientMPRTParams(Params):
    bins: int = Field(100, ge=2, le=100_000, description="histogram bins per map (equal width)")
    seed: int = Field(0, ge=0, description="draws the re-initialised weights")


def _layers(network: nn.Module, order: str) -> list[str]:
    layers = parameterised_layers(network)
    return layers[::-1] if order == "top_down" else layers


@metric_registry.register("smprt")
class SmoothMPRT(Metric):
    """Smooth MPRT (Hedström et al. 2023): MPRT on noise-averaged maps; lower is better."""

    value_range = (-1.0, 1.0)
    role: ClassVar[MetricRole] = "randomisation_curve"
    family: ClassVar[MetricFamily] = "randomisation"
    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "reexplain"})
    unit = "similarity"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "layers": "modules holding parameters",
        "denoising": "mean map over noisy copies (the same noise for every model state) "
        "and the input itself",
        "similarity": "Spearman of |map| per row",
        "class": "the originally explained class",
    }
    params: SmoothMPRTParams

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.reexplain is not None and evidence.inputs is not None
        assert evidence.targets is not None
        p = self.params
        network = evidence.reexplain.network
        layers = _layers(network, p.order)
        if not layers:
            return MetricResult.undefined("the model has no layers with parameters to randomise")
        inputs = np.asarray(evidence.inputs, dtype=np.float32)
        compare = Similarity("spearman_abs", self._smoothed(evidence, inputs, network))
        points, undefined = similarity_curve(
            compare(self._smoothed(evidence, inputs, changed))
            for _, changed in randomised_models(network, layers, p.order != "independent", p.seed)
        )
        return curve_result(points, layers, undefined, p.value == "last", flag_unchanged=False)

    def _smoothed(self, evidence: Evidence, inputs: np.ndarray, network: nn.Module) -> np.ndarray:
        """The mean map over ``samples`` copies of ``inputs`` explained on ``network``:
        the noisy ones first (drawn afresh from ``seed``: the same for every network),
        the input itself last."""
        assert evidence.reexplain is not None and evidence.targets is not None
        p = self.params
        rng = np.random.default_rng(p.seed)
        axes = tuple(range(1, inputs.ndim))
        spread = p.noise * (
            inputs.max(axis=axes, keepdims=True) - inputs.min(axis=axes, keepdims=True)
        )
        total: np.ndarray | None = None
        for sample in range(p.samples):
            last = sample == p.samples - 1
            noise = 0.0 if last else rng.standard_normal(inputs.shape) * spread
            copies = (inputs + noise).astype(np.float32)
            maps = evidence.reexplain(copies, evidence.targets, network=network)
            total = maps / p.samples if total is None else total + maps / p.samples
        assert total is not None
        return total


def histogram_entropy(maps: np.ndarray, bins: int) -> np.ndarray:
    """Shannon entropy (nats) of each map's histogram, ``bins`` equal-width bins over the
    map's own range (numpy's ``histogram``, as Quantus's ``discrete_entropy``)."""
    flat = maps.reshape(len(maps), -1)
    return np.array([entropy(np.histogram(row, bins=bins)[0]) for row in flat])


@metric_registry.register("emprt")
class EfficientMPRT(Metric):
    """Efficient MPRT (Hedström et al. 2023): relative rise of the maps' histogram entropy
    from the original to the fully randomised model; higher is better."""

    family: ClassVar[MetricFamily] = "randomisation"
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "reexplain"})
    unit = "relative rise of entropy"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "model": "every layer holding parameters re-initialised",
        "complexity": "Shannon entropy (nats) of the map's histogram, equal-width bins over "
        "its range; no absolute value, no normalisation",
        "class": "the originally explained class",
        "value": "mean over rows of (H(random) − H(original)) / H(original)",
    }
    params: EfficientMPRTParams

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.reexplain is not None
        if not parameterised_layers(evidence.reexplain.network):
            return MetricResult.undefined("the model has no layers with parameters to randomise")
        value, undefined = mean_defined(self.row_values(evidence))
        if np.isnan(value):
            return MetricResult.undefined("the maps are constant (entropy 0): no rise defined")
        note = f"{undefined} constant maps (entropy 0) left out" if undefined else ""
        return MetricResult(value, note)

    def row_values(self, evidence: Evidence) -> np.ndarray:
        """Per row, (H(random) − H(original)) / H(original); NaN for a constant map."""
        assert evidence.reexplain is not None and evidence.attributions is not None
        assert evidence.inputs is not None and evidence.targets is not None
        network = evidence.reexplain.network
        layers = parameterised_layers(network)
        if not layers:
            return np.full(len(evidence.inputs), np.nan)
        inputs = np.asarray(evidence.inputs, dtype=np.float32)
        *_, (_, randomised) = randomised_models(network, layers, True, self.params.seed)
        changed = evidence.reexplain(inputs, evidence.targets, network=randomised)
        before = histogram_entropy(np.asarray(evidence.attributions), self.params.bins)
        after = histogram_entropy(changed, self.params.bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(before > 0, (after - before) / before, np.nan)
