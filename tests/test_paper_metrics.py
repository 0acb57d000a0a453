"""The Soft-CAM paper's metrics against values computed by hand on tiny arrays, and the
classification scores against scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from harness.metrics import Evidence, metric_registry
from tests.test_official_softcam_protocol import official_cells


def compute(name: str, **fields) -> tuple[float, str, dict]:
    params = fields.pop("params", {})
    result = metric_registry.get(name)(**params).compute(Evidence(**fields))
    return result.value, result.note, result.arrays


# ---------------------------------------------------------------- top-k patch precision


def test_scale_free_precision_by_hand() -> None:
    """P = S = 1 (cells are pixels): greedy selection of the highest positive cells."""
    maps = np.array([[[0.9, 0.0, 0.1],
                      [0.0, 0.5, 0.0],
                      [0.3, 0.0, -1.0]]])  # fmt: skip
    masks = np.array([[[1, 0, 0],
                       [0, 0, 0],
                       [1, 0, 0]]], dtype=bool)  # fmt: skip
    value, _, arrays = compute(
        "topk_patch_precision", attributions=maps, masks=masks,
        params={"patch": 1, "stride": 1, "k_max": 5},
    )  # fmt: skip
    # order of the positive cells: 0.9 (hit), 0.5 (miss), 0.3 (hit), 0.1 (miss); no more
    expected = [1 / 1, 1 / 2, 2 / 3, 2 / 4, 2 / 4]
    np.testing.assert_allclose(arrays["precision_at_k"], expected)
    assert value == pytest.approx(np.mean(expected))


def test_scale_free_selection_skips_overlapping_patches() -> None:
    """P = 2, S = 1: a cell whose 2×2 patch overlaps a selected one is skipped."""
    maps = np.zeros((1, 4, 4))
    maps[0, 0, 0] = maps[0, 0, 1] = 1.0  # patches (0,0) and (0,1) overlap
    maps[0, 3, 3] = 0.5  # only patch (2,2) covers it
    masks = np.zeros((1, 4, 4), dtype=bool)
    masks[0, 3, 3] = True
    _, _, arrays = compute(
        "topk_patch_precision", attributions=maps, masks=masks,
        params={"patch": 2, "stride": 1, "k_max": 2},
    )  # fmt: skip
    # patch means (3×3 grid): (0,0) 0.5, (0,1) 0.25, (0,2) 0, (2,2) 0.125, (1,0) 0.25 …
    # greedy: (0,0) miss; then every cell within |Δ| < 2 of it is excluded — (0,1),
    # (1,0), (1,1) — so the next is (2,2) (0.125), which touches the mask: a hit
    np.testing.assert_allclose(arrays["precision_at_k"], [0.0, 0.5])


def test_scale_free_ties_go_in_flat_index_order() -> None:
    maps = np.array([[[1.0, 1.0], [0.0, 0.0]]])
    masks = np.array([[[False, True], [False, False]]])
    _, _, arrays = compute(
        "topk_patch_precision", attributions=maps, masks=masks,
        params={"patch": 1, "stride": 1, "k_max": 2},
    )  # fmt: skip
    np.testing.assert_allclose(arrays["precision_at_k"], [0.0, 0.5])  # (0,0) first, then (0,1)


def test_official_rule_reproduces_the_official_selection_on_60x60() -> None:
    from harness.metrics.patch_precision import official_selection

    rng = np.random.default_rng(7)
    heatmap = rng.normal(0.0, 1.5, size=(60, 60))
    heatmap[0, 58:] = 5.0 + rng.random(2)  # cells at the right edge: their windows wrap
    heatmap[30, 30:33] = 4.0  # a tie
    import torch

    for k in (1, 5, 29, 200):
        got = official_selection(torch.as_tensor(heatmap[None]), 1.0, k)[0].tolist()
        expected = official_cells(heatmap, k, 1.0)  # the transcription of topK_patches
        assert [i for i in got if i >= 0] == expected, k


def test_official_threshold_rejects_maps_scaled_to_one() -> None:
    ramp = np.linspace(0.0, 1.0, 64)
    maps = np.stack([np.add.outer(ramp, ramp) / 2] * 2)  # smooth, in [0, 1]: never above 1
    masks = np.ones((2, 64, 64), dtype=bool)
    value, note, _ = compute(
        "topk_patch_precision", attributions=maps, masks=masks, params={"rule": "official"}
    )
    assert math.isnan(value) and "no cell above the threshold" in note
    value, _, _ = compute("topk_patch_precision", attributions=maps, masks=masks)
    assert value == 1.0  # every patch touches a full mask


def test_topk_precision_leaves_out_empty_masks_and_negative_maps() -> None:
    maps = np.stack([np.full((16, 16), -1.0), np.eye(16)])  # all-negative, then a diagonal
    masks = np.stack([np.ones((16, 16), dtype=bool), np.eye(16, dtype=bool)])
    value, note, _ = compute("topk_patch_precision", attributions=maps, masks=masks)
    assert value == 1.0 and note == ""  # the negative map selects nothing: no patch
    masks[0] = False
    value, note, _ = compute("topk_patch_precision", attributions=maps, masks=masks)
    assert value == 1.0 and note == "1 of 2 images left out (empty mask)"
    value, note, _ = compute("topk_patch_precision", attributions=maps, masks=np.zeros_like(masks))
    assert math.isnan(value) and "no image with a non-empty mask" in note


# ---------------------------------------------------------------- activation consistency


def test_activation_consistency_by_hand() -> None:
    maps = np.array([
        [[1.0, -1.0], [2.0, 0.0]],   # diseased (label 1): 2 of 4 cells positive
        [[1.0, 1.0], [1.0, 1.0]],    # diseased: 4 of 4
        [[-1.0, -2.0], [0.0, 3.0]],  # healthy (label 0): 2 of 4 negative
    ])  # fmt: skip
    fields = dict(attributions=maps, targets=np.array([1, 1, 1]),
                  explained_labels=np.array([1, 1, 0]))  # fmt: skip
    value, note, arrays = compute("activation_consistency_pos", params={"grid": 2}, **fields)
    assert value == pytest.approx(0.75) and arrays["sd"] == pytest.approx(np.std([0.5, 1], ddof=1))
    value, _, _ = compute("activation_consistency_neg", params={"grid": 2}, **fields)
    assert value == pytest.approx(0.5)
    # the healthy image's own class map (class 0) is not in this explanation
    value, note, _ = compute(
        "activation_consistency_neg", params={"grid": 2, "negative_map": "own"}, **fields
    )
    assert math.isnan(value) and "explain_classes = 'all'" in note
    per_class = np.stack([-maps, maps], axis=1)  # class 0's map is the opposite
    value, _, _ = compute(
        "activation_consistency_neg", params={"grid": 2, "negative_map": "own"},
        class_attributions=per_class, **fields,
    )  # fmt: skip
    assert value == pytest.approx(1 / 4)  # −map: one negative cell (3.0 → −3.0)


def test_activation_consistency_pools_to_the_grid() -> None:
    maps = np.zeros((1, 4, 4))
    maps[0, :2, :2] = 1.0  # one of four 2×2 blocks positive
    maps[0, 2:, 2:] = [[1.0, -3.0], [0.0, 0.0]]  # mean −0.5: negative
    fields = dict(attributions=maps, targets=np.array([1]), explained_labels=np.array([1]))
    value, _, _ = compute("activation_consistency_pos", params={"grid": 2}, **fields)
    assert value == pytest.approx(0.25)


# ---------------------------------------------------------------- patch deletion


def _lesion_model(x: np.ndarray) -> np.ndarray:
    """Class 1's probability: the mean brightness of the top-left 2×2 corner."""
    p = x[:, 0, :2, :2].mean(axis=(1, 2)).clip(0, 1)
    return np.stack([1 - p, p], axis=1)


