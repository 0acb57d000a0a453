"""Facts on the rows (issue 14): reports read a metric's kind, direction and across-seeds
flag, an explainer's role and a run's machine and commit from the store, so they render
identically when a plugin is not installed; stores written before these facts existed
are read (facts filled in memory) and upgraded when written to; the light commands
import neither the explainer libraries nor, where they need no model, torch."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from harness import load_results, run_suite
from harness.store import ResultsStore
from harness.store_schema import SCHEMA_VERSION, _apply, columns
from harness.suite import parse_suite
from tests.conftest import ONE_SEED_SUITE, PLUGINS, TINY_SUITE

WITH_PLUGIN_METRIC = ONE_SEED_SUITE.replace(
    '"explain_seconds"]',
    '"explain_seconds", { name = "sample_plugins:PositiveRate", id = "positive_rate" }]',
)


def _render(out: Path, plugins: bool, to: Path) -> dict[str, str]:
    """`show --format markdown` and the report's tables and page, in a fresh process that
    can (or cannot) import the sample plugins."""
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "200"}
    env["PYTHONPATH"] = str(PLUGINS) if plugins else ""
    run = lambda *args: subprocess.run(  # noqa: E731
        ["xai-harness", *args, "--out", str(out)], capture_output=True, text=True, env=env,
        check=True,
    ).stdout  # fmt: skip
    rendered = {"show": run("show", "--format", "markdown")}
    run("report", "--to", str(to))
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.txt"):
        rendered[name] = (to / name).read_text()
    page = (to / "report.html").read_text()
    rendered["report.html"] = re.sub(r"base64,[^\"]+", "base64,…", page)  # figure pixels aside
    rendered["figures"] = " ".join(sorted(p.name for p in (to / "figures").iterdir()))
    return rendered


@pytest.mark.slow
def test_a_report_renders_identically_when_a_plugin_cannot_be_imported(
    plugins_on_path: None, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_suite(parse_suite(WITH_PLUGIN_METRIC), out)
    with_plugin = _render(out, True, tmp_path / "a")
    without = _render(out, False, tmp_path / "b")
    assert with_plugin == without
    # and the plugin's declared kind was used: a model metric, first, not ranked
    assert "| positive_rate ↑ |" in without["show"]
    summary = without["leaderboard.md"].split("Summary")[1]
    assert "positive_rate" not in summary


def test_every_row_carries_its_facts(tmp_path: Path) -> None:
    text = ONE_SEED_SUITE.replace('"explain_seconds"]', '"explain_seconds", "stability"]')
    run_suite(parse_suite(text), tmp_path)
    frame = load_results(tmp_path)
    kinds = frame.drop_duplicates("metric").set_index("metric")["metric_kind"].to_dict()
    assert kinds == {"accuracy": "model", "spearman_gt": "explanation", "kendall_gt":
                     "explanation", "topk_precision_gt": "explanation", "explain_seconds": "cost",
                     "stability": "explanation"}  # fmt: skip
    across = frame.drop_duplicates("metric").set_index("metric")["across_seeds"]
    assert across["stability"] is True and across["accuracy"] is False
    roles = frame.drop_duplicates("explainer").set_index("explainer")["explainer_role"]
    assert roles.to_dict() == {"integrated_gradients": "post_hoc", "oracle": "control",
                               "random": "control"}  # fmt: skip
    with ResultsStore(tmp_path, create=False) as store:
        info = store.run_info(store.resolve_run_id(None))
    assert info["machine"] and "cores" in info["machine"]


def _version_1_copy(current: Path, old: Path) -> None:
    """A store as a harness before schema version 2 wrote it: the same rows, without the
    facts' columns."""
    old.mkdir()
    with closing(sqlite3.connect(old / "harness.sqlite")) as db:
        _apply(db, 0, 1)
        db.execute("ATTACH DATABASE ? AS current", (str(current / "harness.sqlite"),))
        for table, names in columns(1).items():
            if table == "meta":
                continue
            listed = ", ".join(names)
            db.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM current.{table}")
        db.commit()


