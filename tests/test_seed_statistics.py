"""Pearson agreement, top-k stability across seeds, and holding the data fixed across seeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import pearsonr

from harness import run_suite
from harness.metrics import Evidence, metric_registry
from harness.store import ResultsStore
from harness.suite import parse_suite
from tests.suite_builder import suite

vectors = st.lists(st.floats(-100, 100), min_size=3, max_size=12)


@settings(max_examples=80, deadline=None)
@given(vectors, st.data())
def test_pearson_gt_and_ref_equal_scipys(scores: list[float], data) -> None:
    truth = data.draw(st.lists(st.floats(0, 5), min_size=len(scores), max_size=len(scores)))
    a, b = np.array(scores), np.array(truth)
    assume(np.ptp(np.abs(a)) > 1e-6 and np.ptp(b) > 1e-6)
    expected = pearsonr(np.abs(a), b).statistic
    got = metric_registry.get("pearson_gt")().compute(Evidence(global_importance=a, importance=b))
    assert got.value == pytest.approx(expected, abs=1e-9)
    ref = metric_registry.get("pearson_ref")(reference="other").compute(
        Evidence(global_importance=a, reference_importance={"other": b})
    )
    assert ref.value == pytest.approx(expected, abs=1e-9)


def test_pearson_of_a_constant_explanation_is_missing() -> None:
    result = metric_registry.get("pearson_gt")().compute(
        Evidence(global_importance=np.ones(4), importance=np.array([1.0, 0, 0, 1]))
    )
    assert math.isnan(result.value) and "constant" in result.note


def test_topk_stability_by_hand() -> None:
    metric = metric_registry.get("topk_stability")(k=2)
    seeds = [
        np.array([5.0, 4.0, 0.0, 0.0]),  # top-2 {0, 1}
        np.array([-5.0, 0.0, 4.0, 0.0]),  # |·|: {0, 2}
        np.array([1.0, 3.0, 3.0, 0.0]),  # {1, 2}
    ]
    # Jaccard: {0,1}&{0,2} = 1/3; {0,1}&{1,2} = 1/3; {0,2}&{1,2} = 1/3
    assert metric.compute_across_seeds(seeds).value == pytest.approx(1 / 3)
    tied = [np.array([2.0, 1.0, 1.0, 0.0]), np.array([2.0, 1.0, 0.0, 0.0])]
    # k = 2, first: the 2nd value 1.0 is tied → {0, 1, 2}; second {0, 1}: 2/3
    assert metric.compute_across_seeds(tied).value == pytest.approx(2 / 3)
    assert math.isnan(metric.compute_across_seeds(seeds[:1]).value)


def test_data_seed_holds_the_data_and_varies_the_model(tmp_path: Path) -> None:
    text = suite(
        "fixed_data",
        datasets=[("synthetic_tabular", {"n_samples": 200, "n_features": 6, "n_informative": 3})],
        models=[("mlp", {"hidden": [8], "epochs": 2})],
        explainers=["saliency"],
        metrics=["accuracy", "topk_stability", "stability"],
        seeds=[0, 1],
        execution={"data_seed": 7, "explain_rows": 20},
    )
    summary = run_suite(parse_suite(text), tmp_path)
    assert summary.counts["ok"] == 2
    with ResultsStore(tmp_path, create=False) as store:
        first, second = (
            store.cell_arrays(summary.run_id, f"synthetic_tabular/mlp/saliency/seed={s}")
            for s in (0, 1)
        )
    # different initialisation and batch order: different models, different explanations
    assert not np.allclose(first["explanation.local"], second["explanation.local"])
    # … on the same data: both cells load the dataset drawn with seed 7
    from harness.datasets import dataset_registry
    from harness.runner.cell import load_cell_dataset
    from harness.runner.plan import plan

    parsed = parse_suite(text)
    loaded = [load_cell_dataset(cell, None, parsed.spec.execution) for cell in plan(parsed)]
    data = dataset_registry.get("synthetic_tabular")(
        n_samples=200, n_features=6, n_informative=3
    ).load(7)
    for each in loaded:
        np.testing.assert_array_equal(each.x_train, data.x_train)
        np.testing.assert_array_equal(each.y_test, data.y_test)


def test_time_to_ranking_by_hand() -> None:
    trajectory = np.array([
        [0.25, 0.25, 0.25, 0.25],  # epoch 0: all tied → {0, 1, 2, 3}
        [0.4, 0.3, 0.2, 0.1],      # epoch 1: top-2 {0, 1}
        [0.1, 0.4, 0.3, 0.2],      # epoch 2: {1, 2}
        [0.2, 0.5, 0.25, 0.05],    # epoch 3: {1, 2}
        [0.1, 0.6, 0.2, 0.1],      # epoch 4: {1, 2}
    ])  # fmt: skip
    seconds = np.array([0.0, 1.5, 3.0, 4.5, 6.0])
    result = metric_registry.get("time_to_ranking")(k=2).compute(
        Evidence(history={"score_trajectory": trajectory, "epoch_seconds": seconds})
    )
    assert result.value == 3.0 and int(result.arrays["epoch"]) == 2
    missing = metric_registry.get("time_to_ranking")().compute(Evidence(history={}))
    assert math.isnan(missing.value) and "trajectory" in missing.note


def test_claims_sum_terms_on_a_side() -> None:
    import pandas as pd

    from harness.claims import ClaimSpec, evaluate_all

    rows = [
        {"metric": m, "explainer": e, "dataset": "d", "model": "m", "seed": seed, "value": v,
         "across_seeds": False}
        for seed in (0, 1, 2)
        for m, e, v in (("explain_seconds", "shap", 30.0 + seed), ("train_seconds", "sa", 0.5),
                        ("train_seconds", "twin", 0.5))
    ]  # fmt: skip
    claim = ClaimSpec.model_validate({
        "id": "speed", "source": "s", "text": "t", "kind": "ratio", "op": ">=", "value": 30.0,
        "numerator": [{"metric": "explain_seconds", "explainer": "shap"},
                      {"metric": "train_seconds", "explainer": "twin"}],
        "denominator": {"metric": "train_seconds", "explainer": "sa"},
    })  # fmt: skip
    (outcome,) = evaluate_all(claim, pd.DataFrame(rows))
    # paired positive times: the geometric mean of the per-seed ratios (30 + s + 0.5) / 0.5
    assert outcome.measured == pytest.approx((61.0 * 63.0 * 65.0) ** (1 / 3))
