"""Validation errors as one line each: ``key.path: problem (got …); did you mean …``.

pydantic reports errors as structured records; suites report them to people. A misspelt
key gets the closest valid name and the list of allowed ones, a number out of range gets
the whole valid range, a claim is named by its id, and a repeated "missing" error that a
misspelling already explains is folded into it.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from harness.component import Component
from harness.errors import did_you_mean
from harness.registry import Registry


def describe(
    error: ValidationError,
    root: type[BaseModel],
    *,
    prefix: str = "",
    owner: tuple[Registry[Any], type[Component]] | None = None,
) -> list[str]:
    """One line per pydantic error: key path, problem, and a suggestion for unknown keys.

    A misspelt required key is one mistake, not two: the "missing" error for a key that
    an unknown sibling key is suggested to be is folded into the suggestion.
    """
    lines = []
    items = error.errors()
    suggested: set[tuple[int | str, ...]] = set()
    for item in items:
        if item["type"] == "extra_forbidden":
            loc = item["loc"]
            close = difflib.get_close_matches(str(loc[-1]), _allowed_keys(root, loc[:-1]), n=1)
            suggested.update((*loc[:-1], c) for c in close)
    for item in items:
        loc = item["loc"]
        path = _key_path(prefix, loc)
        if item["type"] == "extra_forbidden":
            allowed = _allowed_keys(root, loc[:-1])
            what = (
                f"unknown parameter '{loc[-1]}' of {owner[0].kind} '{owner[1].name}'"
                if owner and len(loc) == 1
                else f"unknown key '{loc[-1]}'"
            )
            known = f" Allowed: {', '.join(allowed)}" if allowed else " It takes no parameters."
            lines.append(f"{path}: {what}{did_you_mean(str(loc[-1]), allowed)}{known}")
        elif item["type"] == "missing" and tuple(loc) in suggested:
            continue
        elif item["type"] == "missing":
            lines.append(f"{path}: required key is missing")
        elif item["type"] in _PATH_ERRORS and isinstance(item.get("input"), str | Path):
            lines.append(f"{path}: {_path_problem(Path(item['input']), item['type'])}")
        else:
            shown = item.get("input")
            got = f" (got {_shown(shown)})" if not isinstance(shown, dict | list) else ""
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] in _RANGE_ERRORS:
                message += _valid_range(root, loc)
            lines.append(f"{path}: {message}{got}")
    return lines


_RANGE_ERRORS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}
_PATH_ERRORS = {"path_not_file", "path_not_directory"}


def _path_problem(path: Path, kind: str) -> str:
    """``no file nope.csv in /data (relative paths are read beside the suite file); did
    you mean 'heart.csv'?`` — what is wrong with a path a suite names, in words."""
    wanted = "file" if kind == "path_not_file" else "folder"
    if path.exists():
        return f"{path} is not a {wanted}"
    folder = path.parent
    if not folder.is_dir():
        return (
            f"no folder {folder} (for the {wanted} {path.name}; relative paths are read "
            "beside the suite file)"
        )
    names = sorted(p.name for p in folder.iterdir())
    return (
        f"no {wanted} {path.name} in {folder} (relative paths are read beside the suite "
        f"file){did_you_mean(path.name, names)}"
    )


def _shown(value: Any) -> str:
    """A rejected value for a one-line message: repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _valid_range(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """``"; valid range: 1 ≤ n_steps ≤ 10000"`` from the bounds declared for the field at
    ``loc`` (or its list items), or "" when none are found."""
    import annotated_types

    found = _follow(root, loc)
    name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "value")
    low = high = ""
    for bound in found[1] if found else []:
        if isinstance(bound, annotated_types.Ge):
            low = f"{bound.ge} ≤ "
        elif isinstance(bound, annotated_types.Gt):
            low = f"{bound.gt} < "
        elif isinstance(bound, annotated_types.Le):
            high = f" ≤ {bound.le}"
        elif isinstance(bound, annotated_types.Lt):
            high = f" < {bound.lt}"
    return f"; valid range: {low}{name}{high}" if low or high else ""


def name_claim(line: str, data: dict[str, Any]) -> str:
    """``claims[2]…`` → ``claims[2] (id 'x')…``, so a message names the claim it is about."""
    match = re.match(r"claims\[(\d+)\]", line)
    claims = data.get("claims")
    if match is None or not isinstance(claims, list) or int(match[1]) >= len(claims):
        return line
    entry = claims[int(match[1])]
    claim_id = entry.get("id") if isinstance(entry, dict) else None
    return line if claim_id is None else f"{match[0]} (id '{claim_id}'){line[match.end() :]}"


def _key_path(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _follow(root: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[Any, list[Any]] | None:
    """The annotation reached by following ``loc`` (field names, list indices) from
    ``root``, with the constraints declared for it (a field's, or a list item's
    ``Annotated`` ones); None when ``loc`` leaves the models."""
    annotation: Any = root
    metadata: list[Any] = []
    for part in loc:
        annotation = _model_or_container(annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
            declared = getattr(annotation, "__metadata__", ())
            metadata = [m for item in declared for m in getattr(item, "metadata", [item])]
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            annotation = field.annotation if field else None
            metadata = list(field.metadata) if field else []
        else:
            return None
    return annotation, metadata


def _allowed_keys(root: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model found by following ``loc`` from ``root`` (empty if none)."""
    found = _follow(root, loc)
    annotation = _model_or_container(found[0]) if found else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _model_or_container(annotation: Any) -> Any:
    """Unwrap ``X | None`` to ``X``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation
