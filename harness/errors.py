"""Errors that are the user's to fix.

Every :class:`HarnessError` carries a one-line message that names the problem and the
fix; the CLI prints it without a traceback and exits with code 2. Anything else that
escapes is a bug in the harness (or in a plugin) and keeps its traceback.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from typing import Any


class HarnessError(Exception):
    """A mistake in the user's input (suite, names, paths, data), reported in one line."""


class StoreError(HarnessError):
    """A results store that cannot be read or written: damaged, foreign, read-only or on
    a full disk. The message names the file and what to do."""


class UnknownNameError(HarnessError, LookupError):
    """A name that no registry, suite key or parameter list knows."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest known name (the same name in
    another case first), or ``""`` if none is close."""
    known = list(known)
    same = [k for k in known if k.casefold() == name.casefold()]
    close = same or difflib.get_close_matches(name, known, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


class MissingPackageError(HarnessError, ImportError):
    """An optional package that a chosen component needs is not installed."""


def optional_import(module: str, needed_by: str, distribution: str | None = None) -> Any:
    """Import ``module`` (a package the default install brings, but which a slimmer
    environment may lack), or raise :class:`MissingPackageError` naming what needs it and
    the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package = distribution or module
        raise MissingPackageError(
            f"{needed_by} needs the Python package '{package}', which is not installed "
            f"({error}); install it with: pip install {package}"
        ) from error


def first_line(error: BaseException) -> str:
    """The first line of an error's message (at most 300 characters), for a one-line note."""
    lines = str(error).strip().splitlines()
    return lines[0][:300] if lines else "(no message)"
