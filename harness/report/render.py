"""Renderers of :class:`LeaderboardTable` objects: the terminal (rich), plain text,
Markdown, LaTeX (booktabs), HTML, and the summary frame as CSV. Every string is escaped
for the format it goes into (HTML, HTML comments, Markdown, LaTeX).

The terminal shows compact entries (``0.950 ± 0.0090``) that never wrap, abbreviates long
metric names (with a legend under the table) and splits a table wider than the console
into parts that repeat the label columns; every file format keeps the full intervals.
"""

from __future__ import annotations

import html
import io
import math
import re

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.report.aggregate import LeaderboardTable
from harness.report.safe_text import printable, spreadsheet_cell


def markdown_text(text: str) -> str:
    """``text`` safe in Markdown that may be rendered as HTML: ``<`` and ``>`` as entities
    (an id such as ``<script>`` stays text), an ``&`` that would start an entity escaped,
    line breaks as spaces; anything else, ``&`` included, reads as written."""
    flat = " ".join(str(text).splitlines())
    flat = re.sub(r"&(?=#?\w+;)", "&amp;", flat)
    return flat.replace("<", "&lt;").replace(">", "&gt;")


def html_comment(text: str) -> str:
    """``<!-- text -->`` that ``text`` cannot end early: escaped, and ``--`` (which
    closes or invalidates a comment) broken up."""
    inner = html.escape(" ".join(str(text).splitlines())).replace("--", "- -")
    return f"<!-- {inner} -->"


def pipe_table(columns: list[str], rows: list[list[str]], text_columns: int = 1) -> list[str]:
    """Lines of a GitHub-flavoured Markdown table; the first ``text_columns`` left-aligned,
    the rest (numbers) right-aligned; HTML and ``|`` in cells escaped."""

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(markdown_text(c).replace("|", "\\|") for c in cells) + " |"

    rule = ["---"] * text_columns + ["---:"] * (len(columns) - text_columns)
    return [line(columns), "|" + "|".join(rule) + "|", *(line(row) for row in rows)]


def _emphasised(table: LeaderboardTable, mark: str) -> list[list[str]]:
    """Rows with best cells wrapped in ``mark`` (e.g. ``**``); empty cells left alone."""
    return [
        [
            f"{mark}{c}{mark}" if table.best and table.best[i][j] and c else c
            for j, c in enumerate(row)
        ]
        for i, row in enumerate(table.rows)
    ]


def render_markdown(tables: list[LeaderboardTable]) -> str:
    """GitHub-flavoured Markdown: a heading, a pipe table (best in bold) and footnotes."""
    parts = []
    for table in tables:
        parts += [f"### {markdown_text(table.title)}", ""]
        parts += pipe_table(table.columns, _emphasised(table, "**"), table.text_columns)
        if table.footnotes:
            parts += [""] + [f"{markdown_text(note)}  " for note in table.footnotes]
        parts.append("")
    return "\n".join(parts)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "↑": r"$\uparrow$",
    "↓": r"$\downarrow$",
    "±": r"$\pm$",
    "µ": r"$\mu$",
    "×": r"$\times$",
    "—": "---",
    "–": "--",
    "…": r"\ldots{}",
    "≥": r"$\geq$",
    "≤": r"$\leq$",
}


