"""ROAD, remove and debias (Rong et al. 2022): removal curves whose removed pixels are
filled by noisy linear imputation, so the filled image leaks less of the removed shape
than a constant fill does (images).

At each removed fraction p of ``percentages`` (0 — the unperturbed image — included by
default), the ⌊p·N + ½⌋ pixels (all channels together) ranked highest (``road_morf``,
most relevant first) or lowest (``road_lerf``, least relevant first) by the map are
removed and imputed (:mod:`harness.metrics.linear_imputation`, noise ``noise`` drawn
from ``seed``), and the model scores each image: the probability of the explained class
(``curve = "probability"``), or 1 when the predicted class is still the explained one
(``"correct"``, Quantus's ``ROAD`` curve against the explained class). The score is the
curve's area by the trapezoid rule over p, divided by the span of p — a mean height —
averaged over images. MoRF: lower is better (removing what the map ranks first should
hurt); LeRF: higher is better. Ties in the map are broken by the fixed permutation the
deletion metrics use. Each score stores its mean curve (``<id>.curve``, ``.fractions``).

Quantus's ``ROAD`` ranks the map broadcast to every channel (each channel value its own
feature) and reports the curve without an area; on one-channel images and a map without
ties, with ``noise = 0``, its curve equals ``curve = "correct"`` here (tested).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from harness import artifacts
from harness.batching import rows_per_batch
from harness.component import Params
from harness.datasets.base import Modality
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.metrics.faithfulness import rank_of, ranking
from harness.metrics.linear_imputation import impute
from harness.records import MetricFamily


class ROADParams(Params):
    percentages: list[float] = Field(
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        min_length=2,
        description="removed fractions of the pixels, ascending, each in [0, 1)",
    )
    noise: float = Field(0.01, ge=0, le=10, description="σ of the noise added to imputed pixels")
    curve: Literal["probability", "correct"] = Field(
        "probability", description="the explained class's probability, or 1 if still predicted"
    )
    seed: int = Field(0, ge=0, description="draws the imputation noise")

    @field_validator("percentages")
    @classmethod
    def _ascending_fractions(cls, values: list[float]) -> list[float]:
        if any(not 0 <= v < 1 for v in values) or values != sorted(set(values)):
            raise ValueError("percentages must be distinct fractions in [0, 1), ascending")
        return values


def road_curves(evidence: Evidence, params: ROADParams, *, most_relevant_first: bool) -> np.ndarray:
    """The curve of each explained image at each fraction: (images, fractions)."""
    assert evidence.inputs is not None and evidence.targets is not None
    assert evidence.attributions is not None and evidence.predict_proba is not None
    x = np.asarray(evidence.inputs, dtype=np.float32)
    maps = np.asarray(evidence.attributions, dtype=np.float64)
    order = ranking(maps if most_relevant_first else -maps)
    rank = rank_of(order)
    targets = np.asarray(evidence.targets)
    generator = torch.Generator().manual_seed(params.seed)
    size = rows_per_batch(x.shape[1:])
    curves = np.empty((len(x), len(params.percentages)))
    for j, fraction in enumerate(params.percentages):
        removed = (rank < int(np.floor(fraction * order.shape[1] + 0.5))).reshape(
            len(x), *x.shape[2:]
        )
        for start in range(0, len(x), size):
            part = slice(start, start + size)
            filled = impute(x[part], removed[part], params.noise, generator)
            probabilities = evidence.predict_proba(filled)
            chosen = targets[part]
            if params.curve == "probability":
                curves[part, j] = probabilities[np.arange(len(chosen)), chosen]
            else:
                curves[part, j] = probabilities.argmax(axis=1) == chosen
    return curves


class _ROAD(Metric):
    value_range = (0.0, 1.0)
    family: ClassVar[MetricFamily] = "faithfulness"
    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "model"})
    most_relevant_first: ClassVar[bool] = True
    fixed_conventions: ClassVar[dict[str, str]] = {
        "removal": "pixels (all channels together) by map rank; ties: fixed permutation (seed 0)",
        "imputation": "noisy linear (neighbours 1/6 direct, 1/12 diagonal), batched CG",
        "area": "trapezoid over the removed fraction / its span (mean height)",
    }
    params: ROADParams

    def compute(self, evidence: Evidence) -> MetricResult:
        curves = road_curves(evidence, self.params, most_relevant_first=self.most_relevant_first)
        fractions = np.array(self.params.percentages)
        span = fractions[-1] - fractions[0]
        areas = np.trapezoid(curves, fractions, axis=1) / span
        arrays = {artifacts.CURVE: curves.mean(axis=0), "fractions": fractions}
        return MetricResult(float(areas.mean()), arrays=arrays)


@metric_registry.register("road_morf")
class ROADMoRF(_ROAD):
    """ROAD, most relevant first removed (Rong et al. 2022): mean curve height; lower is
    better."""

    higher_is_better: ClassVar[bool] = False


@metric_registry.register("road_lerf")
class ROADLeRF(_ROAD):
    """ROAD, least relevant first removed (Rong et al. 2022): mean curve height; higher
    is better."""

    most_relevant_first: ClassVar[bool] = False
