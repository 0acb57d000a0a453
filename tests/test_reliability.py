"""Failure isolation and the per-cell timeout: a failing, a NaN-producing and a hanging
explainer are three recorded failures with their reasons; every other cell completes."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import load_results, run_suite
from harness.suite import parse_suite
from tests.conftest import FAILURES_SUITE, ONE_SEED_SUITE
from tests.suite_builder import suite

BROKEN = (
    FAILURES_SUITE.replace("[execution]\n", "[execution]\ncell_timeout = 2\n")
    + """
[[explainers]]
name = "sample_plugins:HangingExplainer"
id = "hanging"
"""
)


def test_failures_nans_and_a_hang_are_recorded_and_the_rest_completes(
    plugins_on_path: None, tmp_path: Path
) -> None:
    summary = run_suite(parse_suite(BROKEN), tmp_path)
    assert summary.counts == {"ok": 3, "failed": 3, "skipped": 0}
    reasons = dict(summary.failures)
    assert "RuntimeError: deliberate failure" in reasons["syn/mlp/failing/seed=0"]
    assert "NaN or infinite" in reasons["syn/mlp/nan/seed=0"]
    assert "timed out after 2 s (execution.cell_timeout)" in reasons["syn/mlp/hanging/seed=0"]
    results = load_results(tmp_path)
    cells = results.drop_duplicates("cell_id").set_index("explainer")["status"]
    assert cells.to_dict() == {
        "integrated_gradients": "ok", "oracle": "ok", "random": "ok",
        "failing": "failed", "nan": "failed", "hanging": "failed",
    }  # fmt: skip
    ok = results[results["status"] == "ok"]
    assert ok.query("metric == 'spearman_gt'")["value"].notna().all()


KILL_SUITE = suite(
    "killable",
    seeds=[0, 1, 2, 3],
    metrics=["accuracy", "spearman_gt", "stability",
             {"name": "spearman_ref", "params": {"reference": "integrated_gradients"}}],
    execution={"explain_rows": 100},
    datasets=[("synthetic_tabular", {"n_samples": 800, "n_features": 8, "n_informative": 3},
               "syn")],
    models=[("mlp", {"hidden": [32], "epochs": 40})],
    explainers=[("integrated_gradients", {"n_steps": 64}), "saliency", "oracle"],
)  # fmt: skip


def _stored(store_path: Path) -> dict[str, str]:
    """cell id → finished_at, read without the harness (what is on disk)."""
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(store_path)) as db:
        try:
            return dict(db.execute("SELECT cell_id, finished_at FROM cells"))
        except sqlite3.OperationalError:  # the run is still creating its tables
            return {}


@pytest.mark.slow
def test_a_killed_run_resumes_without_recomputing_or_duplicating(tmp_path: Path) -> None:
    import signal
    import subprocess
    import time

    suite = tmp_path / "killable.toml"
    suite.write_text(KILL_SUITE)
    out = tmp_path / "out"
    command = ["xai-harness", "run", str(suite), "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store_path = out / "harness.sqlite"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:  # kill once a few cells (not all 12) are stored
            if store_path.exists() and len(_stored(store_path)) >= 4:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    before = _stored(store_path)
    assert 4 <= len(before) < 12, "the run must be killed midway"
    resumed = subprocess.run([*command, "--resume"], capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{len(before)} kept from before, not recomputed" in " ".join(resumed.stdout.split())
    after = _stored(store_path)
    assert len(after) == 12  # every cell once (the key is (run, cell))
    assert {cell: after[cell] for cell in before} == before  # kept cells were not rewritten
    results = load_results(out)
    assert results["run_id"].nunique() == 1 and len(results) == 12 * 4
    assert (
        results.query("metric == 'spearman_ref' and explainer == 'saliency'")["value"].notna().all()
    )
    assert results.query("metric == 'stability'")["value"].notna().all()


def test_resume_refuses_a_changed_suite_and_a_missing_run(tmp_path: Path) -> None:
    from harness.errors import HarnessError
    from tests.conftest import TINY_SUITE

    with pytest.raises(HarnessError, match="no stored run of suite 'tiny'"):
        run_suite(parse_suite(ONE_SEED_SUITE), tmp_path, resume="latest")
    first = run_suite(parse_suite(ONE_SEED_SUITE), tmp_path)
    again = run_suite(parse_suite(ONE_SEED_SUITE), tmp_path, resume=first.run_id)
    assert again.run_id == first.run_id and again.resumed == 3 and again.counts["ok"] == 3
    with pytest.raises(HarnessError, match="different suite configuration"):
        run_suite(parse_suite(TINY_SUITE), tmp_path, resume="latest")  # seeds changed


def test_resume_alone_means_the_latest_run() -> None:
    from harness.cli import optional_resume_value

    assert optional_resume_value(["run", "s", "--resume"]) == ["run", "s", "--resume", "latest"]
    assert optional_resume_value(["run", "--resume", "--out", "x"])[2] == "latest"
    assert optional_resume_value(["run", "s", "--resume", "2026"]) == [
        "run",
        "s",
        "--resume",
        "2026",
    ]
