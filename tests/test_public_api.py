"""Issue 31's notebook snags: ``run_suite`` caches as the command line does, the global
importance comes with its column names, and an across-seeds metric's rows carry their
own cells' seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import harness
from harness.suite import parse_suite

SUITE = """
name = "api"
seeds = [3, 4, 5]
metrics = ["accuracy", "stability"]
[execution]
explain_rows = 20
threads = 1
[[datasets]]
id = "planted"
name = "synthetic_tabular"
params = { n_samples = 200, n_features = 5, n_informative = 2 }
[[models]]
name = "mlp"
params = { hidden = [8], epochs = 2 }
[[explainers]]
name = "saliency"
"""


def test_run_suite_caches_like_the_command_line(tmp_path: Path) -> None:
    first = harness.run_suite(parse_suite(SUITE), tmp_path)
    assert (tmp_path / "cache").is_dir() and first.reused == {"models": 0, "explanations": 0}
    second = harness.run_suite(parse_suite(SUITE), tmp_path)
    assert second.reused["models"] == 3 and second.reused["explanations"] == 3
    uncached = harness.run_suite(parse_suite(SUITE), tmp_path / "other", cache=False)
    assert not (tmp_path / "other" / "cache").exists() and uncached.reused == {}
    values = [harness.load_results(tmp_path, r.run_id)["value"] for r in (first, second)]
    assert values[0].equals(values[1])

    importance = harness.load_importance(tmp_path, first.run_id)
    assert list(importance.columns) == [
        *("cell_id", "dataset", "model", "explainer", "seed", "column", "importance"),
    ]
    assert sorted(importance["seed"].unique()) == [3, 4, 5]
    stored = harness.load_arrays(tmp_path, "global_importance", first.run_id)
    names = harness.load_arrays(tmp_path, "column_names", first.run_id)
    for cell_id, block in importance.groupby("cell_id"):
        assert block["column"].tolist() == names[cell_id].tolist()
        np.testing.assert_array_equal(block["importance"].to_numpy(), stored[cell_id])
    assert harness.Results.open(tmp_path, first.run_id).importance.equals(importance)

    frame = harness.load_results(tmp_path, first.run_id)
    stability = frame[frame["metric"] == "stability"]
    assert stability["across_seeds"].all()
    assert sorted(stability["seed"]) == [3, 4, 5]  # each cell's own seed, not 0
    assert stability["value"].nunique() == 1  # one value, computed from every seed
