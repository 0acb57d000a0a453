"""Localisation: does an attribution map point at the ground-truth mask? (images)

Every metric works on a batch at once: maps (images, H, W) at input resolution — the
explainers upsample their native maps — and boolean masks of the same shape. Per-image
values are averaged over the images whose mask is not empty; images with an empty mask
are left out and counted in the note, never scored as a hit or as zero. Sign conventions
are parameters; tie handling is fixed and recorded. See METRICS.md in the design notes.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily

Sign = Literal["raw", "positive", "abs"]


def apply_sign(maps: np.ndarray, sign: Sign) -> np.ndarray:
    """``raw`` as is, ``positive`` max(a, 0), ``abs`` |a| (float64)."""
    maps = np.asarray(maps, dtype=float)
    if sign == "positive":
        return np.maximum(maps, 0.0)
    if sign == "abs":
        return np.abs(maps)
    return maps


def summarise_images(per_image: np.ndarray, valid: np.ndarray, why: str) -> MetricResult:
    """Mean over the images where the per-image value is defined; the note counts the rest."""
    defined = valid & ~np.isnan(per_image)
    if not defined.any():
        return MetricResult.undefined(f"no image with a defined value ({why})")
    value = float(per_image[defined].mean())
    left_out = int((~defined).sum())
    note = f"{left_out} of {len(per_image)} images left out ({why})" if left_out else ""
    return MetricResult(value, note)


class _Localisation(Metric):
    """Checks shapes and masks, then ``per_image`` on flattened maps (images, pixels)."""

    value_range = (0.0, 1.0)

    family: ClassVar[MetricFamily] = "localisation"

    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "masks"})
    exclusion: ClassVar[str] = "empty mask"

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.attributions is not None and evidence.masks is not None
        maps, masks = evidence.attributions, np.asarray(evidence.masks, dtype=bool)
        if maps.shape != masks.shape:
            return MetricResult.undefined(
                f"maps of shape {maps.shape[1:]} but masks {masks.shape[1:]} (input size)"
            )
        valid = np.asarray(masks.reshape(len(masks), -1).any(axis=1))
        return summarise_images(self.per_image(maps, masks), valid, self.exclusion)

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SignParams(Params):
    sign: Sign = Field("raw", description="raw map, positive part, or |map|")


class PositiveParams(Params):
    sign: Sign = Field("positive", description="positive part (default), raw or |map|")


class PointingGameParams(SignParams):
    tolerance: float = Field(
        15.0, ge=0, le=1e6, description="hit distance from the mask, input pixels"
    )


def all_within(points: np.ndarray, masks: np.ndarray, tolerance: float) -> np.ndarray:
    """Per image: is every listed pixel within ``tolerance`` pixels (Euclidean) of its mask?

    ``points`` are (image, row, column) index triples, e.g. from ``np.nonzero``. One k-d
    tree holds every mask pixel of the batch, with images spaced further apart than any
    tolerance, so each query finds its own image's nearest mask pixel (distances are
    exact; an empty mask is never within tolerance). Images with no listed pixel: True.
    """
    images, rows, cols = masks.shape
    spacing = 2.0 * (tolerance + rows + cols)
    scale = np.array([spacing, 1.0, 1.0])
    far = np.zeros(images, dtype=bool)
    if len(points) == 0:
        return ~far
    if not masks.any():
        far[points[:, 0]] = True
        return ~far
    from scipy.spatial import cKDTree

    tree = cKDTree(np.argwhere(masks) * scale)
    distance, _ = tree.query(points * scale, distance_upper_bound=tolerance + 1e-6)
    far[points[distance > tolerance, 0]] = True
    return ~far


@metric_registry.register("pointing_game")
class PointingGame(_Localisation):
    """Pointing game (Zhang et al. 2018): hit rate of the map's maximum, within tolerance.

    A hit when every pixel tied at the maximum lies within ``tolerance`` pixels of a mask
    pixel; a constant map is a miss. Values in [0, 1].
    """

    fixed_conventions: ClassVar[dict[str, str]] = {
        "ties": "every pixel tied at the maximum must be within tolerance",
        "constant map": "miss",
        "resolution": "input pixels",
    }
    params: PointingGameParams

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        a = apply_sign(maps, self.params.sign)
        peak = a.max(axis=(1, 2), keepdims=True)
        tied = np.argwhere(a == peak)
        constant = a.min(axis=(1, 2)) == peak[:, 0, 0]
        return (all_within(tied, masks, self.params.tolerance) & ~constant).astype(float)


@metric_registry.register("energy_pointing_game")
class EnergyPointingGame(_Localisation):
    """Energy-based pointing game (Wang et al. 2020): Σ_mask a⁺ / Σ a⁺, in [0, 1].

    Left out: images whose map has no positive part. Compare with
    ``energy_pointing_game_baseline``, the score of a uniform map (mask area / image area).
    """

    fixed_conventions: ClassVar[dict[str, str]] = {"sign": "positive part"}

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return _mass_ratio(np.maximum(maps, 0.0), masks)


@metric_registry.register("energy_pointing_game_baseline")
class EnergyPointingGameBaseline(_Localisation):
    """The energy pointing game of a uniform map: mask area / image area (K / N)."""

    kind = "reference"

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return masks.reshape(len(masks), -1).mean(axis=1)


@metric_registry.register("relevance_mass_accuracy")
class RelevanceMassAccuracy(_Localisation):
    """Relevance mass accuracy (Arras et al. 2022): Σ_mask a / Σ a, positive part by default.

    With the positive part it equals the energy pointing game. Left out: images whose
    (signed) total is zero.
    """

    params: PositiveParams

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return _mass_ratio(apply_sign(maps, self.params.sign), masks)


def _mass_ratio(a: np.ndarray, masks: np.ndarray) -> np.ndarray:
    total = a.sum(axis=(1, 2))
    inside = (a * masks).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total != 0, inside / total, np.nan)


def expected_hits_in_top(a: np.ndarray, masks: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Expected mask pixels among each image's ``k`` highest values, ties sharing slots.

    ``a`` and ``masks`` are flattened (images, pixels); ``k`` per image (≥ 1). Pixels tied
    at the k-th value share the remaining slots, i.e. the expectation over a random order
    within the tie group, so no pixel order is favoured and a constant map scores chance.
    """
    ordered = -np.sort(-a, axis=1)
    kth = ordered[np.arange(len(a)), k - 1][:, None]
    above, tied = a > kth, a == kth
    slots = k - above.sum(axis=1)
    return (above & masks).sum(axis=1) + slots * (tied & masks).sum(axis=1) / tied.sum(axis=1)


