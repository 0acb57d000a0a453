"""Leaderboards from stored scores: the aggregation (means, intervals, ranks) into
:class:`LeaderboardTable` objects that every renderer (:mod:`harness.report.render`) draws.

Per dataset, rows = model × explainer, columns = metrics. Each entry is the mean over
seeds with a 95 % Student-t confidence interval of that mean — the interval claims use
(:mod:`harness.statistics`; none for fewer than two values or for across-seeds
statistics) and the number of seeds that produced a value. Entries are ranked per dataset
and metric in the metric's direction (1 = best; ties share the lowest rank); the best
entry is marked. Entries with no value say why (skipped, failed, undefined) through
numbered footnotes, so nothing is silently missing. Accuracy — of the model each
explainer actually ran on: by-design methods train their own — is the first metric
column. A cross-dataset summary ranks model × explainer by their mean rank over the
explanation metrics (not model or cost metrics). Controls (oracle, random, inverted, …:
the stored explainer role ``control``) are shown after the methods, marked "(control)",
and are never ranked or marked best — they calibrate a metric, they do not compete.
Every fact used here (a metric's kind, direction, whether it is an across-seeds
statistic, an explainer's role) is read from the stored rows.

With 3 seeds the interval is wide (mean ± 2.48 standard deviations): it covers the mean
95 % of the time, which a percentile bootstrap over 3 values — at most their range — does
not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from harness.errors import HarnessError
from harness.statistics import t_interval

_KEYS = ["dataset", "model", "explainer", "metric"]

#: ``full``: ``0.950 [0.941, 0.958]`` (files); ``compact``: ``0.950 ± 0.0090`` (terminal).
EntryStyle = Literal["full", "compact"]


def leaderboard(out_dir: str | Path = "results", run_id: str | None = None) -> pd.DataFrame:
    """One run's leaderboard as a DataFrame (the latest run under ``out_dir`` by default;
    a unique id prefix is enough): one row per dataset × model × explainer × metric with
    the mean over seeds, its 95 % t-interval, the seeds behind it, the rank and the facts
    the printed leaderboards footnote — the columns of :func:`summarise`."""
    from harness.store import ResultsStore

    with ResultsStore(out_dir, create=False) as store:
        results = store.results(store.resolve_run_id(run_id))
    return summarise(results)


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Aggregate one run's scores over seeds (scores of explainers: the meta-evaluation's
    scores of metrics, kind ``meta``, are left to the report card).

    Columns: dataset, model, explainer, metric, metric_name, kind, mean, sd, ci_low,
    ci_high, n (seeds with a value), n_cells, higher_is_better, unit, status (``ok``,
    ``partial``, ``skipped``, ``failed``, ``undefined``), note (the distinct reasons for
    missing values), control (the explainer is a control), values (the per-seed values,
    in seed order), range_low and range_high (the values the metric can take; NaN when
    unbounded or not stored), disagree (see :func:`seeds_disagree`), untrusted (why the
    metric fails to separate the controls there, :mod:`harness.meta_evaluation`; "" when
    it does not fail), rank (per dataset and metric
    among the methods, 1 = best; NaN for controls) and best (never set for ``reference``
    metrics nor for controls).
    """
    if "metric_kind" in results:  # scores of metrics, not of explainers: the report card's
        results = results[results["metric_kind"] != "meta"]
    rows = []
    for key, group in results.groupby(_KEYS, sort=False):
        group = group.sort_values("seed", kind="stable")
        values = group["value"].dropna()
        statuses = set(group["status"])
        if len(values) == len(group):
            status = "ok"
        elif len(values):
            status = "partial"
        elif statuses == {"ok"}:
            # a metric the plan skipped for this cell says so in its note
            skipped = group["note"].fillna("").str.startswith("skipped").all()
            status = "skipped" if skipped else "undefined"
        else:
            status = "failed" if "failed" in statuses else "skipped"
        notes = sorted({n for n in group.loc[group["value"].isna(), "note"].dropna()})
        # an across-seeds statistic is one value repeated on each seed's row: no spread
        across_seeds = bool(group["across_seeds"].iloc[0])
        spread = len(values) > 1 and not across_seeds
        low, high = t_interval(values.to_numpy()) if spread else (math.nan, math.nan)
        kind = group["metric_kind"].iloc[0]
        role = group["explainer_role"].iloc[0] if "explainer_role" in group else None
        rows.append(
            {
                **dict(zip(_KEYS, key, strict=True)),
                "metric_name": group["metric_name"].iloc[0],
                "kind": kind if isinstance(kind, str) else "explanation",  # unknown: legacy
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
                "control": role == "control",
                "values": tuple(values) if spread else (),
                "range_low": group["range_low"].iloc[0] if "range_low" in group else math.nan,
                "range_high": group["range_high"].iloc[0] if "range_high" in group else math.nan,
            }
        )
    summary = pd.DataFrame(rows)
    if summary.empty:
        return summary.assign(rank=pd.Series(dtype=float), best=pd.Series(dtype=bool))
    summary["disagree"] = seeds_disagree(summary)
    summary["untrusted"] = _untrusted(results, summary)
    competing = summary["mean"].where(~summary["control"])  # controls are not ranked
    ranks = competing.groupby([summary["dataset"], summary["metric"]], sort=False)
    summary["rank"] = ranks.rank(method="min", ascending=False)
    lower = ~summary["higher_is_better"]
    summary.loc[lower, "rank"] = ranks.rank(method="min", ascending=True)[lower]
    summary["best"] = (summary["rank"] == 1) & (summary["kind"] != "reference")
    return summary