def latex_escape(text: str) -> str:
    """``text`` safe inside a LaTeX table cell (special characters and common symbols)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def render_latex(tables: list[LeaderboardTable]) -> str:
    """One booktabs ``table`` environment per leaderboard (needs ``\\usepackage{booktabs}``);
    best entries in bold, footnotes below the rule."""
    parts = []
    for table in tables:
        spec = "l" * table.text_columns + "r" * (len(table.columns) - table.text_columns)
        parts += [
            r"\begin{table}[ht]",
            r"\centering",
            r"\small",
            rf"\caption{{{latex_escape(table.title)}}}",
            rf"\begin{{tabular}}{{{spec}}}",
            r"\toprule",
            " & ".join(latex_escape(c) for c in table.columns) + r" \\",
            r"\midrule",
        ]
        for i, row in enumerate(table.rows):
            cells = [
                rf"\textbf{{{latex_escape(c)}}}"
                if table.best and table.best[i][j] and c
                else latex_escape(c)
                for j, c in enumerate(row)
            ]
            parts.append(" & ".join(cells) + r" \\")
        parts += [r"\bottomrule", r"\end{tabular}"]
        if table.footnotes:
            parts += [
                r"\par\footnotesize " + r" \\ ".join(latex_escape(n) for n in table.footnotes)
            ]
        parts += [r"\end{table}", ""]
    return "\n".join(parts)


def render_html(tables: list[LeaderboardTable]) -> str:
    """HTML fragments: one ``<table class="leaderboard">`` per leaderboard with numeric
    ``data-value`` attributes for sorting, best cells in ``<strong>``, footnotes after."""
    escape = html.escape
    parts = []
    for table in tables:
        parts.append(f'<h3>{escape(table.title)}</h3>\n<table class="leaderboard">')
        header = "".join(
            f'<th data-column="{j}" title="click to sort">{escape(c)}</th>'
            for j, c in enumerate(table.columns)
        )
        parts.append(f"<thead><tr>{header}</tr></thead><tbody>")
        for i, row in enumerate(table.rows):
            cells = []
            for j, text in enumerate(row):
                value = table.sort_values[i][j] if table.sort_values else math.nan
                attribute = f' data-value="{float(value)!r}"' if not math.isnan(value) else ""
                content = escape(text)
                if table.best and table.best[i][j] and text:
                    content = f"<strong>{content}</strong>"
                cells.append(f"<td{attribute}>{content}</td>")
            parts.append("<tr>" + "".join(cells) + "</tr>")
        parts.append("</tbody></table>")
        if table.footnotes:
            notes = "".join(f"<li>{escape(n)}</li>" for n in table.footnotes)
            parts.append(f'<ul class="footnotes">{notes}</ul>')
    return "\n".join(parts)


#: Metric columns whose name is longer than this get a short header in the terminal.
HEADER_WIDTH = 16


def short_headers(table: LeaderboardTable) -> dict[str, str]:
    """Header → abbreviation for long metric names: each word cut to its first three
    letters (four-letter words kept; ``activation_precision ↑`` → ``act_pre ↑``,
    ``average_precision ↑`` → ``ave_pre ↑``), so that two metrics whose initials agree
    never share a header; a prime is added when two still would."""
    shorts: dict[str, str] = {}
    for header in table.columns[table.text_columns :]:
        name, _, arrow = header.rpartition(" ") if header[-1:] in "↑↓" else (header, "", "")
        if len(name) <= HEADER_WIDTH:
            continue
        words = [w if len(w) <= 4 else w[:3] for w in re.split(r"[_\W]+", name) if w]
        short = "_".join(words) or name[:HEADER_WIDTH]
        while f"{short} {arrow}".strip() in shorts.values() or short in table.columns:
            short += "'"
        shorts[header] = f"{short} {arrow}".strip()
    return shorts


def print_tables(console: Console, tables: list[LeaderboardTable]) -> None:
    """Rich tables on ``console`` (the terminal format): no cell ever wraps, best in bold
    green, long metric names abbreviated with a legend, footnotes below each table. A
    table wider than the console is split into parts that repeat the label columns."""
    for table in tables:
        shorts = short_headers(table)
        headed = LeaderboardTable(
            table.title,
            [shorts.get(c, c) for c in table.columns],
            table.rows,
            table.footnotes,
            table.best,
            table.sort_values,
            table.text_columns,
        )
        for part in _fitting_parts(headed, console.width):
            # the title above the table, not in it: a table's title wraps at its width
            console.print(Text(part.title, style="bold"))
            view = Table()
            for index, column in enumerate(part.columns):
                label = index < part.text_columns
                view.add_column(column, no_wrap=True, justify="left" if label else "right")
            for i, row in enumerate(part.rows):
                marks = part.best[i] if part.best else [False] * len(row)
                styles = ["bold green" if mark else "" for mark in marks]
                view.add_row(*(Text(c, style=s) for c, s in zip(row, styles, strict=True)))
            console.print(view)
        for long, short in shorts.items():
            console.print(f"{short.rstrip(' ↑↓')} = {long.rstrip(' ↑↓')}", highlight=False)
        for note in table.footnotes:
            console.print(note, highlight=False, soft_wrap=True)


def _fitting_parts(table: LeaderboardTable, width: int) -> list[LeaderboardTable]:
    """``table`` split by metric columns into parts no wider than ``width`` characters
    (each column as wide as its longest cell: nothing wraps). A single metric column
    wider than the console still gets a part of its own."""
    labels = list(range(table.text_columns))

    def needed(j: int) -> int:
        return max(len(table.columns[j]), *(len(row[j]) for row in table.rows)) + 3

    groups: list[list[int]] = [[]]
    used = sum(needed(j) for j in labels) + 1
    for j in range(table.text_columns, len(table.columns)):
        if groups[-1] and used + needed(j) > width:
            groups.append([])
            used = sum(needed(j) for j in labels) + 1
        groups[-1].append(j)
        used += needed(j)
    if len(groups) == 1:
        return [table]
    parts = []
    for number, group in enumerate(groups, start=1):
        keep = labels + group
        parts.append(
            LeaderboardTable(
                title=f"{table.title} — part {number} of {len(groups)}",
                columns=[table.columns[j] for j in keep],
                rows=[[row[j] for j in keep] for row in table.rows],
                best=[[marks[j] for j in keep] for marks in table.best] if table.best else [],
                sort_values=[],
                text_columns=table.text_columns,
            )
        )
    return parts


def render_text(tables: list[LeaderboardTable], width: int = 200) -> str:
    """The terminal layout as plain text (no colours), ``width`` characters wide; with the
    entries of ``tables`` as they are (full intervals for files)."""
    # force_jupyter=False: in a notebook, rich would display the tables instead of
    # recording them
    console = Console(
        record=True, width=width, file=io.StringIO(), markup=False, force_jupyter=False
    )
    print_tables(console, tables)
    return console.export_text()


def render_csv(summary: pd.DataFrame) -> str:
    """The :func:`summarise` frame as CSV (machine-readable; one row per entry and metric),
    text cells that a spreadsheet would run as formulas neutralised and control
    characters escaped (:mod:`harness.report.safe_text`)."""
    text_columns = [c for c in summary.columns if not pd.api.types.is_numeric_dtype(summary[c])]
    safe = summary.copy()
    if "values" in safe:  # the per-seed values, space-separated
        safe["values"] = safe["values"].map(lambda v: " ".join(f"{x:.6g}" for x in v))
    for column in text_columns:
        safe[column] = safe[column].map(
            lambda v: spreadsheet_cell(printable(v)) if isinstance(v, str) else v
        )
    buffer = io.StringIO()
    safe.to_csv(buffer, index=False)
    return buffer.getvalue()
