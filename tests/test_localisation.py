"""Localisation metrics: hand-computed cases, independent implementations, controls."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import roc_auc_score

from harness.metrics import Evidence, metric_registry
from tests.conftest import CONTROL_EXPLAINERS, control_scores_table

LOCALISATION = sorted(
    name for name in metric_registry.names() if "masks" in metric_registry.get(name).needs
)


def score(name: str, maps, masks, **params) -> tuple[float, str]:
    result = metric_registry.get(name)(**params).compute(
        Evidence(attributions=np.asarray(maps, float), masks=np.asarray(masks, bool))
    )
    return result.value, result.note


def one(image) -> np.ndarray:
    return np.asarray(image, float)[None]


def test_the_metrics_are_registered() -> None:
    assert set(LOCALISATION) == {
        "pointing_game", "energy_pointing_game", "energy_pointing_game_baseline",
        "relevance_mass_accuracy", "relevance_rank_accuracy", "topk_iou", "mask_roc_auc",
        "activation_precision", "activation_sensitivity", "topk_patch_precision",
        "emd_localisation",
    }  # fmt: skip


CORNER_MAX = one([[9, 0, 0], [0, 0, 0], [0, 0, 0]])
FAR_MASK = one([[0, 0, 0], [0, 0, 0], [0, 0, 1]]).astype(bool)


@pytest.mark.parametrize(("tolerance", "hit"), [(0, 0.0), (2, 0.0), (2.9, 1.0), (15, 1.0)])
def test_pointing_game_tolerance_by_hand(tolerance: float, hit: float) -> None:
    # the maximum is at (0, 0), the mask at (2, 2): distance √8 ≈ 2.83 pixels
    assert score("pointing_game", CORNER_MAX, FAR_MASK, tolerance=tolerance)[0] == hit


def test_pointing_game_ties_and_constant_maps_are_misses() -> None:
    mask = one([[1, 0, 0], [0, 0, 0], [0, 0, 0]]).astype(bool)
    tied = one([[5, 0, 0], [0, 0, 0], [0, 0, 5]])  # one maximum in the mask, one far away
    assert score("pointing_game", tied, mask, tolerance=0)[0] == 0.0
    assert score("pointing_game", one(np.ones((3, 3))), mask, tolerance=15)[0] == 0.0
    assert score("pointing_game", one(np.ones((3, 3))), one(np.ones((3, 3))), tolerance=0)[0] == 0


def test_empty_masks_are_left_out_and_counted() -> None:
    maps = np.stack([CORNER_MAX[0], CORNER_MAX[0]])
    masks = np.stack([FAR_MASK[0], np.zeros((3, 3), bool)])
    value, note = score("pointing_game", maps, masks, tolerance=15)
    assert value == 1.0 and note == "1 of 2 images left out (empty mask)"
    value, note = score("pointing_game", maps, np.zeros((2, 3, 3)), tolerance=15)
    assert math.isnan(value) and note == "no image with a defined value (empty mask)"


def test_energy_pointing_game_and_relevance_mass_by_hand() -> None:
    mask = one([[0, 1], [0, 0]]).astype(bool)
    assert score("energy_pointing_game", one([[1, 2], [3, 4]]), mask)[0] == pytest.approx(0.2)
    # negative values: positive part [0, 2, 3, 0] → 2 / 5
    assert score("energy_pointing_game", one([[-1, 2], [3, -4]]), mask)[0] == pytest.approx(0.4)
    assert score("energy_pointing_game_baseline", one([[-1, 2], [3, -4]]), mask)[0] == 0.25
    signed = one([[-1, 2], [3, 1]])
    assert score("relevance_mass_accuracy", signed, mask)[0] == pytest.approx(2 / 6)
    assert score("relevance_mass_accuracy", signed, mask, sign="raw")[0] == pytest.approx(2 / 5)
    value, note = score("energy_pointing_game", one([[-1, -2], [0, -4]]), mask)
    assert math.isnan(value) and "no image with a defined value" in note


def test_rank_accuracy_iou_and_auc_by_hand() -> None:
    maps, mask = one([[4, 3, 2, 1]]), one([[1, 0, 1, 0]]).astype(bool)
    # K = 2: top-2 = pixels 0, 1 → one hit; IoU = 1 / (2 + 2 − 1)
    assert score("relevance_rank_accuracy", maps, mask)[0] == 0.5
    assert score("topk_iou", maps, mask)[0] == pytest.approx(1 / 3)
    # positives score 4 and 2, negatives 3 and 1: 3 of 4 pairs ordered right
    assert score("mask_roc_auc", maps, mask)[0] == 0.75
    flat, single = one([[1, 1, 1, 1]]), one([[1, 0, 0, 0]]).astype(bool)
    assert score("relevance_rank_accuracy", flat, single)[0] == 0.25  # chance K/N
    assert score("mask_roc_auc", flat, single)[0] == 0.5
    value, note = score("mask_roc_auc", maps, one([[1, 1, 1, 1]]).astype(bool))
    assert math.isnan(value) and "(empty or full mask)" in note


def test_activation_precision_and_sensitivity_by_hand() -> None:
    maps = one([[0, 1], [2, 4]])  # S = [0, .25, .5, 1]
    corner = one([[0, 0], [0, 1]]).astype(bool)
    assert score("activation_precision", maps, corner)[0] == pytest.approx(1 / 1.75)
    assert score("activation_sensitivity", maps, corner)[0] == 1.0
    diagonal = one([[0, 1], [1, 0]]).astype(bool)
    assert score("activation_precision", maps, diagonal)[0] == pytest.approx(0.75 / 1.75)
    assert score("activation_sensitivity", maps, diagonal)[0] == pytest.approx(0.75 / 2)
    value, note = score("activation_precision", one([[3, 3], [3, 3]]), corner)
    assert math.isnan(value) and "constant map" in note


def test_maps_of_another_size_are_refused() -> None:
    value, note = score("pointing_game", np.zeros((1, 2, 2)), np.ones((1, 3, 3)))
    assert math.isnan(value) and "(input size)" in note


small_maps = arrays(np.float64, (2, 2, 3), elements=st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]))
small_masks = arrays(np.bool_, (2, 2, 3))


@settings(max_examples=150, deadline=None)
@given(maps=small_maps, masks=small_masks)
def test_mask_roc_auc_equals_scikit_learn(maps: np.ndarray, masks: np.ndarray) -> None:
    defined = [m.any() and not m.all() for m in masks]
    assume(any(defined))
    expected = np.mean(
        [
            roc_auc_score(m.ravel(), a.ravel())
            for a, m, d in zip(maps, masks, defined, strict=True)
            if d
        ]
    )
    assert score("mask_roc_auc", maps, masks)[0] == pytest.approx(expected, abs=1e-12)


def _rra_over_all_orders(a: np.ndarray, m: np.ndarray) -> float:
    """Independent: mean over every pixel order (tie-breaking) of |top-K ∩ mask| / K."""
    a, m = a.ravel(), m.ravel()
    k = int(m.sum())
    hits = [
        m[sorted(order, key=lambda i: -a[i])[:k]].mean()
        for order in itertools.permutations(range(len(a)))
    ]
    return float(np.mean(hits))


@settings(max_examples=60, deadline=None)
@given(maps=small_maps, masks=small_masks)
def test_rank_accuracy_equals_the_average_over_tie_orders(maps, masks) -> None:
    defined = [m.any() for m in masks]
    assume(any(defined))
    expected = np.mean(
        [_rra_over_all_orders(a, m) for a, m, d in zip(maps, masks, defined, strict=True) if d]
    )
    assert score("relevance_rank_accuracy", maps, masks)[0] == pytest.approx(expected, abs=1e-12)


def _pointing_by_distances(a: np.ndarray, m: np.ndarray, tolerance: float) -> float:
    """Independent: explicit distance from every tied maximum to the nearest mask pixel."""
    if a.min() == a.max():
        return 0.0
    targets = np.argwhere(m)
    for peak in np.argwhere(a == a.max()):
        if np.hypot(*(targets - peak).T).min() > tolerance:
            return 0.0
    return 1.0


@settings(max_examples=150, deadline=None)
@given(maps=small_maps, masks=small_masks, tolerance=st.sampled_from([0.0, 1.0, 1.5, 2.3]))
def test_pointing_game_equals_explicit_distances(maps, masks, tolerance) -> None:
    defined = [m.any() for m in masks]
    assume(any(defined))
    expected = np.mean(
        [
            _pointing_by_distances(a, m, tolerance)
            for a, m, d in zip(maps, masks, defined, strict=True)
            if d
        ]
    )
    assert score("pointing_game", maps, masks, tolerance=tolerance)[0] == expected


@settings(max_examples=100, deadline=None)
@given(masks=small_masks)
def test_the_mask_itself_is_a_perfect_map(masks: np.ndarray) -> None:
    assume(all(m.any() and not m.all() for m in masks))
    for name in LOCALISATION:
        if name == "energy_pointing_game_baseline":
            continue
        params = {"tolerance": 0} if name == "pointing_game" else {}
        assert score(name, masks.astype(float), masks, **params)[0] == pytest.approx(1.0), name


CONTROLS = (
    f"""
