"""``xai-harness show``: the leaderboards of a stored run, in any format.

Reads the store only (the facts it needs are on the stored rows): no plugin, no torch.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import OutOption, RunIdArgument, app, out, user_errors


class ShowFormat(StrEnum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    latex = "latex"
    html = "html"


@app.command()
@user_errors
def show(
    run_id: RunIdArgument = None,
    out_dir: OutOption = Path("results"),
    format: Annotated[ShowFormat, typer.Option("--format", help="output format")] = (
        ShowFormat.table
    ),
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="only this metric id (repeatable)"),
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", help="only this dataset id (repeatable)"),
    ] = None,
    importance: Annotated[
        bool,
        typer.Option(
            "--importance",
            help="also print each explainer's global importance per original column "
            "(tables; share of the total, mean over seeds, top 15)",
        ),
    ] = False,
) -> None:
    """Print the leaderboards of a stored run (mean with its 95% t-interval, best marked,
    a cross-dataset mean-rank summary) as a table, Markdown, CSV, LaTeX or HTML."""
    from harness.report.aggregate import all_tables, select, summarise
    from harness.report.importance import importance_markdown, importance_tables
    from harness.report.render import (
        html_comment,
        markdown_text,
        print_tables,
        render_csv,
        render_html,
        render_latex,
        render_markdown,
    )
    from harness.report.safe_text import printable
    from harness.store import ResultsStore, run_status

    with ResultsStore(out_dir, create=False) as store:
        run_id, info = store.run_with_cells(run_id)
        status = run_status(store, info)
        summary = select(summarise(store.results(run_id)), metric or [], dataset or [])
        shares = importance_tables(store, run_id) if importance else {}

    def echo(text: str, nl: bool = True) -> None:  # stored strings cannot drive the terminal
        typer.echo(printable(text), nl=nl)

    if format is ShowFormat.csv:
        echo(render_csv(summary), nl=False)
        return
    header = f"run {run_id} · suite {info['suite_name']} · {info['started_at']} · {status}"
    if format is ShowFormat.latex:
        echo(f"% {' '.join(header.splitlines())}\n{render_latex(all_tables(summary))}")
    elif format is ShowFormat.html:
        echo(f"{html_comment(header)}\n{render_html(all_tables(summary))}")
    elif format is ShowFormat.markdown:
        echo(f"## {markdown_text(header)}\n\n{render_markdown(all_tables(summary))}")
        for title, table in shares.items():
            echo("\n" + importance_markdown(title, table))
    else:
        out.print(header, highlight=False)
        print_tables(out, all_tables(summary, "compact"))
        statuses = Counter(summary["status"])
        if statuses.get("failed") or statuses.get("skipped"):
            out.print(f"entries: {dict(statuses)}")
        for title, table in shares.items():
            out.print(f"\nimportance per column (share of total): {title}", style="bold")
            out.print(table.round(3).to_string(), highlight=False)
