"""Regression against a baseline run: which scores moved beyond a tolerance?

Scores are compared as means over seeds per dataset × model × explainer × metric (ids).
Timings (metrics whose stored kind is ``cost``) are compared as ratios — flagged when the
new mean is more than ``time_factor`` times slower or faster — because wall-clock noise on
a shared machine is multiplicative; every other metric by absolute difference,
``tolerance`` by default or a per-metric value. An entry that has a value in one run and
none in the other is flagged; an entry present in only one run is reported as added or
removed.

Between runs whose environments differ in what decides floating-point results (package
versions, CPU, threads, CPU kernels, BLAS, determinism switches, GPU: see
:func:`numeric_differences`), bit-identical scores cannot be
expected: a model trained on another machine differs as much as one trained from
another seed. There ``spread=True`` (what ``check --against`` does unless ``--exact``)
flags a non-timing entry only when its change is beyond its seed spread as well as
beyond the tolerance: the 95 % t-interval of the per-seed differences (paired by seed when
both runs have the same seeds, else Welch's) excludes 0. Entries with fewer than two
seeds on a side fall back to the tolerance alone. On one machine, with the same threads
and versions, runs are bit-identical and the default tolerance (1e-6) applies.

Only like is compared with like (:func:`not_comparable`): an entry whose metric (name or
conventions), dataset, model or explainer specification differs between the two runs is
listed as *not comparable* with what differs — never as moved or unmoved, since a change
of definition is not a regression and an unchanged value under another definition is
not an all-clear.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.statistics import t_interval, welch_interval

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
    #: the standard deviation over seeds on each side (NaN with fewer than 2 seeds)
    baseline_sd: float = math.nan
    current_sd: float = math.nan
    #: the metric's stored kind (``model``: the same score on every explainer's row)
    kind: str = "explanation"


def _means(results: pd.DataFrame) -> pd.DataFrame:
    grouped = results.groupby(_KEYS, sort=False)
    return grouped.agg(mean=("value", "mean"), sd=("value", "std"), kind=("metric_kind", "first"))


def compare_runs(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    *,
    tolerance: float = 1e-6,
    time_factor: float = 3.0,
    per_metric: dict[str, float] | None = None,
    timings: bool = True,
    spread: bool = False,
) -> tuple[list[Change], int]:
    """The flagged changes from ``baseline`` to ``current`` (tidy results of two runs) and
    the number of entries compared; ``timings=False`` leaves cost metrics out (e.g. when
    one run was parallel and the other serial); ``spread=True`` flags a non-timing change
    only when it is also beyond the entry's seed spread (runs from different machines)."""
    per_metric = per_metric or {}
    if not timings:
        baseline = baseline[baseline["metric_kind"] != "cost"]
        current = current[current["metric_kind"] != "cost"]
    old, new = _means(baseline), _means(current)
    keys = old.index.union(new.index, sort=False)
    seeds_old = _per_seed(baseline) if spread else {}
    seeds_new = _per_seed(current) if spread else {}
    changes = []
    for key in keys:
        before = float(old.loc[key, "mean"]) if key in old.index else math.nan
        after = float(new.loc[key, "mean"]) if key in new.index else math.nan
        kind = (new if key in new.index else old).loc[key, "kind"]
        reason = _reason(
            key in old.index,
            key in new.index,
            before,
            after,
            kind == "cost",
            time_factor,
            per_metric.get(key[3], tolerance),
        )
        if reason.startswith("changed by") and key in seeds_old and key in seeds_new:
            reason = _beyond_spread(seeds_old[key], seeds_new[key], reason)
        if reason:
            dataset, model, explainer, metric = map(str, key)
            sd_before, sd_after = (
                float(side.loc[key, "sd"]) if key in side.index else math.nan for side in (old, new)
            )
            changes.append(
                Change(
                    dataset,
                    model,
                    explainer,
                    metric,
                    before,
                    after,
                    reason,
                    baseline_sd=sd_before,
                    current_sd=sd_after,
                    kind=str(kind) if isinstance(kind, str) else "explanation",
                )
            )
    return changes, len(keys)


@dataclass(frozen=True)
class MovedEntry:
    """One line of a comparison: a change, or one model score's change shared by the
    rows of several explainers (a model score is the model's, not the explainer's)."""

    change: Change
    explainers: tuple[str, ...]

    @property
    def label(self) -> str:
        c = self.change
        if len(self.explainers) > 1:
            return f"{c.dataset}/{c.model} {c.metric} (model score; {', '.join(self.explainers)})"
        return f"{c.dataset}/{c.model}/{c.explainer} {c.metric}"


def grouped_changes(changes: list[Change]) -> list[MovedEntry]:
    """``changes`` with each model score's identical change on several explainers' rows
    reported once (the twin's accuracy repeats on every post-hoc explainer's row)."""
    entries: dict[tuple, MovedEntry] = {}
    for change in changes:
        shared = change.kind == "model"
        key = (
            (change.dataset, change.model, change.metric, change.baseline, change.current)
            if shared
            else (change.dataset, change.model, change.explainer, change.metric)
        )
        if key in entries:
            entry = entries[key]
            entries[key] = MovedEntry(entry.change, (*entry.explainers, change.explainer))
        else:
            entries[key] = MovedEntry(change, (change.explainer,))
    return list(entries.values())


def config_differences(
    baseline: dict[str, Any] | None, current: dict[str, Any] | None
) -> list[str]:
    """The keys of two runs' resolved configurations whose values differ, as
    ``models.small_cnn.params.epochs: 15 vs 5`` (entries by id; the description left
    out)."""
    flat = [
        _flatten({k: v for k, v in (c or {}).items() if k != "description"})
        for c in (baseline, current)
    ]
    return [
        f"{key}: {_short(flat[0].get(key))} vs {_short(flat[1].get(key))}"
        for key in sorted(flat[0].keys() | flat[1].keys())
        if flat[0].get(key) != flat[1].get(key)
    ]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values; a list of entries with ids is keyed by id."""
    if isinstance(value, dict):
        found: dict[str, Any] = {}
        for key, item in value.items():
            found |= _flatten(item, f"{prefix}.{key}" if prefix else str(key))
        return found
    if isinstance(value, list) and value and all(isinstance(v, dict) and "id" in v for v in value):
        found = {}
        for item in value:
            found |= _flatten(
                {k: v for k, v in item.items() if k != "id"}, f"{prefix}.{item['id']}"
            )
        return found
    return {prefix: value}


def _short(value: Any) -> str:
    text = "absent" if value is None else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "…"


def _per_seed(results: pd.DataFrame) -> dict[tuple, pd.Series]:
    """Each entry's values per seed (NaN-free)."""
    rows = results.dropna(subset=["value"])
    return {
        key: group.groupby("seed")["value"].mean() for key, group in rows.groupby(_KEYS, sort=False)
    }


def _beyond_spread(before: pd.Series, after: pd.Series, reason: str) -> str:
    """``reason`` with the seed interval, or "" when the change is within the seed
    spread (the 95 % interval of the change includes 0); unchanged with < 2 seeds."""
    if len(before) < 2 or len(after) < 2:
        return reason
    if list(before.index) == list(after.index):
        low, high = t_interval(after.to_numpy() - before.to_numpy())
    else:
        low, high = welch_interval(after.to_numpy(), before.to_numpy())
    if np.isnan(low) or low <= 0 <= high:
        return ""
    return f"{reason}; beyond the seed spread (95 % interval [{low:+.3g}, {high:+.3g}])"


def _reason(
    in_old: bool,
    in_new: bool,
    before: float,
    after: float,
    timing: bool,
    time_factor: float,
    tolerance: float,
) -> str:
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


@dataclass(frozen=True)
class NotComparable:
    """An entry of both runs whose scores mean different things: what differs."""

    dataset: str
    model: str
    explainer: str
    metric: str
    differs: str


#: The suite sections whose entries' specifications an entry's scores depend on.
_SPECS = {"dataset": "datasets", "model": "models", "explainer": "explainers"}