@metric_registry.register("relevance_rank_accuracy")
class RelevanceRankAccuracy(_Localisation):
    """Relevance rank accuracy (Arras et al. 2022): |top-K(a) ∩ mask| / K, K = mask size.

    In [0, 1]; ties at the K-th value share the remaining slots (a constant map scores
    K / N, chance).
    """

    fixed_conventions: ClassVar[dict[str, str]] = {
        "ties": "expected value over random order within the tie group at the K-th value"
    }
    params: SignParams

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        a = apply_sign(maps, self.params.sign).reshape(len(maps), -1)
        m = masks.reshape(len(masks), -1)
        size = m.sum(axis=1)
        k = np.maximum(size, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(size > 0, expected_hits_in_top(a, m, k) / k, np.nan)


class TopKIoUParams(SignParams):
    k: int | None = Field(
        None, ge=1, le=100_000_000, description="pixels kept (None: the mask's size K)"
    )


@metric_registry.register("topk_iou")
class TopKIoU(_Localisation):
    """IoU of the k highest-valued pixels with the mask, k = K by default; in [0, 1].

    Uses the expected intersection under random tie order: IoU = E∩ / (k + K − E∩); with
    k = K this is RRA / (2 − RRA).
    """

    fixed_conventions: ClassVar[dict[str, str]] = RelevanceRankAccuracy.fixed_conventions
    params: TopKIoUParams

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        a = apply_sign(maps, self.params.sign).reshape(len(maps), -1)
        m = masks.reshape(len(masks), -1)
        size = m.sum(axis=1)
        k = np.full(len(a), self.params.k) if self.params.k else np.maximum(size, 1)
        k = np.minimum(k, a.shape[1])
        hits = expected_hits_in_top(a, m, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(size > 0, hits / (k + size - hits), np.nan)


@metric_registry.register("mask_roc_auc")
class MaskROCAUC(_Localisation):
    """ROC-AUC of the map as a per-pixel score for the mask, per image; in [0, 1].

    Mann–Whitney form with average ranks, so tied pixels count one half (a constant map
    scores 0.5). Left out: empty masks and masks that cover the whole image.
    """

    fixed_conventions: ClassVar[dict[str, str]] = {"ties": "average ranks (count 1/2)"}
    exclusion: ClassVar[str] = "empty or full mask"
    params: SignParams

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        a = apply_sign(maps, self.params.sign).reshape(len(maps), -1)
        m = masks.reshape(len(masks), -1)
        positives = m.sum(axis=1)
        negatives = m.shape[1] - positives
        rank_sum = positive_rank_sums(a, m)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)
        return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def positive_rank_sums(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per row of ``a`` (images, pixels): the sum of the average ranks (1-based, ties get
    their mean rank) of the pixels where ``m`` is True — scipy's ``rankdata`` summed over
    the mask, without ranking every pixel.

    Rows are sorted once; the masked values, packed into a padded (images, max mask size)
    array, are located by a batched binary search: the average rank of v is
    (#{< v} + #{≤ v} + 1) / 2.
    """
    ordered = torch.from_numpy(np.sort(a, axis=1))
    rows, cols = np.nonzero(m)
    sizes = m.sum(axis=1)
    slot = np.arange(len(rows)) - (np.cumsum(sizes) - sizes)[rows]
    queries = np.zeros((len(a), max(int(sizes.max(initial=0)), 1)))
    queries[rows, slot] = a[rows, cols]
    used = np.arange(queries.shape[1]) < sizes[:, None]
    values = torch.from_numpy(queries)
    below = torch.searchsorted(ordered, values, side="left").numpy()
    at_most = torch.searchsorted(ordered, values, side="right").numpy()
    return ((below + at_most + 1) * used).sum(axis=1) / 2


def _scaled_positive(maps: np.ndarray) -> np.ndarray:
    """S = min–max scaled positive part per image; NaN rows where a⁺ is constant."""
    positive = np.maximum(np.asarray(maps, dtype=float), 0.0)
    low = positive.min(axis=(1, 2), keepdims=True)
    span = positive.max(axis=(1, 2), keepdims=True) - low
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(span > 0, (positive - low) / span, np.nan)


class NoPositiveParams(Params):
    no_positive: Literal["missing", "zero"] = Field(
        "missing",
        description="a map whose positive part is constant (e.g. no positive value): left "
        "out ('missing', default) or scored 0 ('zero', the official code's, which "
        "penalises methods that produce such maps)",
    )


class _Activation(_Localisation):
    """Σ S·M over ``denominator`` with S = min–max(a⁺) per image; maps without a
    varying positive part follow ``no_positive``."""

    fixed_conventions: ClassVar[dict[str, str]] = {
        "scaling": "min-max of the positive part, per image",
    }
    exclusion: ClassVar[str] = "empty mask or constant map (positive part)"
    params: NoPositiveParams

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        s = _scaled_positive(maps)
        with np.errstate(invalid="ignore", divide="ignore"):
            value = (s * masks).sum(axis=(1, 2)) / self.denominator(s, masks)
        if self.params.no_positive == "zero":
            return np.where(np.isnan(s[:, 0, 0]), 0.0, value)
        return value

    def denominator(self, s: np.ndarray, masks: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@metric_registry.register("activation_precision")
class ActivationPrecision(_Activation):
    """SoftCAM's activation precision: Σ S·M / Σ S with S = min–max(a⁺) per image; [0, 1].

    Left out: empty masks; maps whose positive part is constant (S undefined) are left
    out or scored 0 (``no_positive``).
    """

    def denominator(self, s: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return s.sum(axis=(1, 2))


@metric_registry.register("activation_sensitivity")
class ActivationSensitivity(_Activation):
    """SoftCAM's activation sensitivity: Σ S·M / Σ M with S = min–max(a⁺) per image; [0, 1].

    Maps whose positive part is constant are left out or scored 0 (``no_positive``).
    """

    def denominator(self, s: np.ndarray, masks: np.ndarray) -> np.ndarray:
        return masks.sum(axis=(1, 2))
