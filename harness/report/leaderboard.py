"""Leaderboards from stored scores: per dataset, rows = model × explainer, columns = metrics.

Each entry is the mean over seeds with a 95 % percentile-bootstrap confidence interval of
that mean (10,000 resamples of the seeds, fixed generator; none for fewer than two
values or for across-seeds statistics) and the number of seeds that produced a value.
Entries are ranked per dataset and metric in the metric's direction (1 = best; ties share
the lowest rank); the best entry is marked. Entries with no value say why (skipped,
failed, undefined) through numbered footnotes, so nothing is silently missing. Accuracy
— of the model each explainer actually ran on: by-design methods train their own — is
the first metric column. A cross-dataset summary ranks model × explainer by their mean
rank over the explanation metrics (not model or cost metrics).

With 3 seeds the bootstrap interval is coarse (it cannot be wider than the range of the
values and undercovers); it is reported as measured, with n.
"""

from __future__ import annotations

import html
import io
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.errors import HarnessError

_KEYS = ["dataset", "model", "explainer", "metric"]
CONFIDENCE = 0.95
RESAMPLES = 10_000


def bootstrap_ci(
    values: np.ndarray, confidence: float = CONFIDENCE, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement,
    ``resamples`` times, from a generator seeded with ``seed``); NaNs when fewer than 2."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    picks = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    means = values[picks].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def metric_kind(metric_name: str) -> str:
    """``explanation``, ``model`` or ``cost`` for a registered metric (plugins not
    importable now count as ``explanation``)."""
    from harness.metrics import metric_registry

    try:
        return metric_registry.get(metric_name).kind
    except HarnessError:
        return "explanation"


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Aggregate one run's scores over seeds.

    Columns: dataset, model, explainer, metric, metric_name, kind, mean, sd, ci_low,
    ci_high, n (seeds with a value), n_cells, higher_is_better, unit, status (``ok``,
    ``partial``, ``skipped``, ``failed``, ``undefined``), note (the distinct reasons for
    missing values), rank (per dataset and metric, 1 = best) and best (never set for
    ``reference`` metrics).
    """
    rows = []
    for key, group in results.groupby(_KEYS, sort=False):
        values = group["value"].dropna()
        statuses = set(group["status"])
        if len(values) == len(group):
            status = "ok"
        elif len(values):
            status = "partial"
        elif statuses == {"ok"}:
            status = "undefined"
        else:
            status = "failed" if "failed" in statuses else "skipped"
        notes = sorted({n for n in group.loc[group["value"].isna(), "note"].dropna()})
        # an across-seeds statistic is one value repeated on each seed's row: no spread
        conventions = json.loads(group["conventions"].iloc[0] or "{}")
        across_seeds = str(conventions.get("aggregate", "")).startswith("across seeds")
        spread = len(values) > 1 and not across_seeds
        low, high = bootstrap_ci(values.to_numpy()) if spread else (math.nan, math.nan)
        metric_name = group["metric_name"].iloc[0]
        rows.append(
            {
                **dict(zip(_KEYS, key, strict=True)),
                "metric_name": metric_name,
                "kind": metric_kind(metric_name),
                "mean": values.mean() if len(values) else math.nan,
                "sd": values.std(ddof=1) if spread else math.nan,
                "ci_low": low,
                "ci_high": high,
                "n": len(values),
                "n_cells": len(group),
                "higher_is_better": bool(group["higher_is_better"].iloc[0]),
                "unit": group["unit"].iloc[0],
                "status": status,
                "note": " | ".join(notes),
            }
        )
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary.assign(rank=pd.Series(dtype=float), best=pd.Series(dtype=bool))
    ranks = summary.groupby(["dataset", "metric"], sort=False)["mean"]
    summary["rank"] = ranks.rank(method="min", ascending=False)
    lower = ~summary["higher_is_better"]
    summary.loc[lower, "rank"] = ranks.rank(method="min", ascending=True)[lower]
    summary["best"] = (summary["rank"] == 1) & (summary["kind"] != "reference")
    return summary


def select(summary: pd.DataFrame, metrics: list[str], datasets: list[str]) -> pd.DataFrame:
    """Rows of the given metric ids and dataset ids (all when a list is empty); an unknown
    name is a :class:`HarnessError` that lists the known ones."""
    for wanted, column in ((metrics, "metric"), (datasets, "dataset")):
        known = list(dict.fromkeys(summary[column]))
        unknown = [w for w in wanted if w not in known]
        if unknown:
            from harness.errors import did_you_mean

            raise HarnessError(
                f"no {column} '{unknown[0]}' in this run{did_you_mean(unknown[0], known)} "
                f"Known: {', '.join(map(str, known))}"
            )
    keep = pd.Series(True, index=summary.index)
    if metrics:
        keep &= summary["metric"].isin(metrics)
    if datasets:
        keep &= summary["dataset"].isin(datasets)
    return summary[keep]


@dataclass
class LeaderboardTable:
    """One table as text cells, ready for any renderer.

    ``best`` marks the cells to emphasise; ``sort_values`` are the numbers behind the cells
    (NaN for text and missing values), for sortable HTML columns.
    """

    title: str
    columns: list[str]
    rows: list[list[str]]
    footnotes: list[str] = field(default_factory=list)
    best: list[list[bool]] = field(default_factory=list)
    sort_values: list[list[float]] = field(default_factory=list)
    text_columns: int = 2


def _scale(mean: float, unit: str) -> tuple[float, str]:
    """Seconds get the largest of s, ms, µs that keeps the mean ≥ 1."""
    if unit == "s":
        for scale, name in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if abs(mean) >= scale:
                return scale, name
        return 1e-6, "µs"
    return 1.0, unit


def format_entry(mean: float, low: float, high: float, unit: str) -> str:
    """``0.950 [0.941, 0.958]``; times as ``12.3 ms [11.9, 12.8]``."""
    scale, unit = _scale(mean, unit)
    spec = ".3g" if unit in ("s", "ms", "µs") else ".3f"
    text = f"{mean / scale:{spec}}"
    if unit:
        text += f" {unit}"
    if not math.isnan(low):
        text += f" [{low / scale:{spec}}, {high / scale:{spec}}]"
    return text


def _metric_order(block: pd.DataFrame) -> list[str]:
    """Accuracy-type (model) metrics first, then the suite's order."""
    metrics = list(dict.fromkeys(block["metric"]))
    kinds = block.drop_duplicates("metric").set_index("metric")["kind"]
    return sorted(metrics, key=lambda m: (kinds[m] != "model", metrics.index(m)))


