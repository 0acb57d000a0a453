"""Rescoring (issue 14): metrics computed from what a run stored equal those of a run that
had them from the start; the source run is never changed; across-seeds statistics are
scored from the stored per-seed importances."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from harness import load_results, run_suite
from harness.errors import HarnessError
from harness.rescoring import rescore_run
from harness.store import ResultsStore, load_arrays
from harness.suite import parse_suite
from tests.conftest import TINY_SUITE, cli

#: The tiny suite's metrics, plus one that calls the model (deletion, from the cache),
#: two that run the explainer again (MPRT, sensitivity: the model from the cache, the
#: explainer from the suite), an across-seeds statistic (stability), a metric with
#: other conventions and infidelity (which pairs IG's input-multiplied maps with the
#: explainer's baseline, also when rescoring).
MORE_METRICS = TINY_SUITE.replace(
    'metrics = ["accuracy", "spearman_gt", "kendall_gt", "topk_precision_gt", "explain_seconds"]',
    'metrics = ["accuracy", "spearman_gt", "kendall_gt", "topk_precision_gt", '
    '"explain_seconds", "stability", { name = "deletion_auc", params = { baseline = "mean" } }, '
    '{ name = "spearman_gt", id = "spearman_signed", params = { sign = "raw" } }, "mprt", '
    '{ name = "max_sensitivity", params = { samples = 3 } }, '
    '{ name = "infidelity", params = { samples = 5 } }]',
)


def _dump(out: Path) -> list[tuple[object, ...]]:
    """Every row of every table, as stored (to prove nothing was rewritten)."""
    with closing(sqlite3.connect(out / "harness.sqlite")) as db:
        return [row for table in ("runs", "cells", "scores", "arrays")
                for row in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]  # fmt: skip


def _scores(frame: pd.DataFrame) -> pd.Series:
    kept = frame[frame["metric"] != "explain_seconds"]  # re-measured by a fresh run
    return kept.set_index(["cell_id", "metric"])["value"].sort_index()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A run of the tiny suite with a cache, to be rescored."""
    out = tmp_path_factory.mktemp("source")
    summary = run_suite(parse_suite(TINY_SUITE), out, cache_dir=out / "cache")
    return out, summary.run_id


@pytest.fixture(scope="module")
def from_the_start(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """The same suite run with every metric from the start."""
    out = tmp_path_factory.mktemp("full")
    run_suite(parse_suite(MORE_METRICS), out)
    return load_results(out)


def test_rescoring_gives_the_values_of_a_run_that_had_the_metrics_from_the_start(
    source: tuple[Path, str], from_the_start: pd.DataFrame, tmp_path: Path
) -> None:
    out, run_id = source
    suite = tmp_path / "more.toml"
    suite.write_text(MORE_METRICS)
    before = _dump(out)
    summary = rescore_run(out, run_id, suite=suite)
    assert summary.counts == {"ok": 6, "failed": 0, "skipped": 0}
    rescored = load_results(out, summary.run_id)
    assert set(rescored["metric"]) == set(from_the_start["metric"])
    assert rescored["value"].notna().all()  # MPRT of the controls too: similarity 1
    pd.testing.assert_series_equal(_scores(rescored), _scores(from_the_start))
    # append-only: every row that was stored is still there, unchanged
    after = _dump(out)
    assert set(before) <= set(after)
    with ResultsStore(out, create=False) as store:
        info = store.run_info(summary.run_id)
        assert info["source_run"] == run_id and info["status"] == "ok"
        assert info["config"]["metrics"][-1]["id"] == "infidelity"
    assert set(load_results(out, run_id)["metric"]) == {
        "accuracy", "spearman_gt", "kendall_gt", "topk_precision_gt", "explain_seconds"
    }  # fmt: skip


def test_the_source_run_is_never_changed(source: tuple[Path, str], tmp_path: Path) -> None:
    out, run_id = source
    copy = tmp_path / "out"
    import shutil

    shutil.copytree(out, copy)
    with closing(sqlite3.connect(copy / "harness.sqlite")) as db:
        before = {table: db.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,)).fetchall()
                  for table in ("runs", "cells", "scores", "arrays")}  # fmt: skip
    rescore_run(copy, run_id, metric_ids=["spearman_gt"])
    with closing(sqlite3.connect(copy / "harness.sqlite")) as db:
        after = {table: db.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,)).fetchall()
                 for table in ("runs", "cells", "scores", "arrays")}  # fmt: skip
    assert after == before


def test_a_metric_that_calls_the_model_says_so_when_the_run_kept_none(tmp_path: Path) -> None:
    summary = run_suite(parse_suite(TINY_SUITE), tmp_path, cache=False)  # no model kept
    suite = tmp_path / "more.toml"
    suite.write_text(MORE_METRICS)
    rescored = rescore_run(tmp_path, summary.run_id, suite=suite, metric_ids=["deletion_auc"])
    frame = load_results(tmp_path, rescored.run_id)
    deletion = frame[frame["metric"] == "deletion_auc"]
    assert deletion["value"].isna().all()
    assert (deletion["note"] == "needs the explained model, which was not kept (no cache)").all()
    again = rescore_run(tmp_path, summary.run_id, suite=suite, metric_ids=["mprt"])
    mprt = load_results(tmp_path, again.run_id).query("metric == 'mprt'")
    assert mprt["value"].isna().all()
    assert mprt["note"].str.startswith("needs the explained model to run the explainer").all()


