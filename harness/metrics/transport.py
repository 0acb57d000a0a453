"""``emd_localisation`` ↑: how far an explanation's mass must travel to the ground truth
(XAI-TRIS, Clark, Wilming & Haufe 2024): 1 − EMD / D_max per image.

The map (``sign``: |a| by default, or its positive part) and the mask are each normalised
to a distribution over pixels (the mask uniform over its pixels); EMD is the
earth mover's (Wasserstein-1) distance between them with the Euclidean distance between
pixel centres as ground cost, in pixels; D_max is the image diagonal, √((H − 1)² +
(W − 1)²), the farthest any unit of mass can travel — so 1 for a map inside the mask and
0 only for all mass at the far corner. Solved exactly by POT (``ot.emd2``, the network
simplex) on the pixels that carry mass on either side. Images with an empty mask, and
maps with no mass, are left out and counted.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.errors import optional_import
from harness.metrics.base import metric_registry
from harness.metrics.localisation import _Localisation, apply_sign


class EMDParams(Params):
    sign: Literal["abs", "positive"] = Field("abs", description="|map| or its positive part")


def earth_movers_score(heat: np.ndarray, mask: np.ndarray) -> float:
    """1 − EMD / D_max of one map (H, W, non-negative) against one mask (H, W, boolean);
    NaN when either carries no mass."""
    ot = optional_import("ot", "metric 'emd_localisation'", "POT")
    if heat.sum() <= 0 or not mask.any():
        return float("nan")
    height, width = heat.shape
    source = np.argwhere(heat > 0)
    target = np.argwhere(mask)
    a = heat[heat > 0].astype(np.float64)
    a /= a.sum()
    b = np.full(len(target), 1.0 / len(target))
    cost = np.sqrt(((source[:, None, :] - target[None, :, :]) ** 2).sum(axis=2)).astype(float)
    distance = float(ot.emd2(a, b, cost))
    farthest = float(np.hypot(height - 1, width - 1)) or 1.0
    return 1.0 - distance / farthest


@metric_registry.register("emd_localisation")
class EMDLocalisation(_Localisation):
    """1 − EMD / D_max between the map and the mask as distributions (XAI-TRIS); higher
    is better, in [0, 1]."""

    exclusion: ClassVar[str] = "empty mask or a map with no mass"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "ground cost": "Euclidean distance between pixel centres (pixels)",
        "mask": "uniform distribution over its pixels",
        "normalisation": "1 − EMD / image diagonal",
        "solver": "POT ot.emd2 (exact network simplex)",
    }
    params: EMDParams

    def per_image(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        heats = apply_sign(maps, self.params.sign)
        return np.array([earth_movers_score(h, m) for h, m in zip(heats, masks, strict=True)])
