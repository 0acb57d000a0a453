"""Leaderboards: Student-t intervals (against scipy), ranks, best marks, the rank summary,
and every format (table text, Markdown, CSV, LaTeX, HTML) showing failures and skips."""

from __future__ import annotations

import io
import json
import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from harness.report.aggregate import (
    all_tables,
    format_entry,
    rank_summary,
    significant,
    summarise,
)
from harness.report.render import render_csv, render_html, render_latex, render_markdown
from harness.statistics import t_interval


@pytest.mark.parametrize(
    "values",
    [
        [0.91, 0.93, 0.95],
        [1.0, 2.0, 4.0, 8.0, 16.0],
        list(np.random.default_rng(3).normal(size=12)),
    ],
)
def test_the_interval_is_scipys_student_t_interval(values: list[float]) -> None:
    theirs = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                              scale=stats.sem(values))  # fmt: skip
    assert t_interval(np.array(values)) == pytest.approx(theirs)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=2, max_size=8))
def test_the_interval_contains_the_mean(values: list[float]) -> None:
    low, high = t_interval(np.array(values))
    assert low - 1e-9 <= np.mean(values) <= high + 1e-9


def test_fewer_than_two_values_have_no_interval() -> None:
    assert all(np.isnan(t_interval(np.array([0.5]))))


#: The stored kind of the metrics below that are not explanation metrics.
KINDS = {"accuracy": "model", "deletion_auc_random": "reference"}


def results_frame() -> pd.DataFrame:
    """A hand-made run: two explainers and a failing one on one dataset, 3 seeds."""
    rows = []

    def add(explainer, metric, values, higher=True, kind_name=None, status="ok", note=None):
        for seed, value in enumerate(values):
            rows.append({
                "dataset": "d_1", "model": "mlp", "explainer": explainer, "seed": seed,
                "metric": metric, "metric_name": kind_name or metric, "value": value,
                "higher_is_better": higher, "status": status, "note": note, "unit": "",
                "conventions": json.dumps({}), "cell_id": f"{explainer}/{seed}",
                "metric_kind": KINDS.get(metric, "explanation"), "across_seeds": False,
                "explainer_role": "post_hoc",
            })  # fmt: skip

    add("a", "accuracy", [0.9, 0.9, 0.9])
    add("b", "accuracy", [0.9, 0.9, 0.9])
    add("a", "spearman_gt", [0.8, 0.9, 1.0])
    add("b", "spearman_gt", [0.1, 0.2, 0.3])
    add("a", "deletion_auc", [0.5, 0.5, 0.5], higher=False)
    add("b", "deletion_auc", [0.2, 0.3, 0.4], higher=False)
    add("a", "deletion_auc_random", [0.6] * 3, higher=False)
    add("b", "deletion_auc_random", [0.6] * 3, higher=False)
    failure = "cell failed: explaining failed: RuntimeError: boom_1 & co"
    for metric in ("accuracy", "spearman_gt", "deletion_auc", "deletion_auc_random"):
        lower = metric.startswith("deletion")
        add("broken", metric, [None] * 3, higher=not lower, status="failed", note=failure)
    return pd.DataFrame(rows)


def test_ranks_follow_each_metrics_direction_and_reference_metrics_are_never_best() -> None:
    summary = summarise(results_frame()).set_index(["explainer", "metric"])
    assert summary.loc[("a", "spearman_gt"), "rank"] == 1
    assert summary.loc[("b", "spearman_gt"), "rank"] == 2
    assert summary.loc[("b", "deletion_auc"), "rank"] == 1  # lower is better
    assert summary.loc[("a", "accuracy"), "best"] and summary.loc[("b", "accuracy"), "best"]
    assert not summary.loc[("a", "deletion_auc_random"), "best"]  # a reference, not a race
    assert np.isnan(summary.loc[("broken", "spearman_gt"), "rank"])
    low, high = summary.loc[("a", "spearman_gt"), ["ci_low", "ci_high"]]
    assert (low, high) == pytest.approx(t_interval(np.array([0.8, 0.9, 1.0])))


def test_the_rank_summary_averages_explanation_metrics_only() -> None:
    table = rank_summary(summarise(results_frame()))
    assert table is not None
    by_explainer = {row[1]: row[-1] for row in table.rows}
    # a: spearman 1, deletion 2 → 1.5; b: 2 and 1 → 1.5; accuracy and references excluded
    assert by_explainer == {"a": "1.50", "b": "1.50"}
    assert "broken" not in by_explainer


def test_accuracy_comes_first_and_failures_show_with_reasons_in_every_format() -> None:
    summary = summarise(results_frame())
    tables = all_tables(summary)
    leaderboard = tables[0]
    assert leaderboard.columns[2] == "accuracy ↑"
    broken = next(row for row in leaderboard.rows if row[1] == "broken")
    assert broken[2] == "failed [1]"
    reason = "RuntimeError: boom_1 & co"
    assert reason in leaderboard.footnotes[0]
    assert reason in render_markdown(tables)
    assert "boom\\_1 \\& co" in render_latex(tables)
    assert "boom_1 &amp; co" in render_html(tables)
    assert reason in render_csv(summary)


