"""Claims: verdict logic, Student-t / Fieller intervals (paired by seed), rank claims, the
`check` command's exit codes and JUnit output, and regression against a baseline run.
(Calibration under no effect: tests/test_claim_calibration.py.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from typer.testing import CliRunner

from harness.claims import ClaimSpec, evaluate, verdict
from harness.cli import app
from harness.regression import compare_runs
from harness.store import ResultsStore
from tests.conftest import TINY_SUITE


def claim(**fields) -> ClaimSpec:
    base = {"id": "c", "source": "test", "text": "t", "kind": "value", "value": 0.5,
            "select": {"metric": "m"}}  # fmt: skip
    return ClaimSpec.model_validate(base | fields)


@pytest.mark.parametrize(
    ("op", "low", "high", "expected"),
    [
        (">=", 0.5, 0.9, "holds"), (">=", 0.4, 0.9, "inconclusive"), (">=", 0.1, 0.49, "fails"),
        (">", 0.5, 0.9, "inconclusive"), (">", 0.51, 0.9, "holds"),
        ("<=", 0.1, 0.5, "holds"), ("<=", 0.6, 0.9, "fails"), ("<", 0.1, 0.5, "inconclusive"),
    ],
)  # fmt: skip
def test_verdicts_by_hand(op: str, low: float, high: float, expected: str) -> None:
    assert verdict(claim(op=op), low, high) == expected


def test_equality_with_tolerance() -> None:
    close = claim(op="==", value=1.0, tolerance=0.1)
    assert verdict(close, 0.95, 1.05) == "holds"
    assert verdict(close, 1.05, 1.2) == "inconclusive"
    assert verdict(close, 1.2, 1.3) == "fails"


@given(st.floats(-10, 10), st.floats(0, 5), st.floats(-10, 10), st.sampled_from([">=", "<="]))
def test_a_verdict_agrees_with_every_point_of_the_interval(
    low: float, width: float, threshold: float, op: str
) -> None:
    high = low + width
    points = np.linspace(low, high, 50)
    ok = points >= threshold if op == ">=" else points <= threshold
    expected = "holds" if ok.all() else "fails" if not ok.any() else "inconclusive"
    assert verdict(claim(op=op, value=threshold), low, high) == expected


def frame(entries: dict[tuple[str, str], list[float]], higher: bool = True) -> pd.DataFrame:
    """Tidy results: {(explainer, metric): values per seed}."""
    return pd.DataFrame([
        {"dataset": "d", "model": "mlp", "explainer": e, "metric": m, "metric_name": m,
         "seed": seed, "value": v, "higher_is_better": higher}
        for (e, m), values in entries.items() for seed, v in enumerate(values)
    ])  # fmt: skip


def test_a_value_claim_uses_a_student_t_interval_over_seeds() -> None:
    values = [0.8, 0.9, 0.95, 0.7]
    result = evaluate(claim(select={"metric": "m", "explainer": "a"}, value=0.6),
                      frame({("a", "m"): values}))  # fmt: skip
    assert result.measured == pytest.approx(np.mean(values))
    expected = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (result.low, result.high) == pytest.approx(expected)
    assert result.verdict == "holds" and result.seeds == 4 and "Student-t" in result.method


def test_ratios_are_paired_by_seed() -> None:
    # seed effects shared by both sides cancel when paired: the ratio is exactly 2 on every
    # seed, although each side alone varies tenfold
    slow, fast = [10.0, 100.0, 40.0], [5.0, 50.0, 20.0]
    results = frame({("slow", "t"): slow, ("fast", "t"): fast})
    ratio = claim(kind="ratio", select=None, value=2.0, op="==", tolerance=1e-9,
                  numerator={"metric": "t", "explainer": "slow"},
                  denominator={"metric": "t", "explainer": "fast"})  # fmt: skip
    result = evaluate(ratio, results)
    assert (result.measured, result.low, result.high) == pytest.approx((2.0, 2.0, 2.0))
    assert result.verdict == "holds" and "paired by seed" in result.method


def test_a_paired_ratio_of_positive_values_is_the_geometric_mean_of_per_seed_ratios() -> None:
    slow, fast = np.array([10.0, 30.0, 25.0, 12.0]), np.array([2.0, 4.0, 5.0, 3.0])
    results = frame({("slow", "t"): list(slow), ("fast", "t"): list(fast)})
    ratio = claim(kind="ratio", select=None, value=3.0, op=">=",
                  numerator={"metric": "t", "explainer": "slow"},
                  denominator={"metric": "t", "explainer": "fast"})  # fmt: skip
    result = evaluate(ratio, results)
    logs = np.log(slow / fast)
    low, high = stats.t.interval(0.95, 3, loc=logs.mean(), scale=stats.sem(logs))
    assert result.measured == pytest.approx(stats.gmean(slow / fast))
    assert (result.low, result.high) == pytest.approx((np.exp(low), np.exp(high)))
    assert result.verdict == "holds"


def test_a_ratio_with_a_side_not_positive_uses_fiellers_interval() -> None:
    # Fieller's set by brute force: every ρ whose paired t-test of a − ρ·b is not rejected
    a, b = np.array([1.0, -0.5, 2.0, 1.5, 0.8]), np.array([2.0, 2.5, 1.5, 3.0, 2.2])
    results = frame({("a", "m"): list(a), ("b", "m"): list(b)})
    ratio = claim(kind="ratio", select=None, value=0.1,
                  numerator={"metric": "m", "explainer": "a"},
                  denominator={"metric": "m", "explainer": "b"})  # fmt: skip
    result = evaluate(ratio, results)
    grid = np.linspace(-2, 3, 50_001)
    accepted = [rho for rho in grid if stats.ttest_1samp(a - rho * b, 0).pvalue >= 0.05]
    assert result.low == pytest.approx(min(accepted), abs=2e-4)
    assert result.high == pytest.approx(max(accepted), abs=2e-4)
    assert "Fieller" in result.method and result.measured == pytest.approx(a.mean() / b.mean())


def test_unpaired_differences_use_welchs_interval() -> None:
    a, b = [0.9, 0.8, 0.85, 0.95], [0.5, 0.7, 0.4]
    results = frame({("a", "m"): a, ("b", "m"): b})
    results = results[~((results["explainer"] == "b") & (results["seed"] == 3))]
    gap = claim(kind="difference", select=None, value=0.0,
                minuend={"metric": "m", "explainer": "a"},
                subtrahend={"metric": "m", "explainer": "b"})  # fmt: skip
    result = evaluate(gap, results)
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (result.low, result.high) == pytest.approx((welch.low, welch.high))
    assert "Welch" in result.method


def test_one_seed_never_decides_a_claim() -> None:
    results = frame({("a", "m"): [0.9], ("b", "m"): [0.4]})
    gap = claim(kind="difference", select=None, value=0.3,
                minuend={"metric": "m", "explainer": "a"},
                subtrahend={"metric": "m", "explainer": "b"})  # fmt: skip
    result = evaluate(gap, results)
    assert result.measured == pytest.approx(0.5) and result.low == result.high == result.measured
    assert result.verdict == "inconclusive" and "at least 2 seeds" in result.note
    assert not result.has_interval


def test_min_seeds_keeps_a_claim_open_and_the_seeds_needed_are_reported() -> None:
    results = frame({("a", "m"): [0.9, 0.7, 0.8]})
    strict = claim(select={"metric": "m", "explainer": "a"}, value=0.5, min_seeds=5)
    result = evaluate(strict, results)
    assert result.verdict == "inconclusive" and "min_seeds (5)" in result.note
    assert result.seeds_needed == 5
    # an undecided claim: the fewest n with t(n−1)·s/√n below the observed effect
    close = evaluate(claim(select={"metric": "m", "explainer": "a"}, value=0.75), results)
    assert close.verdict == "inconclusive"
    n = next(n for n in range(2, 1000)
             if stats.t.ppf(0.975, n - 1) * 0.1 / np.sqrt(n) < 0.05)  # fmt: skip
    assert close.seeds_needed == n


def test_rank_claims_respect_the_metric_direction() -> None:
    better = frame({("a", "m"): [0.9, 0.8, 0.85], ("b", "m"): [0.5, 0.6, 0.4]})
    first = claim(kind="rank", value=None, select={"metric": "m", "explainer": "a"})
    assert evaluate(first, better).verdict == "holds"
    lower = frame({("a", "m"): [0.9, 0.8, 0.85], ("b", "m"): [0.5, 0.6, 0.4]}, higher=False)
    result = evaluate(first, lower)
    assert result.verdict == "fails" and result.measured == 2
    assert evaluate(first.model_copy(update={"top": 2}), lower).verdict == "holds"


def test_rank_claims_leave_controls_out_unless_they_select_one() -> None:
    scores = {("oracle", "m"): [1.0, 1.0, 1.0], ("a", "m"): [0.9, 0.8, 0.85],
              ("b", "m"): [0.5, 0.6, 0.4]}  # fmt: skip
    results = frame(scores)
    results["explainer_role"] = np.where(results["explainer"] == "oracle", "control", "post_hoc")
    first = claim(kind="rank", value=None, select={"metric": "m", "explainer": "a"})
    result = evaluate(first, results)
    assert result.verdict == "holds" and "among 2 explainers (controls left out)" in result.note
    oracle = evaluate(first.model_copy(update={"select": first.select.model_copy(
        update={"explainer": "oracle"})}), results)  # fmt: skip
    assert oracle.verdict == "holds" and "among 3 explainers" in oracle.note


def test_a_rank_interval_counts_the_significantly_better_and_worse() -> None:
    # 'a' is significantly worse than 'best', indistinguishable from 'tie', significantly
    # better than 'low': its rank is 2 or 3 → rank ≤ 3 holds, rank 1 fails
    results = frame({("best", "m"): [2.0, 2.1, 1.9, 2.05], ("a", "m"): [1.0, 1.1, 0.9, 1.0],
                     ("tie", "m"): [1.05, 0.9, 1.0, 1.1],
                     ("low", "m"): [0.1, 0.0, 0.2, 0.1]})  # fmt: skip
    first = claim(kind="rank", value=None, select={"metric": "m", "explainer": "a"})
    result = evaluate(first, results)
    assert (result.low, result.high) == (2, 3) and result.verdict == "fails"
    assert evaluate(first.model_copy(update={"top": 3}), results).verdict == "holds"
    assert evaluate(first.model_copy(update={"top": 2}), results).verdict == "inconclusive"


CLAIMS = """
[[claims]]
id = "oracle-perfect"
source = "by construction"
text = "the oracle recovers the ground truth"
kind = "value"
metric = "spearman_gt"
select = { explainer = "oracle", dataset = "syn" }
op = ">="
value = 0.99

