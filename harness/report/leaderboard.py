"""Leaderboards from stored scores: per dataset, rows = model × explainer, columns = metrics.

Each entry is the mean ± standard deviation over seeds (sample sd, ``ddof=1``), with the
number of seeds that produced a value. Entries with no value say why (skipped, failed,
undefined) through numbered footnotes, so nothing is silently missing.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field

import pandas as pd

_KEYS = ["dataset", "model", "explainer", "metric"]


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Aggregate one run's scores over seeds.

    Columns: dataset, model, explainer, metric, mean, sd, n (seeds with a value),
    n_cells, higher_is_better, unit, status (``ok``, ``partial``, ``skipped``, ``failed``,
    ``undefined``) and note (the distinct reasons for missing values).
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
        rows.append(
            {
                **dict(zip(_KEYS, key, strict=True)),
                "mean": values.mean() if len(values) else math.nan,
                "sd": values.std(ddof=1) if len(values) > 1 and not across_seeds else math.nan,
                "n": len(values),
                "n_cells": len(group),
                "higher_is_better": bool(group["higher_is_better"].iloc[0]),
                "unit": group["unit"].iloc[0],
                "status": status,
                "note": " | ".join(notes),
            }
        )
    return pd.DataFrame(rows)


@dataclass
class LeaderboardTable:
    """One dataset's leaderboard as text cells, ready for any renderer."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    footnotes: list[str] = field(default_factory=list)


def _format_value(mean: float, sd: float, unit: str) -> str:
    """``0.950 ± 0.004``; seconds get the largest of s, ms, µs that keeps the mean ≥ 1."""
    scale = 1.0
    if unit == "s":
        for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):  # noqa: B007
            if abs(mean) >= scale:
                break
    spec = ".3g" if unit in ("s", "ms", "µs") else ".3f"
    text = f"{mean / scale:{spec}}"
    if not math.isnan(sd):
        text += f" ± {sd / scale:{spec}}"
    return text + (f" {unit}" if unit else "")


def leaderboard_tables(summary: pd.DataFrame) -> list[LeaderboardTable]:
    """One :class:`LeaderboardTable` per dataset from :func:`summarise` output."""
    tables = []
    for dataset, block in summary.groupby("dataset", sort=False):
        metrics = list(dict.fromkeys(block["metric"]))
        arrows = {
            m: "↑" if block.loc[block["metric"] == m, "higher_is_better"].iloc[0] else "↓"
            for m in metrics
        }
        footnotes: list[str] = []
        rows = []
        for (model, explainer), entries in block.groupby(["model", "explainer"], sort=False):
            row = [str(model), str(explainer)]
            by_metric = entries.set_index("metric")
            for metric in metrics:
                entry = by_metric.loc[metric]
                text = (
                    _format_value(entry["mean"], entry["sd"], entry["unit"])
                    if entry["n"]
                    else entry["status"]
                )
                if entry["n"] < entry["n_cells"]:
                    text += f" (n={entry['n']}/{entry['n_cells']})" if entry["n"] else ""
                    if entry["note"] not in footnotes:
                        footnotes.append(entry["note"])
                    text += f" [{footnotes.index(entry['note']) + 1}]"
                row.append(text)
            rows.append(row)
        tables.append(
            LeaderboardTable(
                title=str(dataset),
                columns=["model", "explainer", *(f"{m} {arrows[m]}" for m in metrics)],
                rows=rows,
                footnotes=[f"[{i}] {note}" for i, note in enumerate(footnotes, start=1)],
            )
        )
    return tables


def pipe_table(columns: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """Lines of a GitHub-flavoured Markdown table; the first ``text_columns`` left-aligned,
    the rest (numbers) right-aligned; ``|`` in cells escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = ["---"] * text_columns + ["---:"] * (len(columns) - text_columns)
    return [line(columns), "|" + "|".join(rule) + "|", *(line(row) for row in rows)]


def render_markdown(tables: list[LeaderboardTable]) -> str:
    """GitHub-flavoured Markdown: a heading, a pipe table and footnotes per dataset."""
    parts = []
    for table in tables:
        parts += [f"### {table.title}", ""]
        parts += pipe_table(table.columns, table.rows, text_columns=2)
        if table.footnotes:
            parts += [""] + [f"{note}  " for note in table.footnotes]
        parts.append("")
    return "\n".join(parts)


def render_csv(summary: pd.DataFrame) -> str:
    """The :func:`summarise` frame as CSV (machine-readable; one row per entry and metric)."""
    buffer = io.StringIO()
    summary.to_csv(buffer, index=False)
    return buffer.getvalue()
