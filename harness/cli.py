"""The ``xai-harness`` command line: list, validate, run, show, figures and report.

User mistakes (a bad suite, an unknown name, a missing store) print one ``error:`` line
per problem on stderr and exit with code 2; ``run`` exits 1 when any cell failed.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from harness.claims import evaluate
from harness.datasets import dataset_registry
from harness.errors import HarnessError
from harness.explainers import explainer_registry
from harness.metrics import metric_registry
from harness.models import model_registry
from harness.output_paths import writable_file, writable_folder
from harness.regression import compare_runs
from harness.report.claims import describe_outcome, write_junit
from harness.report.figures import render_figures
from harness.report.html_report import write_report
from harness.report.importance import importance_markdown, importance_tables
from harness.report.leaderboard import (
    LeaderboardTable,
    all_tables,
    html_comment,
    markdown_text,
    print_tables,
    render_csv,
    render_html,
    render_latex,
    render_markdown,
    select,
    summarise,
)
from harness.runner.execute import Executor, RunSummary, SerialExecutor, run_suite
from harness.runner.parallel import DaskExecutor, ProcessExecutor
from harness.runner.plan import plan
from harness.runner.progress import RichProgress
from harness.store import STORE_FILENAME, ResultsStore, run_status
from harness.suite import DEFAULT_SUITE, bundled_suites, load_suite

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Benchmark explainability methods: run suites, read leaderboards.",
)
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

OutOption = Annotated[Path, typer.Option("--out", help="results folder holding harness.sqlite")]


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
                err.print(f"[red]error:[/red] {line}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


class Listable(StrEnum):
    explainers = "explainers"
    datasets = "datasets"
    metrics = "metrics"
    models = "models"
    suites = "suites"


def _listing(columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _explainer_rows() -> list[list[str]]:
    rows = []
    for name in explainer_registry.names():
        cls = explainer_registry.get(name)
        rows.append([name, "/".join(sorted(cls.modalities)), cls.scope, cls.summary()])
    return rows


def _dataset_cards() -> list[str]:
    """One block per dataset source: its card (size, ground truth, source, licence, citation)."""
    blocks = []
    for name in dataset_registry.names():
        cls = dataset_registry.get(name)
        card = cls.card
        lines = [
            f"[bold]{name}[/bold] ({cls.modality}) — {cls.summary()}",
            f"  size: {cls.size or 'depends on its parameters'} · ground truth: {cls.ground_truth}",
            f"  source: {card.source or 'not stated'} · licence: {card.licence or 'not stated'}",
        ]
        if card.citation:
            lines.append(f"  cite: {card.citation}")
        blocks.append("\n".join(lines))
    return blocks


def _metric_rows() -> list[list[str]]:
    rows = []
    for name in metric_registry.names():
        cls = metric_registry.get(name)
        direction = "higher is better" if cls.higher_is_better else "lower is better"
        rows.append([name, direction, ", ".join(sorted(cls.needs)), cls.summary()])
    return rows


def _model_rows() -> list[list[str]]:
    rows = []
    for name in model_registry.names():
        cls = model_registry.get(name)
        rows.append([name, "/".join(sorted(cls.modalities)), cls.summary()])
    return rows


def _suite_rows() -> list[list[str]]:
    return [
        [name, load_suite(path).spec.description.strip().splitlines()[0]]
        for name, path in bundled_suites().items()
    ]


_LISTINGS: dict[Listable, tuple[list[str], Callable[[], list[list[str]]]]] = {
    Listable.explainers: (["explainer", "modality", "scope", "description"], _explainer_rows),
    Listable.metrics: (["metric", "direction", "needs", "description"], _metric_rows),
    Listable.models: (["model recipe", "modality", "description"], _model_rows),
    Listable.suites: (["suite", "description"], _suite_rows),
}


@app.command("list")
@user_errors
def list_(what: Annotated[Listable, typer.Argument(help="what to list")]) -> None:
    """List registered explainers, datasets, metrics, model recipes or bundled suites."""
    if what is Listable.datasets:
        out.print("\n\n".join(_dataset_cards()), highlight=False)
        return
    columns, rows = _LISTINGS[what]
    out.print(_listing(columns, rows()))


RunIdArgument = Annotated[
    str | None, typer.Argument(help="run id or unique prefix (default: the latest run)")
]
SuiteArgument = Annotated[
    str, typer.Argument(help="suite file, or the name of a bundled suite (see `list suites`)")
]


@app.command()
@user_errors
def validate(suite: SuiteArgument) -> None:
    """Validate a suite and print its plan (cells to run, cells skipped and why); runs no
    cell. A suite that names "module:Class" imports that module (from the suite's folder
    or PYTHONPATH), which runs its code — as pytest runs a conftest.py: validate only
    suites you trust."""
    loaded = load_suite(suite)
    cells = plan(loaded)
    skipped = [c for c in cells if c.skip_reason]
    out.print(
        f"[bold]{loaded.name}[/bold]: {len(cells)} cells = {len(loaded.spec.seeds)} seeds × "
        f"{len(loaded.datasets)} datasets × {len(loaded.models)} models × "
        f"{len(loaded.explainers)} explainers; {len(cells) - len(skipped)} to run, "
        f"{len(skipped)} skipped"
    )
    combos: dict[tuple[str, str, str], str | None] = {}
    metric_skips: dict[tuple[str, str], dict[str, str]] = {}
    for cell in cells:
        combos[(cell.dataset.id, cell.model.id, cell.explainer.id)] = cell.skip_reason
        if cell.metric_skips:
            metric_skips[(cell.dataset.id, cell.explainer.id)] = cell.metric_skips
    rows = [
        [dataset, model, explainer, "skipped: " + reason if reason else "run"]
        for (dataset, model, explainer), reason in combos.items()
    ]
    out.print(_listing(["dataset", "model", "explainer", "plan (every seed)"], rows))
    for (dataset, explainer), skips in metric_skips.items():
        for metric, reason in skips.items():
            out.print(f"metric {metric} not computed for {dataset} × {explainer}: {reason}")
    out.print(f"metrics: {', '.join(m.id for m in loaded.metrics)}")


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run is marked interrupted and can be resumed."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class ExecutorKind(StrEnum):
    local = "local"
    dask = "dask"


def _executor(
    kind: ExecutorKind, jobs: int, scheduler: str | None, worker_timeout: float
) -> Executor:
    if kind is ExecutorKind.dask:
        return DaskExecutor(
            scheduler, workers=jobs if jobs > 1 else 2, worker_timeout=worker_timeout
        )
    if scheduler is not None:
        raise HarnessError("--scheduler goes with --executor dask")
    return ProcessExecutor(jobs) if jobs > 1 else SerialExecutor()


@app.command()
@user_errors
def run(
    suite: Annotated[
        str, typer.Argument(help="suite file or bundled suite name", show_default=True)
    ] = DEFAULT_SUITE,
    out_dir: OutOption = Path("results"),
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", min=1, help="run seeds 0 … N-1 instead of the suite's seeds"),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="continue a stored run of this suite: `--resume` alone (or `--resume latest`)"
            " takes its latest run, `--resume RUN_ID` that one; stored cells are kept, only "
            "missing ones run",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option("--jobs", min=1, help="run model groups on N local processes"),
    ] = 1,
    executor: Annotated[
        ExecutorKind,
        typer.Option("--executor", help="local (serial, or --jobs processes) or dask"),
    ] = ExecutorKind.local,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="dask: scheduler address (default: a LocalCluster)"),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache", help="cache folder for models and explanations (default: <out>/cache)"
        ),
    ] = None,
    worker_timeout: Annotated[
        float,
        typer.Option(
            "--worker-timeout",
            min=1,
            help="dask: stop (resumably) after this many seconds without any worker",
        ),
    ] = 120.0,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="recompute everything; read and write no cache")
    ] = False,
    openml_cache: Annotated[
        Path | None,
        typer.Option(
            "--openml-cache",
            help="root of the OpenML cache for datasets without their own `cache_dir` "
            "(sets OPENML_CACHE_DIR for this run)",
        ),
    ] = None,
) -> None:
    """Run a suite, store every score and print the leaderboard."""
    if openml_cache is not None:
        os.environ["OPENML_CACHE_DIR"] = str(openml_cache.expanduser().resolve())
    loaded = load_suite(suite, seeds=list(range(seeds)) if seeds else None)
    writable_folder(out_dir, "--out")
    cache_dir = None if no_cache else (cache or Path(out_dir) / "cache")
    if cache_dir is not None:
        writable_folder(cache_dir, "--cache")
    chosen = _executor(executor, jobs, scheduler, worker_timeout)
    try:
        with terminate_as_interrupt():
            summary = run_suite(
                loaded, out_dir, progress=RichProgress(err), resume=resume, executor=chosen,
                cache_dir=cache_dir,
            )  # fmt: skip
    except KeyboardInterrupt as stop:
        err.print(
            f"interrupted{' (SIGTERM)' if isinstance(stop, Terminated) else ''}: the cells "
            f"finished so far are stored in {out_dir}; the run is marked 'interrupted'; "
            f"continue it with `xai-harness run {suite} --out {out_dir} --resume`"
        )
        raise typer.Exit(143 if isinstance(stop, Terminated) else 130) from None
    with ResultsStore(out_dir, create=False) as store:
        _print_tables(all_tables(summarise(store.results(summary.run_id))))
    _print_summary(summary)
    if summary.any_failed:
        raise typer.Exit(1)


def _print_summary(summary: RunSummary) -> None:
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    if summary.resumed:
        counts += f"; {summary.resumed} kept from before, not recomputed"
    if any(summary.reused.values()):
        counts += (
            f"; from the cache: {summary.reused['models']} models, "
            f"{summary.reused['explanations']} explanations"
        )
    out.print(f"run [bold]{summary.run_id}[/bold] stored in {summary.store_path} ({counts})")
    stages = summary.stage_seconds
    parts = " · ".join(
        f"{stage} {stages[stage]:.1f} s"
        for stage in ("data", "train", "explain", "score", "store", "overhead")
    )
    out.print(f"wall {stages['total']:.1f} s: {parts}")
    by_error: dict[str, list[str]] = {}
    for cell_id, error in summary.failures:
        by_error.setdefault(error, []).append(cell_id)
    for error, cells in by_error.items():  # one line per distinct failure
        where = cells[0] if len(cells) == 1 else f"{len(cells)} cells ({cells[0]}, …)"
        out.print(f"[red]failed[/red] {where}: {error}", highlight=False)


def _print_tables(tables: list[LeaderboardTable]) -> None:
    print_tables(out, tables)


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
    """Print the leaderboards of a stored run (mean [95% bootstrap CI], best marked, a
    cross-dataset mean-rank summary) as a table, Markdown, CSV, LaTeX or HTML."""
    with ResultsStore(out_dir, create=False) as store:
        run_id, info = store.run_with_cells(run_id)
        status = run_status(store, info)
        summary = select(summarise(store.results(run_id)), metric or [], dataset or [])
        shares = importance_tables(store, run_id) if importance else {}
    if format is ShowFormat.csv:
        typer.echo(render_csv(summary), nl=False)
        return
    tables = all_tables(summary)
    header = f"run {run_id} · suite {info['suite_name']} · {info['started_at']} · {status}"
    if format is ShowFormat.latex:
        typer.echo(f"% {' '.join(header.splitlines())}\n{render_latex(tables)}")
    elif format is ShowFormat.html:
        typer.echo(f"{html_comment(header)}\n{render_html(tables)}")
    elif format is ShowFormat.markdown:
        typer.echo(f"## {markdown_text(header)}\n\n{render_markdown(tables)}")
        for title, table in shares.items():
            typer.echo("\n" + importance_markdown(title, table))
    else:
        out.print(header, highlight=False)
        _print_tables(tables)
        statuses = Counter(summary["status"])
        if statuses.get("failed") or statuses.get("skipped"):
            out.print(f"entries: {dict(statuses)}")
        for title, table in shares.items():
            out.print(f"\n[bold]importance per column (share of total): {title}[/bold]")
            out.print(table.round(3).to_string(), highlight=False)


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
) -> None:
    """Write a self-contained report.html (leaderboards, figures, conventions, failures)
    with the figures and the tables in every format beside it, from the store only."""
    if to is not None:
        writable_folder(to, "--to")
    path = write_report(out_dir, run_id, to)
    out.print(f"report written: {path}", highlight=False)


@app.command()
@user_errors
def check(
    suite: SuiteArgument,
    run: Annotated[
        str | None,
        typer.Option("--run", help="the run to check (default: the suite's latest stored run)"),
    ] = None,
    out_dir: OutOption = Path("results"),
    run_missing: Annotated[
        bool, typer.Option("--run-missing", help="run the suite first when no run is stored")
    ] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="also write the verdicts as JUnit XML")
    ] = None,
    against: Annotated[
        str | None,
        typer.Option("--against", help="baseline run id: flag every score that moved"),
    ] = None,
    tolerance: Annotated[
        float, typer.Option("--tolerance", min=0, help="--against: allowed absolute change")
    ] = 1e-6,
    metric_tolerance: Annotated[
        list[str] | None,
        typer.Option("--metric-tolerance", help="--against: METRIC=VALUE (repeatable)"),
    ] = None,
    time_factor: Annotated[
        float,
        typer.Option("--time-factor", min=1, help="--against: allowed timing ratio either way"),
    ] = 3.0,
) -> None:
    """Check a suite's claims against its stored run (exit 0: all hold; 1: any fails or is
    inconclusive, or --against flags a change; 2: usage errors)."""
    loaded = load_suite(suite)
    if junit is not None:
        writable_file(junit, "--junit")
    run_id = run
    if (Path(out_dir) / STORE_FILENAME).exists():
        with ResultsStore(out_dir, create=False) as store:
            run_id = run or store.latest_run_of(loaded.name)
    if run_id is None and run_missing:
        run_id = run_suite(loaded, out_dir, progress=RichProgress(err)).run_id
    if run_id is None:
        raise HarnessError(
            f"no stored run of suite '{loaded.name}' in {out_dir}; run `xai-harness run "
            f"{suite}` first, or pass --run-missing"
        )
    with ResultsStore(out_dir, create=False) as store:
        run_id, info = store.run_with_cells(run_id)
        checked_suite = info["suite_name"]
        if checked_suite != loaded.name:
            raise HarnessError(
                f"run {run_id} is of suite '{checked_suite}', not '{loaded.name}'; pass a run "
                "of this suite with --run, or leave --run out for its latest run"
            )
        results = store.results(run_id)
        baseline, same_executor = None, True
        if against:
            baseline_id = store.resolve_run_id(against)
            baseline = store.results(baseline_id)
            executors = [
                (store.run_info(r)["environment"] or {}).get("executor", {"kind": "serial"})
                for r in (baseline_id, run_id)
            ]
            same_executor = executors[0] == executors[1]
    outcomes = [evaluate(claim, results) for claim in loaded.spec.claims]
    out.print(f"suite {loaded.name} · run {run_id}: {len(outcomes)} claims", highlight=False)
    for outcome in outcomes:
        out.print(describe_outcome(outcome), highlight=False, soft_wrap=True)
    if junit is not None:
        write_junit(junit, loaded.name, run_id, outcomes)
    failed = any(o.verdict != "holds" for o in outcomes)
    if baseline is not None:
        overrides = dict(_metric_value(item) for item in metric_tolerance or [])
        if not same_executor:
            out.print(
                "timings not compared: the runs used different executors (serial vs parallel)",
                highlight=False,
            )
        changes, compared = compare_runs(
            baseline, results, tolerance=tolerance, time_factor=time_factor,
            per_metric=overrides, timings=same_executor,
        )  # fmt: skip
        out.print(f"against {against}: {len(changes)} of {compared} entries moved", highlight=False)
        for c in changes:
            out.print(
                f"  MOVED {c.dataset}/{c.model}/{c.explainer} {c.metric}: "
                f"{c.baseline:.6g} → {c.current:.6g} ({c.reason})",
                highlight=False,
                soft_wrap=True,
            )
        failed = failed or bool(changes)
    if failed:
        raise typer.Exit(1)


def _metric_value(item: str) -> tuple[str, float]:
    metric, _, value = item.partition("=")
    try:
        return metric, float(value)
    except ValueError:
        raise HarnessError(
            f"--metric-tolerance '{item}': expected METRIC=VALUE, e.g. accuracy=0.01"
        ) from None


def optional_resume_value(args: list[str]) -> list[str]:
    """``--resume`` may stand alone (resume the latest run): give it the value ``latest``
    when no run id follows (end of the line, or another option next)."""
    fixed = list(args)
    for index, arg in enumerate(fixed):
        if arg == "--resume" and (index + 1 == len(fixed) or fixed[index + 1].startswith("-")):
            fixed.insert(index + 1, "latest")
            break
    return fixed


def main() -> None:
    """Console-script entry point."""
    app(args=optional_resume_value(sys.argv[1:]))
