"""Top-k patch localisation precision (MIDL 2023 / Soft-CAM, arXiv 2505.17748).

The map is resampled to a G×G grid; grid cell (r, c) stands for the P×P input patch
whose top-left pixel is (r·S, c·S). Cells are visited from the highest value down
and selected greedily so that no two selected patches overlap; only cells above a
threshold are selected. A selected patch is a *hit* when it touches the ground-truth
mask (at least one mask pixel inside). precision@k pools the first k selected patches of
every image: hits / patches (the official aggregation: an image with fewer cells above
the threshold contributes fewer patches). The score is the mean of precision@k over
k = 1…K; the curve is stored as ``<metric id>.precision_at_k``.

Two rules (``rule``):

* ``scale_free`` (default): a cell's value is the mean of the map over its own patch
  (so the grid is aligned with the patches: G = (H − P) // S + 1), each map is divided
  by its maximum (a map whose maximum is not positive selects nothing), threshold 0
  (positive evidence only), and a cell is excluded when its patch overlaps an already
  *selected* patch (|Δr|·S < P and |Δc|·S < P).
* ``official`` (the paper's code, ``topK_patches`` called by ``get_topk_precision``, in
  every element but one): the official geometry at any input size — P = 33, S = 8 pixels
  and G = (H − 33) // 8 + 1 cells a side (60 at 512 px, 58 at 496) unless set; the map
  resized bicubically to G×G (``cv2.INTER_CUBIC`` there, from the 16×16 evidence map;
  here from the input-size map, the cell centres up to P/2 from their patches' centres
  as there); raw map values (``round_=False``) and threshold 1; k = 1…29 (the official
  ``range(1, 30)``); every *visited* cell, selected or not, excludes the irregular 4×4
  window of rows r−2…r+1 and columns c−1…c+2 around it, taken on the flattened grid with
  rows of **60** cells whatever G is (the official code's constant ``size=60``;
  ``window_row`` changes it), so a column past the edge wraps to the next row and, at
  G ≠ 60, the window slides a column per row. Scale: a map scaled to [0, 1] (the CAM
  library's) passes threshold 1 only where bicubic resampling overshoots 1 — none of 200
  maps at 512 px, but 46 of 50 at 64 px (up to 1.022): at small sizes the official
  values of such maps are artefacts of the resampling. The one departure: the official
  code indexes fundus/OCT masks transposed (``mask[x:x+ps, y:y+ps]``); this harness reads
  masks the right way round in both rules.

Scale-free defaults scale with the input size H: S = max(1, round(8·H/512)),
P = max(1, round(33·H/512)), G = (H − P) // S + 1 (K = 30).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field

from harness import artifacts
from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily, MetricRole

#: The official window: offsets (rows, columns) of the cells a visited cell excludes.
OFFICIAL_WINDOW = [(dr, dc) for dr in range(-2, 2) for dc in range(-1, 3)]
#: The official code's geometry (pixels) and the row length its window arithmetic assumes.
OFFICIAL_PATCH, OFFICIAL_STRIDE, OFFICIAL_WINDOW_ROW = 33, 8, 60
#: The official k range: ``range(1, 30)``.
OFFICIAL_K_MAX = 29


def patch_geometry(
    shape: tuple[int, int], grid: int | None, patch: int | None, stride: int | None
) -> tuple[tuple[int, int], int, int]:
    """((G rows, G columns), P, S) for maps of ``shape`` (H, W); P and S scaled from
    their 512-px values by H when None, the grid (when None) aligned with the patches."""
    height, width = shape
    stride = stride or max(1, round(8 * height / 512))
    patch = patch or max(1, round(33 * height / 512))
    if grid is not None:
        return (grid, grid), patch, stride
    return (
        (max(1, (height - patch) // stride + 1), max(1, (width - patch) // stride + 1)),
        patch,
        stride,
    )


def resample(maps: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
    """Maps (images, H, W) → (images, G, G), bicubic (as the official ``cv2.INTER_CUBIC``)."""
    tensor = torch.as_tensor(np.asarray(maps, dtype=np.float64))[:, None]
    if tensor.shape[-2:] == grid:
        return tensor[:, 0]
    return torch.nn.functional.interpolate(tensor, size=grid, mode="bicubic", align_corners=False)[
        :, 0
    ]


def patch_means(maps: np.ndarray, patch: int, stride: int) -> torch.Tensor:
    """(images, G, G): the mean of each map over cell (r, c)'s P×P patch."""
    tensor = torch.as_tensor(np.asarray(maps, dtype=np.float64))[:, None]
    return torch.nn.functional.avg_pool2d(tensor, kernel_size=patch, stride=stride)[:, 0]


