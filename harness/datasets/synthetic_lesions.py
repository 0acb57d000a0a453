"""``synthetic_lesions``: fundus/X-ray-like images where the positive class has lesions.

Every image is a textured, noisy, vignetted circular field; positive images carry one or
more bright blobs (lesions) whose exact pixel mask is the ground truth. Optional
distractors (dark blobs in both classes, never in the mask) and an optional *shortcut*
(a corner marker on positive training images only) test whether explanations follow the
lesions or something else. Everything is drawn from the seed, in batch.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator
from scipy.ndimage import gaussian_filter

from harness.component import Params
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
)


class SyntheticLesionsParams(Params):
    n_images: int = Field(800, ge=8, description="images before the train/test split")
    size: int = Field(64, ge=16, description="side in pixels")
    channels: int = Field(1, ge=1, le=3, description="1 (grayscale, X-ray-like) or 3")
    positive_fraction: float = Field(0.5, gt=0, lt=1, description="share of lesion images")
    lesions: tuple[int, int] = Field((1, 3), description="lesions per positive image, min–max")
    radius: tuple[float, float] = Field((2.0, 5.0), description="lesion radius in pixels")
    contrast: float = Field(0.6, gt=0, description="lesion brightness above the background")
    noise: float = Field(0.08, ge=0, description="std of the pixel noise")
    texture: float = Field(0.3, ge=0, description="amplitude of the smooth background texture")
    vignetting: bool = Field(True, description="darken towards the field's edge")
    distractors: tuple[int, int] = Field(
        (0, 0), description="dark blobs per image (both classes), min–max"
    )
    shortcut: bool = Field(False, description="corner marker on positive training images only")
    test_fraction: float = Field(0.25, gt=0, lt=1)

    @model_validator(mode="after")
    def _ranges(self) -> SyntheticLesionsParams:
        for name in ("lesions", "radius", "distractors"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range [min, max] with 0 ≤ min ≤ max")
        if self.lesions[0] < 1:
            raise ValueError("positive images need at least one lesion: lesions[0] ≥ 1")
        if 2 * self.radius[1] >= self.size / 2:
            raise ValueError(f"radius up to {self.radius[1]} px is too large for {self.size} px")
        return self


@dataset_registry.register("synthetic_lesions")
class SyntheticLesions(DatasetSource):
    """Textured fields; the positive class has bright lesions with exact masks (test split).

    A lesion's brightness is full within half its radius r and falls linearly to zero at
    1.5 r; its mask is the exact disc d ≤ r (pixel centres), i.e. the half-maximum
    contour. Negative images have empty masks. Deterministic per seed; stratified split.
    """

    modality: ClassVar[Modality] = "image"
    Params = SyntheticLesionsParams
    params: SyntheticLesionsParams

    def ground_truth_kinds(self) -> frozenset[str]:
        return frozenset({"masks"})

    def load(self, seed: int) -> Dataset:
        p = self.params
        rng = np.random.default_rng(seed)
        n, side = p.n_images, p.size
        labels = np.zeros(n, dtype=np.int64)
        labels[rng.permutation(n)[: round(p.positive_fraction * n)]] = 1
        ys, xs = np.mgrid[0:side, 0:side].astype(np.float32)
        centre = (side - 1) / 2
        radial = np.hypot(ys - centre, xs - centre) / (side / 2)  # 0 centre … 1 edge
        field = radial <= 0.95

        texture = gaussian_filter(rng.normal(size=(n, side, side)), sigma=(0, side / 16, side / 16))
        texture /= texture.std(axis=(1, 2), keepdims=True) + 1e-12
        images = 0.4 + p.texture * 0.25 * texture + rng.normal(0, p.noise, size=(n, side, side))
        masks = np.zeros((n, side, side), dtype=bool)
        self._add_blobs(images, masks, labels == 1, p.lesions, p.contrast, rng, ys, xs, radial)
        if p.distractors[1] > 0:
            self._add_blobs(images, None, np.ones(n, bool), p.distractors, -p.contrast, rng, ys,
                            xs, radial)  # fmt: skip
        if p.vignetting:
            images *= 1 - 0.5 * radial**2
        images = np.where(field, images, 0.0)

        order = rng.permutation(n)
        test = np.zeros(n, dtype=bool)
        for label in (0, 1):  # stratified split
            members = order[labels[order] == label]
            test[members[: round(p.test_fraction * len(members))]] = True
        if p.shortcut:  # a bright corner marker on positive *training* images only
            marked = (labels == 1) & ~test
            images[marked, 2:6, 2:6] = images.max()
        pixels = np.repeat(images[:, None], p.channels, axis=1).astype(np.float32)
        return Dataset(
            name=self.name,
            modality="image",
            x_train=pixels[~test],
            y_train=labels[~test],
            x_test=pixels[test],
            y_test=labels[test],
            feature_names=[f"pixel_{r}_{c}" for r in range(side) for c in range(side)],
            class_names=["no lesion", "lesion"],
            card=DatasetCard(
                source="generated by xai-harness (synthetic_lesions)",
                licence="generated data, no licence restrictions",
            ),
            ground_truth=GroundTruth(masks=masks[test]),
        )

    def _add_blobs(
        self,
        images: np.ndarray,
        masks: np.ndarray | None,
        chosen: np.ndarray,
        count: tuple[int, int],
        contrast: float,
        rng: np.random.Generator,
        ys: np.ndarray,
        xs: np.ndarray,
        radial: np.ndarray,
    ) -> None:
        """Add ``count`` discs (soft edge in intensity, exact in the mask) to chosen images."""
        inside = np.argwhere(radial <= 0.75)  # lesion centres well within the field
        for index in np.flatnonzero(chosen):
            for _ in range(rng.integers(count[0], count[1] + 1)):
                cy, cx = inside[rng.integers(len(inside))]
                radius = rng.uniform(*self.params.radius)
                distance = np.hypot(ys - cy, xs - cx)
                images[index] += contrast * np.clip(1.5 - distance / radius, 0, 1)
                if masks is not None:
                    masks[index] |= distance <= radius
