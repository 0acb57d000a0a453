"""The command line: listings, validation, runs, leaderboards and exit codes."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.conftest import ONE_SEED_SUITE, TINY_SUITE

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200"})


def test_list_explainers_shows_names_modality_scope_and_descriptions() -> None:
    result = invoke("list", "explainers")
    assert result.exit_code == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert {"integrated_gradients", "oracle", "random"} <= set(lines)
    assert "Integrated Gradients (Sundararajan et al. 2017)" in lines["integrated_gradients"]
    assert "local" in lines["oracle"] and "tabular" in lines["oracle"]


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("datasets", "synthetic_tabular"),
        ("metrics", "spearman_gt"),
        ("models", "mlp"),
        ("suites", "quick"),
    ],
)
def test_other_listings(what: str, expected: str) -> None:
    result = invoke("list", what)
    assert result.exit_code == 0 and expected in result.stdout


def test_validate_prints_the_plan_and_runs_nothing(
    write_suite: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("validate", str(write_suite()))
    assert result.exit_code == 0
    assert "tiny: 6 cells = 2 seeds × 1 datasets × 1 models × 3 explainers" in result.stdout
    assert "6 to run, 0 skipped" in result.stdout
    assert not (tmp_path / "results").exists()


def test_bad_suite_exits_2_with_one_line_and_writes_nothing(
    write_suite: Callable[..., Path], tmp_path: Path
) -> None:
    path = write_suite(TINY_SUITE.replace('"integrated_gradients"', '"integrated_gradient"'))
    out = tmp_path / "results"
    result = invoke("run", str(path), "--out", str(out))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "did you mean 'integrated_gradients'?" in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_toml_syntax_error_exits_2_naming_the_line(write_suite: Callable[..., Path]) -> None:
    result = invoke("validate", str(write_suite("name = \n")))
    assert result.exit_code == 2
    assert "TOML syntax error" in result.stderr and "line 1" in result.stderr


def test_run_prints_the_leaderboard_and_show_reads_it_back(tmp_path: Path) -> None:
    suite = tmp_path / "one_seed.toml"
    suite.write_text(ONE_SEED_SUITE)
    out = tmp_path / "results"
    result = invoke("run", str(suite), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "spearman_gt ↑" in result.stdout and "explain_seconds ↓" in result.stdout
    assert "3 ok, 0 failed, 0 skipped" in result.stdout
    assert (out / "harness.sqlite").is_file()

    table = invoke("show", "--out", str(out))
    assert table.exit_code == 0 and "integrated_gradients" in table.stdout

    markdown = invoke("show", "--out", str(out), "--format", "markdown")
    assert markdown.exit_code == 0
    assert "| model | explainer | accuracy ↑ |" in markdown.stdout
    assert "|---|---|---:|" in markdown.stdout

    rows = list(
        csv.DictReader(io.StringIO(invoke("show", "--out", str(out), "--format", "csv").stdout))
    )
    oracle = [r for r in rows if r["explainer"] == "oracle" and r["metric"] == "spearman_gt"]
    assert len(oracle) == 1 and float(oracle[0]["mean"]) == 1.0 and oracle[0]["n"] == "1"


def test_run_with_seeds_option(tmp_path: Path, write_suite: Callable[..., Path]) -> None:
    out = tmp_path / "results"
    result = invoke("run", str(write_suite()), "--out", str(out), "--seeds", "1")
    assert result.exit_code == 0 and "3 ok" in result.stdout


def test_failed_cells_give_exit_code_1_and_are_listed(
    plugins_on_path: None, write_suite: Callable[..., Path], tmp_path: Path
) -> None:
    text = ONE_SEED_SUITE + (
        '\n[[explainers]]\nname = "sample_plugins:FailingExplainer"\nid = "failing"\n'
    )
    out = tmp_path / "results"
    result = invoke("run", str(write_suite(text)), "--out", str(out))
    assert result.exit_code == 1
    assert "failed syn/mlp/failing/seed=0: explaining failed: RuntimeError: deliberate" in (
        result.stdout
    )
    assert "failed [1]" in result.stdout
    assert "[1] cell failed: explaining failed: RuntimeError: deliberate failure" in result.stdout
    shown = invoke("show", "--out", str(out))
    assert "failed [1]" in shown.stdout


def test_show_without_results_exits_2(tmp_path: Path) -> None:
    result = invoke("show", "--out", str(tmp_path / "none"))
    assert result.exit_code == 2
    assert "no results store at" in result.stderr
    assert not (tmp_path / "none").exists()


def test_show_unknown_run_exits_2(tiny_run) -> None:
    out, _ = tiny_run
    result = invoke("show", "nope", "--out", str(out))
    assert result.exit_code == 2 and "no run 'nope'" in result.stderr


@pytest.mark.slow
def test_installed_command_runs_the_default_suite_from_any_folder(tmp_path: Path) -> None:
    """Acceptance: `xai-harness run` (bundled default suite) from an unrelated folder."""
    command = Path(sys.executable).parent / "xai-harness"
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [str(command), "run", "--seeds", "1"],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "synthetic_16_5" in result.stdout
    assert (tmp_path / "results" / "harness.sqlite").is_file()


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout.startswith("xai-harness 0.")


def test_list_suites_says_which_carry_claims() -> None:
    from harness.suite import bundled_suites, read_spec

    result = CliRunner().invoke(app, ["list", "suites"], env={"COLUMNS": "200"})
    rows = {line.split()[0]: line.split()[1:3] for line in result.stdout.splitlines()[1:]
            if line and not line.startswith(" ")}  # fmt: skip
    for name, path in bundled_suites().items():
        spec = read_spec(path)[0]
        assert rows[name] == [str(len(spec.seeds)), str(len(spec.claims)) if spec.claims else "—"]