name = "lesion_controls"
seeds = [0, 1]
metrics = {LOCALISATION!r}

[execution]
explain_rows = 40

[[datasets]]
name = "synthetic_lesions"
params = {{ n_images = 160, size = 32, radius = [1.5, 3.0], distractors = [0, 1] }}

[[models]]
name = "small_cnn"
params = {{ channels = [4], epochs = 1 }}

"""
    + CONTROL_EXPLAINERS
    + """
[[explainers]]
name = "centre"
"""
)


@pytest.fixture(scope="module")
def control_scores(tmp_path_factory: pytest.TempPathFactory):
    return control_scores_table(CONTROLS, tmp_path_factory.mktemp("lesion_controls"), cells=10)


@pytest.mark.parametrize("metric", LOCALISATION)
def test_oracle_beats_random_beats_inverted_on_lesions(control_scores, metric: str) -> None:
    scores = control_scores.loc[metric]
    assert (scores["oracle"] >= scores["random"]).all(), scores
    assert (scores["random"] >= scores["inverted"]).all(), scores
    if metric != "energy_pointing_game_baseline":  # the baseline ignores the map
        assert (scores["oracle"] == 1).all() and (scores["oracle"] > scores["random"]).all()


@pytest.mark.parametrize("metric", LOCALISATION)
def test_a_constant_map_is_never_perfect(control_scores, metric: str) -> None:
    for value in control_scores.loc[metric]["constant"]:
        assert math.isnan(value) or value < 1.0


def test_lesion_dataset_masks_and_split(tmp_path: Path) -> None:
    from harness.datasets import dataset_registry

    source = dataset_registry.get("synthetic_lesions")(n_images=100, size=32, radius=(1.5, 3.0))
    data, again = source.load(3), source.load(3)
    np.testing.assert_array_equal(data.x_test, again.x_test)
    masks = data.ground_truth.masks
    assert masks.shape == (24, 32, 32) and masks.dtype == bool  # 12 of each 50, stratified
    assert (masks.any(axis=(1, 2)) == (data.y_test == 1)).all()  # lesions ⇔ positive class
    assert data.y_train.mean() == data.y_test.mean() == 0.5
    assert data.x_train.shape[1:] == (1, 32, 32) and data.attribution_shape == (32, 32)
