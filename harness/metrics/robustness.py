"""Robustness: how much the explanation changes when the input changes a little.

Each explained row ``x`` gets ``samples`` perturbed copies ``x' = x + δ``, drawn from the
metric's ``seed`` (the same copies for every explainer of a cell): ``noise = "uniform"``
draws each δ_i from U(−r, r) (captum's ``sensitivity_max`` default), ``"gaussian"`` from
N(0, r²), where r is ``radius`` in input units (``scale = "absolute"``) or ``radius`` ×
the training standard deviation of that input position (``scale = "train_std"``, the
default, so one radius means the same on every feature of a table). The cell's explainer
explains every copy for the row's explained class, all copies of all rows in batches.
Per row the score below, then the mean over rows; lower is better for all.

- ``max_sensitivity`` / ``avg_sensitivity`` (Yeh et al. 2019): the maximum / mean over
  copies of ``‖a(x) − a(x')‖ / ‖a(x)‖`` (``norm``: Frobenius or max-abs, over the flat
  map); a zero ``a(x)`` divides by 1, as captum does. ``max_sensitivity`` equals
  ``captum.metrics.sensitivity_max`` on the same copies (tested); Quantus's
  ``MaxSensitivity``/``AvgSensitivity`` divide the same way except for a zero map, which
  Quantus divides by zero (``numerator / denominator``, no guard: inf, or NaN for 0/0).
- ``local_lipschitz`` (Alvarez-Melis & Jaakkola 2018): the maximum over copies of
  ``‖a(x) − a(x')‖₂ / ‖x − x'‖₂`` (input units), Gaussian copies by default as in Quantus's
  ``LocalLipschitzEstimate``.
- ``relative_input_stability`` (Agarwal et al. 2022; tables): the maximum over copies
  that keep the model's predicted class of ``‖(a − a')/a‖₂ / max(‖(x − x')/x‖₂, ε)``, with
  a zero denominator entry replaced by ε = 1e-6 (OpenXAI's and Quantus's convention).

On the same copies all four equal Quantus's (``MaxSensitivity``, ``AvgSensitivity``,
``LocalLipschitzEstimate``, ``RelativeInputStability``; tested) — with Quantus's
``normalise=False`` and ``abs=False``: by default Quantus normalises every map first
(divides it by its largest magnitude), which changes the Lipschitz estimate: on the
test's 10 rows (a small tanh network, signed gradient maps, the same copies) 0.0852
here and with ``normalise=False``, 0.600 with Quantus's default, rows 5.9–9.2× apart.
Other differences: a zero map (above), and Quantus's relative input stability takes
``np.max`` over copies including the NaN of a copy that changed the class, so one such
copy makes its row NaN; here such copies are left out.
The sensitivities are computed here rather than through captum's ``sensitivity_max``:
captum has no average, and calls the explanation function under ``torch.no_grad()``,
where explainers that take gradients themselves fail (pytorch-grad-cam's CAMs raise
"element 0 of tensors does not require grad"; checked); equality with captum's maximum
is tested instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.datasets.base import Modality
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily

#: OpenXAI's and Quantus's floor for relative changes (relative input stability).
RELATIVE_FLOOR = 1e-6


class PerturbationParams(Params):
    noise: Literal["uniform", "gaussian"] = Field(
        "uniform", description="δ ~ U(−r, r) or N(0, r²) per input value"
    )
    radius: float = Field(0.05, gt=0, le=100, description="r, in the unit of `scale`")
    scale: Literal["train_std", "absolute"] = Field(
        "train_std", description="r relative to each input's training SD, or in input units"
    )
    samples: int = Field(10, ge=1, le=1000, description="perturbed copies per explained row")
    seed: int = Field(0, ge=0, description="draws the copies (the same for every explainer)")


class SensitivityParams(PerturbationParams):
    norm: Literal["fro", "inf"] = Field("fro", description="norm over the flattened map")


class LipschitzParams(PerturbationParams):
    noise: Literal["uniform", "gaussian"] = Field(
        "gaussian", description="δ ~ U(−r, r) or N(0, r²) per input value"
    )
    radius: float = Field(0.1, gt=0, le=100, description="r, in the unit of `scale`")


@dataclass(frozen=True)
class Perturbed:
    """Explained rows, their copies and the maps of both: ``inputs`` (rows, …),
    ``copies`` (samples, rows, …), ``maps`` (rows, features), ``copy_maps``
    (samples, rows, features) — maps flattened, float64."""

    inputs: np.ndarray
    copies: np.ndarray
    maps: np.ndarray
    copy_maps: np.ndarray


def perturbed_copies(
    inputs: np.ndarray, params: PerturbationParams, train_std: np.ndarray | None
) -> np.ndarray:
    """``params.samples`` perturbed copies of ``inputs``: (samples, rows, …), float32."""
    rng = np.random.default_rng(params.seed)
    shape = (params.samples, *inputs.shape)
    radius = np.float32(params.radius)
    if params.noise == "uniform":  # drawn in float32, as the inputs are (2× faster)
        delta = rng.random(shape, dtype=np.float32) * (2 * radius) - radius
    else:
        delta = rng.standard_normal(shape, dtype=np.float32) * radius
    if params.scale == "train_std":
        if train_std is None:
            raise ValueError("scale = 'train_std' needs the training split's statistics")
        delta *= train_std.astype(np.float32)
    delta += inputs[None]
    return delta


def explained_perturbed(evidence: Evidence, params: PerturbationParams) -> Perturbed:
    """The rows' copies (see :func:`perturbed_copies`) and the cell's explanation of each,
    for the row's explained class."""
    assert evidence.inputs is not None and evidence.targets is not None
    assert evidence.attributions is not None and evidence.reexplain is not None
    inputs = np.asarray(evidence.inputs, dtype=np.float32)
    rows = len(inputs)
    copies = perturbed_copies(inputs, params, evidence.train_std)
    flat_copies = copies.reshape(params.samples * rows, *inputs.shape[1:])
    positions = np.tile(np.arange(rows), params.samples)
    targets = np.asarray(evidence.targets)[positions]
    copy_maps = evidence.reexplain(flat_copies, targets, positions)
    maps = np.asarray(evidence.attributions, dtype=np.float64).reshape(rows, -1)
    return Perturbed(inputs, copies, maps, copy_maps.reshape(params.samples, rows, -1))