#: An entry's seeds disagree when their values span more than this share of the values
#: its metric can take (its declared range, e.g. [0, 1]).
DISAGREEMENT = 0.5


def _untrusted(results: pd.DataFrame, summary: pd.DataFrame) -> pd.Series:
    """Per entry, why its metric cannot be trusted on its dataset × model — it fails to
    separate the controls (:mod:`harness.meta_evaluation`) — or ""."""
    from harness.meta_evaluation import control_separation

    reasons = {
        (c.dataset, c.model, c.metric): c.evidence
        for c in control_separation(results)
        if c.verdict == "fails"
    }
    keys = zip(summary["dataset"], summary["model"], summary["metric"], strict=True)
    return pd.Series([reasons.get(key, "") for key in keys], index=summary.index, dtype=object)


def seeds_disagree(summary: pd.DataFrame) -> pd.Series:
    """Whether each entry's seeds disagree: its seed values span more than
    :data:`DISAGREEMENT` of its metric's declared range — Score-CAM's mask ROC-AUC at
    0.38, 1.00, 0.26 does (0.74 of [0, 1]). Metrics without a range (times, sensitivities)
    are never marked: their spread has no scale to be judged against."""
    spans = summary["values"].map(lambda v: max(v) - min(v) if v else math.nan)
    width = summary["range_high"] - summary["range_low"]
    return (spans > DISAGREEMENT * width).fillna(False).astype(bool)


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


def format_entry(
    mean: float, low: float, high: float, unit: str, style: EntryStyle = "full"
) -> str:
    """``full``: ``0.950 [0.941, 0.958]``, times as ``12.3 ms [11.9, 12.8]``; ``compact``:
    ``0.950 ± 0.009``, ``849 ± 180 ms`` — the half-width of the interval to two
    significant digits, never in e-notation, the unit after both numbers."""
    scale, unit = _scale(mean, unit)
    spec = ".3g" if unit in ("s", "ms", "µs") else ".3f"
    text = f"{mean / scale:{spec}}"
    suffix = f" {unit}" if unit else ""
    if math.isnan(low):
        return text + suffix
    if style == "compact":
        shown = len(text.partition(".")[2])  # the mean's decimals: the half-width's at most + 1
        half = significant((high - low) / 2 / scale, most_decimals=shown + 1)
        return f"{text} ± {half}{suffix}"
    return f"{text}{suffix} [{low / scale:{spec}}, {high / scale:{spec}}]"


def significant(value: float, digits: int = 2, most_decimals: int = 12) -> str:
    """``value`` rounded to ``digits`` significant digits but at most ``most_decimals``
    decimals, written out in full (``180``, ``0.0093``, ``0``), never in e-notation."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = min(digits - 1 - math.floor(math.log10(abs(value))), most_decimals)
    rounded = round(value, decimals)
    return "0" if rounded == 0 else f"{rounded:.{max(decimals, 0)}f}"


def _metric_order(block: pd.DataFrame) -> list[str]:
    """Accuracy-type (model) metrics first, then the suite's order."""
    metrics = list(dict.fromkeys(block["metric"]))
    kinds = block.drop_duplicates("metric").set_index("metric")["kind"]
    return sorted(metrics, key=lambda m: (kinds[m] != "model", metrics.index(m)))


