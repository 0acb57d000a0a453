"""Metrics against hand-computed values and an independent rank-correlation implementation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.metrics import Evidence, metric_registry


def compute(name: str, **evidence: object) -> tuple[float, str]:
    result = metric_registry.get(name)().compute(Evidence(**evidence))  # type: ignore[arg-type]
    return result.value, result.note


def test_accuracy_by_hand() -> None:
    value, _ = compute("accuracy", y_true=np.array([0, 1, 1, 0]), y_pred=np.array([0, 1, 0, 0]))
    assert value == 0.75


def test_spearman_by_hand_with_ties() -> None:
    # ranks of scores [3, 1, 2]; average ranks of truth [1, 0, 0] are [3, 1.5, 1.5]:
    # deviations [1, -1, 0] and [1, -.5, -.5] → 1.5 / sqrt(2 · 1.5) = sqrt(3) / 2
    value, _ = compute(
        "spearman_gt", global_importance=np.array([3.0, 1.0, 2.0]), importance=np.array([1, 0, 0])
    )
    assert value == pytest.approx(math.sqrt(3) / 2, abs=1e-12)


def test_kendall_tau_b_by_hand_with_ties() -> None:
    # pairs (0,1), (0,2) concordant; (1,2) tied in truth only: τ-b = 2 / sqrt(3 · 2)
    value, _ = compute(
        "kendall_gt", global_importance=np.array([3.0, 1.0, 2.0]), importance=np.array([1, 0, 0])
    )
    assert value == pytest.approx(2 / math.sqrt(6), abs=1e-12)


def test_topk_precision_by_hand() -> None:
    # k = 2 relevant; the two highest scores are features 1 (relevant) and 2 (not)
    value, _ = compute(
        "topk_precision_gt",
        global_importance=np.array([0.1, 0.9, 0.5, 0.2]),
        importance=np.array([1, 1, 0, 0]),
    )
    assert value == 0.5


def test_topk_tie_group_shares_the_remaining_slots() -> None:
    # k = 2: feature 3 (score 2) is in; one slot left for the three tied at 1, of which
    # one (feature 1) is relevant → expected hits 1 + 1/3, precision (4/3) / 2
    value, _ = compute(
        "topk_precision_gt",
        global_importance=np.array([1.0, 1.0, 1.0, 2.0]),
        importance=np.array([0, 1, 0, 1]),
    )
    assert value == pytest.approx(2 / 3, abs=1e-12)


def test_topk_constant_explanation_scores_chance_not_perfect() -> None:
    # regression: ties used to break towards the lower index, so a constant map got a
    # perfect score whenever the relevant features come first (as in synthetic_tabular)
    truth = np.array([1, 1, 1, 1, 1] + [0] * 11)
    value, _ = compute("topk_precision_gt", global_importance=np.ones(16), importance=truth)
    assert value == pytest.approx(5 / 16, abs=1e-12)


def test_sign_convention_abs_versus_raw() -> None:
    scores, truth = np.array([-5.0, 0.1, 0.2]), np.array([1, 0, 0])
    assert compute("topk_precision_gt", global_importance=scores, importance=truth)[0] == 1.0
    raw = metric_registry.get("topk_precision_gt")(sign="raw")
    assert raw.compute(Evidence(global_importance=scores, importance=truth)).value == 0.0
    assert raw.conventions()["sign"] == "raw" and raw.conventions_hash() != (
        metric_registry.get("topk_precision_gt")().conventions_hash()
    )


@pytest.mark.parametrize("name", ["spearman_gt", "kendall_gt"])
def test_constant_explanation_is_missing_with_a_reason(name: str) -> None:
    value, note = compute(name, global_importance=np.ones(4), importance=np.array([1, 0, 0, 0]))
    assert math.isnan(value) and "constant" in note


@pytest.mark.parametrize("name", ["spearman_gt", "kendall_gt", "topk_precision_gt"])
def test_length_mismatch_is_missing_with_a_reason(name: str) -> None:
    value, note = compute(name, global_importance=np.arange(3.0), importance=np.array([1, 0]))
    assert math.isnan(value) and "3 scores" in note


def _independent_spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of average ranks, ranks computed by hand (no scipy)."""

    def average_ranks(v: np.ndarray) -> np.ndarray:
        ranks = np.empty(len(v))
        for i, value in enumerate(v):
            below, equal = np.sum(v < value), np.sum(v == value)
            ranks[i] = below + (equal + 1) / 2
        return ranks

    rx, ry = average_ranks(x), average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx @ ry) / math.sqrt((rx @ rx) * (ry @ ry)))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    scores=arrays(np.float64, st.integers(2, 30), elements=finite),
    data=st.data(),
)
def test_spearman_equals_an_independent_implementation(scores: np.ndarray, data) -> None:
    truth = data.draw(arrays(np.float64, scores.shape, elements=st.sampled_from([0.0, 0.5, 1.0])))
    assume(np.ptp(np.abs(scores)) > 0 and np.ptp(truth) > 0)
    value, _ = compute("spearman_gt", global_importance=scores, importance=truth)
    assert value == pytest.approx(_independent_spearman(np.abs(scores), truth), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(truth=arrays(np.float64, st.integers(2, 30), elements=st.sampled_from([0.0, 1.0, 2.0])))
def test_ground_truth_as_the_explanation_is_perfect(truth: np.ndarray) -> None:
    assume(np.ptp(truth) > 0)
    for name in ("spearman_gt", "kendall_gt", "topk_precision_gt"):
        assert compute(name, global_importance=truth, importance=truth)[0] == pytest.approx(1.0)


def _topk_over_all_orders(scores: np.ndarray, truth: np.ndarray) -> float:
    """Independent definition: average top-k precision over every order of the features,
    each order breaking ties (a stable sort by descending score)."""
    relevant = truth > 0
    k = int(relevant.sum())
    precisions = []
    for order in itertools.permutations(range(len(scores))):
        ranked = sorted(order, key=lambda i: -scores[i])  # stable: ties keep `order`
        precisions.append(relevant[ranked[:k]].mean())
    return float(np.mean(precisions))


@settings(max_examples=60, deadline=None)
@given(
    scores=arrays(np.float64, st.integers(2, 6), elements=st.sampled_from([0.0, 0.5, 1.0, 2.0])),
    data=st.data(),
)
def test_topk_equals_the_average_over_tie_breaking_orders(scores: np.ndarray, data) -> None:
    truth = data.draw(arrays(np.float64, scores.shape, elements=st.sampled_from([0.0, 1.0])))
    assume(np.ptp(truth) > 0)
    value, _ = compute("topk_precision_gt", global_importance=scores, importance=truth)
    assert value == pytest.approx(_topk_over_all_orders(scores, truth), abs=1e-12)


def test_explain_seconds_passes_the_measured_time_through() -> None:
    metric = metric_registry.get("explain_seconds")()
    assert metric.compute(Evidence(explain_seconds=0.25)).value == 0.25
    assert metric.higher_is_better is False and metric.unit == "s"
    per_row = metric_registry.get("explain_seconds_per_row")()
    assert per_row.compute(Evidence(explain_seconds=0.25, n_explained=50)).value == 0.005


def test_spearman_ref_by_hand_and_missing_reference() -> None:
    metric = metric_registry.get("spearman_ref")(reference="shap")
    evidence = Evidence(
        global_importance=np.array([3.0, 1.0, 2.0]),
        reference_importance={"shap": np.array([-1.0, 0.0, 0.0])},  # |·| → [1, 0, 0]
    )
    assert metric.compute(evidence).value == pytest.approx(math.sqrt(3) / 2, abs=1e-12)
    missing = metric.compute(Evidence(global_importance=np.ones(3), reference_importance={}))
    assert math.isnan(missing.value) and "'shap' has no result" in missing.note
    assert metric.references() == ["shap"]


def test_stability_is_the_mean_pairwise_spearman_over_seeds() -> None:
    seeds = [np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]), np.array([3.0, 2.0, 1.0])]
    # pairs: ρ(a,b) = 0.5, ρ(a,c) = −1, ρ(b,c) = −0.5 → mean −1/3
    value = metric_registry.get("stability")().compute_across_seeds(seeds).value
    assert value == pytest.approx(-1 / 3, abs=1e-12)
    one = metric_registry.get("stability")().compute_across_seeds(seeds[:1])
    assert math.isnan(one.value) and "at least 2 seeds" in one.note
    constant = metric_registry.get("stability")().compute_across_seeds([np.ones(3)] * 3)
    assert math.isnan(constant.value) and "constant" in constant.note
