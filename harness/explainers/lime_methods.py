"""LIME explainers from the ``lime`` package, on the model's class probabilities.

LIME explains one instance per call (its API has no batch of instances); the model is
queried in batches: all perturbed samples of a row at once (tabular), or ``batch_size``
perturbed images per call (images).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, ClassVar, Literal

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


def no_progress_bars() -> contextlib.AbstractContextManager[object]:
    """Swallow what lime writes to stderr: lime_image draws a tqdm bar per image."""
    return contextlib.redirect_stderr(io.StringIO())


class LimeTabularParams(Params):
    num_samples: int = Field(
        5000, ge=1, le=1_000_000, description="perturbed samples per row (lime default)"
    )
    discretize_continuous: bool = Field(
        True, description="quartile-discretise continuous features (lime default)"
    )
    kernel_width: float | None = Field(
        None, gt=0, le=1e6, description="locality kernel width (None: 0.75·√features, lime default)"
    )


@explainer_registry.register("lime_tabular")
class LimeTabular(Explainer):
    """LIME (Ribeiro et al. 2016): lime's LimeTabularExplainer, weights of all features.

    The explanation of a row is the local linear model's weight per feature for the
    explained class; the seed fixes lime's ``random_state``.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    params: LimeTabularParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        from lime.lime_tabular import LimeTabularExplainer

        dataset = context.dataset
        explainer = LimeTabularExplainer(
            dataset.x_train,
            mode="classification",
            feature_names=dataset.feature_names,
            discretize_continuous=self.params.discretize_continuous,
            kernel_width=self.params.kernel_width,
            random_state=context.seed,
        )
        local = np.zeros(inputs.shape)
        for i, (row, target) in enumerate(zip(inputs, targets, strict=True)):
            explanation = explainer.explain_instance(
                row,
                model.predict_proba,
                labels=(int(target),),
                num_features=dataset.n_features,
                num_samples=self.params.num_samples,
            )
            for feature, weight in explanation.as_map()[int(target)]:
                local[i, feature] = weight
        return Explanation(local=local)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return float(self.params.num_samples)


class LimeImageParams(Params):
    num_samples: int = Field(
        1000, ge=1, le=1_000_000, description="perturbed images per image (lime default)"
    )
    segmentation: Literal["quickshift", "slic", "felzenszwalb"] = Field(
        "quickshift", description="superpixel algorithm (scikit-image, via lime)"
    )
    segmentation_params: dict[str, Any] = Field(
        default_factory=lambda: {"kernel_size": 4, "max_dist": 200, "ratio": 0.2},
        description="keyword arguments of the segmentation (default: lime's quickshift)",
    )
    hide_color: float | None = Field(
        None, description="value of hidden superpixels (None: each superpixel's mean)"
    )
    batch_size: int = Field(256, ge=1, le=1_000_000, description="perturbed images per model call")


@explainer_registry.register("lime_image")
class LimeImage(Explainer):
    """LIME for images: lime's LimeImageExplainer over superpixels, class probabilities.

    Every pixel gets the weight of its superpixel for the explained class. Grayscale
    images are segmented as RGB (lime's gray2rgb) and the model sees one channel again.
    """

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    params: LimeImageParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        p = self.params
        channels = inputs.shape[1]
        if channels not in (1, 3):
            raise ValueError(f"lime_image segments 1- or 3-channel images; these have {channels}")
        from lime.lime_image import LimeImageExplainer
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        explainer = LimeImageExplainer(random_state=context.seed)
        segmenter = SegmentationAlgorithm(
            p.segmentation, **p.segmentation_params, random_seed=context.seed
        )

        def classify(images: np.ndarray) -> np.ndarray:
            # lime hands over (batch, H, W, 3); the model takes (batch, C, H, W). The
            # transposed view is passed as is: torch keeps its channels-last strides, which
            # run small CNNs about twice as fast on a CPU as a contiguous NCHW copy
            return model.predict_proba(np.transpose(images, (0, 3, 1, 2))[:, :channels])

        local = np.zeros((len(inputs), *inputs.shape[2:]))
        for i, (image, target) in enumerate(zip(inputs, targets, strict=True)):
            picture = image[0] if channels == 1 else np.transpose(image, (1, 2, 0))
            with no_progress_bars():
                explanation = explainer.explain_instance(
                    picture.astype(np.float64),
                    classify,
                    labels=(int(target),),
                    top_labels=None,
                    hide_color=p.hide_color,
                    num_samples=p.num_samples,
                    batch_size=p.batch_size,
                    segmentation_fn=segmenter,
                    random_seed=context.seed,
                )
            weight_of_segment = np.zeros(explanation.segments.max() + 1)
            for segment, weight in explanation.local_exp[int(target)]:
                weight_of_segment[segment] = weight
            local[i] = weight_of_segment[explanation.segments]
        return Explanation(local=local)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return float(self.params.num_samples)
