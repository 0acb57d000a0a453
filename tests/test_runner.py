"""Running suites end to end: scores, skipping with reasons, failure isolation, determinism."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import load_results, run_suite
from harness.records import RESULT_COLUMNS
from harness.runner import plan
from harness.store import ResultsStore
from harness.suite import load_suite, parse_suite
from harness.sweeps import SWEEP_BASE_COLUMNS
from tests.conftest import FAILURES_SUITE, ONE_SEED_SUITE, TINY_SUITE


def test_tiny_run_stores_every_cell_and_metric(tiny_run) -> None:
    out, summary = tiny_run
    results = load_results(out, summary.run_id)
    # the entry each id was generated from follows (the id itself: this suite sweeps nothing)
    assert list(results.columns) == [*RESULT_COLUMNS, *SWEEP_BASE_COLUMNS]
    assert (results["dataset_base"] == results["dataset"]).all()
    assert summary.counts == {"ok": 6, "failed": 0, "skipped": 0}
    assert len(results) == 6 * 5  # cells × metrics
    assert set(results["status"]) == {"ok"}
    assert set(results["explainer"]) == {"integrated_gradients", "oracle", "random"}
    assert results["value"].notna().all()


def test_oracle_is_perfect_and_beats_random(tiny_run) -> None:
    out, summary = tiny_run
    results = load_results(out, summary.run_id)
    for metric in ("spearman_gt", "kendall_gt", "topk_precision_gt"):
        scores = results[results["metric"] == metric].groupby("explainer")["value"]
        np.testing.assert_allclose(scores.get_group("oracle"), 1.0, rtol=0, atol=1e-12)
        assert scores.get_group("oracle").mean() > scores.get_group("random").mean()


def test_integrated_gradients_finds_the_relevant_features(tiny_run) -> None:
    out, summary = tiny_run
    results = load_results(out, summary.run_id)
    scores = results[results["explainer"] == "integrated_gradients"].pivot_table(
        index="seed", columns="metric", values="value"
    )
    # an explanation can only find what the model uses: judged where the model is good
    accurate = scores[scores["accuracy"] >= 0.9]
    assert len(accurate) and (accurate["topk_precision_gt"] >= 2 / 3).all()


def test_model_is_shared_by_the_explainers_of_a_seed(tiny_run) -> None:
    out, summary = tiny_run
    results = load_results(out, summary.run_id)
    accuracy = results[results["metric"] == "accuracy"]
    per_seed = accuracy.groupby("seed")["value"].nunique()
    assert (per_seed == 1).all()
    train = results.drop_duplicates("cell_id").groupby("seed")["train_seconds"].nunique()
    assert (train == 1).all()


def test_conventions_and_environment_are_stored(tiny_run) -> None:
    out, summary = tiny_run
    results = load_results(out, summary.run_id)
    spearman = results[results["metric"] == "spearman_gt"].iloc[0]
    assert '"ties": "average ranks"' in spearman["conventions"]
    assert '"sign": "abs"' in spearman["conventions"]
    store = ResultsStore(out, create=False)
    info = store.run_info(summary.run_id)
    store.close()
    assert info["environment"]["packages"]["torch"]
    assert info["environment"]["machine"]["cores"] >= 1
    assert info["config"]["explainers"][0]["params"]["n_steps"] == 16
    assert set(info["stage_seconds"]) >= {"train", "explain", "score", "overhead", "total"}
    assert info["suite_text"] == TINY_SUITE


def test_same_suite_and_seed_give_the_same_scores(tiny_run, tmp_path: Path) -> None:
    out, summary = tiny_run
    again = run_suite(parse_suite(TINY_SUITE), tmp_path)
    first = load_results(out, summary.run_id)
    second = load_results(tmp_path, again.run_id)
    keep = first["metric"] != "explain_seconds"
    pd.testing.assert_series_equal(
        first.loc[keep, "value"].reset_index(drop=True),
        second.loc[keep, "value"].reset_index(drop=True),
    )


def test_runs_are_appended(tmp_path: Path) -> None:
    suite = parse_suite(ONE_SEED_SUITE)
    first = run_suite(suite, tmp_path)
    second = run_suite(suite, tmp_path)
    results = load_results(tmp_path)
    assert list(results["run_id"].unique()) == [first.run_id, second.run_id]
    assert load_results(tmp_path, second.run_id[:-2])["run_id"].unique().tolist() == [second.run_id]


def test_failing_cells_are_recorded_and_the_run_goes_on(
    plugins_on_path: None, tmp_path: Path
) -> None:
    summary = run_suite(parse_suite(FAILURES_SUITE), tmp_path)
    assert summary.counts == {"ok": 3, "failed": 2, "skipped": 0}
    assert summary.any_failed
    results = load_results(tmp_path)
    failed = results[results["status"] == "failed"].drop_duplicates("cell_id")
    errors = dict(zip(failed["explainer"], failed["error"], strict=True))
    assert errors["failing"].startswith("explaining failed: RuntimeError: deliberate failure")
    assert errors["nan"] == "explainer 'nan' returned NaN or infinite values"
    assert results.loc[results["status"] == "failed", "value"].isna().all()
    assert results.loc[results["explainer"] == "oracle", "value"].notna().all()


SKIPS_SUITE = (
    ONE_SEED_SUITE
    + """
