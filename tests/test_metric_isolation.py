"""Issue 26: a metric that raises, or gives an impossible value, fails only its own
entries; the cell's other scores, its explanation and its products are stored, so a
rescoring fills the metric in once it is fixed."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import load_results, run_suite
from harness.rescoring import rescore_run
from harness.store import ResultsStore, load_arrays
from tests.conftest import ONE_SEED_SUITE, cli

BROKEN = ONE_SEED_SUITE.replace(
    '"explain_seconds"]',
    '"explain_seconds", { name = "sample_plugins:BrokenUntilFixed", id = "broken" }, '
    '{ name = "sample_plugins:InfiniteMetric", id = "infinite" }]',
)


@pytest.fixture
def broken_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugins_on_path: None) -> Path:
    monkeypatch.delenv("XAI_TEST_METRIC_FIXED", raising=False)
    (tmp_path / "broken.toml").write_text(BROKEN)
    return tmp_path / "broken.toml"


def test_a_raising_metric_fails_only_its_own_entries(broken_suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    summary = run_suite(broken_suite, out)
    assert summary.counts == {"ok": 3, "failed": 0, "skipped": 0}
    assert summary.failed_scores == 6 and summary.any_failed
    results = load_results(out)
    broken = results[results["metric"].isin(["broken", "infinite"])]
    assert (broken["status"] == "failed").all() and broken["value"].isna().all()
    assert (
        broken.query("metric == 'broken'")["note"]
        .str.contains("metric 'broken' failed: ZeroDivisionError: a bug in the plugin")
        .all()
    )
    assert broken.query("metric == 'infinite'")["note"].str.contains("returned inf").all()
    others = results[~results["metric"].isin(["broken", "infinite"])]
    assert (others["status"] == "ok").all()
    assert others.query("metric == 'accuracy'")["value"].notna().all()
    arrays = load_arrays(out, "explanation.local", summary.run_id)
    assert len(arrays) == 3  # the explanations are stored
    with ResultsStore(out, create=False) as store:
        assert store.run_info(summary.run_id)["status"] == "failed"


def test_the_command_line_exits_1_and_shows_the_failure_as_a_footnote(
    broken_suite: Path, tmp_path: Path
) -> None:
    result = cli("run", str(broken_suite), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1, result.stdout + result.stderr
    text = " ".join(result.stdout.split())
    assert "6 scores failed" in text and "ZeroDivisionError: a bug in the plugin" in text
    assert "failed [" in text  # the leaderboard entry points at its footnote


def test_a_rescoring_with_the_fixed_metric_fills_it_in(
    broken_suite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    source = run_suite(broken_suite, out).run_id
    monkeypatch.setenv("XAI_TEST_METRIC_FIXED", "1")
    result = cli("rescore", source, "--out", str(out), "--metric", "broken")
    assert result.exit_code == 1, result.stdout + result.stderr  # 'infinite' still fails
    with ResultsStore(out, create=False) as store:
        rescored = store.run_ids()[-1]
    fixed = load_results(out, rescored).query("metric == 'broken'")
    assert (fixed["status"] == "ok").all() and fixed["value"].notna().all()
    summary = rescore_run(out, source, metric_ids=["broken", "accuracy"])
    assert summary.failed_scores == 3  # the copied 'infinite' scores keep their status


def test_a_metric_declaring_an_unknown_need_is_refused_at_validation(
    tmp_path: Path, plugins_on_path: None
) -> None:
    from tests.conftest import assert_user_error

    text = ONE_SEED_SUITE.replace(
        '"explain_seconds"]', '"explain_seconds", "sample_plugins:MisdeclaredMetric"]'
    )
    (tmp_path / "s.toml").write_text(text)
    result = cli("validate", str(tmp_path / "s.toml"))
    line = assert_user_error(result, "declares needs 'mask'", "did you mean 'masks'?")
    assert "Valid needs: attributions, predictions, model" in line


def test_every_registered_metric_declares_a_family_of_the_closed_set() -> None:
    import typing

    from harness.metrics import metric_registry
    from harness.records import MetricFamily

    families = set(typing.get_args(MetricFamily)) - {"other"}
    for name in metric_registry.names():
        cls = metric_registry.get(name)
        assert cls.family in families, (name, cls.family)
        assert isinstance(cls.version, int) and cls.version >= 1
    assert metric_registry.get("infidelity").version == 2  # its definition changed


def test_scores_store_their_family_and_version_and_versions_are_compared(
    tmp_path: Path,
) -> None:
    from harness.regression import not_comparable

    (tmp_path / "s.toml").write_text(ONE_SEED_SUITE)
    out = tmp_path / "out"
    run_id = run_suite(tmp_path / "s.toml", out).run_id
    results = load_results(out, run_id)
    facts = results.drop_duplicates("metric").set_index("metric")
    assert facts.loc["accuracy", "metric_family"] == "model"
    assert facts.loc["spearman_gt", "metric_family"] == "agreement"
    assert facts.loc["explain_seconds", "metric_family"] == "cost"
    assert tuple(facts.loc["accuracy", ["range_low", "range_high"]]) == (0.0, 1.0)
    assert tuple(facts.loc["spearman_gt", ["range_low", "range_high"]]) == (-1.0, 1.0)
    assert facts.loc[["explain_seconds"], ["range_low", "range_high"]].isna().all(axis=None)
    assert (results["metric_version"] == 1).all()
    newer = results.assign(metric_version=results["metric_version"].where(
        results["metric"] != "kendall_gt", 2))  # fmt: skip
    unlike = not_comparable(results, newer)
    assert {n.metric for n in unlike} == {"kendall_gt"}
    assert all("metric version 1 vs 2" in n.differs for n in unlike)


def test_a_metric_receives_only_what_it_declared(tmp_path: Path, plugins_on_path: None) -> None:
    text = ONE_SEED_SUITE.replace(
        '"explain_seconds"]', '"explain_seconds", "sample_plugins:SeesOnlyWhatItNeeds"]'
    )
    (tmp_path / "s.toml").write_text(text)
    run_suite(tmp_path / "s.toml", tmp_path / "out")
    seen = load_results(tmp_path / "out").query("metric == 'sample_plugins:SeesOnlyWhatItNeeds'")
    assert len(seen) == 3 and (seen["value"] == 1.0).all(), seen[["value", "note"]]


def test_time_to_ranking_declares_the_training_record_it_reads(tmp_path: Path) -> None:
    """Found by restricting evidence to declared needs: it read the training history
    without declaring it."""
    from tests.suite_builder import suite

    text = suite("ttr", metrics=[{"name": "time_to_ranking", "params": {"k": 2}}],
                 datasets=[("synthetic_tabular", {"n_samples": 200, "n_features": 5})],
                 models=[("mlp", {"hidden": [8], "epochs": 3})],
                 explainers=["scores_activation"])  # fmt: skip
    (tmp_path / "s.toml").write_text(text)
    run_suite(tmp_path / "s.toml", tmp_path / "out")
    value = load_results(tmp_path / "out").query("metric == 'time_to_ranking'")["value"]
    assert value.notna().all() and (value >= 0).all()


def test_a_failing_across_seeds_metric_fails_the_run_as_a_rescoring_would(
    tmp_path: Path, plugins_on_path: None
) -> None:
    """run and rescore count the failed scores of across-seeds metrics alike (the run
    counted only per-cell ones)."""
    from tests.conftest import TINY_SUITE

    text = TINY_SUITE.replace(
        '"explain_seconds"]', '"explain_seconds", "sample_plugins:BrokenAcrossSeeds"]'
    )
    (tmp_path / "s.toml").write_text(text)
    summary = run_suite(tmp_path / "s.toml", tmp_path / "out")
    assert summary.counts["ok"] == 6 and summary.failed_scores == 6 and summary.any_failed
    rescored = rescore_run(tmp_path / "out", summary.run_id)
    assert rescored.failed_scores == summary.failed_scores
    with ResultsStore(tmp_path / "out", create=False) as store:
        assert {store.run_info(r)["status"] for r in store.run_ids()} == {"failed"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (1.5, "it returned 1.5, outside its range [0, 1]"),
        (-0.01, "it returned -0.01, outside its range [0, 1]"),
        (1 + 1e-12, None),  # float rounding is not a failure
        (0.5, None),
    ],
)
def test_a_value_outside_the_metrics_declared_range_is_a_failure(
    value: float, problem: str | None
) -> None:
    from harness.metrics.base import MetricResult
    from harness.runner.scoring import _outcome

    assert _outcome(lambda: MetricResult(value), (0.0, 1.0))[1] == problem
