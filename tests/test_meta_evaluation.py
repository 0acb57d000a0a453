"""Issue 29: which metric can be trusted on a dataset — control separation read from a
run's own scores, marked in leaderboards and required by claims."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness import load_results, run_suite
from harness.claims import ClaimSpec, evaluate_all
from harness.meta_evaluation import control_separation
from harness.report.aggregate import all_tables, summarise
from harness.suite import parse_suite
from tests.conftest import CONTROL_EXPLAINERS


def frame(scores: dict[str, dict[str, list[float]]], higher: bool = True) -> pd.DataFrame:
    """metric → explainer → per-seed values, as stored results of one dataset × model."""
    rows = []
    for metric, by_explainer in scores.items():
        for explainer, values in by_explainer.items():
            for seed, value in enumerate(values):
                rows.append({
                    "dataset": "d", "model": "m", "explainer": explainer, "seed": seed,
                    "metric": metric, "metric_name": metric, "value": value,
                    "higher_is_better": higher, "status": "ok", "note": None, "unit": "",
                    "cell_id": f"{explainer}/{seed}", "metric_kind": "explanation",
                    "across_seeds": False,
                    "explainer_role": "post_hoc" if explainer == "method" else "control",
                })  # fmt: skip
    return pd.DataFrame(rows)


def verdicts(results: pd.DataFrame) -> dict[str, str]:
    return {c.metric: c.verdict for c in control_separation(results)}


def test_hand_made_metrics_are_judged_by_how_they_order_the_controls() -> None:
    results = frame({
        "good": {"oracle": [1.0, 0.9, 0.95], "random": [0.5, 0.4, 0.45], "inverted": [0, 0.1, 0]},
        "constant": {"oracle": [0.3] * 3, "random": [0.3] * 3, "inverted": [0.3] * 3},
        "reversed": {"oracle": [1.0, 1, 1], "random": [0.1, 0.2, 0.1], "inverted": [0.6, 0.5, 0.7]},
        "one_seed": {"oracle": [1.0], "random": [0.5], "inverted": [0.0]},
        "noisy": {"oracle": [0.9, 0.2, 0.6], "random": [0.3, 0.7, 0.4],
                  "inverted": [0.1, 0.3, 0.2]},
    })  # fmt: skip
    assert verdicts(results) == {
        "good": "separates",  # every difference's interval above 0
        "constant": "fails",  # a metric that returns a constant ties the controls
        "reversed": "fails",  # inverted above random
        "one_seed": "untested",  # no interval from one seed
        "noisy": "undecided",  # the right order on average, not shown at 95 %
    }
    good = next(c for c in control_separation(results) if c.metric == "good")
    first = good.differences[0]
    assert first.mean == pytest.approx(0.5) and math.isinf(first.effect)
    noisy = next(c for c in control_separation(results) if c.metric == "noisy").differences[0]
    paired = np.array([0.6, -0.5, 0.2])
    half = stats.t.ppf(0.975, 2) * paired.std(ddof=1) / math.sqrt(3)
    assert (noisy.low, noisy.high) == pytest.approx((paired.mean() - half, paired.mean() + half))
    assert noisy.effect == pytest.approx(paired.mean() / paired.std(ddof=1))


def test_metrics_that_do_not_measure_ground_truth_agreement_are_not_checked() -> None:
    """Every control is model-blind: under MPRT they all tie at 1, as they must."""
    results = frame({"mprt": {"oracle": [1.0] * 3, "random": [1.0] * 3, "inverted": [1.0] * 3}})
    assert verdicts(results.assign(metric_family="randomisation")) == {}
    assert verdicts(results.assign(metric_family="localisation")) == {"mprt": "fails"}


def test_lower_is_better_metrics_and_edge_maps() -> None:
    """Direction is the metric's; where the run has an edge map, the oracle must beat it."""
    results = frame(
        {"deletion": {"oracle": [0.1, 0.2, 0.1], "random": [0.5, 0.6, 0.5],
                      "inverted": [0.9, 0.8, 0.9], "sobel": [0.05, 0.1, 0.1]}},
        higher=False,
    )  # fmt: skip
    (check,) = control_separation(results)
    assert [(d.better, d.worse) for d in check.differences] == [
        ("oracle", "random"), ("random", "inverted"), ("oracle", "sobel"),
    ]  # fmt: skip
    assert check.verdict == "fails" and check.differences[2].mean < 0  # the edge map wins


