"""MLflow: a stored run logged with ``Results.log_mlflow()`` and ``--mlflow`` on run,
rescore and check, read back with MLflow's own client from a local SQLite store (no
network), and nothing written outside the folders named."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import harness
from harness.cli import app, optional_resume_value
from harness.report.aggregate import summarise

mlflow = pytest.importorskip("mlflow")

SUITE = """
name = "tiny_mlflow"
seeds = [0, 1]
metrics = ["accuracy", "spearman_gt", "explain_seconds"]
[execution]
explain_rows = 40
threads = 1
[[datasets]]
id = "planted"
name = "synthetic_tabular"
params = { n_samples = 300, n_features = 6, n_informative = 2 }
[[models]]
name = "mlp"
params = { hidden = [16], epochs = 3 }
[[explainers]]
name = "saliency"
[[explainers]]
name = "random"
[[claims]]
id = "saliency_beats_chance"
source = "test"
text = "saliency ranks the planted features above chance"
kind = "value"
metric = "spearman_gt"
select = { explainer = "saliency" }
value = 0.0
op = ">"
"""


def _client(uri: str):
    return mlflow.MlflowClient(tracking_uri=uri)


def _parents(client, experiment: str):
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id])
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags], runs


def test_results_log_mlflow_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    working = tmp_path / "cwd"
    working.mkdir()
    monkeypatch.chdir(working)  # MLflow's default artifact root would be ./mlruns
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
    result = harness.evaluate(
        network,
        x,
        y,
        importance=np.array([1.0, 1.0, 0, 0, 0]),
        explainers=["saliency"],
        seeds=[0, 1],
        out=tmp_path / "out",
        progress=False,
    )
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    parent_id = result.log_mlflow(tracking_uri=uri, experiment="notebook")

    client = _client(uri)
    parents, runs = _parents(client, "notebook")
    assert [p.info.run_id for p in parents] == [parent_id]
    parent = client.get_run(parent_id)
    assert parent.data.tags["xai_harness.run_id"] == result.run_id
    assert parent.data.params["explainers.saliency.name"] == "saliency"
    assert parent.data.params["seeds"] == "0,1"
    summary = summarise(result.frame)
    for row in summary.itertuples():
        name = f"{row.dataset}/{row.model}/{row.explainer}/{row.metric}"
        assert math.isclose(parent.data.metrics[name], row.mean, rel_tol=1e-12)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_id]
    assert (
        len(children) == result.frame["cell_id"].nunique() == 3 * 2
    )  # (saliency, oracle, random) × seeds
    for child in children:
        cell = result.frame[result.frame["cell_id"] == child.info.run_name]
        expected = dict(zip(cell["metric"], cell["value"], strict=True))
        assert child.data.metrics == pytest.approx(expected, rel=1e-12)
        assert child.data.tags["status"] == "ok"
    artifacts = {a.path for a in client.list_artifacts(parent_id)}
    assert {"suite.toml", "leaderboard", "report"} <= artifacts
    tables = {a.path for a in client.list_artifacts(parent_id, "leaderboard")}
    assert "leaderboard/leaderboard.csv" in tables
    assert "report/report.html" in {a.path for a in client.list_artifacts(parent_id, "report")}
    assert list(working.iterdir()) == []  # nothing beside the user's folders
    assert (tmp_path / "store" / "mlartifacts").is_dir()


def test_the_command_line_logs_runs_and_verdicts(tmp_path: Path) -> None:
    suite = tmp_path / "tiny_mlflow.toml"
    suite.write_text(textwrap.dedent(SUITE))
    out = tmp_path / "out"
    runner = CliRunner()
    ran = runner.invoke(
        app, optional_resume_value(["run", str(suite), "--out", str(out), "--mlflow"])
    )
    assert ran.exit_code == 0, ran.output
    uri = f"sqlite:///{(out / 'mlflow.db').resolve()}"  # the default store: in --out
    assert "logged to MLflow: run" in ran.output and str(out / "mlflow.db") in ran.output
    client = _client(uri)
    parents, _ = _parents(client, "xai-harness/tiny_mlflow")
    assert len(parents) == 1 and "claim.saliency_beats_chance" not in parents[0].data.tags

    checked = runner.invoke(app, ["check", str(suite), "--out", str(out), "--mlflow", uri])
    parents, _ = _parents(client, "xai-harness/tiny_mlflow")
    assert len(parents) == 1  # the verdicts join the run's MLflow run
    verdict = parents[0].data.tags["claim.saliency_beats_chance"]
    assert verdict in ("holds", "fails", "inconclusive")
    assert (checked.exit_code == 0) == (verdict == "holds")

    run_id = parents[0].data.tags["xai_harness.run_id"]
    rescored = runner.invoke(
        app,
        optional_resume_value(
            ["rescore", run_id, "--metric", "accuracy", "--out", str(out), "--mlflow"]
        ),
    )
    assert rescored.exit_code == 0, rescored.output
    parents, _ = _parents(client, "xai-harness/tiny_mlflow")
    assert len(parents) == 2  # the rescoring is a run of its own


def test_an_unreachable_store_is_one_error_line_and_the_run_stays(tmp_path: Path) -> None:
    suite = tmp_path / "tiny_mlflow.toml"
    suite.write_text(textwrap.dedent(SUITE))
    out = tmp_path / "out"
    ran = CliRunner().invoke(
        app, ["run", str(suite), "--out", str(out), "--mlflow", "nosuchscheme://x"]
    )
    assert ran.exit_code == 2
    lines = [line for line in ran.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "cannot reach the MLflow tracking store nosuchscheme://x" in lines[0]
    assert "is stored in" in lines[0]
    stored = harness.Results.open(out)
    assert stored.info["status"] == "ok" and len(stored.frame) > 0


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["run", "--mlflow"], ["run", "--mlflow", "default"]),
        (["run", "--mlflow", "quick"], ["run", "--mlflow", "default", "quick"]),
        (
            ["run", "--mlflow", "sqlite:///m.db", "quick"],
            ["run", "--mlflow", "sqlite:///m.db", "quick"],
        ),
        (["run", "--mlflow", "--resume"], ["run", "--mlflow", "default", "--resume", "latest"]),
    ],
)
def test_mlflow_may_stand_alone(given: list[str], expected: list[str]) -> None:
    assert optional_resume_value(given) == expected
