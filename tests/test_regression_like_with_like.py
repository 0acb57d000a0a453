"""Issue 26: ``check --against`` compares like with like — a score whose metric
conventions, dataset, model or explainer specification differ is listed as not
comparable with what differs, never as moved (a false alarm) or unmoved (a false
all-clear)."""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness import run_suite
from harness.rescoring import rescore_run
from harness.store import STORE_FILENAME
from tests.conftest import ONE_SEED_SUITE, TINY_SUITE, cli

BASE = ONE_SEED_SUITE.replace(
    '"explain_seconds"]',
    '"explain_seconds", { name = "deletion_auc", params = { baseline = "mean" } }]',
)


@pytest.fixture
def baseline(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "base.toml").write_text(BASE)
    out = tmp_path / "out"
    return out, run_suite(tmp_path / "base.toml", out, cache_dir=out / "cache").run_id


def _check(tmp_path: Path, text: str, out: Path, run_id: str, against: str):
    (tmp_path / "checked.toml").write_text(text)
    return cli("check", str(tmp_path / "checked.toml"), "--out", str(out), "--run", run_id,
               "--against", against, "--time-factor", "1000")  # fmt: skip


@pytest.mark.parametrize(
    ("old", "new", "metric", "differs"),
    [('params = { baseline = "mean" }', 'params = { baseline = "zero" }', "deletion_auc",
      "convention baseline: 'mean' vs 'zero'"),
     ('"spearman_gt",', '{ name = "spearman_gt", params = { sign = "raw" } },', "spearman_gt",
      "convention sign: 'abs' vs 'raw'")],
)  # fmt: skip
def test_a_rescoring_with_other_conventions_is_not_comparable(
    baseline, tmp_path, old, new, metric, differs
) -> None:
    out, run_id = baseline
    changed = BASE.replace(old, new)
    assert changed != BASE
    (tmp_path / "changed.toml").write_text(changed)
    rescored = rescore_run(out, run_id, suite=tmp_path / "changed.toml", metric_ids=[metric])
    result = _check(tmp_path, changed, out, rescored.run_id, run_id)
    assert result.exit_code == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    unlike = [line for line in lines if "NOT COMPARABLE" in line]
    assert len(unlike) == 3 and all(f" {metric}: " in line and differs in line
                                    for line in unlike), unlike  # fmt: skip
    assert not any("MOVED" in line and f" {metric}:" in line for line in lines)
    assert "3 not comparable" in result.stdout


def test_a_configuration_change_is_not_a_regression(baseline, tmp_path: Path) -> None:
    out, run_id = baseline
    changed = BASE.replace('"epochs": 15', '"epochs": 5').replace("epochs = 15", "epochs = 5")
    assert changed != BASE
    (tmp_path / "changed.toml").write_text(changed)
    other = run_suite(tmp_path / "changed.toml", out).run_id
    result = _check(tmp_path, changed, out, other, run_id)
    assert result.exit_code == 1
    assert "MOVED" not in result.stdout
    assert "model 'mlp' is specified otherwise" in result.stdout


def test_an_identical_rerun_is_comparable_and_unmoved(baseline, tmp_path: Path) -> None:
    out, run_id = baseline
    again = run_suite(tmp_path / "base.toml", out).run_id
    result = _check(tmp_path, BASE, out, again, run_id)
    assert result.exit_code == 0, result.stdout
    assert "NOT COMPARABLE" not in result.stdout and "0 of 18 entries moved" in result.stdout


def test_a_configuration_change_is_named_first(baseline, tmp_path: Path) -> None:
    out, run_id = baseline
    changed = BASE.replace("epochs = 15", "epochs = 5")
    (tmp_path / "changed.toml").write_text(changed)
    other = run_suite(tmp_path / "changed.toml", out).run_id
    lines = _check(tmp_path, changed, out, other, run_id).stdout.splitlines()
    assert lines[1] == "configuration differs: models.mlp.params.epochs: 15 vs 5", lines[:3]


def test_moves_are_failing_junit_cases_with_their_spread_and_model_scores_once(
    tmp_path: Path,
) -> None:
    two_seeds = TINY_SUITE
    (tmp_path / "base.toml").write_text(two_seeds)
    out = tmp_path / "out"
    first = run_suite(tmp_path / "base.toml", out).run_id
    second = run_suite(tmp_path / "base.toml", out, cache=False).run_id
    with sqlite3.connect(out / STORE_FILENAME) as db:  # plant a regression in run 2
        db.execute(
            "UPDATE scores SET value = value - 0.2 WHERE run_id = ? "
            "AND metric IN ('accuracy', 'spearman_gt')",
            (second,),
        )
    junit = tmp_path / "check.xml"
    result = cli("check", str(tmp_path / "base.toml"), "--out", str(out), "--run", second,
                 "--against", first, "--time-factor", "1000", "--junit", str(junit))  # fmt: skip
    assert result.exit_code == 1
    moved = [line for line in result.stdout.splitlines() if "MOVED" in line]
    # accuracy is the model's score: one line for the three explainers' rows
    accuracy = [line for line in moved if " accuracy " in line]
    assert len(accuracy) == 1 and "(model score; " in accuracy[0] and "(sd " in accuracy[0]
    assert len([line for line in moved if " spearman_gt:" in line]) == 3
    root = ET.parse(junit).getroot()
    failures = root.findall("testcase/failure")
    assert [f.get("type") for f in failures].count("moved") == 4
    assert int(root.get("failures")) == len(failures) and int(root.get("tests")) >= 5
