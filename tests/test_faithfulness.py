"""Deletion and insertion curves: hand-computed areas, pixels, ties, chunking, controls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness import batching, load_results, run_suite
from harness.metrics import Evidence, faithfulness, metric_registry
from harness.suite import parse_suite

WEIGHTS = np.array([0.4, 0.3, 0.2, 0.1])


def linear_model(batch: np.ndarray) -> np.ndarray:
    """P(class 1) = w · x for inputs in [0, 1]: removing feature j costs w_j."""
    share = np.asarray(batch, float).reshape(len(batch), -1) @ WEIGHTS
    return np.stack([1 - share, share], axis=1)


def area(name: str, attributions, **params) -> float:
    evidence = Evidence(
        attributions=np.asarray([attributions], float),
        inputs=np.ones((1, 4), np.float32),
        targets=np.array([1]),
        predict_proba=linear_model,
        train_mean=np.full(4, 0.5),
    )
    return metric_registry.get(name)(steps=4, **params).compute(evidence).value


def test_deletion_and_insertion_areas_by_hand() -> None:
    # right order: deletion curve 1, .6, .3, .1, 0 → ¼·(.8 + .45 + .2 + .05) = 0.375
    assert area("deletion_auc", WEIGHTS) == pytest.approx(0.375)
    # reversed order: 1, .9, .7, .4, 0 → 0.625 (worse: higher)
    assert area("deletion_auc", WEIGHTS[::-1]) == pytest.approx(0.625)
    # insertion from zeros, right order: 0, .4, .7, .9, 1 → 0.625 (higher is better)
    assert area("insertion_auc", WEIGHTS) == pytest.approx(0.625)
    assert area("insertion_auc", WEIGHTS[::-1]) == pytest.approx(0.375)


def test_the_mean_baseline_replaces_with_the_training_mean() -> None:
    # replacing by 0.5 halves every step: curve 1, .8, .65, .55, .5 → ¼·(.9+.725+.6+.525)
    assert area("deletion_auc", WEIGHTS, baseline="mean") == pytest.approx(0.6875)


def test_directions_and_the_random_reference() -> None:
    assert metric_registry.get("deletion_auc").higher_is_better is False
    assert metric_registry.get("insertion_auc").higher_is_better is True
    random = area("deletion_auc_random", WEIGHTS)
    assert random == area("deletion_auc_random", WEIGHTS[::-1])  # ignores the map
    assert 0.375 <= random <= 0.625


def test_ties_follow_a_fixed_random_permutation_not_the_index_order() -> None:
    order = faithfulness.ranking(np.zeros((2, 16)))
    assert (order[0] == order[1]).all()  # the same for every row, deterministic
    assert not (order[0] == np.arange(16)).all()
    # strict values keep their order whatever the tie breaker
    assert faithfulness.ranking(np.array([[0.1, 3.0, 2.0]])).tolist() == [[1, 2, 0]]


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, (3, 9), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0])))
def test_ranking_equals_a_two_key_sort(maps: np.ndarray) -> None:
    """Descending by value, ties by the seeded permutation: the same as numpy's lexsort
    on (−value, tie-breaking rank), computed independently; many ties by construction."""
    tie_breaker = np.random.default_rng(0).permutation(maps.shape[1])
    expected = np.lexsort((np.broadcast_to(tie_breaker, maps.shape), -maps), axis=1)
    np.testing.assert_array_equal(faithfulness.ranking(maps), expected)


def test_pixels_are_removed_in_every_channel_together() -> None:
    seen: list[np.ndarray] = []

    def spy(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.copy())
        return np.tile([0.5, 0.5], (len(batch), 1))

    maps = np.array([[[4.0, 3.0], [2.0, 1.0]]])  # 1 image, 2×2 pixels
    evidence = Evidence(
        attributions=maps, inputs=np.ones((1, 2, 2, 2), np.float32), targets=np.array([0]),
        predict_proba=spy,
    )  # fmt: skip
    metric_registry.get("deletion_auc")(steps=2).compute(evidence)
    step_one = seen[0][1]  # (steps + 1) × rows perturbed images; step 1 = half the pixels
    assert (step_one[:, 0, :] == 0).all() and (step_one[:, 1, :] == 1).all()


def test_chunked_rows_give_the_same_areas(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    evidence = Evidence(
        attributions=rng.random((7, 4)), inputs=rng.random((7, 4)).astype(np.float32),
        targets=rng.integers(0, 2, 7), predict_proba=linear_model,
    )  # fmt: skip
    metric = metric_registry.get("insertion_auc")(steps=4)
    whole = metric.compute(evidence).value
    for budget in (40, 3):  # 2 rows of 5 curve points per chunk; 1 curve point per call
        monkeypatch.setattr(batching, "BATCH_ELEMENTS", budget)
        assert metric.compute(evidence).value == pytest.approx(whole, abs=1e-12)


def test_memory_is_bounded_by_the_batch_not_the_rows_or_the_input_size(monkeypatch) -> None:
    """Regression: 4,096 perturbed inputs went through the model at once whatever their
    size — 224-px images asked for 13 GB in the first convolution. Now each call gets at
    most BATCH_ELEMENTS input numbers (one image at least), however many images."""
    sizes: list[int] = []

    def spy(batch: np.ndarray) -> np.ndarray:
        sizes.append(batch.size)
        return linear_model(batch.reshape(len(batch), -1)[:, :4])

    rng = np.random.default_rng(0)
    monkeypatch.setattr(batching, "BATCH_ELEMENTS", 3 * 16 * 16 * 10)
    for images in (3, 40):
        sizes.clear()
        evidence = Evidence(
            attributions=rng.random((images, 16, 16)),
            inputs=rng.random((images, 3, 16, 16)).astype(np.float32),
            targets=rng.integers(0, 2, images), predict_proba=spy,
        )  # fmt: skip
        metric_registry.get("deletion_auc")(steps=20).compute(evidence)
        assert max(sizes) <= 3 * 16 * 16 * 10
        assert sum(sizes) == images * 21 * 3 * 16 * 16  # every curve point evaluated once


def test_blur_needs_images() -> None:
    with pytest.raises(ValueError, match="baseline 'blur' needs images"):
        area("deletion_auc", WEIGHTS, baseline="blur")


SUITE = """
name = "faithfulness_controls"
seeds = [0, 1]
metrics = ["deletion_auc", "insertion_auc", "deletion_auc_random"]

[execution]
explain_rows = 100

[[datasets]]
name = "synthetic_tabular"
params = { n_samples = 1500, n_features = 12, n_informative = 4, class_sep = 2.0 }

[[models]]
name = "mlp"
params = { hidden = [32], epochs = 20 }

[[explainers]]
name = "oracle"
[[explainers]]
name = "inverted"
"""


def test_removing_the_relevant_features_first_hurts_most(tmp_path) -> None:
    run_suite(parse_suite(SUITE), tmp_path)
    scores = load_results(tmp_path).pivot_table(
        index=["metric", "seed"], columns="explainer", values="value"
    )
    deletion, insertion = scores.loc["deletion_auc"], scores.loc["insertion_auc"]
    assert (deletion["oracle"] < deletion["inverted"]).all()
    assert (insertion["oracle"] > insertion["inverted"]).all()
    reference = scores.loc["deletion_auc_random"]
    assert (deletion["oracle"] < reference["oracle"]).all()