def patch_hits(masks: np.ndarray, grid: tuple[int, int], patch: int, stride: int) -> torch.Tensor:
    """(images, G, G) booleans: does cell (r, c)'s P×P patch touch its image's mask?

    From a summed-area table of the masks; patches are clipped at the image border."""
    m = torch.as_tensor(np.asarray(masks, dtype=np.int64))
    table = torch.nn.functional.pad(m.cumsum(1).cumsum(2), (1, 0, 1, 0))
    height, width = m.shape[1:]
    rows, cols = torch.arange(grid[0]) * stride, torch.arange(grid[1]) * stride
    top, left = rows.clamp(max=height), cols.clamp(max=width)
    bottom, right = (rows + patch).clamp(max=height), (cols + patch).clamp(max=width)
    inside = (
        table[:, bottom][:, :, right]
        - table[:, top][:, :, right]
        - table[:, bottom][:, :, left]
        + table[:, top][:, :, left]
    )
    return inside > 0


def greedy_selection(
    scores: torch.Tensor, threshold: float, k_max: int, reach: int
) -> torch.Tensor:
    """Scale-free rule: per image, up to ``k_max`` flat cell indices (−1: none), highest
    first, each above ``threshold`` and at Chebyshev distance ≥ ``reach`` (in cells) from
    every cell selected before it. Batched over images: one step per k."""
    images, grid_rows, grid_cols = scores.shape
    available = scores.clone().masked_fill(~(scores > threshold), -torch.inf)
    chosen = torch.full((images, k_max), -1, dtype=torch.long)
    rows, cols = torch.arange(grid_rows), torch.arange(grid_cols)
    for step in range(k_max):
        flat = available.reshape(images, -1)
        best = flat.argmax(dim=1)
        found = torch.isfinite(flat[torch.arange(images), best])
        chosen[found, step] = best[found]
        r, c = best // grid_cols, best % grid_cols
        near_r = (rows[None] - r[:, None]).abs() < reach
        near_c = (cols[None] - c[:, None]).abs() < reach
        window = near_r[:, :, None] & near_c[:, None, :] & found[:, None, None]
        available = available.masked_fill(window, -torch.inf)
    return chosen


def official_selection(
    scores: torch.Tensor, threshold: float, k_max: int, window_row: int = OFFICIAL_WINDOW_ROW
) -> torch.Tensor:
    """The official rule: a cell is selected when no higher-visited cell's window (on the
    flattened grid, rows taken as ``window_row`` cells long, with the wrap-around) covers
    it; then the first ``k_max`` selected cells above ``threshold`` in visiting order.
    Visiting order: descending value, ties by flat index (a stable sort)."""
    images = scores.shape[0]
    flat = scores.reshape(images, -1)
    cells = flat.shape[1]
    grid = window_row
    order = torch.sort(-flat, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(cells).expand(images, cells).contiguous())
    covered = torch.zeros_like(flat, dtype=torch.bool)
    index = torch.arange(cells)
    for dr, dc in OFFICIAL_WINDOW:
        source = index - (dr * grid + dc)  # the cell whose window reaches this one
        valid = (source >= 0) & (source < cells)
        earlier = torch.zeros_like(covered)
        earlier[:, valid] = rank[:, source[valid]] < rank[:, valid]
        covered |= earlier
    selectable = ~covered & (flat > threshold)
    ranked = torch.where(selectable, rank, cells)  # unselectable cells sort last
    picks = torch.sort(ranked, dim=1).indices[:, :k_max]
    chosen_rank = torch.gather(ranked, 1, picks)
    return torch.where(chosen_rank < cells, picks, -1)


