"""``xai-harness rescore``: metrics computed from what a stored run kept, as a new run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.cli.app import MlflowOption, OutOption, app, err, log_to_mlflow, out, user_errors


@app.command()
@user_errors
def rescore(
    run_id: Annotated[str, typer.Argument(help="the stored run to rescore (id or unique prefix)")],
    suite: Annotated[
        str | None,
        typer.Argument(
            help="suite to take the metrics from (its cells must be the run's; default: the "
            "run's own suite)"
        ),
    ] = None,
    out_dir: OutOption = Path("results"),
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", help="rescore only this metric id of the suite (repeatable)"),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="cache holding the run's models (default: <out>/cache)"),
    ] = None,
    mlflow: MlflowOption = None,
) -> None:
    """Compute metrics — new ones, or existing ones with other conventions — from what a
    run stored (explanations, predictions; the model from the cache for metrics that call
    it) and store them as a new run linked to it; the source run is not changed."""
    from harness.cli.run import print_failures, print_run_tables
    from harness.rescoring import rescore_run
    from harness.runner.progress import RichProgress

    summary = rescore_run(
        out_dir,
        run_id,
        suite=suite,
        metric_ids=metric,
        cache_dir=cache,
        progress=RichProgress(err),
    )
    print_run_tables(out_dir, summary.run_id)
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    if summary.failed_scores:
        counts += f"; {summary.failed_scores} scores failed"
    out.print(
        f"run {summary.run_id} (a rescoring of {run_id}) stored in "
        f"{summary.store_path} ({counts}); {summary.stage_seconds['total']:.1f} s"
    )
    print_failures(summary)
    if mlflow is not None:
        log_to_mlflow(mlflow, out_dir, summary.run_id)
    if summary.any_failed:
        raise typer.Exit(1)