def leaderboard_tables(summary: pd.DataFrame, style: EntryStyle = "full") -> list[LeaderboardTable]:
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
        block = block.sort_values("control", kind="stable")  # controls after the methods
        for (model, explainer), entries in block.groupby(["model", "explainer"], sort=False):
            label = f"{explainer} (control)" if entries["control"].iloc[0] else str(explainer)
            row, marks, values = [str(model), label], [False, False], [math.nan] * 2
            by_metric = entries.set_index("metric")
            for metric in metrics:
                if metric not in by_metric.index:
                    row.append("")
                    marks.append(False)
                    values.append(math.nan)
                    continue
                entry = by_metric.loc[metric]
                text = (
                    format_entry(
                        entry["mean"], entry["ci_low"], entry["ci_high"], entry["unit"], style
                    )
                    if entry["n"]
                    else entry["status"]
                )
                notes = [entry["note"]] if entry["n"] < entry["n_cells"] else []
                if entry["n"] < entry["n_cells"] and entry["n"]:
                    text += f" (n={entry['n']}/{entry['n_cells']})"
                if entry.get("disagree", False):
                    notes.append(_disagreement_note(entry["values"], entry["unit"]))
                if entry.get("untrusted") and not entry["control"]:
                    notes.append(
                        f"{metric} does not separate the controls on this dataset "
                        f"({entry['untrusted']}): read it with care"
                    )
                for note in notes:
                    if note not in footnotes:
                        footnotes.append(note)
                    text += f" [{footnotes.index(note) + 1}]"
                row.append(text)
                marks.append(bool(entry["best"]))
                values.append(float(entry["mean"]))
            rows.append(row)
            best.append(marks)
            numbers.append(values)
        seeds = int(block["n_cells"].max())
        plural = "s" if seeds != 1 else ""
        title = (
            f"{dataset} (mean ±½ 95% CI, {seeds} seed{plural})"
            if style == "compact"
            else f"{dataset} (mean [95% t-interval] over {seeds} seed{plural}; best marked)"
        )
        tables.append(
            LeaderboardTable(
                title=title,
                columns=["model", "explainer", *(f"{m} {arrows[m]}" for m in metrics)],
                rows=rows,
                footnotes=[f"[{i}] {note}" for i, note in enumerate(footnotes, start=1)],
                best=best,
                sort_values=numbers,
            )
        )
    return tables


def _disagreement_note(values: tuple[float, ...], unit: str) -> str:
    """The footnote of an entry whose seeds disagree, giving the seeds' values."""
    scale, shown = _scale(max(abs(v) for v in values), unit)
    listed = ", ".join(f"{v / scale:.3g}" for v in values)
    return (
        f"seeds disagree: {listed}{' ' + shown if shown else ''} (in seed order) span over "
        f"{DISAGREEMENT:.0%} of the metric's range — read the mean with care"
    )


def rank_summary(summary: pd.DataFrame) -> LeaderboardTable | None:
    """Model × explainer by mean rank over the explanation metrics: one column per dataset
    and the overall mean (lower is better), sorted by it. None without explanation metrics."""
    quality = summary[(summary["kind"] == "explanation") & summary["rank"].notna()]
    if quality.empty:
        return None
    per_dataset = quality.pivot_table(
        index=["model", "explainer"],
        columns="dataset",
        values="rank",
        aggfunc="mean",
        sort=False,
    )
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
        "metrics and controls excluded)",
        columns=["model", "explainer", *map(str, datasets), "mean rank ↓"],
        rows=rows,
        best=best,
        sort_values=numbers,
    )


def all_tables(summary: pd.DataFrame, style: EntryStyle = "full") -> list[LeaderboardTable]:
    """The per-dataset leaderboards, then the cross-dataset rank summary (if any)."""
    tables = leaderboard_tables(summary, style)
    ranks = rank_summary(summary)
    return tables + ([ranks] if ranks is not None else [])