class TopKPatchPrecisionParams(Params):
    rule: Literal["scale_free", "official"] = Field(
        "scale_free",
        description="selection rule: per-map max-normalised (default) or the "
        "official code's (raw values, threshold 1, irregular window)",
    )
    k_max: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="K: precision@k for k = 1…K (None: 30 scale_free, 29 official)",
    )
    threshold: float | None = Field(
        None,
        ge=-1e12,
        le=1e12,
        description="cells must exceed it (None: 0 for scale_free, 1 for official)",
    )
    grid: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="official rule: G (None: (H − P) // S + 1, 60 at 512 px); the "
        "scale-free grid is always aligned with the patches",
    )
    patch: int | None = Field(
        None, ge=1, le=4096, description="P, pixels (None: 33; scale_free: scaled from 512 px)"
    )
    stride: int | None = Field(
        None, ge=1, le=4096, description="S, pixels (None: 8; scale_free: scaled from 512 px)"
    )
    window_row: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="official rule: the row length (cells) its window's flat-index "
        "arithmetic assumes (None: 60, the official constant; G: the intended window)",
    )


@metric_registry.register("topk_patch_precision")
class TopKPatchPrecision(Metric):
    """Mean over k = 1…K of the pooled precision@k of the top-k non-overlapping patches
    (hit: the patch touches the mask); in [0, 1]. See the module docstring for the rules.

    Images with an empty mask are left out (counted in the note)."""

    value_range = (0.0, 1.0)

    role: ClassVar[MetricRole] = "precision_at_k_curve"

    family: ClassVar[MetricFamily] = "localisation"

    needs: ClassVar[frozenset[str]] = frozenset({"attributions", "masks"})
    fixed_conventions: ClassVar[dict[str, str]] = {
        "grid": "scale_free: patch means; official: bicubic resize to G×G",
        "hit": "patch touches the mask (≥ 1 mask pixel)",
        "aggregation": "pooled over images' patches, mean over k = 1…K",
        "ties": "stable order by flat cell index",
    }
    params: TopKPatchPrecisionParams

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.attributions is not None and evidence.masks is not None
        maps, masks = np.asarray(evidence.attributions), np.asarray(evidence.masks, dtype=bool)
        if maps.shape != masks.shape or maps.ndim != 3:
            return MetricResult.undefined(
                f"maps of shape {maps.shape[1:]} but masks {masks.shape[1:]} (input size)"
            )
        keep = np.asarray(masks.reshape(len(masks), -1).any(axis=1))
        if not keep.any():
            return MetricResult.undefined("no image with a non-empty mask")
        curve = self.precision_at_k(maps[keep], masks[keep])
        left_out = int((~keep).sum())
        note = f"{left_out} of {len(keep)} images left out (empty mask)" if left_out else ""
        defined = ~np.isnan(curve)
        if not defined.any():
            return MetricResult.undefined("no cell above the threshold in any map")
        return MetricResult(
            float(curve[defined].mean()),
            note,
            arrays={artifacts.PRECISION_AT_K: curve, "k": np.arange(1, len(curve) + 1)},
        )

    def precision_at_k(self, maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Pooled precision@k for k = 1…K (NaN where no image has k selected patches… or
        none at all)."""
        p = self.params
        shape = (maps.shape[1], maps.shape[2])
        k_max = p.k_max or (OFFICIAL_K_MAX if p.rule == "official" else 30)
        if p.rule == "scale_free":
            grid, patch, stride = patch_geometry(shape, None, p.patch, p.stride)
            if patch > min(shape):
                return np.full(k_max, np.nan)
            scores = patch_means(maps, patch, stride)
            peak = scores.flatten(1).max(dim=1).values[:, None, None]
            scores = torch.where(peak > 0, scores / peak.clamp(min=1e-300), -torch.inf)
            threshold = 0.0 if p.threshold is None else p.threshold
            reach = -(-patch // stride)  # patches overlap when |Δ|·S < P
            chosen = greedy_selection(scores, threshold, k_max, reach)
        else:
            patch, stride = p.patch or OFFICIAL_PATCH, p.stride or OFFICIAL_STRIDE
            grid, patch, stride = patch_geometry(shape, p.grid, patch, stride)
            scores = resample(maps, grid)
            threshold = 1.0 if p.threshold is None else p.threshold
            chosen = official_selection(
                scores, threshold, k_max, p.window_row or OFFICIAL_WINDOW_ROW
            )
        hits = patch_hits(masks, grid, patch, stride).reshape(len(maps), -1)
        selected = chosen >= 0
        hit = torch.gather(hits, 1, chosen.clamp(min=0)) & selected
        total_hits = hit.cumsum(dim=1).sum(dim=0).double()
        total_patches = selected.cumsum(dim=1).sum(dim=0).double()
        with np.errstate(invalid="ignore", divide="ignore"):
            return (total_hits / total_patches).numpy()
