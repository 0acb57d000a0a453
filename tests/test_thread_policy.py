"""Issue 32: the thread policy (threads per cell from the work's size, within the cores
the process may use) and ``run --profile`` (seconds per stage and metric, per cell)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.artifacts import STAGE_SECONDS
from harness.runner import run_suite
from harness.runner.threads import cgroup_cpu_quota, thread_budget, threads_for, usable_cores
from harness.runner.timing import CELL_STAGES
from harness.store import ResultsStore, load_results
from harness.suite import parse_suite
from tests.conftest import ONE_SEED_SUITE, cli


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage"}, None),
        ({}, None),
    ],
)
def test_the_cgroup_quota_is_read_from_v2_or_v1(
    tmp_path: Path, files: dict[str, str], expected: float | None
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == expected


def test_the_budget_divides_the_usable_cores_among_the_jobs() -> None:
    cores = usable_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))
    assert thread_budget(1) == cores
    assert thread_budget(cores * 4) == 1  # never below one thread
    assert threads_for((16,), budget=8) == 1  # a table
    assert threads_for((1, 64, 64), budget=8) == 1  # a small grayscale image
    assert threads_for((3, 224, 224), budget=8) == 8  # a CNN at 224 px takes the budget


@pytest.mark.parametrize(("setting", "expected"), [(None, 1), (3, 3), ("torch", "default")])
def test_each_cell_records_the_threads_it_ran_with(
    tmp_path: Path, setting: int | str | None, expected: int | str
) -> None:
    default = torch.get_num_threads()
    if setting is None:
        text = ONE_SEED_SUITE
    elif setting == "torch":
        text = ONE_SEED_SUITE.replace("[execution]", '[execution]\nthreads = "torch"', 1)
    else:
        text = ONE_SEED_SUITE.replace("[execution]", f"[execution]\nthreads = {setting}", 1)
    try:
        summary = run_suite(parse_suite(text), tmp_path, cache=False)
        threads = set(load_results(tmp_path, summary.run_id)["torch_threads"])
        with ResultsStore(tmp_path, create=False) as store:
            policy = store.run_info(summary.run_id)["environment"]["thread_policy"]
    finally:
        torch.set_num_threads(default)
    assert threads == {default if expected == "default" else expected}
    assert policy["budget"] == usable_cores() and policy["usable_cores"] == usable_cores()
    assert policy["policy"] == {None: "auto", 3: 3, "torch": "torch default"}[setting]


def test_run_profile_stores_and_prints_where_the_time_went(tmp_path: Path) -> None:
    suite = tmp_path / "one.toml"
    suite.write_text(ONE_SEED_SUITE)
    result = cli("run", str(suite), "--out", str(tmp_path), "--profile", "--no-cache")
    assert result.exit_code == 0, result.output
    frame = load_results(tmp_path)
    with ResultsStore(tmp_path, create=False) as store:
        stages = store.arrays(frame["run_id"].iloc[0], STAGE_SECONDS)
        costs = store.arrays(frame["run_id"].iloc[0], "spearman_gt.seconds")
    assert set(stages) == set(frame["cell_id"])  # every cell
    for cell_id, seconds in stages.items():
        assert seconds.shape == (len(CELL_STAGES),) and (seconds >= 0).all()
        row = frame[frame["cell_id"] == cell_id].iloc[0]
        # the stage clock around the cell covers what the record measured inside it
        assert seconds[CELL_STAGES.index("explain")] >= row["explain_seconds"] - 1e-6
    assert max(s[CELL_STAGES.index("train")] for s in stages.values()) > 0  # trained once
    output = result.output
    assert "profile of run" in output and "by stage: " in output
    assert "costliest cell stages" in output and "costliest metrics" in output
    costliest = max(costs.items(), key=lambda item: float(item[1]))
    assert np.isfinite(float(costliest[1]))
    assert "spearman_gt" in output.split("costliest metrics")[1]


@pytest.mark.parametrize("setting", ['"fast"', "0", "5000", "1.5", "true"])
def test_a_bad_thread_setting_is_one_line(setting: str) -> None:
    from harness.suite import SuiteError

    text = ONE_SEED_SUITE.replace("[execution]", f"[execution]\nthreads = {setting}", 1)
    with pytest.raises(SuiteError) as caught:
        parse_suite(text)
    lines = str(caught.value).splitlines()
    assert len(lines) == 1 and "execution.threads: not a thread setting" in lines[0]
