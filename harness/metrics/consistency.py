"""Local-to-global consistency of signed maps (the Soft-CAM paper's r⁺_LG and r⁻_LG).

A map that is consistent with the classifier's decision shows evidence *for* the
disease class on diseased images and evidence *against* it on healthy ones. Maps are
averaged (area pooling) to a G×G grid — the evidence-map resolution, 16×16 at 512 px and
by default scaled with the input size (G = round(16·H/512), at least 1) — and each
image's share of cells above 0 (r⁺) or below 0 (r⁻) is taken; the score is the mean
over images, the standard deviation in the note and in ``<metric id>.sd``.

* ``activation_consistency_pos``: the disease-class (``positive_class``) map on images
  whose label is the disease class; share of positive cells.
* ``activation_consistency_neg``: on images of any other label, share of negative cells
  of the disease-class map (``negative_map = "disease"``) or of the map of the image's
  own class (``"own"``) — the paper does not say which; both readings are offered —
  or of class 0's map (``"class_0"``: the official code's ``get_local_to_global_negative``
  reads the healthy-class maps; for two classes it equals ``"own"``). The official code
  pools the share over every cell of every image; with maps of one size that is the mean
  over images taken here.

The needed class maps come from the explanation when the cell explained exactly those
classes (``target = "class:K"``, or ``label`` for ``own``), else from the per-class maps
(``explain_classes = "all"``). A map that is 0 everywhere (e.g. Grad-CAM after its ReLU
on healthy images) has no positive and no negative cell.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily


class ConsistencyParams(Params):
    positive_class: int = Field(1, ge=0, le=100_000, description="the disease class")
    grid: int | None = Field(
        None, ge=1, le=4096, description="G, cells per side (None: 16 at 512 px, scaled)"
    )


class NegativeConsistencyParams(ConsistencyParams):
    negative_map: Literal["disease", "own", "class_0"] = Field(
        "disease",
        description="healthy images: the disease-class map, their own class's, or class "
        "0's (the official code's)",
    )


def pooled_maps(maps: np.ndarray, grid: int | None) -> np.ndarray:
    """(images, H, W) → (images, G, G) by area averaging (adaptive average pooling)."""
    size = grid or max(1, round(16 * maps.shape[1] / 512))
    tensor = torch.as_tensor(np.asarray(maps, dtype=np.float64))[:, None]
    return torch.nn.functional.adaptive_avg_pool2d(tensor, size)[:, 0].numpy()


def class_maps(evidence: Evidence, images: np.ndarray, classes: np.ndarray) -> np.ndarray | None:
    """The maps of ``classes`` (one per image) for the explained ``images`` (booleans):
    from the explanation when it explained those classes, else from the per-class maps;
    None when neither holds them."""
    assert evidence.attributions is not None and evidence.targets is not None
    if np.array_equal(evidence.targets[images], classes):
        return np.asarray(evidence.attributions)[images]
    if evidence.class_attributions is not None:
        chosen = np.asarray(evidence.class_attributions)[images]
        return chosen[np.arange(len(chosen)), classes]
    return None


class _Consistency(Metric):
    value_range = (0.0, 1.0)
    family: ClassVar[MetricFamily] = "faithfulness"
    needs: ClassVar[frozenset[str]] = frozenset({"attributions"})
    positive: ClassVar[bool] = True
    fixed_conventions: ClassVar[dict[str, str]] = {
        "resolution": "area-pooled to the G×G evidence grid",
        "aggregation": "mean over images of each image's share of cells",
        "zero": "a cell of exactly 0 is neither positive nor negative",
    }
    params: ConsistencyParams

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.attributions is not None and evidence.targets is not None
        if np.asarray(evidence.attributions).ndim != 3:
            return MetricResult.undefined("needs image maps (images, height, width)")
        assert evidence.explained_labels is not None
        labels = np.asarray(evidence.explained_labels)
        k = self.params.positive_class
        images = labels == k if self.positive else labels != k
        if not images.any():
            which = f"label {k}" if self.positive else f"a label other than {k}"
            return MetricResult.undefined(f"no explained image with {which}")
        wanted = self.wanted_classes(labels[images])
        maps = class_maps(evidence, images, wanted)
        if maps is None:
            return MetricResult.undefined(
                f"needs each image's map of class {sorted(set(wanted.tolist()))}; run with "
                f"execution.target = 'class:{k}' or execution.explain_classes = 'all'"
            )
        cells = pooled_maps(maps, self.params.grid)
        share = ((cells > 0) if self.positive else (cells < 0)).mean(axis=(1, 2))
        sd = float(share.std(ddof=1)) if len(share) > 1 else float("nan")
        return MetricResult(
            float(share.mean()),
            f"sd {sd:.3f} over {len(share)} images",
            arrays={"sd": np.array(sd), "per_image": share},
        )

    def wanted_classes(self, labels: np.ndarray) -> np.ndarray:
        return np.full(len(labels), self.params.positive_class)


@metric_registry.register("activation_consistency_pos")
class ActivationConsistencyPositive(_Consistency):
    """r⁺_LG: share of positive cells of the disease-class map on diseased images, [0, 1]."""


@metric_registry.register("activation_consistency_neg")
class ActivationConsistencyNegative(_Consistency):
    """r⁻_LG: share of negative cells on healthy images, of the disease-class map or of
    the image's own class map (``negative_map``), [0, 1]."""

    positive: ClassVar[bool] = False
    params: NegativeConsistencyParams

    def wanted_classes(self, labels: np.ndarray) -> np.ndarray:
        if self.params.negative_map == "own":
            return labels
        if self.params.negative_map == "class_0":
            return np.zeros(len(labels), dtype=int)
        return np.full(len(labels), self.params.positive_class)