[[claims]]
id = "oracle-first"
source = "by construction"
text = "the oracle ranks first on Spearman"
kind = "rank"
select = { metric = "spearman_gt", explainer = "oracle" }

[[claims]]
id = "ig-is-slower"
source = "common sense"
text = "Integrated Gradients takes at least 10 times as long as reading off the oracle"
kind = "ratio"
numerator = { metric = "explain_seconds", explainer = "integrated_gradients" }
denominator = { metric = "explain_seconds", explainer = "oracle" }
value = 10
"""

FALSE_CLAIM = """
[[claims]]
id = "random-is-great"
source = "nobody"
text = "a random ranking recovers the ground truth"
kind = "value"
select = { metric = "spearman_gt", explainer = "random" }
value = 0.9
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "claims.toml"
    path.write_text(text)
    return path


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def test_check_exit_codes_output_and_junit(tmp_path: Path) -> None:
    out = tmp_path / "out"
    three_seeds = TINY_SUITE.replace("seeds = [0, 1]", "seeds = [0, 1, 2]")
    true_suite = write(tmp_path, three_seeds + CLAIMS)
    missing = invoke("check", str(true_suite), "--out", str(out))
    assert missing.exit_code == 2 and "--run-missing" in missing.output
    first = invoke("check", str(true_suite), "--out", str(out), "--run-missing",
                   "--junit", str(tmp_path / "claims.xml"))  # fmt: skip
    assert first.exit_code == 0, first.output
    lines = [line for line in first.stdout.splitlines() if line.startswith("HOLDS")]
    assert len(lines) == 3 and "oracle-first  rank = 1" in first.stdout
    assert "by construction" in lines[0] and "[" in lines[0]  # source and interval
    report = ET.parse(tmp_path / "claims.xml").getroot()
    assert report.get("tests") == "3" and report.get("failures") == "0"
    false_suite = write(tmp_path, three_seeds + CLAIMS + FALSE_CLAIM)
    result = invoke("check", str(false_suite), "--out", str(out),
                    "--junit", str(tmp_path / "false.xml"))  # fmt: skip
    assert result.exit_code == 1 and "FAILS        random-is-great" in result.stdout
    failures = ET.parse(tmp_path / "false.xml").getroot().findall("testcase/failure")
    assert [f.get("type") for f in failures] == ["fails"]


