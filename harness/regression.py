"""Regression against a baseline run: which scores moved beyond a tolerance?

Scores are compared as means over seeds per dataset × model × explainer × metric (ids).
Timings (metrics whose stored kind is ``cost``) are compared as ratios — flagged when the
new mean is more than ``time_factor`` times slower or faster — because wall-clock noise on
a shared machine is multiplicative; every other metric by absolute difference,
``tolerance`` by default or a per-metric value. An entry that has a value in one run and
none in the other is flagged; an entry present in only one run is reported as added or
removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

_KEYS = ["dataset", "model", "explainer", "metric"]


@dataclass(frozen=True)
class Change:
    """One entry that moved: where, from what to what, and why it is flagged."""

    dataset: str
    model: str
    explainer: str
    metric: str
    baseline: float
    current: float
    reason: str


def _means(results: pd.DataFrame) -> pd.DataFrame:
    grouped = results.groupby(_KEYS, sort=False)
    return grouped.agg(mean=("value", "mean"), kind=("metric_kind", "first"))


def compare_runs(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    *,
    tolerance: float = 1e-6,
    time_factor: float = 3.0,
    per_metric: dict[str, float] | None = None,
    timings: bool = True,
) -> tuple[list[Change], int]:
    """The flagged changes from ``baseline`` to ``current`` (tidy results of two runs) and
    the number of entries compared; ``timings=False`` leaves cost metrics out (e.g. when
    one run was parallel and the other serial)."""
    per_metric = per_metric or {}
    if not timings:
        baseline = baseline[baseline["metric_kind"] != "cost"]
        current = current[current["metric_kind"] != "cost"]
    old, new = _means(baseline), _means(current)
    keys = old.index.union(new.index, sort=False)
    changes = []
    for key in keys:
        before = float(old.loc[key, "mean"]) if key in old.index else math.nan
        after = float(new.loc[key, "mean"]) if key in new.index else math.nan
        kind = (new if key in new.index else old).loc[key, "kind"]
        reason = _reason(key in old.index, key in new.index, before, after,
                         kind == "cost", time_factor,
                         per_metric.get(key[3], tolerance))  # fmt: skip
        if reason:
            dataset, model, explainer, metric = map(str, key)
            changes.append(Change(dataset, model, explainer, metric, before, after, reason))
    return changes, len(keys)


def _reason(
    in_old: bool, in_new: bool, before: float, after: float, timing: bool,
    time_factor: float, tolerance: float,
) -> str:  # fmt: skip
    """Why an entry is flagged ("" when it is not)."""
    if not (in_old and in_new):
        return "entry removed" if in_old else "entry added"
    if math.isnan(before) and math.isnan(after):
        return ""
    if math.isnan(before) or math.isnan(after):
        return "a value on one side only"
    if timing:
        ratio = after / before if before > 0 else math.inf
        inside = 1 / time_factor <= ratio <= time_factor
        return "" if inside else f"time ×{ratio:.2f} (allowed ×{time_factor:g})"
    if abs(after - before) > tolerance:
        return f"changed by {after - before:+.3g} (allowed ±{tolerance:g})"
    return ""