def test_the_command_line_rescores_and_refuses_unknown_metrics(
    source: tuple[Path, str], tmp_path: Path
) -> None:
    out, run_id = source
    suite = tmp_path / "more.toml"
    suite.write_text(MORE_METRICS)
    result = cli("rescore", run_id, str(suite), "--out", str(out), "--metric", "stability")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"(a rescoring of {run_id})" in result.stdout
    wrong = cli("rescore", run_id, str(suite), "--out", str(out), "--metric", "stabilty")
    assert wrong.exit_code == 2 and "did you mean 'stability'" in wrong.stderr


def test_a_suite_with_other_cells_cannot_rescore_a_run(
    source: tuple[Path, str], tmp_path: Path
) -> None:
    out, run_id = source
    suite = tmp_path / "other.toml"
    suite.write_text(MORE_METRICS.replace("n_steps = 16", "n_steps = 8"))
    with pytest.raises(HarnessError, match=r"defines other cells than run .*explainers differ"):
        rescore_run(out, run_id, suite=suite)


def test_across_seeds_statistics_are_one_row_per_cell_appended_after_the_seeds(
    tmp_path: Path,
) -> None:
    """Across-seeds rows are appended once all seeds are stored (never a placeholder that
    is updated later), with the value of the statistic over every seed's importance."""
    import numpy as np

    from harness.metrics import metric_registry

    summary = run_suite(parse_suite(MORE_METRICS), tmp_path)
    with closing(sqlite3.connect(tmp_path / "harness.sqlite")) as db:
        query = "SELECT metric FROM scores WHERE run_id = ? ORDER BY rowid"
        order = [row[0] for row in db.execute(query, (summary.run_id,))]
    assert order.index("stability") > len(order) - 7  # written after every cell's scores
    frame = load_results(tmp_path)
    importances = load_arrays(tmp_path)
    for explainer in ("integrated_gradients", "oracle", "random"):
        cells = sorted(c for c in importances if f"/{explainer}/" in c)
        expected = metric_registry.get("stability")().compute_across_seeds(
            [importances[c] for c in cells]
        )
        stored = frame[(frame["explainer"] == explainer) & (frame["metric"] == "stability")]
        assert len(stored) == 2 and np.allclose(stored["value"], expected.value, equal_nan=True)


def test_a_chain_of_three_rescorings_gives_the_values_of_a_run_with_every_metric(
    source: tuple[Path, str], from_the_start: pd.DataFrame, tmp_path: Path
) -> None:
    """A rescoring of a rescoring of a rescoring: each cell's arrays resolve through the
    whole chain (a rescoring stores only what it computed)."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(source[0], out)
    suite = tmp_path / "more.toml"
    suite.write_text(MORE_METRICS)
    run_id = source[1]
    for chosen in (["deletion_auc", "stability"], ["mprt", "spearman_signed"],
                   ["max_sensitivity", "infidelity"]):  # fmt: skip
        summary = rescore_run(out, run_id, suite=suite, metric_ids=chosen)
        assert summary.counts == {"ok": 6, "failed": 0, "skipped": 0}
        run_id = summary.run_id
    rescored = load_results(out, run_id)
    assert set(rescored["metric"]) == set(from_the_start["metric"])
    pd.testing.assert_series_equal(_scores(rescored), _scores(from_the_start))
    with ResultsStore(out, create=False) as store:
        assert all(store.run_info(r)["status"] == "ok" for r in store.run_ids())


def test_any_registered_metric_can_be_rescored_at_its_defaults(
    source: tuple[Path, str], tmp_path: Path
) -> None:
    """`rescore RUN --metric NAME` with a metric the run's suite did not list: at its
    default parameters, which its stored conventions record; no suite needed."""
    import json
    import shutil

    from harness.metrics import metric_registry

    out = tmp_path / "out"
    shutil.copytree(source[0], out)
    result = cli("rescore", source[1], "--out", str(out), "--metric", "complexity",
                 "--metric", "deletion_auc")  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    with ResultsStore(out, create=False) as store:
        rescored = store.run_ids()[-1]
    frame = load_results(out, rescored)
    for name in ("complexity", "deletion_auc"):
        rows = frame[frame["metric"] == name]
        assert len(rows) == 6 and rows["value"].notna().all(), rows
        defaults = metric_registry.get(name)().conventions()
        assert all(json.loads(c) == defaults for c in rows["conventions"])
    wrong = cli("rescore", source[1], "--out", str(out), "--metric", "complexityy")
    assert wrong.exit_code == 2 and "nor a registered metric; did you mean 'complexity'" in (
        " ".join(wrong.stderr.split()))  # fmt: skip


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_rescoring_that_stops_is_interrupted_never_running(
    source: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: type
) -> None:
    """One lifecycle for run and rescore: however the work stops (Ctrl-C, a bug), the
    run is finished as interrupted — `show` and `--resume` then work."""
    import shutil

    import harness.rescoring as rescoring

    out = tmp_path / "out"
    shutil.copytree(source[0], out)

    def stopping(*args: object, **kwargs: object) -> None:
        raise stop("stopped")

    monkeypatch.setattr(rescoring, "score_across_seeds", stopping)
    with pytest.raises(stop):
        rescore_run(out, source[1])
    monkeypatch.undo()
    with ResultsStore(out, create=False) as store:
        rescored = store.run_ids()[-1]
        assert store.run_info(rescored)["status"] == "interrupted"
    assert cli("show", "--out", str(out)).exit_code == 0
    (tmp_path / "tiny.toml").write_text(TINY_SUITE)
    resumed = cli("run", str(tmp_path / "tiny.toml"), "--out", str(out), "--resume", rescored)
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr
    with ResultsStore(out, create=False) as store:
        assert store.run_info(rescored)["status"] == "ok"