def test_markdown_is_a_well_formed_pipe_table() -> None:
    text = render_markdown(all_tables(summarise(results_frame())))
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = lines[0]
    columns = header.count("|") - 1
    assert re.fullmatch(r"\|(---\|){2}(---:\|)+", lines[1])
    rows_of_first_table = lines[: 2 + 3]
    assert all(line.count("|") - 1 == columns for line in rows_of_first_table)
    assert "**0.900 [" in text  # the best entry in bold


def test_latex_is_a_balanced_booktabs_table() -> None:
    text = render_latex(all_tables(summarise(results_frame())))
    unescaped = re.sub(r"\\[{}]", "", text)
    depth = 0
    for char in unescaped:
        depth += {"{": 1, "}": -1}.get(char, 0)
        assert depth >= 0
    assert depth == 0
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 2
    for marker in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert text.count(marker) == 2
    first = text.split(r"\midrule")[1].split(r"\bottomrule")[0]
    header = text.split(r"\toprule")[1].split(r"\midrule")[0]
    ampersands = header.count(" & ")
    for row in filter(None, (line.strip() for line in first.splitlines())):
        assert row.endswith(r"\\") and row.count(" & ") == ampersands
    assert r"\textbf{0.900 [" in text and "d\\_1" in text and r"$\uparrow$" in text


class _Tables(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables, self.cells, self.sort_values = 0, 0, []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tables += tag == "table"
        self.cells += tag == "td"
        self.sort_values += [float(v) for k, v in attrs if k == "data-value" and v]


def test_html_tables_carry_sortable_numbers() -> None:
    parser = _Tables()
    parser.feed(render_html(all_tables(summarise(results_frame()))))
    assert parser.tables == 2 and parser.cells == 3 * 6 + 2 * 4
    assert 0.9 in parser.sort_values and 1.5 in parser.sort_values


def test_csv_round_trips_the_summary() -> None:
    summary = summarise(results_frame())
    again = pd.read_csv(io.StringIO(render_csv(summary)))
    assert list(again.columns) == list(summary.columns) and len(again) == len(summary)


def test_a_table_wider_than_the_terminal_is_split_with_the_labels_repeated() -> None:
    from harness.report.render import _fitting_parts, render_text

    frame = results_frame()
    wide = pd.concat(
        [frame.assign(metric=frame["metric"] + f"_{i}") for i in range(6)], ignore_index=True
    )
    table = all_tables(summarise(wide))[0]
    parts = _fitting_parts(table, 80)
    assert len(parts) > 1 and _fitting_parts(table, 1000) == [table]
    assert all(p.columns[:2] == ["model", "explainer"] for p in parts)
    assert [c for p in parts for c in p.columns[2:]] == table.columns[2:]  # each once, in order
    for part in parts:  # rows and best marks follow their columns
        assert all(len(row) == len(part.columns) for row in part.rows + part.best)
    narrow = render_text([table], width=80)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert f"part {len(parts)} of {len(parts)}" in " ".join(narrow.split())


def test_at_100_columns_split_titles_stay_on_one_line_and_headers_cannot_collide() -> None:
    from harness.report.render import render_text

    frame = results_frame()
    names = ["activation_precision", "average_precision", "activation_sensitivity"]
    wide = pd.concat(
        [frame.assign(metric=frame["metric"].replace("spearman_gt", n)) for n in names]
        + [frame.assign(metric=frame["metric"] + f"_{i}") for i in range(4)],
        ignore_index=True,
    )
    table = all_tables(summarise(wide), "compact")[0]
    text = render_text([table], width=100)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    titles = [line for line in lines if line.startswith("d_1 (mean ±½ 95% CI") and "— part" in line]
    assert len(titles) > 1 and all(t.endswith(f"of {len(titles)}") for t in titles)
    legend = {line.split(" = ")[1]: line.split(" = ")[0] for line in lines if " = " in line}
    assert legend["activation_precision"] == "act_pre"  # was 'ap', as average_precision
    assert legend["average_precision"] == "ave_pre"
    assert legend["activation_sensitivity"] == "act_sen"
    assert len(set(legend.values())) == len(legend)


def test_the_progress_display_keeps_bar_counts_and_times_at_100_columns() -> None:
    from rich.console import Console

    from harness.runner.progress import RichProgress

    for width in (80, 100, 160):
        console = Console(width=width, file=io.StringIO(), color_system=None, record=True)
        progress = RichProgress(console)
        progress._task = progress._progress.add_task(
            "softcam_paper: 55 cells", total=55, current=""
        )
        progress.stage(
            "synthetic_lesions[contrast=0.25]/small_cnn/softcam_sparse/seed=3", "explaining"
        )
        progress._progress.advance(progress._task, 5)
        console.print(progress._progress.get_renderable())
        (line,) = console.export_text().rstrip("\n").splitlines()  # one line, never wrapped
        assert len(line) <= width and "━" in line and " 5/55 " in line
        assert "0:00:00" in line and "-:--:--" in line  # elapsed and remaining
        if width >= 100:  # the explainer before the dataset
            assert "explaining softcam_sparse · sm" in line


def test_controls_are_never_best_nor_ranked_and_come_after_the_methods() -> None:
    frame = results_frame()
    oracle = frame[frame["explainer"] == "a"].assign(explainer="oracle", explainer_role="control")
    oracle.loc[oracle["metric"] == "spearman_gt", "value"] = 1.0  # beats every method
    summary = summarise(pd.concat([oracle, frame], ignore_index=True))
    rows = summary.set_index(["explainer", "metric"])
    assert not rows.loc[("oracle", "spearman_gt"), "best"]
    assert np.isnan(rows.loc[("oracle", "spearman_gt"), "rank"])
    assert rows.loc[("a", "spearman_gt"), "rank"] == 1 and rows.loc[("a", "spearman_gt"), "best"]
    table = all_tables(summary)[0]
    assert [row[1] for row in table.rows][-1] == "oracle (control)"
    ranked = all_tables(summary)[-1]
    assert "controls excluded" in ranked.title
    assert all("oracle" not in row[1] for row in ranked.rows)
    assert not any(table.best[-1])  # no bold entry on the control's row (any format)


@pytest.mark.parametrize(
    ("mean", "low", "high", "unit", "expected"),
    [
        (0.849, 0.669, 1.029, "s", "849 ± 180 ms"),  # was '849 ms ±1.8e+02'
        (0.95, 0.941, 0.959, "", "0.950 ± 0.0090"),
        (12.3e-6, 11.0e-6, 13.6e-6, "s", "12.3 ± 1.3 µs"),
        (0.5, math.nan, math.nan, "", "0.500"),
        (3.0, 3.0, 3.0, "s", "3 ± 0 s"),
        (0.677, 0.677 - 3.3e-16, 0.677 + 3.3e-16, "", "0.677 ± 0"),  # float noise
    ],
)
def test_compact_entries_put_the_unit_after_the_interval(mean, low, high, unit, expected) -> None:
    assert format_entry(mean, low, high, unit, "compact") == expected


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-12, 1e12))
def test_significant_digits_are_written_out(value: float) -> None:
    text = significant(value)
    assert "e" not in text and float(text) == pytest.approx(value, rel=0.05)
    assert len(significant(value, most_decimals=3).partition(".")[2]) <= 3