def leaderboard_tables(summary: pd.DataFrame) -> list[LeaderboardTable]:
    """One :class:`LeaderboardTable` per dataset from :func:`summarise` output."""
    tables = []
    for dataset, block in summary.groupby("dataset", sort=False):
        metrics = _metric_order(block)
        arrows = {
            m: "↑" if block.loc[block["metric"] == m, "higher_is_better"].iloc[0] else "↓"
            for m in metrics
        }
        footnotes: list[str] = []
        rows, best, numbers = [], [], []
        for (model, explainer), entries in block.groupby(["model", "explainer"], sort=False):
            row, marks, values = [str(model), str(explainer)], [False, False], [math.nan] * 2
            by_metric = entries.set_index("metric")
            for metric in metrics:
                if metric not in by_metric.index:
                    row.append("")
                    marks.append(False)
                    values.append(math.nan)
                    continue
                entry = by_metric.loc[metric]
                text = (
                    format_entry(entry["mean"], entry["ci_low"], entry["ci_high"], entry["unit"])
                    if entry["n"]
                    else entry["status"]
                )
                if entry["n"] < entry["n_cells"]:
                    text += f" (n={entry['n']}/{entry['n_cells']})" if entry["n"] else ""
                    if entry["note"] not in footnotes:
                        footnotes.append(entry["note"])
                    text += f" [{footnotes.index(entry['note']) + 1}]"
                row.append(text)
                marks.append(bool(entry["best"]))
                values.append(float(entry["mean"]))
            rows.append(row)
            best.append(marks)
            numbers.append(values)
        seeds = int(block["n_cells"].max())
        tables.append(
            LeaderboardTable(
                title=f"{dataset} (mean [95% bootstrap CI] over {seeds} seed"
                f"{'s' if seeds != 1 else ''}; best marked)",
                columns=["model", "explainer", *(f"{m} {arrows[m]}" for m in metrics)],
                rows=rows,
                footnotes=[f"[{i}] {note}" for i, note in enumerate(footnotes, start=1)],
                best=best,
                sort_values=numbers,
            )
        )
    return tables


