"""The typer application, its consoles, and what every command shares.

User mistakes (a bad suite, an unknown name, a missing store) print one ``error:`` line
per problem on stderr and exit with code 2. Command modules import only this and the
standard library at module level; each command imports what it needs when it runs, so
``--help`` and the light commands start at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from harness.errors import HarnessError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmark explainability methods: run suites, read leaderboards.",
)


class SafeConsole(Console):
    """A console that shows control characters of the text it prints as visible escapes
    (:func:`~harness.report.safe_text.printable`): stored strings — ids, claim texts,
    errors — cannot drive the terminal. Rich's own styling codes are added after."""

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        from harness.report.safe_text import printable

        return super()._render_buffer(
            segment if segment.control else Segment(printable(segment.text), segment.style)
            for segment in buffer
        )


#: No markup: ids and messages print as they are (a swept entry's id holds brackets,
#: ``synthetic_tabular[n_samples=300]``, which rich would read as a style tag).
out = SafeConsole(markup=False)
err = SafeConsole(stderr=True, markup=False)

F = TypeVar("F", bound=Callable[..., Any])

OutOption = Annotated[Path, typer.Option("--out", help="results folder holding harness.sqlite")]
MlflowOption = Annotated[
    str | None,
    typer.Option(
        "--mlflow",
        metavar="[URI]",
        help="also log the run to MLflow: `--mlflow` alone uses $MLFLOW_TRACKING_URI, else "
        "sqlite:///<out>/mlflow.db; `--mlflow URI` that store (a URI with a scheme)",
    ),
]


def log_to_mlflow(
    tracking: str, out_dir: Path, run_id: str, outcomes: list[Any] | None = None
) -> None:
    """Log a stored run (and verdicts) to MLflow and say where; a failure is an
    ``error:`` line (exit 2) that names the stored run, which stays as it is."""
    from harness.mlflow_logging import log_check, log_run, tracking_uri_for

    uri = None if tracking == MLFLOW_DEFAULT else tracking
    try:
        if outcomes is None:
            mlflow_run = log_run(out_dir, run_id, tracking_uri=uri)
        else:
            mlflow_run = log_check(out_dir, run_id, outcomes, tracking_uri=uri)
    except HarnessError as exc:
        raise HarnessError(
            f"{exc} — run {run_id} is stored in {out_dir}; log it again with --mlflow later"
        ) from None
    where = tracking_uri_for(out_dir, uri)
    out.print(f"logged to MLflow: run {mlflow_run} in {where}", highlight=False, soft_wrap=True)


#: the value a bare ``--mlflow`` gets (see :func:`optional_values`)
MLFLOW_DEFAULT = "default"
RunIdArgument = Annotated[
    str | None, typer.Argument(help="run id or unique prefix (default: the latest run)")
]
SuiteArgument = Annotated[
    str, typer.Argument(help="suite file, or the name of a bundled suite (see `list suites`)")
]


def _print_version(requested: bool) -> None:
    if requested:
        out.print(f"xai-harness {version('xai-harness')}")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Benchmark explainability methods: run suites, read leaderboards."""


def user_errors(command: F) -> F:
    """Turn :class:`HarnessError` into ``error:`` lines on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HarnessError as exc:
            for line in str(exc).splitlines():
                err.print(
                    Text.assemble(("error:", "red"), f" {line}"), highlight=False, soft_wrap=True
                )
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def listing(columns: list[str], rows: list[list[str]]) -> Table:
    """A plain table of text columns (listings and plans)."""
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table
