"""``xai-harness check``: a suite's claims (and optionally every score) against a stored run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import (
    MlflowOption,
    OutOption,
    SuiteArgument,
    app,
    err,
    log_to_mlflow,
    out,
    user_errors,
)
from harness.errors import HarnessError


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
    exact: Annotated[
        bool,
        typer.Option(
            "--exact",
            help="--against: compare with --tolerance alone even when the runs' machines, "
            "threads or versions differ (default there: changes must also exceed the seed "
            "spread)",
        ),
    ] = False,
    mlflow: MlflowOption = None,
) -> None:
    """Check a suite's claims against its stored run (exit 0: all hold; 1: any fails or is
    inconclusive, or --against flags a change; 2: usage errors)."""
    from harness.checking import check_run
    from harness.output_paths import writable_file
    from harness.report.claims import (
        describe_outcome,
        difference_lines,
        movement_lines,
        regime_summary,
        write_junit,
    )
    from harness.store import STORE_FILENAME, ResultsStore
    from harness.suite import read_spec

    spec, _ = read_spec(suite)
    if junit is not None:
        writable_file(junit, "--junit")
    overrides = dict(_metric_value(item) for item in metric_tolerance or [])
    run_id = run
    if run_id is None and (Path(out_dir) / STORE_FILENAME).exists():
        with ResultsStore(out_dir, create=False) as store:
            run_id = store.latest_run_of(spec.name)
    if run_id is None and run_missing:
        from harness.runner.progress import RichProgress
        from harness.runner.run import run_suite
        from harness.suite import load_suite

        run_id = run_suite(load_suite(suite), out_dir, progress=RichProgress(err)).run_id
    if run_id is None:
        raise HarnessError(
            f"no stored run of suite '{spec.name}' in {out_dir}; run `xai-harness run "
            f"{suite}` first, or pass --run-missing"
        )
    report = check_run(
        spec.name,
        spec.claims,
        out_dir,
        run_id,
        against=against,
        tolerance=tolerance,
        per_metric=overrides,
        time_factor=time_factor,
        exact=exact,
    )
    out.print(
        f"suite {spec.name} · run {report.run_id}: {len(report.outcomes)} claims", highlight=False
    )
    comparison = report.comparison
    lines = [
        *(difference_lines(comparison) if comparison else []),  # first: what differs
        *(describe_outcome(outcome) for outcome in report.outcomes),
        *regime_summary(report.outcomes),
        *(movement_lines(comparison) if comparison else []),
    ]
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True)
    if junit is not None:
        write_junit(junit, spec.name, report.run_id, report.outcomes, comparison)
    if mlflow is not None:
        log_to_mlflow(mlflow, Path(out_dir), report.run_id, report.outcomes)
    if report.failed:
        raise typer.Exit(1)


def _metric_value(item: str) -> tuple[str, float]:
    metric, _, value = item.partition("=")
    try:
        return metric, float(value)
    except ValueError:
        raise HarnessError(
            f"--metric-tolerance '{item}': expected METRIC=VALUE, e.g. accuracy=0.01"
        ) from None