def test_a_metric_skipped_for_a_cell_says_skipped_like_its_footnote() -> None:
    frame = results_frame()
    reason = "skipped: metric 'gain' compares a by-design model with its twin"
    skipped = frame[frame["metric"] == "accuracy"].assign(
        metric="gain", metric_name="gain", value=None, note=reason
    )
    skipped = skipped[skipped["explainer"] != "broken"]
    table = all_tables(summarise(pd.concat([frame, skipped], ignore_index=True)))[0]
    column = table.columns.index("gain ↑")
    cells = {row[1]: row[column] for row in table.rows}
    assert cells["a"] == cells["b"] and cells["a"].startswith("skipped [")
    number = int(cells["a"].split("[")[1].rstrip("]"))
    assert table.footnotes[number - 1] == f"[{number}] {reason}"


def test_an_entry_whose_seeds_disagree_is_marked_with_its_values() -> None:
    frame = results_frame().assign(range_low=0.0, range_high=1.0)
    score_cam = frame[frame["explainer"] == "a"].assign(explainer="score_cam")
    score_cam.loc[score_cam["metric"] == "spearman_gt", "value"] = [0.38, 1.0, 0.26]
    frame = pd.concat([frame, score_cam], ignore_index=True)
    times = frame[frame["metric"] == "accuracy"].assign(
        metric="explain_seconds", range_low=math.nan, range_high=math.nan, unit="s"
    )
    times["value"] = [0.379, 0.055, 0.058] * (len(times) // 3)  # unbounded: never marked
    summary = summarise(pd.concat([frame, times], ignore_index=True))
    marked = summary.loc[summary["disagree"], ["explainer", "metric"]].values.tolist()
    assert marked == [["score_cam", "spearman_gt"]]  # 0.74 of [0, 1]; 'a' spans 0.2
    table = all_tables(summary, "compact")[0]
    cell = next(r for r in table.rows if r[1] == "score_cam")[table.columns.index("spearman_gt ↑")]
    number = int(cell.rsplit("[", 1)[1].rstrip("]"))
    assert table.footnotes[number - 1].startswith(f"[{number}] seeds disagree: 0.38, 1, 0.26")
    legacy = summarise(results_frame())  # stored before ranges were kept: nothing marked
    assert not legacy["disagree"].any()