def test_the_leaderboard_marks_a_metric_that_fails_and_claims_on_it_are_inconclusive() -> None:
    scores = {
        "reversed": {"oracle": [1.0, 1, 1], "random": [0.1, 0.2, 0.1],
                     "inverted": [0.6, 0.5, 0.7], "method": [0.8, 0.9, 0.85]},
        "good": {"oracle": [1.0, 0.9, 0.95], "random": [0.5, 0.4, 0.45],
                 "inverted": [0, 0.1, 0], "method": [0.8, 0.9, 0.85]},
    }  # fmt: skip
    results = frame(scores)
    table = all_tables(summarise(results), "compact")[0]
    method = next(row for row in table.rows if row[1] == "method")
    flagged = method[table.columns.index("reversed ↑")]
    number = int(flagged.rsplit("[", 1)[1].rstrip("]"))
    assert "reversed does not separate the controls on this dataset" in table.footnotes[number - 1]
    assert "random − inverted -0.467" in table.footnotes[number - 1]
    assert "[" not in method[table.columns.index("good ↑")]  # a trusted metric: no mark
    control = next(row for row in table.rows if row[1] == "oracle (control)")
    assert "[" not in control[table.columns.index("reversed ↑")]  # controls are the evidence

    def claim(metric: str, **extra: bool) -> ClaimSpec:
        return ClaimSpec(id=f"c_{metric}", source="s", text="t", kind="value",
                         select={"metric": metric, "explainer": "method"}, op=">",
                         value=0.5, **extra)  # fmt: skip

    (held,) = evaluate_all(claim("good"), results)
    assert held.verdict == "holds"
    (blocked,) = evaluate_all(claim("reversed"), results)
    assert blocked.verdict == "inconclusive"
    assert blocked.note.startswith("the metric does not separate the controls on this dataset")
    (decided,) = evaluate_all(claim("reversed", require_trusted=False), results)
    assert decided.verdict == "holds"


CONTROLS = (
    """
name = "trust"
seeds = [0, 1, 2, 3, 4]
metrics = ["accuracy", "spearman_gt", "kendall_gt", "topk_precision_gt"]
[[datasets]]
name = "synthetic_tabular"
params = { n_samples = 400, n_features = 16, n_informative = 5 }
[[models]]
name = "mlp"
params = { hidden = [8], epochs = 2 }
"""
    + CONTROL_EXPLAINERS
)


def test_ground_truth_metrics_separate_the_controls_on_planted_data(tmp_path: Path) -> None:
    run_suite(parse_suite(CONTROLS), tmp_path)
    checks = {c.metric: c for c in control_separation(load_results(tmp_path))}
    for metric in ("spearman_gt", "kendall_gt", "topk_precision_gt"):
        assert checks[metric].verdict == "separates", checks[metric].summary
    from harness.report.html_report import write_report

    page = write_report(tmp_path, None, tmp_path / "report").read_text()
    card = page[page.index("<h2>Metric report card</h2>") : page.index("<h2>Metric conventions")]
    assert card.count('<td class="separates">separates</td>') == 3
    assert "oracle − random" in card and "random − inverted" in card
    assert "<th>cost per cell</th>" in card and card.count(" s</td></tr>") == 3  # seconds
    from harness.store import load_arrays

    spent = load_arrays(tmp_path, "spearman_gt.seconds")
    assert len(spent) == 20 and all(float(v) >= 0 for v in spent.values())  # every cell
