"""Shared fixtures: a tiny suite (seconds to run) and one stored run of it per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.suite_builder import suite

os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one of the README command's worker processes
    # xdist gives workers COLUMNS=80, which the command line's consoles would keep for good
    # (tests set the width per invocation, as a user's terminal does)
    os.environ.pop("COLUMNS", None)
    # one torch thread per worker: two workers on two cores, no threads spin-waiting for a
    # core the other worker holds (tests that fix or compare thread counts set their own)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # and the command line's runs serial (`--jobs auto` would start a process per core on
    # cores the other worker holds; tests of --jobs pass it)
    os.environ.setdefault("XAI_HARNESS_JOBS", "1")

PLUGINS = Path(__file__).parent / "plugins"

TINY_SUITE = suite(
    "tiny",
    description="A few seconds: 2 seeds, one small synthetic dataset, a small MLP.",
    seeds=[0, 1],
    metrics=["accuracy", "spearman_gt", "kendall_gt", "topk_precision_gt", "explain_seconds"],
    execution={"explain_rows": 50},
    datasets=[("synthetic_tabular",
               {"n_samples": 600, "n_features": 8, "n_informative": 3, "class_sep": 2.0}, "syn")],
    models=[("mlp", {"hidden": [32], "epochs": 15})],
    explainers=[("integrated_gradients", {"n_steps": 16}), "oracle", "random"],
)  # fmt: skip

#: The tiny suite with a single seed (0), for tests that only need one of each cell.
ONE_SEED_SUITE = TINY_SUITE.replace("seeds = [0, 1]", "seeds = [0]")


#: The one-seed suite plus an explainer that raises and one that returns NaN.
FAILURES_SUITE = (
    ONE_SEED_SUITE
    + """
[[explainers]]
name = "sample_plugins:FailingExplainer"
id = "failing"

[[explainers]]
name = "sample_plugins:NaNExplainer"
id = "nan"
"""
)


#: The ground-truth controls as suite entries (append ``centre`` for images).
CONTROL_EXPLAINERS = """
[[explainers]]
name = "oracle"
[[explainers]]
name = "random"
[[explainers]]
name = "inverted"
[[explainers]]
name = "constant"
"""


def control_scores_table(suite_text: str, out: Path, cells: int):
    """Run a controls suite (all cells must succeed) and return its scores as a table:
    index (metric, seed), one column per explainer."""
    from harness import load_results, run_suite
    from harness.suite import parse_suite

    summary = run_suite(parse_suite(suite_text), out)
    assert summary.counts == {"ok": cells, "failed": 0, "skipped": 0}, summary.failures
    return load_results(out).pivot_table(
        index=["metric", "seed"], columns="explainer", values="value", dropna=False
    )


@pytest.fixture
def write_suite(tmp_path: Path) -> Callable[..., Path]:
    """Write suite text to ``tmp_path/<name>.toml`` and return the path."""

    def write(text: str = TINY_SUITE, name: str = "suite") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def plugins_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``tests/plugins`` importable, for suites naming ``sample_plugins:Class``."""
    monkeypatch.syspath_prepend(str(PLUGINS))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory):
    """One run of the tiny suite, stored in a session-wide results folder."""
    from harness import run_suite
    from harness.suite import parse_suite

    out = tmp_path_factory.mktemp("results")
    summary = run_suite(parse_suite(TINY_SUITE), out)
    return out, summary


#: The shared offline data beside the project (CI has it; a user's clone may not).
SHARED_OPENML_CACHE = Path(__file__).resolve().parents[1].parent / "shared/data/openml-cache"


@pytest.fixture
def openml_cache(tmp_path: Path) -> Path:
    """A private copy of the shared OpenML cache (openml may write into it, or delete a
    dataset's folder after a failed download); skips when ../shared is absent."""
    if not SHARED_OPENML_CACHE.is_dir():
        pytest.skip(f"needs the shared OpenML cache at {SHARED_OPENML_CACHE} (present in CI)")
    copy = tmp_path / "openml-cache"
    shutil.copytree(SHARED_OPENML_CACHE, copy)
    return copy


def cli(*args: str, env: dict[str, str] | None = None):
    """``xai-harness ARGS`` in this process (typer's runner), with a wide console."""
    from typer.testing import CliRunner

    from harness.cli import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


def assert_user_error(result, *fragments: str, code: int = 2) -> str:
    """The command failed the way a user's (or the environment's) mistake must: exit
    ``code``, exactly one ``error:`` line on stderr containing every fragment, no
    traceback and no escaped exception. Returns the error line."""
    output = result.stdout + result.stderr
    assert result.exit_code == code, output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in output, output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]
