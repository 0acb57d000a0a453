"""The Soft-CAM paper's deletion curve: occlude the map's top-k patches, k = 0…K.

The image is cut into non-overlapping P×P patches (P = 33 at 512 px, scaled with the
input size; the last row and column of patches may be cut by the border). Patches are
ranked by the maximum map value inside them, ties in a fixed random order (seed 0);
with ``foreground`` set, only patches holding at least one pixel whose channel mean
exceeds it are ranked (the paper's fundus band), the rest are never occluded. The top k
patches are replaced by the baseline (the training mean per pixel by default; the
official code uses zeros). The curve, from k = 0 (unperturbed) to K:

* ``accuracy`` (binary tasks, the paper's): the fraction of images still predicted as
  the explained class, over the images predicted as it before any occlusion (the others
  are left out and counted in the note: their curve would start at 0);
* ``probability_ratio`` (more classes): the mean of min(p₀, p_k) / p₀, p the explained
  class's probability.

``auto`` picks the first for two classes, the second otherwise. The score is the
trapezoid area over k/K on [0, 1]: lower is better (what the map ranks first matters
to the model). ``deletion_patch_auc_random`` ranks the patches randomly (seeded): the
reference to beat. Curves are stored as ``<metric id>.curve`` and ``.k``.

``rule = "official"`` follows the official code (``extract_patch`` then
``get_deletion_analysis`` called with k = 30): P = 33 pixels at any size, K = 29 patches
(``range(1, 30)``), occluded with the per-channel mean colour (0 in the official
normalised input: here the training images' mean per channel), ties in patch order (a
stable sort), and patch rows starting at 0, P, 2P, … below H − 1 (``range(min_y, max_y,
ps)`` with the foreground band spanning the image: at 496 px the 1-pixel strip of row
495 is never ranked). Set ``patch``, ``patches`` or ``baseline`` to change one element.
The official curve counts every image it is given (all diseased); here the images
predicted as the explained class before occlusion, as above.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from harness import artifacts
from harness.batching import rows_per_batch
from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.metrics.faithfulness import rank_of, ranking, switched_probabilities
from harness.records import MetricFamily, MetricRole

#: The official code's patch size (pixels) and number of occluded patches.
OFFICIAL_PATCH, OFFICIAL_PATCHES = 33, 29


class PatchDeletionParams(Params):
    rule: Literal["harness", "official"] = Field(
        "harness", description="the harness's conventions or the official code's (see above)"
    )
    patches: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="K: patches occluded at the end (None: 15; official: 29)",
    )
    patch: int | None = Field(
        None, ge=1, le=4096, description="P, pixels (None: 33 at 512 px, scaled; official: 33)"
    )
    baseline: Literal["mean", "channel_mean", "zero"] | None = Field(
        None,
        description="occlusion value: the training mean per pixel ('mean', the default), "
        "per channel ('channel_mean', the official default), or zeros",
    )
    curve: Literal["auto", "accuracy", "probability_ratio"] = "auto"
    foreground: float | None = Field(
        None,
        ge=-1e12,
        le=1e12,
        description="rank only patches with a pixel whose channel mean exceeds this "
        "(raw input units); None: every patch",
    )


def patch_ids(height: int, width: int, patch: int) -> np.ndarray:
    """(H, W) map of non-overlapping patch numbers, row by row."""
    per_row = -(-width // patch)
    return (np.arange(height) // patch)[:, None] * per_row + (np.arange(width) // patch)[None]


def patch_maxima(maps: np.ndarray, patch: int) -> np.ndarray:
    """(images, patches): the maximum map value inside each non-overlapping patch,
    numbered as :func:`patch_ids` numbers them (the border is padded with −∞)."""
    images, height, width = maps.shape
    rows, cols = -(-height // patch), -(-width // patch)
    padded = np.full((images, rows * patch, cols * patch), -np.inf)
    padded[:, :height, :width] = maps
    blocks = padded.reshape(images, rows, patch, cols, patch)
    return blocks.max(axis=(2, 4)).reshape(images, rows * cols)


class _PatchDeletion(Metric):
    value_range = (0.0, 1.0)
    family: ClassVar[MetricFamily] = "faithfulness"
    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "model"})
    higher_is_better: ClassVar[bool] = False
    random_order: ClassVar[bool] = False
    fixed_conventions: ClassVar[dict[str, str]] = {
        "ranking": "maximum map value inside each patch; ties in a fixed random order",
        "x axis": "k / K on [0, 1], k = 0 (unperturbed) included",
        "area": "trapezoid rule",
    }
    params: PatchDeletionParams

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.attributions is not None and evidence.inputs is not None
        assert evidence.targets is not None
        x = np.asarray(evidence.inputs, dtype=np.float32)
        maps = np.asarray(evidence.attributions, dtype=float)
        if x.ndim != 4 or maps.shape != (len(x), *x.shape[2:]):
            return MetricResult.undefined("needs image maps at input size")
        p = self.params
        official = p.rule == "official"
        height, width = x.shape[2:]
        size = p.patch or (OFFICIAL_PATCH if official else max(1, round(33 * height / 512)))
        ids = patch_ids(height, width, size)
        n_patches = int(ids.max()) + 1
        scores = patch_maxima(maps, size)
        if self.random_order:
            scores = np.random.default_rng(1).random(scores.shape)
        if p.foreground is not None:
            bright = x.mean(axis=1) > p.foreground
            eligible = patch_maxima(bright.astype(float), size) > 0
            scores = np.where(eligible, scores, -np.inf)
        if official:  # the official band's rows: starting below H − 1
            row_starts = (np.arange(n_patches) // -(-width // size)) * size
            scores = np.where(row_starts < height - 1, scores, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")  # ties in patch order
        else:
            order = ranking(scores)  # ties: the fixed permutation of seed 0
        rank = np.where(np.isneginf(scores), n_patches, rank_of(order))  # never occluded
        wanted = p.patches or (OFFICIAL_PATCHES if official else 15)
        k = np.arange(min(wanted, n_patches) + 1)
        reference = self.occlusion(
            x, evidence, p.baseline or ("channel_mean" if official else "mean")
        )
        chunk = rows_per_batch(x.shape[1:], len(k))
        curves = []
        for start in range(0, len(x), chunk):
            part = slice(start, start + chunk)
            pixel_rank = rank[part][:, ids]  # (rows, H, W): the rank of each pixel's patch
            switched = pixel_rank[None] < k[:, None, None, None]
            probabilities = switched_probabilities(x[part], reference[part], switched, evidence)
            curves.append(self.curve(probabilities, evidence.targets[part]))
        per_image = np.concatenate(curves, axis=1)
        kept = ~np.isnan(per_image[0])
        if not kept.any():
            return MetricResult.undefined("no image predicted as its explained class")
        curve = per_image[:, kept].mean(axis=1)
        fractions = k / k[-1] if k[-1] else k.astype(float)
        left_out = int((~kept).sum())
        note = (
            (
                f"{left_out} of {len(kept)} images left out (not predicted as the explained "
                "class before occlusion)"
            )
            if left_out
            else ""
        )
        return MetricResult(
            float(np.trapezoid(curve, fractions)), note, arrays={artifacts.CURVE: curve, "k": k}
        )

    @staticmethod
    def occlusion(x: np.ndarray, evidence: Evidence, baseline: str) -> np.ndarray:
        """The occluding values, shaped as ``x``: zeros, or the training mean per pixel
        or per channel."""
        if baseline == "zero":
            return np.zeros_like(x)
        assert evidence.train_mean is not None
        mean = np.asarray(evidence.train_mean, dtype=np.float32)
        if baseline == "channel_mean":
            mean = mean.reshape(*mean.shape[:-2], -1).mean(axis=-1)[..., None, None]
        return np.broadcast_to(mean, x.shape).astype(np.float32)

    def curve(self, probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(steps, rows): per image, still predicted as the target (binary) or the
        probability ratio min(p₀, p_k) / p₀."""
        rows = np.arange(probabilities.shape[1])
        kind = self.params.curve
        if kind == "auto":
            kind = "accuracy" if probabilities.shape[2] == 2 else "probability_ratio"
        if kind == "accuracy":
            still = (probabilities.argmax(axis=2) == targets[None]).astype(float)
            return np.where(still[:1] > 0, still, np.nan)  # NaN: not predicted so at k = 0
        p = probabilities[:, rows, targets]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(p[:1] > 0, np.minimum(p[:1], p) / p[:1], 0.0)


@metric_registry.register("deletion_patch_auc")
class DeletionPatchAUC(_PatchDeletion):
    """The Soft-CAM paper's AUDC: area under the top-k patch deletion curve; lower is
    better. Binary: fraction still predicted as the explained class; else the mean
    probability ratio min(p₀, p_k)/p₀."""

    role: ClassVar[MetricRole] = "patch_deletion_curve"


@metric_registry.register("deletion_patch_auc_random")
class DeletionPatchAUCRandom(_PatchDeletion):
    """``deletion_patch_auc`` with the patches in a random order (seeded): the reference."""

    role: ClassVar[MetricRole] = "patch_deletion_random"

    kind = "reference"
    random_order: ClassVar[bool] = True