def rank_summary(summary: pd.DataFrame) -> LeaderboardTable | None:
    """Model × explainer by mean rank over the explanation metrics: one column per dataset
    and the overall mean (lower is better), sorted by it. None without explanation metrics."""
    quality = summary[(summary["kind"] == "explanation") & summary["rank"].notna()]
    if quality.empty:
        return None
    per_dataset = quality.pivot_table(
        index=["model", "explainer"], columns="dataset", values="rank", aggfunc="mean",
        sort=False,
    )  # fmt: skip
    overall = quality.groupby(["model", "explainer"], sort=False)["rank"].mean()
    per_dataset["mean rank"] = overall
    per_dataset = per_dataset.sort_values("mean rank")
    datasets = [c for c in per_dataset.columns if c != "mean rank"]
    rows, best, numbers = [], [], []
    top = per_dataset["mean rank"].min()
    for (model, explainer), ranks in per_dataset.iterrows():
        cells = [f"{ranks[d]:.2f}" if not math.isnan(ranks[d]) else "" for d in datasets]
        rows.append([str(model), str(explainer), *cells, f"{ranks['mean rank']:.2f}"])
        best.append([False] * (2 + len(datasets)) + [bool(ranks["mean rank"] == top)])
        numbers.append([math.nan, math.nan, *ranks[datasets], ranks["mean rank"]])
    return LeaderboardTable(
        title="Summary: mean rank over explanation metrics (1 = best; model and cost "
        "metrics excluded)",
        columns=["model", "explainer", *map(str, datasets), "mean rank ↓"],
        rows=rows,
        best=best,
        sort_values=numbers,
    )


def all_tables(summary: pd.DataFrame) -> list[LeaderboardTable]:
    """The per-dataset leaderboards, then the cross-dataset rank summary (if any)."""
    tables = leaderboard_tables(summary)
    ranks = rank_summary(summary)
    return tables + ([ranks] if ranks is not None else [])


def markdown_text(text: str) -> str:
    """``text`` safe in Markdown that may be rendered as HTML: ``<`` and ``>`` as entities
    (an id such as ``<script>`` stays text), an ``&`` that would start an entity escaped,
    line breaks as spaces; anything else, ``&`` included, reads as written."""
    flat = " ".join(str(text).splitlines())
    flat = re.sub(r"&(?=#?\w+;)", "&amp;", flat)
    return flat.replace("<", "&lt;").replace(">", "&gt;")


def html_comment(text: str) -> str:
    """``<!-- text -->`` that ``text`` cannot end early: escaped, and ``--`` (which
    closes or invalidates a comment) broken up."""
    inner = html.escape(" ".join(str(text).splitlines())).replace("--", "- -")
    return f"<!-- {inner} -->"


