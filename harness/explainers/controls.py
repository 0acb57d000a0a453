"""Control explainers that calibrate metrics.

``oracle`` (the ground truth), ``inverted`` (the ground truth reversed), ``random``,
``constant``, ``centre`` (images), the model-blind edge maps ``sobel`` and ``laplace``
(images) and ``parameter_noise`` (noise seeded by the model's weights: passes MPRT by
construction). Every metric that uses ground truth must order oracle ≥ random ≥ inverted
and must not give ``constant`` a perfect score.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.datasets.base import Modality
from harness.explainers.base import (
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
)
from harness.models.base import TrainedModel


def ground_truth_maps(context: ExplainContext) -> np.ndarray:
    """The ground truth of the explained rows as float attributions.

    Tabular: the importance vector repeated per row. Images: each row's mask (1 inside).
    """
    dataset, truth = context.dataset, context.dataset.ground_truth
    if dataset.modality == "image":
        if truth.masks is None:
            raise ValueError(f"dataset '{dataset.name}' has no ground-truth masks")
        return truth.masks[context.rows].astype(float)
    if truth.importance is None:
        raise ValueError(f"dataset '{dataset.name}' has no ground-truth importance")
    return np.tile(np.asarray(truth.importance, dtype=float), (len(context.rows), 1))


class _Control(Explainer):
    """A reference explanation, not a method: every metric is tested on the controls."""

    control: ClassVar[bool] = True


class _GroundTruthControl(_Control):
    needs_ground_truth: ClassVar[dict[Modality, str]] = {"tabular": "importance", "image": "masks"}


@explainer_registry.register("oracle")
class Oracle(_GroundTruthControl):
    """The ground truth as the explanation: importance (tabular) or the mask (images).

    The best any explainer can do against the ground truth.
    """

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        return Explanation(local=ground_truth_maps(context), signed=False)


@explainer_registry.register("inverted")
class Inverted(_GroundTruthControl):
    """The ground truth reversed: max(truth) − truth, so irrelevant features/pixels rank first.

    Non-negative, so metrics that take |attribution| still see the reversed ranking
    (a plain negation would rank exactly like the oracle under |·|).
    """

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        truth = ground_truth_maps(context)
        peak = truth.reshape(len(truth), -1).max(axis=1)
        return Explanation(local=peak.reshape(-1, *[1] * (truth.ndim - 1)) - truth, signed=False)


@explainer_registry.register("random")
class Random(_Control):
    """Uniform random attributions in [0, 1), drawn from the cell seed (chance level)."""

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        rng = np.random.default_rng(context.seed)
        shape = (len(inputs), *context.dataset.attribution_shape)
        return Explanation(local=rng.random(shape), signed=False)


@explainer_registry.register("constant")
class Constant(_Control):
    """The same attribution (1) for every feature or pixel: carries no information."""

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        shape = (len(inputs), *context.dataset.attribution_shape)
        return Explanation(local=np.ones(shape), signed=False)


class CentreParams(Params):
    sigma: float = Field(
        0.25, gt=0, le=100, description="standard deviation as a fraction of the shorter image side"
    )


@explainer_registry.register("centre")
class Centre(_Control):
    """A Gaussian centred on the image (centre bias): exp(−d² / 2σ²), peak 1 at the centre."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    params: CentreParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        height, width = context.dataset.attribution_shape
        sigma = self.params.sigma * min(height, width)
        ys, xs = np.mgrid[0:height, 0:width]
        squared = (ys - (height - 1) / 2) ** 2 + (xs - (width - 1) / 2) ** 2
        gaussian = np.exp(-squared / (2 * sigma**2))
        local = np.broadcast_to(gaussian, (len(inputs), height, width)).copy()
        return Explanation(local=local, signed=False)


class _EdgeControl(_Control):
    """A model-blind edge map of the input (images): the magnitude of a derivative filter
    of the channel mean, per image (scipy.ndimage, borders reflected). XAI-TRIS (Clark et
    al. 2024) finds popular explainers often fail to beat such maps."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        grey = np.asarray(inputs, dtype=np.float64).mean(axis=1)
        return Explanation(local=np.stack([self.edges(image) for image in grey]), signed=False)

    def edges(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@explainer_registry.register("sobel")
class Sobel(_EdgeControl):
    """The Sobel gradient magnitude of the image, √(S_x² + S_y²) (model-blind edges)."""

    def edges(self, image: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        return np.hypot(ndimage.sobel(image, axis=0), ndimage.sobel(image, axis=1))


@explainer_registry.register("laplace")
class Laplace(_EdgeControl):
    """The magnitude of the image's discrete Laplacian, |∇²x| (model-blind edges)."""

    def edges(self, image: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        return np.abs(ndimage.laplace(image))


class ParameterNoiseParams(Params):
    smoothing: float = Field(
        2.0, ge=0, le=100, description="images: Gaussian blur of the noise, pixels (0: none)"
    )


@explainer_registry.register("parameter_noise")
class ParameterNoise(_Control):
    """Noise seeded by the model's parameters: blind to what the model computes, yet it
    changes completely with any change of a weight — so it passes MPRT (and random-logit:
    the explained class is in the seed) by construction (Binder et al., CVPR 2023: passing
    top-down randomisation does not show an explanation reflects the model). Per row: a
    uniform [0, 1) field from a generator seeded with the SHA-256 of the network's
    parameters, the row's position and its class; for images blurred (``smoothing`` px)
    into a structured map of blobs."""

    params: ParameterNoiseParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        import hashlib

        digest = hashlib.sha256()
        for tensor in model.module.state_dict().values():
            digest.update(tensor.detach().cpu().numpy().tobytes())
        base = int.from_bytes(digest.digest()[:8], "little")
        shape = context.dataset.attribution_shape
        maps = []
        for row, target in zip(context.rows, targets, strict=True):
            rng = np.random.default_rng([base, int(row), int(target)])
            field = rng.random(shape)
            if len(shape) == 2 and self.params.smoothing > 0:
                from scipy import ndimage

                field = ndimage.gaussian_filter(field, self.params.smoothing)
            maps.append(field)
        return Explanation(local=np.stack(maps), signed=False)
