"""`rule = "official"` against my own transcription of the official Soft-CAM evaluation
code (github.com/kdjoumessi/SoftCAM, utils/tools.py and fully_convnet_tools.py, read and
rewritten here as plain loops, not copied): the top-k patch precision at 512 and 496 px
for k = 1…29, r⁻ from the class-0 map, and the 29-patch deletion with the per-channel
mean colour."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage

from harness.metrics import Evidence, metric_registry

# ------------------------------------------------------------------ top-k precision


def official_cells(heatmap: np.ndarray, wanted: int, threshold: float) -> list[int]:
    """``topK_patches`` as the official code calls it from ``get_topk_precision``: visit
    the cells of the act_size × act_size map from the highest value down (raw values);
    stop at the first value not above the threshold or once ``wanted`` are chosen; a
    visited cell is chosen unless an earlier visited cell excluded it, and every visited
    cell excludes the flat indices of its 4×4 window computed with rows of 60 cells (the
    function's default ``size``, never passed by its caller)."""
    flat = heatmap.ravel()
    visiting = sorted(range(len(flat)), key=lambda i: (-flat[i], i))
    chosen: list[int] = []
    excluded: set[int] = set()
    for index in visiting:
        if len(chosen) >= wanted or not flat[index] > threshold:
            break
        if index not in excluded:
            chosen.append(index)
        top_row, right_col = index // 60 - 2, index % 60 + 2
        excluded |= {(top_row + i) * 60 + (right_col - j) for i in range(4) for j in range(4)}
    return chosen


def official_topk_curve(maps: np.ndarray, masks: np.ndarray) -> list[float]:
    """``get_topk_precision`` (k = 30 → precision@k for k in range(1, 30)): each map
    resized to act_size = (H − 33) // 8 + 1 bicubically, its chosen cells placed at
    (row·8, col·8) on the act_size grid, a 33-pixel patch a hit when the mask has a pixel
    in it (masks read the right way round), the hits pooled over every image."""
    act_size = (maps.shape[1] - 33) // 8 + 1
    curve = []
    for k in range(1, 30):
        labels = []
        for heatmap, mask in zip(maps, masks, strict=True):
            small = cv2.resize(heatmap, (act_size, act_size), interpolation=cv2.INTER_CUBIC)
            for index in official_cells(small, k, 1.0):
                top, left = (index // act_size) * 8, (index % act_size) * 8
                labels.append(int(mask[top : top + 33, left : left + 33].max()))
        curve.append(float(np.mean(labels)))
    return curve


def smooth_maps(count: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Blurred noise maps spanning about −3…6 (many cells above 1) and blob masks."""
    rng = np.random.default_rng(seed)
    maps = ndimage.gaussian_filter(rng.normal(size=(count, size, size)), (0, 12, 12))
    maps = maps / maps.std() * 1.5 + 1.0
    masks = ndimage.gaussian_filter(rng.normal(size=(count, size, size)), (0, 20, 20)) > 0.01
    return maps, masks


@pytest.mark.parametrize("size", [512, 496])
def test_official_topk_precision_matches_the_transcription(size: int) -> None:
    maps, masks = smooth_maps(6, size, seed=size)
    metric = metric_registry.get("topk_patch_precision")(rule="official")
    result = metric.compute(Evidence(attributions=maps, masks=masks))
    expected = official_topk_curve(maps, masks)
    np.testing.assert_allclose(result.arrays["precision_at_k"], expected, atol=1e-12)
    assert len(expected) == 29 and result.value == pytest.approx(np.mean(expected))


# ------------------------------------------------------------------ r⁻ (local to global)


@pytest.mark.parametrize("size", [512, 496])
def test_official_negative_consistency_reads_the_class_0_map(size: int) -> None:
    """``get_local_to_global_negative``: over the healthy images, the share of the
    healthy-class (class 0) evidence map's values below 0 — 16×16 maps at these sizes —
    pooled over every value of every image. The harness gets the maps at input size
    (each evidence cell a block of size/16 pixels) and pools them back to 16×16."""
    rng = np.random.default_rng(size)
    evidence = rng.normal(size=(10, 3, 16, 16))  # three classes: class 0 ≠ own class
    labels = np.array([0, 2, 1, 0, 2, 1, 1, 0, 2, 1])
    healthy = labels != 1
    below = (evidence[healthy, 0] < 0).sum() / evidence[healthy, 0].size
    block = size // 16
    per_class = evidence.repeat(block, axis=2).repeat(block, axis=3)
    metric = metric_registry.get("activation_consistency_neg")(negative_map="class_0", grid=16)
    cells = Evidence(
        attributions=per_class[:, 1], targets=np.ones(10, dtype=int),
        explained_labels=labels, class_attributions=per_class,
    )  # fmt: skip
    assert metric.compute(cells).value == pytest.approx(below)
    # the harness's default reads the disease map: another number on the same maps
    disease = metric_registry.get("activation_consistency_neg")(grid=16).compute(cells).value
    assert disease == pytest.approx((evidence[healthy, 1] < 0).mean())


# ------------------------------------------------------------------ deletion


def official_deletion_curve(
    images: np.ndarray, maps: np.ndarray, colour: np.ndarray, predict
) -> list[float]:
    """``extract_patch`` (foreground band over the whole image) then
    ``get_deletion_analysis`` with k = 30: patches of 33 pixels whose rows start at
    range(0, H − 1, 33) and columns at range(0, W, 33), each scored by the map's maximum
    inside it, sorted from the highest (a stable sort: ties in patch order); for i in 1…29
    the first i patches painted with the mean colour (0 in the normalised input) and the
    share of images still predicted as class 1; the curve starts at 1."""
    height, width = images.shape[2:]
    curve = [1.0]
    ranked = []
    for heatmap in maps:
        patches = [
            ((top, left), heatmap[top : top + 33, left : left + 33].max())
            for top in range(0, height - 1, 33)
            for left in range(0, width, 33)
        ]
        ranked.append(sorted(patches, key=lambda patch: patch[1], reverse=True))
    for i in range(1, 30):
        still = []
        for image, order in zip(images, ranked, strict=True):
            occluded = image.copy()
            for (top, left), _ in order[:i]:
                occluded[:, top : top + 33, left : left + 33] = colour[:, None, None]
            still.append(predict(occluded[None])[0].argmax() == 1)
        curve.append(float(np.mean(still)))
    return curve


def _bright_spot_model(x: np.ndarray) -> np.ndarray:
    """Class 1 while the brightest 33×33 block average stays above 0.55."""
    blocks = ndimage.uniform_filter(x.mean(axis=1), size=(1, 33, 33))
    p = (blocks.reshape(len(x), -1).max(axis=1) > 0.55).astype(float)
    return np.stack([1 - p, p], axis=1)


@pytest.mark.parametrize("size", [512, 496])
def test_official_deletion_matches_the_transcription(size: int) -> None:
    rng = np.random.default_rng(size)
    images = rng.uniform(0.0, 0.5, size=(4, 3, size, size)).astype(np.float32)
    for image in images:  # a few bright squares: several patches hold class-1 evidence
        for top, left in rng.integers(0, size - 40, size=(6, 2)):
            image[:, top : top + 40, left : left + 40] = 0.9
    maps = ndimage.gaussian_filter(images.mean(axis=1), (0, 4, 4))
    maps = np.round(maps, 1)  # ties between patches, broken in patch order
    train_mean = rng.uniform(0.1, 0.3, size=(3, size, size)).astype(np.float32)
    colour = train_mean.reshape(3, -1).mean(axis=1)
    metric = metric_registry.get("deletion_patch_auc")(rule="official")
    evidence = Evidence(
        attributions=maps, inputs=images, targets=np.ones(4, dtype=int),
        predict_proba=_bright_spot_model, train_mean=train_mean,
    )  # fmt: skip
    result = metric.compute(evidence)
    expected = official_deletion_curve(images, maps, colour, _bright_spot_model)
    assert len(expected) == 30 and expected[-1] < expected[0]  # the curve does fall
    np.testing.assert_allclose(result.arrays["curve"], expected)
    assert result.value == pytest.approx(np.trapezoid(expected, np.arange(30) / 29))
