"""Identifiers in suites: suite, dataset, model, explainer, metric, claim and figure ids.

Ids name cells (``dataset/model/explainer/seed=N``), rows of the store and files of
reports, so they must be plain: printable text without path separators or NUL, not
``.``/``..``, no surrounding spaces, at most :data:`MAX_LENGTH` characters.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StrictStr

MAX_LENGTH = 100


def check_identifier(value: str) -> str:
    """``value`` if it can be an id; else ``ValueError`` saying what is wrong."""
    if not value:
        raise ValueError("an id must not be empty")
    if len(value) > MAX_LENGTH:
        raise ValueError(f"an id has at most {MAX_LENGTH} characters (this has {len(value)})")
    if not value.isprintable():
        raise ValueError(
            "an id must be printable text: no control characters, tabs, newlines or NUL"
        )
    if "/" in value or "\\" in value:
        raise ValueError("an id must not contain '/' or '\\' (ids name cells and files)")
    if value in (".", "..") or value != value.strip():
        raise ValueError("an id must not be '.' or '..' or start or end with a space")
    return value


#: A validated id (strict: only a string is accepted).
Identifier = Annotated[StrictStr, AfterValidator(check_identifier)]