def _spec(config: dict[str, Any] | None, section: str, entry_id: str) -> Any:
    """The name and parameters of entry ``entry_id`` of ``section`` in a stored config."""
    for entry in (config or {}).get(section) or []:
        if str(entry.get("id")) == entry_id:
            return [entry.get("name"), entry.get("params")]
    return None


def _definition(group: pd.DataFrame) -> tuple[str, int | None, dict[str, Any]]:
    """A metric's name, definition version (None: stored before versions were kept)
    and conventions on one side (the first row's; every row of an entry shares them)."""
    name = str(group["metric_name"].iloc[0]) if "metric_name" in group else ""
    version = group["metric_version"].iloc[0] if "metric_version" in group else None
    raw = group["conventions"].iloc[0] if "conventions" in group else None
    conventions = json.loads(raw) if isinstance(raw, str) else (raw or {})
    return name, None if version is None or pd.isna(version) else int(version), conventions


def not_comparable(
    baseline: pd.DataFrame,
    current: pd.DataFrame,
    baseline_config: dict[str, Any] | None = None,
    current_config: dict[str, Any] | None = None,
) -> list[NotComparable]:
    """The entries of both runs that cannot be compared, and why: the metric's name or
    conventions differ, or the stored specification (name and parameters) of the
    dataset, model or explainer with that id."""
    old = dict(iter(baseline.groupby(_KEYS, sort=False)))
    new = dict(iter(current.groupby(_KEYS, sort=False)))
    found = []
    for key in (k for k in new if k in old):
        differs = []
        old_name, old_version, old_conv = _definition(old[key])
        new_name, new_version, new_conv = _definition(new[key])
        if old_name != new_name:
            differs.append(f"metric {old_name} vs {new_name}")
        if None not in (old_version, new_version) and old_version != new_version:
            differs.append(f"metric version {old_version} vs {new_version}")
        changed = sorted(
            k for k in old_conv.keys() | new_conv.keys() if old_conv.get(k) != new_conv.get(k)
        )
        differs += [f"convention {k}: {old_conv.get(k)!r} vs {new_conv.get(k)!r}" for k in changed]
        if baseline_config is not None and current_config is not None:
            for column, section in _SPECS.items():
                entry = str(key[_KEYS.index(column)])
                if _spec(baseline_config, section, entry) != _spec(current_config, section, entry):
                    differs.append(f"{column} '{entry}' is specified otherwise")
        if differs:
            dataset, model, explainer, metric = map(str, key)
            found.append(NotComparable(dataset, model, explainer, metric, "; ".join(differs)))
    return found


def without(frame: pd.DataFrame, entries: list[NotComparable]) -> pd.DataFrame:
    """``frame`` without the rows of ``entries``."""
    unlike = [(n.dataset, n.model, n.explainer, n.metric) for n in entries]
    if not unlike:
        return frame
    keys = pd.MultiIndex.from_frame(frame[_KEYS].astype(str))
    return frame[~keys.isin(unlike)]


#: The environment facts whose difference can change non-timing scores.
_NUMERIC_FACTS = (
    ("machine", "cpu"),
    ("numerics", "torch_threads"),
    ("numerics", "cpu_capability"),
    ("numerics", "blas"),
    ("numerics", "deterministic_algorithms"),
    ("machine", "cuda_device"),
)


def numeric_differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """What differs between two stored environments (:mod:`harness.environment`) that can
    change non-timing scores (package versions, CPU, threads, CPU kernels, BLAS,
    determinism, GPU), in words; empty when the runs should agree bit for bit. Facts a
    run did not record (stored before they were kept) are not compared."""
    found = []
    packages = [(env.get("packages") or {}) for env in (first, second)]
    for name in sorted(packages[0].keys() & packages[1].keys()):
        if packages[0][name] != packages[1][name]:
            found.append(f"{name} {packages[0][name]} vs {packages[1][name]}")
    for section, key in _NUMERIC_FACTS:
        values = [(env.get(section) or {}).get(key, _ABSENT) for env in (first, second)]
        if _ABSENT not in values and values[0] != values[1]:
            found.append(f"{key} {values[0]} vs {values[1]}")
    return found


_ABSENT = object()