def flat_norm(values: np.ndarray, kind: str) -> np.ndarray:
    """Norm over the last axis: Frobenius (L2) or max-abs."""
    if kind == "inf":
        return np.abs(values).max(axis=-1)
    return np.sqrt((values**2).sum(axis=-1))


def sensitivities(perturbed: Perturbed, norm: str) -> np.ndarray:
    """``‖a(x) − a(x')‖ / ‖a(x)‖`` per copy and row (samples, rows); zero ``‖a(x)‖`` → 1."""
    change = flat_norm(perturbed.maps[None] - perturbed.copy_maps, norm)
    size = flat_norm(perturbed.maps, norm)
    return change / np.where(size == 0, 1.0, size)[None]


class _Robustness(Metric):
    family: ClassVar[MetricFamily] = "robustness"
    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "reexplain"})
    fixed_conventions: ClassVar[dict[str, str]] = {
        "copies": "x + δ per input value, drawn from `seed`, the same for every explainer",
        "class": "each copy explained for its row's explained class",
        "aggregation": "per row over copies, then mean over rows",
    }
    params: PerturbationParams
    #: why a row has no value (the note counts such rows)
    undefined_reason: ClassVar[str] = "no copy differs from its row"

    def per_row(self, perturbed: Perturbed, evidence: Evidence) -> np.ndarray:
        raise NotImplementedError

    def compute(self, evidence: Evidence) -> MetricResult:
        perturbed = explained_perturbed(evidence, self.params)
        scores = self.per_row(perturbed, evidence)
        defined = ~np.isnan(scores)
        if not defined.any():
            return MetricResult.undefined(self.undefined_reason)
        left = int((~defined).sum())
        note = f"{left} of {len(scores)} rows left out: {self.undefined_reason}" if left else ""
        return MetricResult(float(scores[defined].mean()), note)


