"""Parameter sweeps in suites: ``params = { n_samples = { sweep = [300, 500] } }``.

Any parameter of a dataset, model or explainer entry may be a sweep: a table whose only
key is ``sweep``, holding a non-empty list of distinct values. The entry expands into
the product of its swept values, one entry per combination, in the listed order (the
first swept parameter varies slowest). Each generated entry has a readable id —
``synthetic_tabular[n_samples=300,n_features=16]`` (the entry's own id, then the swept
values) — remembers its *base* id (the entry's id before expansion) and its swept
values, which become columns of the results frame and can be selected by claims
(``select = { n_samples = 300 }``) or checked per regime (``per = ["n_samples"]``).
Every generated entry is then validated like any other entry, so a bad value inside a
sweep is reported with the entry's generated id and the parameter's path.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from harness.errors import did_you_mean

#: Result columns naming the suite entry each row's entry was generated from.
SWEEP_BASE_COLUMNS = ["dataset_base", "model_base", "explainer_base"]

#: The key of a sweep table.
SWEEP = "sweep"
#: At most this many values per swept parameter and entries per expanded entry.
MAX_VALUES = 1_000
MAX_EXPANSION = 100_000
#: At most this many cells (seeds × datasets × models × explainers) in one suite,
#: checked before any sweep is expanded.
MAX_CELLS = 100_000


def is_sweep(value: Any) -> bool:
    """Whether a parameter value is a sweep table (``{ sweep = [...] }``)."""
    return isinstance(value, dict) and set(value) == {SWEEP}


def format_value(value: Any) -> str:
    """A swept value as it appears in a generated id: compact JSON, strings bare."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def sweep_problems(params: dict[str, Any]) -> list[str]:
    """What is wrong with the sweeps of one entry's parameters (``key: message`` lines)."""
    problems = []
    for key, value in params.items():
        if isinstance(value, dict) and len(value) == 1 and not is_sweep(value):
            (inner,) = value
            hint = did_you_mean(str(inner), [SWEEP])
            if hint:
                problems.append(
                    f"{key}: '{inner}' is not a sweep key{hint} Write {{ sweep = [...] }}"
                )
        if not is_sweep(value):
            continue
        values = value[SWEEP]
        if not isinstance(values, list) or not values:
            problems.append(f"{key}.sweep: give a non-empty list of values")
        elif len(values) > MAX_VALUES:
            problems.append(f"{key}.sweep: {len(values)} values; at most {MAX_VALUES}")
        elif len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            problems.append(f"{key}.sweep: a value is listed twice; list each value once")
    return problems


def expand(label: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """The entries one entry expands into: (generated id, concrete params, swept values).

    An entry without sweeps expands into itself, with no swept values. Call after
    :func:`sweep_problems` found nothing."""
    swept = {key: value[SWEEP] for key, value in params.items() if is_sweep(value)}
    if not swept:
        return [(label, params, {})]
    entries = []
    for combination in itertools.product(*swept.values()):
        values = dict(zip(swept, combination, strict=True))
        suffix = ",".join(f"{key}={format_value(v)}" for key, v in values.items())
        entries.append((f"{label}[{suffix}]", {**params, **values}, values))
    return entries


def expansion_size(params: dict[str, Any]) -> int:
    """How many entries ``params`` expands into."""
    size = 1
    for value in params.values():
        if is_sweep(value) and isinstance(value[SWEEP], list):
            size *= max(len(value[SWEEP]), 1)
    return size


def with_sweep_columns(frame: Any, configs: dict[str, dict[str, Any]]) -> Any:
    """The results ``frame`` (pandas) with ``dataset_base``, ``model_base`` and
    ``explainer_base`` (the suite entry each row's entry was generated from; its own id
    when not swept) and one column per swept parameter (its value on the rows of entries
    that sweep it — lists and tables as their id text — missing elsewhere), from each
    run's stored configuration."""
    frame = frame.copy()
    swept_columns: dict[str, list[Any]] = {}
    for section, base in zip(("datasets", "models", "explainers"), SWEEP_BASE_COLUMNS, strict=True):
        column = base.removesuffix("_base")
        lookup: dict[tuple[str, str], dict[str, Any]] = {}
        for run_id, config in configs.items():
            for entry in config.get(section) or []:
                lookup[(run_id, str(entry["id"]))] = entry.get("sweep") or {}
        keys = list(zip(frame["run_id"].astype(str), frame[column].astype(str), strict=True))
        sweep = [lookup.get(key, {}) for key in keys]
        frame[f"{column}_base"] = [
            s.get("base", key[1]) for s, key in zip(sweep, keys, strict=True)
        ]
        for row, info in enumerate(sweep):
            for name, value in (info.get("values") or {}).items():
                scalar = isinstance(value, int | float | str | bool)
                swept_columns.setdefault(name, [None] * len(frame))[row] = (
                    value if scalar else format_value(value)
                )
    for name, values in swept_columns.items():
        frame[name] = values
    return frame