def test_patch_deletion_by_hand() -> None:
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, :2, :2] = 1.0  # the corner patch decides the class
    good = np.zeros((1, 4, 4))
    good[0, :2, :2] = 1.0  # the map points at the corner patch
    bad = 1.0 - good  # the corner patch last
    fields = dict(inputs=x, targets=np.array([1]), predict_proba=_lesion_model,
                  train_mean=np.zeros((1, 4, 4), np.float32))  # fmt: skip
    params = {"patch": 2, "patches": 4}
    value, _, arrays = compute("deletion_patch_auc", attributions=good, params=params, **fields)
    np.testing.assert_array_equal(arrays["curve"], [1, 0, 0, 0, 0])
    assert value == pytest.approx(0.125)  # trapezoid over k/K = 0, ¼, …, 1
    value, _, arrays = compute("deletion_patch_auc", attributions=bad, params=params, **fields)
    np.testing.assert_array_equal(arrays["curve"], [1, 1, 1, 1, 0])
    assert value == pytest.approx(0.875)
    ratio = {**params, "curve": "probability_ratio"}
    _, _, arrays = compute("deletion_patch_auc", attributions=good, params=ratio, **fields)
    np.testing.assert_allclose(arrays["curve"], [1, 0, 0, 0, 0])


def test_patch_deletion_leaves_out_images_not_predicted_as_their_class() -> None:
    x = np.zeros((2, 1, 4, 4), dtype=np.float32)
    x[0, 0, :2, :2] = 1.0  # image 1 is dark: predicted class 0, explained for class 1
    fields = dict(inputs=x, targets=np.array([1, 1]), predict_proba=_lesion_model,
                  train_mean=np.zeros((1, 4, 4), np.float32))  # fmt: skip
    maps = np.zeros((2, 4, 4))
    maps[:, :2, :2] = 1.0
    value, note, _ = compute(
        "deletion_patch_auc", attributions=maps, params={"patch": 2, "patches": 4}, **fields
    )
    assert value == pytest.approx(0.125) and "1 of 2 images left out" in note


