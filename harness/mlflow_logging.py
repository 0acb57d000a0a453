"""A stored run logged to MLflow (``--mlflow`` on ``run``/``rescore``/``check``,
``Results.log_mlflow()``).

Layout — one MLflow run per harness run, with one nested run per cell:

- **parent run** (name ``<suite> <run id>``), in the experiment named by the suite
  (``xai-harness/<suite>`` unless given):
  - parameters: the resolved suite flattened to dotted keys — ``seeds``,
    ``execution.<option>``, ``<section>.<id>.name`` and ``<section>.<id>.<parameter>``
    for datasets, models, explainers and metrics (values longer than MLflow's limit are
    cut, ending in ``…``);
  - metrics: each leaderboard entry's mean over seeds, named
    ``<dataset>/<model>/<explainer>/<metric>`` (``/`` groups them in MLflow's interface);
  - tags: ``xai_harness.run_id``, ``xai_harness.suite``, ``xai_harness.status`` and one
    ``claim.<claim id>`` per checked claim: ``holds``, ``fails`` or ``inconclusive``;
  - artifacts: ``suite.toml``, ``leaderboard/`` (CSV, Markdown, LaTeX, HTML, text),
    ``report/`` (the HTML report and its figures);
- **nested runs**, one per cell (name: the cell id): tags ``dataset``, ``model``,
  ``explainer``, ``seed``, ``status``; metrics: each ok score by metric id.

A missing score (skipped, failed, undefined) is not logged: MLflow has no NaN metric
worth reading; the leaderboard artifact says why it is missing. The tracking store is
``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<out>/mlflow.db``; a
new experiment on a local store keeps its artifacts beside the database
(``mlartifacts/``), never in the working directory. ``check --mlflow`` adds the verdicts
to the run's existing parent run when there is one (tag ``xai_harness.run_id``).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import HarnessError, first_line, optional_import

if TYPE_CHECKING:
    from harness.claims import ClaimResult

#: MLflow's longest parameter value (characters)
PARAM_LIMIT = 6000
#: what MLflow's log_batch takes at once
BATCH = 100


def tracking_uri_for(out_dir: str | Path, tracking_uri: str | None) -> str:
    """The tracking store: the one given, ``$MLFLOW_TRACKING_URI``, or a SQLite file in
    the output folder."""
    chosen = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if chosen:
        return chosen
    return f"sqlite:///{(Path(out_dir) / 'mlflow.db').resolve()}"


def log_run(
    out_dir: str | Path,
    run_id: str,
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    outcomes: list[ClaimResult] | None = None,
) -> str:
    """Log stored run ``run_id`` (see the module); returns the parent MLflow run's id."""
    from harness.store import ResultsStore

    mlflow = optional_import("mlflow", "logging to MLflow", "mlflow")
    with ResultsStore(out_dir, create=False) as store:
        info = store.run_info(run_id)
        results = store.results(run_id)
    client, experiment_id = _client(mlflow, out_dir, tracking_uri, experiment, info)
    parent = _create(client, experiment_id, f"{info['suite_name']} {run_id}", None)
    try:
        tags = {
            "xai_harness.run_id": run_id,
            "xai_harness.suite": info["suite_name"],
            "xai_harness.status": str(info.get("status", "")),
        }
        _batch(client, parent, params=dict(suite_params(info["config"])), tags=tags)
        _batch(client, parent, metrics=_leaderboard_metrics(results))
        for cell_id, cell in results.groupby("cell_id", sort=False):
            child = _create(client, experiment_id, str(cell_id), parent)
            first = cell.iloc[0]
            cell_tags = {k: str(first[k]) for k in ("dataset", "model", "explainer", "seed")}
            cell_tags["status"] = "failed" if (cell["status"] == "failed").any() else "ok"
            ok = cell[(cell["status"] == "ok") & cell["value"].notna()]
            metrics = {str(m): float(v) for m, v in zip(ok["metric"], ok["value"], strict=True)}
            _batch(client, child, metrics=metrics, tags=cell_tags)
            client.set_terminated(child)
        _log_files(client, parent, out_dir, run_id, info)
        if outcomes is not None:
            log_verdicts(client, parent, outcomes)
    except Exception:
        client.set_terminated(parent, status="FAILED")
        raise
    client.set_terminated(parent)
    return parent