[[datasets]]
id = "blobs"
name = "sample_plugins:BlobsWithoutTruth"
"""
)


def test_impossible_cells_and_metrics_are_skipped_with_reasons(
    plugins_on_path: None, tmp_path: Path
) -> None:
    suite = parse_suite(SKIPS_SUITE)
    cells = {c.cell_id: c for c in plan(suite)}
    oracle = cells["blobs/mlp/oracle/seed=0"]
    assert oracle.skip_reason == (
        "explainer 'oracle' needs ground-truth feature importance; dataset 'blobs' has none"
    )
    ig = cells["blobs/mlp/integrated_gradients/seed=0"]
    assert ig.skip_reason is None
    assert ig.metric_skips["spearman_gt"].startswith("metric 'spearman_gt' needs ground-truth")

    summary = run_suite(suite, tmp_path)
    assert summary.counts == {"ok": 5, "failed": 0, "skipped": 1}
    results = load_results(tmp_path).set_index(["dataset", "explainer", "metric"])
    assert results.loc[("blobs", "oracle", "accuracy"), "status"] == "skipped"
    assert np.isnan(results.loc[("blobs", "integrated_gradients", "spearman_gt"), "value"])
    assert results.loc[("blobs", "integrated_gradients", "spearman_gt"), "note"].startswith(
        "skipped: metric 'spearman_gt' needs"
    )
    assert results.loc[("blobs", "integrated_gradients", "accuracy"), "value"] > 0.8


def test_explaining_the_label_instead_of_the_prediction(tmp_path: Path) -> None:
    text = TINY_SUITE.replace("explain_rows = 50", 'explain_rows = 50\ntarget = "label"')
    summary = run_suite(parse_suite(text), tmp_path)
    assert summary.counts["ok"] == 6
    assert load_suite("quick").spec.execution.target == "prediction"


def test_cuda_requested_without_a_gpu_is_a_clear_error(
    tmp_path: Path, write_suite: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from harness.errors import HarnessError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    text = TINY_SUITE.replace("explain_rows = 50", 'explain_rows = 50\ndevice = "cuda"')
    with pytest.raises(HarnessError, match="torch sees 0 CUDA devices; use 'cpu' or 'auto'"):
        run_suite(load_suite(write_suite(text)), tmp_path)
    assert not (tmp_path / "harness.sqlite").exists()


class _InterruptAfterCells:
    """A progress reporter that simulates Ctrl-C after a number of finished cells."""

    def __init__(self, cells: int) -> None:
        self.left = cells

    def start(self, title: str, total_cells: int) -> None:
        pass

    def stage(self, cell_id: str, stage: str) -> None:
        pass

    def cell_done(self, cell_id: str, status: str) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt

    def finish(self) -> None:
        pass


def test_an_interrupted_run_keeps_its_cells_and_says_so(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_suite(parse_suite(TINY_SUITE), tmp_path, progress=_InterruptAfterCells(2))
    store = ResultsStore(tmp_path, create=False)
    run_id = store.resolve_run_id(None)
    info = store.run_info(run_id)
    cells = store.results(run_id)["cell_id"].nunique()
    store.close()
    assert info["status"] == "interrupted" and info["finished_at"]
    assert cells == 2
