"""The README's examples run as written (on a copy, in a temporary folder)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import load_results, run_suite
from harness.suite import load_suite

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_bring_your_own_data_and_models(tmp_path: Path) -> None:
    folder = tmp_path / "bring_your_own"
    shutil.copytree(EXAMPLES / "bring_your_own", folder)
    subprocess.run([sys.executable, "make_files.py"], cwd=folder, check=True,
                   capture_output=True)  # fmt: skip
    summary = run_suite(load_suite(folder / "suite.toml"), tmp_path / "out")
    assert summary.counts == {"ok": 15, "failed": 0, "skipped": 3}, summary.failures
    scores = load_results(tmp_path / "out")
    ok = scores[scores.status == "ok"]
    assert ok.value.notna().all(), ok[ok.value.isna()][["model", "explainer", "metric", "note"]]
    given = ok[(ok.metric == "train_seconds") & ok.model.isin(["my_network", "my_booster"])]
    assert (given.value == 0).all() and given.note.str.startswith("given").all()
    accuracy = ok[ok.metric == "accuracy"].groupby("model").value.first()
    patients = load_suite(folder / "suite.toml").datasets[0].component.load(0)
    majority = np.bincount(patients.y_test).max() / len(patients.y_test)
    assert (accuracy > majority + 0.05).all(), (accuracy, majority)  # they learnt the rule
