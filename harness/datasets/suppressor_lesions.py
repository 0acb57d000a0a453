"""``suppressor_lesions``: images whose signal sits in one region and whose *suppressor*
sits in another (XAI-TRIS, Clark, Wilming & Haufe 2024), with exact ground truth.

Generating equations, per image (y ∈ {0, 1} balanced), on a size × size
grid with a signal region R (a square in the left half) and a suppressor region R′ (the
same square mirrored into the right half):

- a smooth distractor field D ~ N(0, σ²) per pixel (white noise blurred with a Gaussian
  of ``smoothness`` px, rescaled to SD σ = ``distractor``);
- in R: x = a·y·P + D, with P a Gaussian blob of peak 1 centred in R, a = ``signal`` —
  the label's only trace (a blob on class-1 images), buried in D;
- in R′: x = ρ·D_R + √(1 − ρ²)·E, D_R the distractor of R copied into R′ and E an
  independent field like D, ρ = ``correlation`` — independent of y, yet it tells a model
  the distractor to subtract;
- elsewhere: independent background noise N(0, ``noise``²).

Ground truth: a class-1 image's mask is the blob (P > 0.1), a class-0 image's is empty
(no blob: left out of localisation, as healthy images are); the suppressor region is flagged
(``GroundTruth.suppressors``, one mask for all images). A model that denoises R with R′
puts weight on R′, where there is no signal: ``suppressor_share`` measures how much of
an explanation lands there, and the model-blind edge maps (``sobel``, ``laplace``) are the
baselines XAI-TRIS finds explainers often fail to beat. The seed fixes generation and
the stratified split.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from harness.component import Params
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
    stratified_split,
)
from harness.datasets.suppressor_tabular import suppressor


class SuppressorLesionsParams(Params):
    n_images: int = Field(800, ge=8, le=200_000, description="images before the split")
    size: int = Field(32, ge=16, le=512, description="side in pixels")
    signal: float = Field(1.0, gt=0, le=100, description="a: the blob's peak brightness")
    distractor: float = Field(1.0, gt=0, le=100, description="σ: the distractor field's SD")
    correlation: float = Field(
        0.8, ge=0, lt=1, description="ρ: the suppressor's correlation with the distractor"
    )
    smoothness: float = Field(2.0, gt=0, le=50, description="distractor blur, pixels")
    noise: float = Field(0.1, ge=0, le=100, description="background noise SD elsewhere")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="stratified test share")

    @model_validator(mode="after")
    def _fits(self) -> SuppressorLesionsParams:
        if self.n_images * self.size * self.size > 200_000_000:
            raise ValueError("n_images × size² must stay ≤ 200,000,000 pixels")
        return self


def _smooth_field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """White noise blurred per image (Gaussian, ``sigma`` px) and rescaled to unit SD."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape), (0, sigma, sigma))
    return field / field.std(axis=(1, 2), keepdims=True)


@dataset_registry.register("suppressor_lesions")
class SuppressorLesions(DatasetSource):
    """A signal blob in one region, its noise's suppressor in another (XAI-TRIS images)."""

    modality: ClassVar[Modality] = "image"
    cacheable: ClassVar[bool] = True
    card = DatasetCard(
        source="generated (signal + suppressor regions, XAI-TRIS)",
        licence="generated data, no licence restrictions",
        citation="Clark, Wilming & Haufe, 'XAI-TRIS', Machine Learning 2024",
    )
    size = "800 images 32×32, 2 classes (default)"
    ground_truth = "masks (the signal blob), suppressor region"
    params: SuppressorLesionsParams

    def ground_truth_kinds(self) -> frozenset[str]:
        return frozenset({"masks", "suppressors"})

    def regions(self) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """The signal square R (left half) and its mirror R′ (right half)."""
        side = self.params.size
        width = side // 3
        top = (side - width) // 2
        left = (side // 2 - width) // 2
        rows = slice(top, top + width)
        return (rows, slice(left, left + width)), (rows, slice(side - left - width, side - left))

    def load(self, seed: int) -> Dataset:
        p = self.params
        rng = np.random.default_rng(seed)
        n, side = p.n_images, p.size
        labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
        train, test = stratified_split(labels, p.test_fraction, seed)
        present = labels[:, None, None].astype(float)
        (rows, left), (_, right) = self.regions()
        width = rows.stop - rows.start
        centre = (width - 1) / 2
        ys, xs = np.mgrid[0:width, 0:width]
        blob = np.exp(-((ys - centre) ** 2 + (xs - centre) ** 2) / (2 * (width / 6) ** 2))
        images = rng.normal(0.0, p.noise, (n, side, side))
        distractor = p.distractor * _smooth_field(rng, (n, width, width), p.smoothness)
        independent = p.distractor * _smooth_field(rng, (n, width, width), p.smoothness)
        images[:, rows, left] = p.signal * present * blob + distractor
        images[:, rows, right] = suppressor(distractor, independent, p.correlation)
        mask = np.zeros((side, side), bool)
        mask[rows, left] = blob > 0.1
        masks = np.where(labels[test, None, None] == 1, mask, False)  # class 0: no blob
        suppressors = np.zeros((side, side), bool)
        suppressors[rows, right] = True
        pixels = images[:, None].astype(np.float32)
        return Dataset(
            name=self.name,
            modality="image",
            x_train=pixels[train],
            y_train=labels[train],
            x_test=pixels[test],
            y_test=labels[test],
            feature_names=[f"pixel_{r}_{c}" for r in range(side) for c in range(side)],
            class_names=["no blob", "blob"],
            card=self.card,
            ground_truth=GroundTruth(masks=masks, suppressors=suppressors),
        )
