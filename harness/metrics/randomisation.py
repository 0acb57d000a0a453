"""Randomisation sanity checks: does the explanation depend on the model and on the class?

- ``mprt``, model parameter randomisation (Adebayo et al. 2018): the layers with
  parameters of the explained network, top (output) layer first, are re-initialised
  (``reset_parameters``, the layer's own initialisation, torch seeded with ``seed``
  before each layer — as Quantus's ``MPRT`` does with its ``seed + 1``; equal per layer,
  tested), cumulatively (``order = "cascading"``) or one at a time (``"independent"``),
  and after each step the cell's explainer explains the same rows for the same classes on
  the changed copy. The similarity of each new map to the original, averaged over rows,
  gives one point per layer (stored as ``<id>.similarity`` with ``<id>.layers``); the
  score is their mean (lower is better: an explanation of the model should lose its
  likeness as the model is destroyed). A map that stays the same at every layer
  (similarity 1: oracle, centre, a seeded random map) is flagged in the note.
- ``random_logit`` (Sixt et al. 2020): the similarity of the map for the explained class
  to the map for another class drawn uniformly (seeded) among the rest, averaged over
  rows; lower is better. With two classes and ``spearman_abs``, a method whose two maps
  are each other's negatives (SHAP values of probabilities: φ₁ = −φ₀) scores 1 — true
  of the magnitudes it compares.

Similarity per row: ``spearman_abs`` — Spearman's ρ of the flattened |a| (average ranks;
undefined for a constant map, left out and counted) — or ``ssim`` for images (scikit-image's
2-D ``structural_similarity`` on the two maps, data range the larger of their ranges).
Quantus's ``ssim`` is not the same: its ``RandomLogit`` flattens each map first (its
windows then run across rows) and takes the range of both maps together — on 64 pairs
of smooth 28×28 maps the mean is 0.414 here and 0.387 in Quantus, pairs up to 0.19
apart.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field
from scipy.stats import rankdata
from torch import nn

from harness import artifacts
from harness.component import Params
from harness.errors import optional_import
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily, MetricRole

#: Similarity at or above this at every layer: the explanation ignores the model.
UNCHANGED = 1 - 1e-9


def centred_ranks(maps: np.ndarray) -> np.ndarray:
    """Average ranks of each row's flattened |a|, minus the row's mean rank (float64)."""
    ranks = rankdata(np.abs(maps.reshape(len(maps), -1)), axis=1)
    return ranks - ranks.mean(axis=1, keepdims=True)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation per row of centred ranks; NaN where either row is constant."""
    scale = np.sqrt((a**2).sum(axis=1) * (b**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, (a * b).sum(axis=1) / scale, np.nan)


def spearman_abs(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Spearman's ρ of |first| and |second| per row (rows, …), average ranks; NaN where
    either row is constant."""
    return rank_correlation(centred_ranks(first), centred_ranks(second))


def ssim(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Structural similarity per image of maps (images, height, width); the data range is
    the larger of the two maps' ranges (NaN when both are constant)."""
    metrics = optional_import("skimage.metrics", "similarity = 'ssim'", "scikit-image")
    values = []
    for a, b in zip(first.astype(np.float64), second.astype(np.float64), strict=True):
        span = max(np.ptp(a), np.ptp(b))
        values.append(metrics.structural_similarity(a, b, data_range=span) if span else np.nan)
    return np.array(values)


class SimilarityParams(Params):
    similarity: Literal["spearman_abs", "ssim"] = Field(
        "spearman_abs", description="per row: Spearman of |a|, or SSIM (images)"
    )
    seed: int = Field(0, ge=0, description="draws the re-initialised weights / other classes")


class MPRTParams(SimilarityParams):
    order: Literal["cascading", "independent"] = Field(
        "cascading", description="randomise layers cumulatively from the top, or one at a time"
    )
    steps: Literal["modules", "blocks"] = Field(
        "modules",
        description="one step per module holding parameters, or per transformer block (a "
        "ViT's blocks.N, every module in it at once; modules outside blocks one by one)",
    )


class Similarity:
    """Per-row similarity of maps to one batch of reference maps (see the module); the
    reference's ranks are computed once, however many maps it is compared with."""

    def __init__(self, kind: str, reference: np.ndarray) -> None:
        if kind == "ssim" and reference.ndim != 3:
            raise ValueError("similarity = 'ssim' compares image maps; use 'spearman_abs'")
        self.kind, self.reference = kind, reference
        self.ranks = centred_ranks(reference) if kind == "spearman_abs" else None

    def __call__(self, maps: np.ndarray) -> np.ndarray:
        if self.ranks is None:
            return ssim(self.reference, maps)
        return rank_correlation(self.ranks, centred_ranks(maps))


def parameterised_layers(network: nn.Module) -> list[str]:
    """Names of the modules that hold parameters themselves, in the order they were
    registered (input side first)."""
    return [
        name
        for name, module in network.named_modules()
        if any(True for _ in module.parameters(recurse=False))
    ]


def block_steps(layers: list[str]) -> list[str]:
    """``layers`` (module names) with the modules of each transformer block (``….blocks.N``
    and below) merged into one step named after the block, in first-seen order."""
    steps: list[str] = []
    for name in layers:
        parts = name.split(".")
        inside = [
            i for i in range(len(parts) - 1) if parts[i] == "blocks" and parts[i + 1].isdigit()
        ]
        step = ".".join(parts[: inside[0] + 2]) if inside else name
        if step not in steps:
            steps.append(step)
    return steps


def is_block(name: str) -> bool:
    """Whether ``name`` names a transformer block: ``….blocks.N``."""
    parts = name.split(".")
    return len(parts) >= 2 and parts[-2] == "blocks" and parts[-1].isdigit()


def randomise_all(module: nn.Module, seed: int) -> None:
    """:func:`randomise` every module inside ``module`` (itself included) that holds
    parameters."""
    for inner in module.modules():
        if any(True for _ in inner.parameters(recurse=False)):
            randomise(inner, seed)


def randomise(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module``'s own parameters from ``seed``: its ``reset_parameters``,
    else each parameter from N(0, its standard deviation)."""
    devices = [p.device for p in module.parameters() if p.device.type == "cuda"]
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(seed)
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
            return
        for parameter in module.parameters(recurse=False):
            parameter.normal_(0.0, float(parameter.std()) if parameter.numel() > 1 else 1.0)


def randomised_models(
    network: nn.Module, layers: list[str], cumulative: bool, seed: int
) -> Iterator[tuple[str, nn.Module]]:
    """For each of ``layers`` in turn, a copy of ``network`` with that layer re-initialised
    (:func:`randomise`, from ``seed``; a transformer block: every module in it holding
    parameters, :func:`randomise_all`) — on top of the layers before it (``cumulative``,
    cascading) or alone (independent). ``network`` itself is never changed."""
    changed = copy.deepcopy(network)
    for name in layers:
        if not cumulative:
            changed = copy.deepcopy(network)
        chosen = changed.get_submodule(name)
        randomise_all(chosen, seed) if is_block(name) else randomise(chosen, seed)
        yield name, changed


def similarity_curve(similarities: Iterable[np.ndarray]) -> tuple[np.ndarray, int]:
    """Per randomised model, the mean over rows of the similarities to the reference
    (each row's, :class:`Similarity`), and the most rows left out at any model (their map
    constant)."""
    curve, undefined = [], 0
    for per_row in similarities:
        value, missing = mean_defined(per_row)
        curve.append(value)
        undefined = max(undefined, missing)
    return np.array(curve), undefined


def curve_result(
    points: np.ndarray, layers: list[str], undefined: int, last: bool, flag_unchanged: bool
) -> MetricResult:
    """A similarity curve over ``layers`` as a score: its mean (or its ``last`` point),
    the curve stored as ``similarity`` with ``layers``, the rows left out in the note —
    and, with ``flag_unchanged``, a note when the map never changed."""
    arrays = {artifacts.SIMILARITY: points, artifacts.LAYERS: np.array(layers)}
    if np.isnan(points).all():
        return MetricResult(float("nan"), "the maps are constant: similarity undefined", arrays)
    notes = []
    if flag_unchanged and np.nanmin(points) >= UNCHANGED:
        notes.append("the explanation does not change when the model is randomised")
    if undefined:
        notes.append(f"up to {undefined} constant maps per layer left out")
    value = float(points[-1]) if last else float(np.nanmean(points))
    return MetricResult(value, "; ".join(notes), arrays)


def mean_defined(values: np.ndarray) -> tuple[float, int]:
    """Mean of the defined values and how many were undefined (NaN when none is)."""
    defined = values[~np.isnan(values)]
    return (float(defined.mean()) if len(defined) else float("nan")), int(np.isnan(values).sum())


@metric_registry.register("mprt")
class MPRT(Metric):
    """Model parameter randomisation test (Adebayo et al. 2018): mean similarity of the
    explanation to the randomised models' over the layers; lower is better."""

    value_range = (-1.0, 1.0)

    role: ClassVar[MetricRole] = "randomisation_curve"

    family: ClassVar[MetricFamily] = "randomisation"

    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "reexplain"})
    unit = "similarity"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "layers": "modules holding parameters, top (output) first",
        "randomisation": "reset_parameters (the layer's own initialisation), torch seeded "
        "with `seed` before each layer",
        "class": "the originally explained class",
        "value": "mean over layers of the mean similarity over rows",
    }
    params: MPRTParams

    def compute(self, evidence: Evidence) -> MetricResult:
        layers = self._steps(evidence)
        if not layers:
            return MetricResult.undefined("the model has no layers with parameters to randomise")
        points, undefined = similarity_curve(self._similarities(evidence, layers))
        return curve_result(points, layers, undefined, last=False, flag_unchanged=True)

    def row_values(self, evidence: Evidence) -> np.ndarray:
        """Per row, the mean over layers of its similarity (NaN where every layer's map
        was constant): :meth:`compute` on that row alone, in one pass."""
        layers = self._steps(evidence)
        rows = 0 if evidence.inputs is None else len(evidence.inputs)
        if not layers:
            return np.full(rows, np.nan)
        similarities = np.stack(list(self._similarities(evidence, layers)))
        counts = (~np.isnan(similarities)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, np.nansum(similarities, axis=0) / counts, np.nan)

    def _steps(self, evidence: Evidence) -> list[str]:
        """The randomised modules or blocks, top (output) first."""
        assert evidence.reexplain is not None
        layers = parameterised_layers(evidence.reexplain.network)
        return (block_steps(layers) if self.params.steps == "blocks" else layers)[::-1]

    def _similarities(self, evidence: Evidence, layers: list[str]) -> Iterator[np.ndarray]:
        """Per randomised model (layers top first), each row's similarity to its map."""
        assert evidence.reexplain is not None and evidence.attributions is not None
        assert evidence.inputs is not None and evidence.targets is not None
        compare = Similarity(self.params.similarity, np.asarray(evidence.attributions))
        inputs = np.asarray(evidence.inputs, dtype=np.float32)
        reexplain, targets = evidence.reexplain, evidence.targets
        cumulative = self.params.order == "cascading"
        for _, changed in randomised_models(
            reexplain.network, layers, cumulative, self.params.seed
        ):
            yield compare(reexplain(inputs, targets, network=changed))


