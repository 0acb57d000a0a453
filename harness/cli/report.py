"""``xai-harness report`` and ``xai-harness figures``: files drawn from the store only."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import OutOption, RunIdArgument, app, out, user_errors


@app.command()
@user_errors
def figures(
    run_id: RunIdArgument = None,
    out_dir: OutOption = Path("results"),
    to: Annotated[
        Path | None,
        typer.Option("--to", help="folder for the figures (default: <out>/figures/<run>)"),
    ] = None,
) -> None:
    """Render the figures that apply to a stored run (PNG and PDF), from the store only."""
    from harness.output_paths import writable_folder
    from harness.report.figures import render_figures

    if to is not None:
        writable_folder(to, "--to")
    written = render_figures(out_dir, run_id, to)
    if not written:
        out.print("no figure applies to this run")
    for path in written:
        out.print(str(path), highlight=False)


@app.command()
@user_errors
def report(
    run_id: RunIdArgument = None,
    out_dir: OutOption = Path("results"),
    to: Annotated[
        Path | None,
        typer.Option("--to", help="folder for the report (default: <out>/reports/<run>)"),
    ] = None,
    include_machine: Annotated[
        bool,
        typer.Option(
            "--include-machine",
            help="name the host, the suite's folder and a scheduler's address (left out by "
            "default: the report is made to be shared)",
        ),
    ] = False,
) -> None:
    """Write a self-contained report.html (leaderboards, figures, conventions, failures)
    with the figures and the tables in every format beside it, from the store only."""
    from harness.output_paths import writable_folder
    from harness.report.html_report import write_report

    if to is not None:
        writable_folder(to, "--to")
    path = write_report(out_dir, run_id, to, include_machine)
    out.print(f"report written: {path}", highlight=False)
