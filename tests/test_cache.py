"""The content-addressed cache: an unchanged re-run trains and explains nothing; a change
recomputes only what it touches; by-design models reload; damaged entries are redone."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from harness import load_results, run_suite
from harness.models.base import ModelRecipe
from harness.suite import parse_suite
from tests.conftest import TINY_SUITE


def scores(out: Path, run: int) -> pd.Series:
    results = load_results(out)
    chosen = results[results["run_id"] == sorted(results["run_id"].unique())[run]]
    return chosen.set_index(["cell_id", "metric"])["value"].sort_index()


def test_an_unchanged_rerun_trains_and_explains_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = run_suite(parse_suite(TINY_SUITE), tmp_path, cache_dir=cache)
    assert first.reused == {"models": 0, "explanations": 0}

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(ModelRecipe, "fit", no_training)
    again = run_suite(parse_suite(TINY_SUITE), tmp_path, cache_dir=cache)
    assert again.reused == {"models": 2, "explanations": 6}  # 2 seeds; 3 explainers each
    assert again.counts == {"ok": 6, "failed": 0, "skipped": 0}
    assert again.stage_seconds["train"] < 0.5 * first.stage_seconds["train"]
    # every score, timings included (they are the stored ones), is the first run's
    pd.testing.assert_series_equal(scores(tmp_path, 1), scores(tmp_path, 0))


def test_a_changed_explainer_recomputes_only_its_cells(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run_suite(parse_suite(TINY_SUITE), tmp_path, cache_dir=cache)
    changed = TINY_SUITE.replace("n_steps = 16", "n_steps = 24")
    again = run_suite(parse_suite(changed), tmp_path, cache_dir=cache)
    assert again.reused == {"models": 2, "explanations": 4}  # IG's two cells recomputed


BY_DESIGN = """
name = "by_design"
seeds = [0]
metrics = ["accuracy", "accuracy_gain_pp", "spearman_gt", "deletion_auc"]
[execution]
explain_rows = 30
[[datasets]]
name = "synthetic_tabular"
params = { n_samples = 400, n_features = 6, n_informative = 2 }
[[models]]
name = "mlp"
params = { hidden = [16], epochs = 5 }
[[explainers]]
name = "scores_activation"
[[explainers]]
name = "saliency"
"""


def test_by_design_models_reload_from_their_weights(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run_suite(parse_suite(BY_DESIGN), tmp_path, cache_dir=cache)
    again = run_suite(parse_suite(BY_DESIGN), tmp_path, cache_dir=cache)
    assert again.reused == {"models": 2, "explanations": 2}
    # deletion_auc calls the reloaded networks: equal scores mean equal weights
    pd.testing.assert_series_equal(scores(tmp_path, 1), scores(tmp_path, 0))


def test_a_damaged_entry_is_recomputed(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run_suite(parse_suite(TINY_SUITE), tmp_path, cache_dir=cache)
    for state in (cache / "models").rglob("state.pt"):
        state.write_bytes(b"not a state dict")
    for meta in (cache / "explanations").rglob("meta.json"):
        meta.write_text("{")
    again = run_suite(parse_suite(TINY_SUITE), tmp_path, cache_dir=cache)
    assert again.reused == {"models": 0, "explanations": 0}
    assert again.counts["ok"] == 6
    third = run_suite(parse_suite(TINY_SUITE), tmp_path, cache_dir=cache)
    assert third.reused == {"models": 2, "explanations": 6}  # the damaged entries were rewritten
    first, recomputed = (scores(tmp_path, i).drop("explain_seconds", level="metric")
                         for i in (0, 1))  # fmt: skip
    pd.testing.assert_series_equal(recomputed, first)


def test_no_cache_leaves_no_cache_folder(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "cache").exists()
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path)])
    assert (tmp_path / "cache" / "models").is_dir()
