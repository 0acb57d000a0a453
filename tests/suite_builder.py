"""Suites for tests, built from Python values instead of repeated TOML text.

``suite(...)`` writes the same TOML a person would (tables for each dataset, model and
explainer, inline parameters), so tests read like the suites users write, and a test
that needs a variant passes different values instead of editing text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

#: A dataset, model or explainer: its name, or (name, params), or (name, params, id).
Entry = str | tuple[str, Mapping[str, Any]] | tuple[str, Mapping[str, Any], str]


def toml_key(key: str) -> str:
    """A bare key when TOML allows one, else a quoted key."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def toml_value(value: Any) -> str:
    """``value`` as inline TOML (tables and arrays inline too; NaN and ±inf as TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    items = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
    return "{ " + items + " }" if items else "{}"


def _entries(section: str, entries: Iterable[Entry]) -> list[str]:
    lines = []
    for entry in entries:
        name, params, label = (entry, {}, None) if isinstance(entry, str) else (*entry, None)[:3]
        lines += ["", f"[[{section}]]"]
        if label is not None:
            lines.append(f"id = {toml_value(label)}")
        lines.append(f"name = {toml_value(name)}")
        if params:
            lines.append(f"params = {toml_value(dict(params))}")
    return lines


def suite(
    name: str,
    *,
    datasets: Iterable[Entry],
    models: Iterable[Entry],
    explainers: Iterable[Entry],
    metrics: Iterable[str | Mapping[str, Any]] = ("accuracy",),
    seeds: Iterable[int] = (0,),
    description: str | None = None,
    execution: Mapping[str, Any] | None = None,
    meta_evaluation: Mapping[str, Any] | None = None,
) -> str:
    """A suite file's text: ``name``, ``seeds``, ``metrics`` (names or tables), an
    ``[execution]`` and a ``[meta_evaluation]`` table when given, then one table per
    dataset, model and explainer."""
    lines = [f"name = {toml_value(name)}"]
    if description is not None:
        lines.append(f"description = {toml_value(description)}")
    lines += [f"seeds = {toml_value(list(seeds))}", f"metrics = {toml_value(list(metrics))}"]
    if execution:
        lines += ["", "[execution]", *(f"{k} = {toml_value(v)}" for k, v in execution.items())]
    if meta_evaluation:
        meta = (f"{k} = {toml_value(v)}" for k, v in meta_evaluation.items())
        lines += ["", "[meta_evaluation]", *meta]
    lines += _entries("datasets", datasets)
    lines += _entries("models", models)
    lines += _entries("explainers", explainers)
    return "\n".join(["", *lines, ""])