def test_malformed_claims_exit_2_naming_the_claim(tmp_path: Path) -> None:
    unknown = CLAIMS.replace('metric = "spearman_gt"\nselect', 'metric = "spearman"\nselect')
    result = invoke("check", str(write(tmp_path, TINY_SUITE + unknown)))
    assert result.exit_code == 2
    assert "claims[0] (id 'oracle-perfect').select.metric: 'spearman' is not a metric id" in (
        result.output.replace("\n", "")
    )
    no_value = CLAIMS.replace('op = ">="\nvalue = 0.99\n', "")
    result = invoke("check", str(write(tmp_path, TINY_SUITE + no_value)))
    assert result.exit_code == 2 and "claims[0] (id 'oracle-perfect')" in result.output
    assert "needs `value`" in result.output


def test_a_claim_on_cells_that_never_ran_is_an_empty_selection(tmp_path: Path) -> None:
    skipped = TINY_SUITE + '[[explainers]]\nname = "grad_cam"\n' + CLAIMS.replace(
        'explainer = "oracle", dataset', 'explainer = "grad_cam", dataset')  # fmt: skip
    out = tmp_path / "out"
    result = invoke("check", str(write(tmp_path, skipped)), "--out", str(out), "--run-missing")
    assert result.exit_code == 2
    assert "claim 'oracle-perfect': the selection" in result.output.replace("\n", " ")
    assert "matches no stored value" in result.output.replace("\n", " ")


