"""Infidelity (Yeh et al. 2019) through ``captum.metrics.infidelity``, normalised.

For perturbations I of an explained row x, infidelity is E_I[(β·Iᵀa − (f(x) − f(x − I)))²]
with f the model's probability of the explained class and β the scale that minimises it
(``normalize = True``, captum#613/PR#639: without it the value depends on the map's
scale, so maps of different methods could not be compared). Lower is better.

Perturbations (``perturbation``), ``samples`` per row, drawn from ``seed`` — the same for
every explainer of a cell:

- ``"gaussian"``: I ~ N(0, r²) per input value, r = ``radius`` in input units or ×
  the training standard deviation of each input position (``scale``), as Yeh et al.'s
  noisy-baseline perturbation;
- ``"subset"``: each feature (pixel, all channels together) is replaced by ``baseline``
  (zeros or the training mean) with probability ``fraction``: I = (x − baseline) on the
  chosen features.

An image map (one value per pixel) is applied to every channel: Iᵀa = Σ_c Σ_p I_cp·a_p.

A map multiplied by the input, a = (x − b) ∘ g (Integrated Gradients, DeepLIFT, input ×
gradient, SHAP, single-feature ablation: the explainer gives its baseline b, see
``Evidence.input_baseline``), is paired with I / (x − b) instead of I (a zero
denominator counts as 1) — captum's ``infidelity_perturb_func_decorator(
multiply_by_inputs=True)``. So for a linear model f = w·x, the exact map of either kind
(w, or w ∘ (x − b)) scores 0; without it, w ∘ x was penalised (0.07–0.09) and gradient
maps favoured.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from harness.batching import rows_per_batch
from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily


class InfidelityParams(Params):
    perturbation: Literal["gaussian", "subset"] = Field(
        "gaussian", description="Gaussian noise, or a random subset set to the baseline"
    )
    radius: float = Field(0.1, gt=0, le=100, description="gaussian: σ, in the unit of `scale`")
    scale: Literal["train_std", "absolute"] = Field(
        "train_std", description="gaussian: σ relative to each input's training SD, or absolute"
    )
    fraction: float = Field(0.1, gt=0, lt=1, description="subset: chance a feature is replaced")
    baseline: Literal["zero", "mean"] = Field("zero", description="subset: the replacement")
    samples: int = Field(20, ge=1, le=10_000, description="perturbations per explained row")
    seed: int = Field(0, ge=0, description="draws the perturbations")


def perturbation_function(evidence: Evidence, params: InfidelityParams):
    """captum's ``perturb_func``: inputs (tensor) → (I, inputs − I), drawn from ``seed``."""
    rng = np.random.default_rng(params.seed)
    std = evidence.train_std if params.scale == "train_std" else None
    mean = 0.0 if params.baseline == "zero" else evidence.train_mean
    if mean is None:
        raise ValueError("baseline = 'mean' needs the training mean")

    def perturb(
        inputs: torch.Tensor, baselines: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = inputs.numpy().astype(np.float64)
        if params.perturbation == "gaussian":
            noise = rng.normal(0.0, params.radius, x.shape)
            change = noise * std if std is not None else noise
        else:
            pixels = x.shape[:1] + x.shape[2:] if x.ndim == 4 else x.shape
            chosen = rng.random(pixels) < params.fraction
            if x.ndim == 4:
                chosen = chosen[:, None]
            reference = (
                np.zeros_like(x) if params.baseline == "zero" else np.broadcast_to(mean, x.shape)
            )
            change = np.where(chosen, x - reference, 0.0)
        paired = change
        if baselines is not None:  # a map multiplied by the input: I / (x − b)
            span = x - baselines.numpy().astype(np.float64)
            paired = change / np.where(span == 0, 1.0, span)
        return torch.from_numpy(paired), torch.from_numpy(x - change)

    return perturb


@metric_registry.register("infidelity")
class Infidelity(Metric):
    """Normalised infidelity (Yeh et al. 2019; captum): how well Iᵀa predicts the change
    of the explained class's probability under perturbations I; lower is better."""

    family: ClassVar[MetricFamily] = "faithfulness"
    #: 2: maps multiplied by the input are paired with I / (x − baseline)
    version: ClassVar[int] = 2

    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "model"})
    unit = "squared probability"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "implementation": "captum.metrics.infidelity, normalize=True (β per row)",
        "output": "probability of the explained class",
        "image maps": "one value per pixel, applied to every channel",
        "maps multiplied by the input": "paired with I / (x − baseline), as captum's "
        "multiply_by_inputs",
    }
    params: InfidelityParams

    def compute(self, evidence: Evidence) -> MetricResult:
        from captum.metrics import infidelity

        assert evidence.inputs is not None and evidence.targets is not None
        assert evidence.attributions is not None and evidence.predict_proba is not None
        predict = evidence.predict_proba
        x = torch.from_numpy(np.asarray(evidence.inputs, dtype=np.float64))
        maps = np.asarray(evidence.attributions, dtype=np.float64)
        if x.ndim == 4:  # one value per pixel, the same on every channel
            maps = np.repeat(maps[:, None], x.shape[1], axis=1)
        attributions = torch.from_numpy(maps)

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            probabilities = predict(inputs.numpy().astype(np.float32))
            return torch.from_numpy(np.asarray(probabilities, dtype=np.float64))

        baselines = None
        if evidence.input_baseline is not None:
            shaped = np.broadcast_to(np.asarray(evidence.input_baseline, np.float64), x.shape)
            baselines = torch.from_numpy(np.ascontiguousarray(shaped))
        values = infidelity(
            forward,
            perturbation_function(evidence, self.params),
            x,
            attributions,
            baselines=baselines,
            target=torch.as_tensor(np.asarray(evidence.targets)),
            n_perturb_samples=self.params.samples,
            max_examples_per_batch=min(
                len(x) * self.params.samples, max(len(x), rows_per_batch(tuple(x.shape[1:])))
            ),
            normalize=True,
        )
        return MetricResult(float(values.mean()))