def pipe_table(columns: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """Lines of a GitHub-flavoured Markdown table; the first ``text_columns`` left-aligned,
    the rest (numbers) right-aligned; HTML and ``|`` in cells escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(markdown_text(c).replace("|", "\\|") for c in cells) + " |"

    rule = ["---"] * text_columns + ["---:"] * (len(columns) - text_columns)
    return [line(columns), "|" + "|".join(rule) + "|", *(line(row) for row in rows)]


def _emphasised(table: LeaderboardTable, mark: str) -> list[list[str]]:
    """Rows with best cells wrapped in ``mark`` (e.g. ``**``); empty cells left alone."""
    return [
        [f"{mark}{c}{mark}" if table.best and table.best[i][j] and c else c
         for j, c in enumerate(row)]
        for i, row in enumerate(table.rows)
    ]  # fmt: skip


def render_markdown(tables: list[LeaderboardTable]) -> str:
    """GitHub-flavoured Markdown: a heading, a pipe table (best in bold) and footnotes."""
    parts = []
    for table in tables:
        parts += [f"### {markdown_text(table.title)}", ""]
        parts += pipe_table(table.columns, _emphasised(table, "**"), table.text_columns)
        if table.footnotes:
            parts += [""] + [f"{markdown_text(note)}  " for note in table.footnotes]
        parts.append("")
    return "\n".join(parts)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$", "↓": r"$\downarrow$", "±": r"$\pm$", "µ": r"$\mu$", "×": r"$\times$",
    "—": "---", "–": "--", "…": r"\ldots{}", "≥": r"$\geq$", "≤": r"$\leq$",
}  # fmt: skip


def latex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX table cell (special characters and common symbols)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def render_latex(tables: list[LeaderboardTable]) -> str:
    """One booktabs ``table`` environment per leaderboard (needs ``\\usepackage{booktabs}``);
    best entries in bold, footnotes below the rule."""
    parts = []
    for table in tables:
        spec = "l" * table.text_columns + "r" * (len(table.columns) - table.text_columns)
        parts += [
            r"\begin{table}[ht]", r"\centering", r"\small",
            rf"\caption{{{latex_escape(table.title)}}}",
            rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
            " & ".join(latex_escape(c) for c in table.columns) + r" \\", r"\midrule",
        ]  # fmt: skip
        for i, row in enumerate(table.rows):
            cells = [
                rf"\textbf{{{latex_escape(c)}}}" if table.best and table.best[i][j] and c
                else latex_escape(c)
                for j, c in enumerate(row)
            ]  # fmt: skip
            parts.append(" & ".join(cells) + r" \\")
        parts += [r"\bottomrule", r"\end{tabular}"]
        if table.footnotes:
            parts += [
                r"\par\footnotesize " + r" \\ ".join(latex_escape(n) for n in table.footnotes)
            ]
        parts += [r"\end{table}", ""]
    return "\n".join(parts)


def render_html(tables: list[LeaderboardTable]) -> str:
    """HTML fragments: one ``<table class="leaderboard">`` per leaderboard with numeric
    ``data-value`` attributes for sorting, best cells in ``<strong>``, footnotes after."""
    escape = html.escape
    parts = []
    for table in tables:
        parts.append(f'<h3>{escape(table.title)}</h3>\n<table class="leaderboard">')
        header = "".join(
            f'<th data-column="{j}" title="click to sort">{escape(c)}</th>'
            for j, c in enumerate(table.columns)
        )
        parts.append(f"<thead><tr>{header}</tr></thead><tbody>")
        for i, row in enumerate(table.rows):
            cells = []
            for j, text in enumerate(row):
                value = table.sort_values[i][j] if table.sort_values else math.nan
                attribute = f' data-value="{float(value)!r}"' if not math.isnan(value) else ""
                content = escape(text)
                if table.best and table.best[i][j] and text:
                    content = f"<strong>{content}</strong>"
                cells.append(f"<td{attribute}>{content}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
        if table.footnotes:
            notes = "".join(f"<li>{escape(n)}</li>" for n in table.footnotes)
            parts.append(f'<ul class="footnotes">{notes}</ul>')
    return "\n".join(parts)


def print_tables(console: Console, tables: list[LeaderboardTable]) -> None:
    """Rich tables on ``console`` (the terminal format): labels never wrap, best in bold
    green, footnotes below each table. A table wider than the console is split into
    several, each repeating the label columns, so no column is squeezed to nothing."""
    for table in tables:
        for part in _fitting_parts(table, console.width):
            view = Table(title=part.title, title_justify="left", title_style="bold")
            for index, column in enumerate(part.columns):
                if index < part.text_columns:  # labels stay whole
                    width = max(len(column), *(len(row[index]) for row in part.rows))
                    view.add_column(column, no_wrap=True, min_width=width)
                else:
                    view.add_column(column, justify="right", overflow="fold")
            for i, row in enumerate(part.rows):
                marks = part.best[i] if part.best else [False] * len(row)
                styles = ["bold green" if mark else "" for mark in marks]
                view.add_row(*(Text(c, style=s) for c, s in zip(row, styles, strict=True)))
            console.print(view)
        for note in table.footnotes:
            console.print(note, highlight=False, soft_wrap=True)


def _fitting_parts(table: LeaderboardTable, width: int) -> list[LeaderboardTable]:
    """``table`` split by metric columns into parts no wider than ``width`` characters.

    Label columns keep their full width; a value column may wrap at spaces (mean, then
    the interval bounds on their own lines), so it needs its longest word, at least 8
    characters, plus borders."""
    labels = list(range(table.text_columns))

    def needed(j: int) -> int:
        cells = [table.columns[j], *(row[j] for row in table.rows)]
        if j in labels:
            return max(map(len, cells)) + 3
        words = [len(w) for c in cells[1:] for w in c.split()]
        return max([8, *words]) + 3

    groups: list[list[int]] = [[]]
    used = sum(needed(j) for j in labels) + 1
    for j in range(table.text_columns, len(table.columns)):
        if groups[-1] and used + needed(j) > width:
            groups.append([])
            used = sum(needed(j) for j in labels) + 1
        groups[-1].append(j)
        used += needed(j)
    if len(groups) == 1:
        return [table]
    parts = []
    for number, group in enumerate(groups, start=1):
        keep = labels + group
        parts.append(
            LeaderboardTable(
                title=f"{table.title} — part {number} of {len(groups)}",
                columns=[table.columns[j] for j in keep],
                rows=[[row[j] for j in keep] for row in table.rows],
                best=[[marks[j] for j in keep] for marks in table.best] if table.best else [],
                sort_values=[],
                text_columns=table.text_columns,
            )
        )
    return parts


def render_text(tables: list[LeaderboardTable], width: int = 200) -> str:
    """The terminal format as plain text (no colours), ``width`` characters wide."""
    console = Console(record=True, width=width, file=io.StringIO())
    print_tables(console, tables)
    return console.export_text()


def render_csv(summary: pd.DataFrame) -> str:
    """The :func:`summarise` frame as CSV (machine-readable; one row per entry and metric)."""
    buffer = io.StringIO()
    summary.to_csv(buffer, index=False)
    return buffer.getvalue()