class _Sensitivity(_Robustness):
    unit = "relative change"
    params: SensitivityParams
    #: how the copies' relative changes of one row are summarised
    over_copies: ClassVar[Callable[..., np.ndarray]]

    def per_row(self, perturbed: Perturbed, evidence: Evidence) -> np.ndarray:
        return type(self).over_copies(sensitivities(perturbed, self.params.norm), axis=0)


@metric_registry.register("max_sensitivity")
class MaxSensitivity(_Sensitivity):
    """Largest relative change of the map over perturbed copies (Yeh et al. 2019)."""

    over_copies = np.max


@metric_registry.register("avg_sensitivity")
class AvgSensitivity(_Sensitivity):
    """Mean relative change of the map over perturbed copies (Yeh et al. 2019)."""

    over_copies = np.mean


@metric_registry.register("local_lipschitz")
class LocalLipschitz(_Robustness):
    """Largest ‖a(x) − a(x')‖₂ / ‖x − x'‖₂ over perturbed copies (Alvarez-Melis &
    Jaakkola 2018)."""

    unit = "attribution per input unit"
    params: LipschitzParams

    def per_row(self, perturbed: Perturbed, evidence: Evidence) -> np.ndarray:
        rows = len(perturbed.inputs)
        change = flat_norm(perturbed.maps[None] - perturbed.copy_maps, "fro")
        moved = perturbed.copies.reshape(len(perturbed.copies), rows, -1).astype(np.float64)
        step = flat_norm(moved - perturbed.inputs.reshape(1, rows, -1), "fro")
        ratio = np.where(step > 0, change / np.where(step > 0, step, 1.0), -np.inf)
        return finite_max(ratio)


@metric_registry.register("relative_input_stability")
class RelativeInputStability(_Robustness):
    """Largest relative change of the map over the relative change of the input, among
    copies that keep the predicted class (Agarwal et al. 2022); tables."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "reexplain", "model"})
    unit = "ratio of relative changes"
    undefined_reason = "every perturbed copy changed the predicted class"

    def per_row(self, perturbed: Perturbed, evidence: Evidence) -> np.ndarray:
        assert evidence.predict_proba is not None
        samples, rows = perturbed.copies.shape[:2]
        x = perturbed.inputs.reshape(rows, -1).astype(np.float64)
        moved = perturbed.copies.reshape(samples, rows, -1).astype(np.float64)
        a = perturbed.maps
        nominator = flat_norm((a[None] - perturbed.copy_maps) / floored(a)[None], "fro")
        denominator = flat_norm((x[None] - moved) / floored(x)[None], "fro")
        ratio = nominator / np.maximum(denominator, RELATIVE_FLOOR)
        before = evidence.predict_proba(perturbed.inputs).argmax(axis=1)
        flat_copies = perturbed.copies.reshape(samples * rows, *perturbed.inputs.shape[1:])
        after = evidence.predict_proba(flat_copies).argmax(axis=1).reshape(samples, rows)
        return finite_max(np.where(after == before[None], ratio, -np.inf))


def finite_max(values: np.ndarray) -> np.ndarray:
    """Maximum over copies (axis 0) of the values kept (others −inf); NaN where none is."""
    best = values.max(axis=0)
    return np.where(np.isinf(best), np.nan, best)


def floored(values: np.ndarray) -> np.ndarray:
    """``values`` with exact zeros replaced by :data:`RELATIVE_FLOOR` (a divisor)."""
    return values + (values == 0) * RELATIVE_FLOOR
