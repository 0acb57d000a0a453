"""Stored strings made safe for where they are shown: terminals and spreadsheets.

Ids, claim texts, error messages and notes come from suites and stores that anyone may
have written. On a terminal, control characters in them could move the cursor, clear
the screen, retitle the window or hide text (``ESC [2J``, ``ESC ]0;…``, bidirectional
overrides): :func:`printable` shows each as a visible escape instead. In a CSV file, a
cell beginning with ``= + - @``, a tab or a carriage return is read as a formula by
spreadsheet programs: :func:`spreadsheet_cell` prefixes it with ``'``, as OWASP's
guidance on CSV injection recommends (text cells only; numbers stay numbers).
"""

from __future__ import annotations

import re

#: C0 controls but tab and newline, DEL, C1 controls, and Unicode's bidirectional
#: embeddings, overrides and isolates (which reorder what a terminal shows).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def printable(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\x1b``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def spreadsheet_cell(value: object) -> object:
    """A text cell that a spreadsheet would read as a formula, prefixed with ``'``;
    anything else as it is."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