@metric_registry.register("random_logit")
class RandomLogit(Metric):
    """Similarity of the explained class's map to a random other class's (Sixt et al.
    2020); lower is better."""

    value_range = (-1.0, 1.0)

    family: ClassVar[MetricFamily] = "randomisation"

    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "reexplain"})
    unit = "similarity"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "other class": "uniform among the classes other than the explained one, seeded",
        "value": "mean similarity over rows",
    }
    params: SimilarityParams

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.reexplain is not None and evidence.attributions is not None
        assert evidence.inputs is not None and evidence.targets is not None
        classes = self._classes(evidence)
        if classes < 2:
            return MetricResult.undefined("a single class: no other class to compare with")
        targets = np.asarray(evidence.targets)
        shift = np.random.default_rng(self.params.seed).integers(1, classes, len(targets))
        others = (targets + shift) % classes
        maps = evidence.reexplain(np.asarray(evidence.inputs, dtype=np.float32), others)
        compare = Similarity(self.params.similarity, np.asarray(evidence.attributions))
        value, undefined = mean_defined(compare(maps))
        if np.isnan(value):
            return MetricResult.undefined("the maps are constant: similarity undefined")
        note = f"{undefined} rows with a constant map left out" if undefined else ""
        if value >= UNCHANGED and not undefined:
            note = "the map does not change with the class (similarity 1)"
        return MetricResult(value, note)

    @staticmethod
    def _classes(evidence: Evidence) -> int:
        if evidence.y_score is not None:
            return int(evidence.y_score.shape[1])
        assert evidence.predict_proba is not None and evidence.inputs is not None
        return int(evidence.predict_proba(np.asarray(evidence.inputs[:1])).shape[1])