def test_a_store_written_before_the_facts_is_read_and_upgraded(tmp_path: Path) -> None:
    current = tmp_path / "current"
    run_suite(parse_suite(TINY_SUITE), current)
    expected = load_results(current)
    old = tmp_path / "old"
    _version_1_copy(current, old)
    with ResultsStore(old, create=False) as store:
        assert store.version == 1
    read = load_results(old)  # read-only: facts filled in memory from the registries
    # not guessed: None (family, version, role), NaN (the range: unbounded or unknown)
    since_3 = ["metric_family", "metric_version", "metric_role", "range_low", "range_high"]
    assert read[since_3].isna().all().all()
    pd.testing.assert_frame_equal(read.drop(columns=since_3), expected.drop(columns=since_3))
    with ResultsStore(old) as store:  # opened for writing: migrated, facts stored
        assert store.version == SCHEMA_VERSION
    with closing(sqlite3.connect(old / "harness.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM scores WHERE kind IS NULL").fetchone() == (0,)
        roles = db.execute("SELECT COUNT(*) FROM cells WHERE explainer_role IS NULL")
        assert roles.fetchone() == (0,)
        machine, environment = db.execute("SELECT machine, environment FROM runs").fetchone()
        assert machine.startswith(json.loads(environment)["machine"]["hostname"] + " (")
    upgraded = load_results(old).drop(columns=since_3)
    pd.testing.assert_frame_equal(upgraded, expected.drop(columns=since_3))
    run_suite(parse_suite(TINY_SUITE), old)  # and it takes new runs
    assert load_results(old)["run_id"].nunique() == 2


# --- commands that answer at once -----------------------------------------------------------

HEAVY = ("shap", "lime", "captum", "torch")


def _imported(args: list[str], out: Path) -> set[str]:
    code = (
        "import sys\n"
        f"sys.argv = ['xai-harness', *{args!r}]\n"
        "from harness.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"}, cwd=out)  # fmt: skip
    return set(done.stderr.strip().splitlines()[-1].split()) if done.stderr.strip() else set()


@pytest.mark.slow
def test_light_commands_leave_the_heavy_libraries_out(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    out = tmp_path / "results"
    run_suite(parse_suite(TINY_SUITE), out)
    none = set()
    assert _imported(["--help"], tmp_path) == none
    assert _imported(["show", "--out", str(out)], tmp_path) == none
    assert _imported(["check", str(suite), "--out", str(out)], tmp_path) == none
    assert _imported(["report", "--out", str(out), "--to", str(tmp_path / "r")], tmp_path) == none
    for args in (["list", "explainers"], ["validate", "quick"]):
        assert _imported(args, tmp_path) <= {"torch"}, args  # torch, but no explainer library


@pytest.mark.slow
def test_a_run_imports_only_the_libraries_its_suite_uses(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)  # Integrated Gradients (captum) and controls: no shap, lime
    imported = _imported(["run", str(suite), "--out", str(tmp_path / "r")], tmp_path)
    assert "captum" in imported and "shap" not in imported and "lime" not in imported


def test_check_against_says_when_the_runs_come_from_different_machines(tmp_path: Path) -> None:
    from tests.conftest import cli

    suite = tmp_path / "tiny.toml"
    suite.write_text(ONE_SEED_SUITE)
    out = tmp_path / "out"
    baseline = run_suite(parse_suite(ONE_SEED_SUITE), out).run_id
    run_suite(parse_suite(ONE_SEED_SUITE), out)
    same = cli("check", str(suite), "--out", str(out), "--against", baseline,
               "--time-factor", "1000")  # fmt: skip
    assert "different machines" not in same.stdout
    with closing(sqlite3.connect(out / "harness.sqlite")) as db:  # the baseline ran elsewhere
        db.execute("UPDATE runs SET machine = 'gpu-box (EPYC, 64 cores)' WHERE run_id = ?",
                   (baseline,))  # fmt: skip
        db.commit()
    moved = cli("check", str(suite), "--out", str(out), "--against", baseline)
    text = " ".join(moved.stdout.split())
    assert "timings not compared: the runs come from different machines (gpu-box" in text
    assert "explain_seconds" not in text.split("entries moved")[-1]  # timings left out