def log_check(
    out_dir: str | Path,
    run_id: str,
    outcomes: list[ClaimResult],
    *,
    tracking_uri: str | None = None,
    experiment: str | None = None,
) -> str:
    """The verdicts as tags of the run's parent MLflow run (logged first when it has
    none); returns that run's id."""
    from harness.store import ResultsStore

    mlflow = optional_import("mlflow", "logging to MLflow", "mlflow")
    with ResultsStore(out_dir, create=False) as store:
        info = store.run_info(run_id)
    client, experiment_id = _client(mlflow, out_dir, tracking_uri, experiment, info)
    found = client.search_runs(
        [experiment_id], filter_string=f"tags.`xai_harness.run_id` = '{run_id}'", max_results=1
    )
    if not found:
        return log_run(
            out_dir,
            run_id,
            tracking_uri=tracking_uri,
            experiment=experiment,
            outcomes=outcomes,
        )
    parent = found[0].info.run_id
    log_verdicts(client, parent, outcomes)
    return str(parent)


def log_verdicts(client: Any, mlflow_run: str, outcomes: list[ClaimResult]) -> None:
    """One ``claim.<label>`` tag per verdict."""
    _batch(client, mlflow_run, tags={f"claim.{o.label}": o.verdict for o in outcomes})


def suite_params(config: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """The resolved suite as dotted parameter keys and text values (see the module)."""
    yield "suite", str(config.get("name", ""))
    yield "seeds", ",".join(str(s) for s in config.get("seeds", []))
    for key, value in (config.get("execution") or {}).items():
        yield f"execution.{key}", _text(value)
    for section in ("datasets", "models", "explainers", "metrics"):
        for entry in config.get(section, []):
            yield f"{section}.{entry['id']}.name", str(entry["name"])
            for key, value in (entry.get("params") or {}).items():
                yield f"{section}.{entry['id']}.{key}", _text(value)


def _text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= PARAM_LIMIT else text[: PARAM_LIMIT - 1] + "…"


def _leaderboard_metrics(results: Any) -> dict[str, float]:
    from harness.report.aggregate import summarise

    summary = summarise(results)
    return {
        f"{r.dataset}/{r.model}/{r.explainer}/{r.metric}": float(r.mean)
        for r in summary.itertuples()
        if isinstance(r.mean, float) and math.isfinite(r.mean)
    }


def _client(
    mlflow: Any,
    out_dir: str | Path,
    tracking_uri: str | None,
    experiment: str | None,
    info: dict[str, Any],
) -> tuple[Any, str]:
    uri = tracking_uri_for(out_dir, tracking_uri)
    name = experiment or f"xai-harness/{info['suite_name']}"
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(name)
        if found is not None:
            return client, found.experiment_id
        return client, client.create_experiment(name, artifact_location=_artifact_root(uri))
    except Exception as exc:  # MLflow's own errors: a bad URI, an unreachable server
        raise HarnessError(
            f"cannot reach the MLflow tracking store {uri} ({first_line(exc)}); check the URI "
            "(e.g. sqlite:///mlflow.db, http://host:5000)"
        ) from None


def _artifact_root(uri: str) -> str | None:
    """A local store's artifact folder, beside its database (None: the server decides)."""
    for scheme in ("sqlite:///", "file://", "file:"):
        if uri.startswith(scheme):
            path = Path(uri[len(scheme) :])
            folder = (path.parent if scheme == "sqlite:///" else path) / "mlartifacts"
            return folder.resolve().as_uri()
    return None


def _create(client: Any, experiment_id: str, name: str, parent: str | None) -> str:
    tags = {"mlflow.parentRunId": parent} if parent else {}
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    return str(run.info.run_id)


def _batch(
    client: Any,
    mlflow_run: str,
    *,
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Log in batches of MLflow's size limit."""
    from mlflow.entities import Metric, Param, RunTag

    stamp = 0
    items: list[Any] = [Param(k, v) for k, v in (params or {}).items()]
    items += [Metric(k, v, stamp, 0) for k, v in (metrics or {}).items()]
    items += [RunTag(k, v) for k, v in (tags or {}).items()]
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        client.log_batch(
            mlflow_run,
            metrics=[i for i in chunk if isinstance(i, Metric)],
            params=[i for i in chunk if isinstance(i, Param)],
            tags=[i for i in chunk if isinstance(i, RunTag)],
        )


def _log_files(
    client: Any, mlflow_run: str, out_dir: str | Path, run_id: str, info: dict[str, Any]
) -> None:
    """The suite, the leaderboard in every format and the HTML report, as artifacts."""
    from harness.report.html_report import write_report

    with tempfile.TemporaryDirectory(prefix="xai-harness-mlflow-") as scratch:
        folder = Path(scratch)
        (folder / "suite.toml").write_text(info.get("suite_text") or "", encoding="utf-8")
        client.log_artifact(mlflow_run, str(folder / "suite.toml"))
        report = write_report(out_dir, run_id, folder / "report")
        tables = [p for p in report.parent.iterdir() if p.name.startswith("leaderboard")]
        for table in tables:
            client.log_artifact(mlflow_run, str(table), artifact_path="leaderboard")
            table.unlink()
        client.log_artifacts(mlflow_run, str(report.parent), artifact_path="report")