def test_against_flags_a_planted_change_and_ignores_timing_noise(tmp_path: Path) -> None:
    out = tmp_path / "out"
    suite = write(tmp_path, TINY_SUITE + CLAIMS)
    for _ in range(2):
        assert invoke("run", str(suite), "--out", str(out)).exit_code == 0
    with ResultsStore(out) as store:  # writable: the test plants a change
        baseline, current = store.run_ids()
        cell = "syn/mlp/integrated_gradients/seed=0"
        old = store.results(current).query("cell_id == @cell and metric == 'kendall_gt'")
        store._db.execute(  # the store has no way to change a row: plant it with SQL
            "UPDATE scores SET value = ? WHERE run_id = ? AND cell_id = ? AND metric = ?",
            (float(old["value"].iloc[0]) + 0.05, current, cell, "kendall_gt"),
        )
        store._db.commit()
    result = invoke("check", str(suite), "--out", str(out), "--against", baseline,
                    "--time-factor", "1000")  # fmt: skip
    assert result.exit_code == 1, result.output
    moved = [line for line in result.stdout.splitlines() if "MOVED" in line]
    assert len(moved) == 1 and "integrated_gradients kendall_gt" in moved[0]
    assert "changed by +0.025" in moved[0]  # the mean over 2 seeds moved by half of 0.05


def test_timings_are_compared_as_ratios() -> None:
    def run(seconds: float, accuracy: float) -> pd.DataFrame:
        return pd.DataFrame([
            {"dataset": "d", "model": "m", "explainer": "e", "metric": "explain_seconds",
             "metric_name": "explain_seconds", "seed": 0, "value": seconds, "metric_kind": "cost"},
            {"dataset": "d", "model": "m", "explainer": "e", "metric": "accuracy",
             "metric_name": "accuracy", "seed": 0, "value": accuracy, "metric_kind": "model"},
        ])  # fmt: skip

    noisy, compared = compare_runs(run(1.0, 0.9), run(1.8, 0.9), time_factor=2.0)
    assert noisy == [] and compared == 2
    slow, _ = compare_runs(run(1.0, 0.9), run(5.0, 0.9), time_factor=2.0)
    assert [c.metric for c in slow] == ["explain_seconds"] and "×5.00" in slow[0].reason
    drift, _ = compare_runs(run(1.0, 0.9), run(1.0, 0.88), per_metric={"accuracy": 0.01})
    assert [c.metric for c in drift] == ["accuracy"]
    fine, _ = compare_runs(run(1.0, 0.9), run(1.0, 0.895), per_metric={"accuracy": 0.01})
    assert fine == []


def test_an_across_seeds_statistic_has_no_interval_and_says_so() -> None:
    results = frame({("a", "stability"): [0.7, 0.7, 0.7]})
    results["across_seeds"] = True  # as stored on the rows of an across-seeds metric
    result = evaluate(claim(select={"metric": "stability", "explainer": "a"}, value=0.8),
                      results)  # fmt: skip
    assert result.verdict == "fails" and result.low == result.high == pytest.approx(0.7)
    assert "statistic across seeds" in result.note and result.seeds == 3


def test_timings_can_be_left_out_of_the_comparison() -> None:
    base = pd.DataFrame([
        {"dataset": "d", "model": "m", "explainer": "e", "metric": "explain_seconds",
         "metric_name": "explain_seconds", "seed": 0, "value": 1.0, "metric_kind": "cost"},
        {"dataset": "d", "model": "m", "explainer": "e", "metric": "accuracy",
         "metric_name": "accuracy", "seed": 0, "value": 0.9, "metric_kind": "model"},
    ])  # fmt: skip
    slower = base.assign(value=[10.0, 0.9])
    changes, compared = compare_runs(base, slower, timings=False)
    assert changes == [] and compared == 1
