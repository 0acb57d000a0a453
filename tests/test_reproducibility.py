"""Reproducibility, stated and tested: the same suite, seeds and machine (threads fixed)
give bit-identical non-timing scores — CNN cells included; a run stores what decides its
floating-point results; `check --against` between environments that differ judges a
change against the seed spread."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import load_results
from harness.environment import collect_environment
from harness.regression import compare_runs, numeric_differences
from harness.runner.run import run_suite
from harness.store import STORE_FILENAME
from harness.suite import load_suite
from tests.conftest import TINY_SUITE, cli
from tests.suite_builder import suite

CNN_SUITE = suite(
    "repeatable",
    seeds=[0, 1],
    metrics=["accuracy", "roc_auc", "pointing_game", "topk_patch_precision",
             "deletion_patch_auc", "activation_consistency_pos", "explain_seconds"],
    execution={"explain_rows": 12, "threads": 1, "target": "class:1"},
    datasets=[("synthetic_lesions", {"n_images": 96, "size": 32}, "lesions")],
    models=[("small_cnn", {"channels": [4, 8], "epochs": 2})],
    explainers=["softcam", "grad_cam", ("integrated_gradients", {"n_steps": 8}), "random"],
)  # fmt: skip


@pytest.mark.slow
def test_two_runs_on_one_machine_give_bit_identical_scores(tmp_path: Path) -> None:
    path = tmp_path / "repeatable.toml"
    path.write_text(CNN_SUITE)
    frames = []
    for attempt in ("first", "second"):  # no cache: everything trained and explained again
        run = run_suite(load_suite(path), tmp_path / attempt)
        assert run.failures == [] and run.counts.get("failed", 0) == 0, run.failures
        frames.append(load_results(tmp_path / attempt))
    keys = ["dataset", "model", "explainer", "metric", "seed"]
    scores = [
        f[f["metric_kind"] != "cost"].sort_values(keys).set_index(keys)["value"] for f in frames
    ]
    assert len(scores[0]) > 40 and scores[0].notna().sum() > 30
    pd.testing.assert_series_equal(scores[0], scores[1], check_exact=True)


def test_a_run_records_what_decides_its_numerics() -> None:
    numerics = collect_environment()["numerics"]
    assert {"torch_threads", "cpu_capability", "blas", "deterministic_algorithms"} <= set(numerics)


def test_environment_differences_name_what_can_change_scores() -> None:
    here = collect_environment()
    assert numeric_differences(here, here) == []
    there = {
        **here,
        "packages": {**here["packages"], "torch": "0.0.1"},
        "numerics": {**here["numerics"], "torch_threads": 7, "cpu_capability": "AVX2"},
    }
    found = numeric_differences(here, there)
    assert any(f.startswith("torch ") for f in found)
    assert any(f.startswith("torch_threads ") for f in found)
    assert any(f.startswith("cpu_capability ") for f in found)
    # a run stored before these facts were kept is not said to differ in them
    older = {k: v for k, v in here.items() if k != "numerics"}
    assert numeric_differences(older, here) == []


def _run(values: dict[int, float], metric: str = "pointing_game") -> pd.DataFrame:
    return pd.DataFrame([
        {"dataset": "d", "model": "m", "explainer": "e", "metric": metric, "seed": seed,
         "value": value, "metric_kind": "explanation"}
        for seed, value in values.items()
    ])  # fmt: skip


def test_across_machines_a_change_counts_only_beyond_the_seed_spread() -> None:
    base = _run({0: 0.70, 1: 0.75, 2: 0.80})
    noisy = _run({0: 0.72, 1: 0.73, 2: 0.83})  # mean +0.01, per-seed differences ±0.02
    changes, _ = compare_runs(base, noisy, spread=False)
    assert len(changes) == 1  # exact: any change beyond 1e-6
    changes, _ = compare_runs(base, noisy, spread=True)
    assert changes == []
    shifted = _run({0: 0.80, 1: 0.86, 2: 0.89})  # +0.1 on every seed: beyond the spread
    changes, _ = compare_runs(base, shifted, spread=True)
    differences = np.array([0.10, 0.11, 0.09])
    half = 4.302653 * differences.std(ddof=1) / np.sqrt(3)
    assert len(changes) == 1 and "beyond the seed spread" in changes[0].reason
    assert f"[{0.1 - half:+.3g}, {0.1 + half:+.3g}]" in changes[0].reason
    # one seed: the tolerance alone
    changes, _ = compare_runs(_run({0: 0.7}), _run({0: 0.71}), spread=True)
    assert len(changes) == 1


def test_check_against_a_run_from_another_environment_says_so(tmp_path: Path) -> None:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SUITE)
    out = tmp_path / "out"
    first = run_suite(load_suite(path), out).run_id
    second = run_suite(load_suite(path), out, cache=False).run_id
    with sqlite3.connect(out / STORE_FILENAME) as db:  # as if run elsewhere: 7 threads
        (text,) = db.execute("SELECT environment FROM runs WHERE run_id = ?", (second,)).fetchone()
        environment = json.loads(text)
        environment["numerics"]["torch_threads"] = 7
        db.execute(
            "UPDATE runs SET environment = ? WHERE run_id = ?", (json.dumps(environment), second)
        )
    compare = ("check", str(path), "--out", str(out), "--run", second, "--against", first,
               "--time-factor", "1000")  # fmt: skip
    result = cli(*compare)
    assert "environments differ" in result.stdout and "torch_threads" in result.stdout
    assert "beyond its seed spread" in result.stdout and "0 of " in result.stdout
    exact = cli(*compare, "--exact")
    assert "tolerance alone" in exact.stdout and "0 of " in exact.stdout
