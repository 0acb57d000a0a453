"""Parameter sweeps in suites: expansion, ids, validation, result columns, per-regime claims."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import load_results, run_suite
from harness.claims import ClaimSpec, evaluate_all
from harness.runner.plan import plan
from harness.suite import SuiteError, parse_suite
from harness.sweeps import expand
from tests.suite_builder import suite

TABLE = ("synthetic_tabular", {"n_samples": {"sweep": [200, 400]},
                               "n_features": {"sweep": [6, 12]}, "n_informative": 3})  # fmt: skip
MLP = ("mlp", {"hidden": [8], "epochs": 2})


def test_expansion_order_and_ids() -> None:
    entries = expand("t", {"a": {"sweep": [1, 2]}, "b": {"sweep": ["x", 0.5]}, "c": 3})
    assert [label for label, _, _ in entries] == [
        "t[a=1,b=x]", "t[a=1,b=0.5]", "t[a=2,b=x]", "t[a=2,b=0.5]",
    ]  # fmt: skip
    assert entries[1][1] == {"a": 1, "b": 0.5, "c": 3} and entries[1][2] == {"a": 1, "b": 0.5}
    assert expand("t", {"c": 3}) == [("t", {"c": 3}, {})]


def test_a_suite_expands_into_the_product() -> None:
    temperatures = {"temperature": {"sweep": [1.0, 0.1, 0.02]}}
    text = suite("sweep", datasets=[TABLE], models=[MLP], seeds=[0, 1],
                 explainers=["saliency", ("scores_activation", temperatures)])  # fmt: skip
    loaded = parse_suite(text)
    assert [d.id for d in loaded.datasets] == [
        "synthetic_tabular[n_samples=200,n_features=6]",
        "synthetic_tabular[n_samples=200,n_features=12]",
        "synthetic_tabular[n_samples=400,n_features=6]",
        "synthetic_tabular[n_samples=400,n_features=12]",
    ]
    assert loaded.datasets[3].component.params.n_samples == 400
    assert loaded.datasets[3].swept == {"n_samples": 400, "n_features": 12}
    assert len(plan(loaded)) == 2 * 4 * 1 * (1 + 3)
    config = loaded.resolved_config()
    assert config["explainers"][1]["sweep"] == {"base": "scores_activation",
                                                "values": {"temperature": 1.0}}  # fmt: skip


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"n_samples": {"sweeps": [200, 400]}},
            "'sweeps' is not a sweep key; did you mean 'sweep'",
        ),
        (
            {"n_samples": {"sweep": [200, "4OO"]}},
            r"synthetic_tabular\[n_samples=4OO\]\.params\.n_samples|datasets\[1\]\.params\.n_samples",
        ),
        ({"n_samples": {"sweep": []}}, "give a non-empty list of values"),
        ({"n_samples": {"sweep": [200, 200]}}, "a value is listed twice"),
        ({"n_sample": {"sweep": [200, 400]}}, "unknown parameter 'n_sample'"),
    ],
)
def test_a_bad_sweep_is_refused_like_any_other_typo(params, message: str) -> None:
    text = suite("bad", datasets=[("synthetic_tabular", params)], models=[MLP],
                 explainers=["saliency"])  # fmt: skip
    with pytest.raises(SuiteError, match=message):
        parse_suite(text)


def test_sweeps_that_cannot_be_told_apart_are_refused() -> None:
    swept = {"hidden": {"sweep": [[8], [8, 8]]}}
    twice = suite("twice", datasets=[TABLE], models=[("mlp", swept)],
                  explainers=[("scores_activation", {"hidden": {"sweep": [1, 2]}})])  # fmt: skip
    with pytest.raises(SuiteError, match="also swept in"):
        parse_suite(twice)
    ks = {"name": "topk_stability", "params": {"k": {"sweep": [3, 5]}}}
    metric = suite("metric", datasets=[TABLE], models=[MLP], explainers=["saliency"],
                   metrics=[ks])  # fmt: skip
    with pytest.raises(SuiteError, match="metrics cannot be swept"):
        parse_suite(metric)


CLAIMS = """
[[claims]]
id = "gain"
source = "test"
text = "the gain is positive"
kind = "value"
select = {{ metric = "accuracy_gain_pp", explainer = "scores_activation"{extra} }}
op = ">"
value = 0
per = {per}
"""


@pytest.mark.parametrize(
    ("extra", "per", "message"),
    [
        (
            ", n_sample = 200",
            "[]",
            "select.n_sample: not a swept parameter of this suite; did you mean 'n_samples'",
        ),
        ("", '["n_featurs"]', "per: 'n_featurs' is not a swept parameter"),
    ],
)
def test_claims_name_swept_parameters_that_exist(extra: str, per: str, message: str) -> None:
    text = suite("claims", datasets=[TABLE], models=[MLP], explainers=["scores_activation"],
                 metrics=["accuracy_gain_pp"])  # fmt: skip
    with pytest.raises(SuiteError, match=message):
        parse_suite(text + CLAIMS.format(extra=extra, per=per))


def test_swept_values_are_columns_of_the_results(tmp_path: Path) -> None:
    text = suite("columns", datasets=[TABLE], models=[MLP], seeds=[0],
                 explainers=[("scores_activation", {"temperature": {"sweep": [1.0, 0.1]}}),
                             "saliency"], metrics=["accuracy"])  # fmt: skip
    run_suite(parse_suite(text), tmp_path)
    results = load_results(tmp_path)
    assert len(results) == 4 * 3
    row = results[(results["n_samples"] == 400) & (results["temperature"] == 0.1)].iloc[0]
    assert row["dataset"] == "synthetic_tabular[n_samples=400,n_features=6]" or row[
        "dataset"] == "synthetic_tabular[n_samples=400,n_features=12]"  # fmt: skip
    assert row["explainer_base"] == "scores_activation"
    assert row["dataset_base"] == "synthetic_tabular"
    saliency = results[results["explainer"] == "saliency"]
    assert saliency["temperature"].isna().all() and saliency["n_samples"].notna().all()


def _hand_made_results() -> pd.DataFrame:
    """Two regimes × 3 seeds of a by-design gain: +2 ± 0 at 300 rows, −1/+1 at 1000."""
    rows = []
    values = {300: [2.0, 2.0, 2.0], 1000: [-1.0, 1.0, -1.0]}
    for n_samples, per_seed in values.items():
        for seed, value in enumerate(per_seed):
            rows.append({"metric": "accuracy_gain_pp", "explainer": f"sa[n={n_samples}]",
                         "explainer_base": "sa", "dataset": "d", "dataset_base": "d",
                         "model": "m", "model_base": "m", "seed": seed, "value": value,
                         "n_samples": n_samples, "across_seeds": False})  # fmt: skip
    return pd.DataFrame(rows)


def test_per_regime_verdicts_on_hand_made_results() -> None:
    claim = ClaimSpec(id="gain", source="s", text="t", kind="value", op=">", value=0.0,
                      select={"metric": "accuracy_gain_pp", "explainer": "sa"},
                      per=["n_samples"])  # fmt: skip
    outcomes = evaluate_all(claim, _hand_made_results())
    assert [(o.label, o.verdict) for o in outcomes] == [
        ("gain[n_samples=300]", "holds"), ("gain[n_samples=1000]", "inconclusive"),
    ]  # fmt: skip
    assert outcomes[0].measured == 2.0
    assert outcomes[1].measured == pytest.approx(-1 / 3)
    pooled = ClaimSpec(id="all", source="s", text="t", kind="value", op=">", value=0.0,
                       select={"metric": "accuracy_gain_pp", "explainer": "sa",
                               "n_samples": 300})  # fmt: skip
    (only,) = evaluate_all(pooled, _hand_made_results())
    assert only.verdict == "holds" and only.measured == 2.0
    # a base id selects every generated entry: the mean over both regimes per seed
    everything = ClaimSpec(
        id="e",
        source="s",
        text="t",
        kind="value",
        op=">",
        value=0.0,
        select={"metric": "accuracy_gain_pp", "explainer": "sa"},
    )
    (mixed,) = evaluate_all(everything, _hand_made_results())
    assert mixed.measured == pytest.approx(np.mean([0.5, 1.5, 0.5]))


def test_validate_reports_the_expanded_count(tmp_path: Path) -> None:
    from tests.conftest import cli

    path = tmp_path / "sweep.toml"
    path.write_text(suite("sweep", datasets=[TABLE], models=[MLP], explainers=["saliency"]))
    result = cli("validate", str(path))
    assert result.exit_code == 0, result.stdout
    assert "4 cells" in result.stdout
    assert "sweep: datasets 'synthetic_tabular' expands into 4 entries" in result.stdout
    assert "synthetic_tabular[n_samples=200,n_features=6]" in result.stdout


def test_explain_rows_of_an_explainer_can_be_swept(tmp_path: Path) -> None:
    text = suite(
        "rows",
        datasets=[("synthetic_tabular", {"n_samples": 300, "n_features": 6, "n_informative": 3})],
        models=[MLP],
        explainers=["saliency"],
        metrics=["explain_seconds"],
    ).replace('name = "saliency"', 'name = "saliency"\nexplain_rows = { sweep = [10, 40] }')
    loaded = parse_suite(text)
    assert [(e.id, e.explain_rows) for e in loaded.explainers] == [
        ("saliency[explain_rows=10]", 10), ("saliency[explain_rows=40]", 40),
    ]  # fmt: skip
    run_suite(loaded, tmp_path)
    results = load_results(tmp_path).set_index("explain_rows")
    assert results.loc[10, "n_explained"] == 10 and results.loc[40, "n_explained"] == 40
    for bad, message in (("0", "whole numbers from 1 to"), ("{ sweeps = [1] }", "give a number")):
        broken = text.replace("{ sweep = [10, 40] }", bad)
        with pytest.raises(SuiteError, match=message):
            parse_suite(broken)


def test_check_summarises_the_regimes_of_each_claim() -> None:
    from harness.report.claims import describe_outcome, regime_summary

    claim = ClaimSpec(id="gain", source="s", text="t", kind="value", op=">", value=0.0,
                      select={"metric": "accuracy_gain_pp", "explainer": "sa"},
                      per=["n_samples"])  # fmt: skip
    outcomes = evaluate_all(claim, _hand_made_results())
    assert describe_outcome(outcomes[0]).startswith("HOLDS        gain[n_samples=300]  value = 2")
    assert regime_summary(outcomes) == ["gain: 1 of 2 regimes hold, 0 fail, 1 inconclusive"]