def test_patch_deletion_foreground_keeps_dark_patches() -> None:
    x = np.zeros((1, 1, 4, 4), dtype=np.float32)
    x[0, 0, :2, :2] = 1.0
    maps = np.ones((1, 4, 4))
    maps[0, 2:, 2:] = 5.0  # ranked first, but dark: outside the foreground
    fields = dict(inputs=x, targets=np.array([1]), predict_proba=_lesion_model,
                  train_mean=np.zeros((1, 4, 4), np.float32))  # fmt: skip
    params = {"patch": 2, "patches": 1, "foreground": 0.5}
    _, _, arrays = compute("deletion_patch_auc", attributions=maps, params=params, **fields)
    np.testing.assert_array_equal(arrays["curve"], [1, 0])  # the bright patch went first


# ---------------------------------------------------------------- activation precision


def test_no_positive_convention() -> None:
    maps = np.stack([np.full((2, 2), -1.0), [[1.0, 0.0], [0.0, 0.0]]])
    masks = np.array([[[1, 0], [0, 0]], [[1, 0], [0, 0]]], dtype=bool)
    value, note, _ = compute("activation_precision", attributions=maps, masks=masks)
    assert value == 1.0 and "1 of 2 images left out" in note
    value, note, _ = compute(
        "activation_precision", attributions=maps, masks=masks, params={"no_positive": "zero"}
    )
    assert value == 0.5 and note == ""
    value, _, _ = compute(
        "activation_sensitivity", attributions=maps, masks=masks, params={"no_positive": "zero"}
    )
    assert value == 0.5


# ---------------------------------------------------------------- classification


@st.composite
def labelled_scores(draw, classes: int):
    n = draw(st.integers(4, 40))
    y = np.array(draw(st.lists(st.integers(0, classes - 1), min_size=n, max_size=n)))
    raw = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=n * classes,
                                 max_size=n * classes))).reshape(n, classes)  # fmt: skip
    return y, raw / raw.sum(axis=1, keepdims=True)


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    fields = dict(y_true=y, y_pred=p.argmax(axis=1), y_score=p)
    return {name: compute(name, **fields)[0] for name in
            ("roc_auc", "average_precision", "sensitivity", "specificity",
             "balanced_accuracy", "accuracy")}  # fmt: skip


@pytest.mark.filterwarnings("ignore:A single label was found")  # scikit-learn, in the test
@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # likewise
@settings(max_examples=60, deadline=None)
@given(labelled_scores(classes=2))
def test_binary_scores_equal_scikit_learns(data) -> None:
    y, p = data
    got = _scores(y, p)
    pred = p.argmax(axis=1)
    assert got["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred))
    if len(set(y)) == 2:
        assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, p[:, 1]))
        assert got["average_precision"] == pytest.approx(sk.average_precision_score(y, p[:, 1]))
        tn, fp, fn, tp = sk.confusion_matrix(y, pred, labels=[0, 1]).ravel()
        assert got["sensitivity"] == pytest.approx(tp / (tp + fn))
        assert got["specificity"] == pytest.approx(tn / (tn + fp))
    else:
        assert math.isnan(got["roc_auc"])


@settings(max_examples=30, deadline=None)
@given(labelled_scores(classes=3))
def test_multiclass_scores_equal_scikit_learns(data) -> None:
    y, p = data
    got = _scores(y, p)
    if len(set(y)) == 3:
        assert got["roc_auc"] == pytest.approx(sk.roc_auc_score(y, p, multi_class="ovr"))
    positive = y == 1
    if positive.any():
        assert got["sensitivity"] == pytest.approx(np.mean(p.argmax(1)[positive] == 1))


def test_gain_over_twin_in_points() -> None:
    y = np.array([0, 0, 1, 1])
    design = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]])  # AUC 1
    twin = np.array([[0.4, 0.6], [0.6, 0.4], [0.3, 0.7], [0.8, 0.2]])  # AUC 0.5
    value, _, _ = compute(
        "gain_over_twin", y_true=y, y_pred=design.argmax(1), y_score=design,
        twin_y_pred=twin.argmax(1), twin_y_score=twin,
    )  # fmt: skip
    assert value == pytest.approx(100 * (1.0 - sk.roc_auc_score(y, twin[:, 1])))


def test_scores_need_stored_probabilities() -> None:
    value, note, _ = compute("roc_auc", y_true=np.array([0, 1]), y_pred=np.array([0, 1]))
    assert math.isnan(value) and "probabilities" in note
