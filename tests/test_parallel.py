"""Parallel execution: local processes (--jobs) and a real Dask LocalCluster give the
serial run's scores (timings aside); a 200-cell load test through Dask; two runs writing
one store at the same time."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness import load_results, run_suite
from harness.runner.parallel import DaskExecutor, ProcessExecutor
from harness.suite import parse_suite
from tests.conftest import CONTROL_EXPLAINERS, TINY_SUITE

TIMINGS = {"explain_seconds", "train_seconds", "explain_seconds_per_row"}


def scores(out: Path) -> pd.Series:
    results = load_results(out)
    kept = results[~results["metric"].isin(TIMINGS)]
    return kept.set_index(["cell_id", "metric"])["value"].sort_index()


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("serial")
    run_suite(parse_suite(TINY_SUITE), out)
    return out


@pytest.mark.slow
def test_two_local_processes_reproduce_the_serial_scores(serial: Path, tmp_path: Path) -> None:
    summary = run_suite(parse_suite(TINY_SUITE), tmp_path, executor=ProcessExecutor(2))
    assert summary.counts == {"ok": 6, "failed": 0, "skipped": 0}
    pd.testing.assert_series_equal(scores(tmp_path), scores(serial))
    executor = load_results(tmp_path)  # the run says how its cells ran
    from harness.store import ResultsStore

    store = ResultsStore(tmp_path, create=False)
    info = store.run_info(executor["run_id"].iloc[0])
    store.close()
    assert info["environment"]["executor"] == {"kind": "processes", "jobs": 2}


@pytest.mark.slow
def test_a_dask_local_cluster_reproduces_the_serial_scores(serial: Path, tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    summary = run_suite(parse_suite(TINY_SUITE), tmp_path, executor=DaskExecutor(workers=2))
    assert summary.counts == {"ok": 6, "failed": 0, "skipped": 0}
    pd.testing.assert_series_equal(scores(tmp_path), scores(serial))
    # regression: the workers' summed stage seconds exceed the wall time, and the
    # summary printed a negative overhead
    assert summary.stage_seconds["overhead"] >= 0


def visible_gpus() -> str:
    return os.environ.get("CUDA_VISIBLE_DEVICES", "unset")


def test_dask_on_several_gpus_pins_one_worker_to_each() -> None:
    """A local cluster for N GPUs has N workers, worker i seeing GPU i only (the pinning is
    checked through the workers' environment: this machine need not have the GPUs)."""
    pytest.importorskip("dask.distributed")
    executor = DaskExecutor(workers=5, gpus=2)
    assert executor.describe()["jobs"] == 2 and executor.describe()["workers_pinned_to_gpus"]
    executor.open()
    try:
        seen = executor._client.run(visible_gpus)
    finally:
        executor.close()
    assert sorted(seen.values()) == ["0", "1"]
    # one GPU, or a remote scheduler: workers are not pinned
    assert DaskExecutor(workers=3, gpus=1).describe()["jobs"] == 3
    assert not DaskExecutor("tcp://127.0.0.1:1", gpus=4).describe()["workers_pinned_to_gpus"]


LOAD_SUITE = """
name = "load"
seeds = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
metrics = ["accuracy", "spearman_gt"]
[execution]
explain_rows = 10
{datasets}
[[models]]
name = "mlp"
params = {{ hidden = [4], epochs = 1 }}
"""


@pytest.mark.slow
def test_200_cells_through_dask_are_each_stored_once(tmp_path: Path) -> None:
    pytest.importorskip("dask.distributed")
    datasets = "".join(
        f'[[datasets]]\nid = "d{i}"\nname = "synthetic_tabular"\n'
        f"params = {{ n_samples = 100, n_features = {4 + i}, n_informative = 2 }}\n"
        for i in range(5)
    )
    suite = parse_suite(LOAD_SUITE.format(datasets=datasets) + CONTROL_EXPLAINERS)
    summary = run_suite(suite, tmp_path, executor=DaskExecutor(workers=2))
    assert summary.counts == {"ok": 200, "failed": 0, "skipped": 0}
    results = load_results(tmp_path)
    cells = results.drop_duplicates("cell_id")
    assert len(cells) == 200 and len(results) == 200 * 2
    assert results.groupby("cell_id").size().eq(2).all()  # each cell's scores exactly once


@pytest.mark.slow
def test_two_runs_writing_one_store_at_once_lose_nothing(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    command = ["xai-harness", "run", str(suite), "--out", str(tmp_path / "out")]
    runs = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(2)]  # fmt: skip
    for process in runs:
        _, errors = process.communicate(timeout=300)
        assert process.returncode == 0, errors.decode()
    results = load_results(tmp_path / "out")
    assert results["run_id"].nunique() == 2
    assert results.groupby("run_id")["cell_id"].nunique().eq(6).all()
    assert len(results) == 2 * 6 * 5  # 6 cells × 5 metrics in each run


IMAGE_SUITE = """
name = "images"
seeds = [0]
metrics = ["accuracy", "pointing_game", "activation_precision", "deletion_auc"]
[execution]
explain_rows = 8
threads = 1
[[datasets]]
name = "synthetic_lesions"
params = { n_images = 60, size = 32, radius = [1.5, 3.0] }
[[models]]
name = "small_cnn"
params = { channels = [4, 8], epochs = 1 }
[[explainers]]
name = "softcam"
[[explainers]]
name = "grad_cam"
"""


@pytest.mark.slow
def test_cnn_scores_are_identical_when_the_thread_count_is_fixed(tmp_path: Path) -> None:
    # convolution reductions depend on the number of torch threads; with `threads` set in
    # the suite, workers use that count too and the scores match bit for bit
    run_suite(parse_suite(IMAGE_SUITE), tmp_path / "serial")
    run_suite(parse_suite(IMAGE_SUITE), tmp_path / "jobs", executor=ProcessExecutor(2))
    pd.testing.assert_series_equal(scores(tmp_path / "jobs"), scores(tmp_path / "serial"))


DESIGN_SUITE = """
name = "designs"
seeds = [0, 1]
metrics = ["accuracy", "gain_over_twin", "activation_precision", "deletion_auc"]
[execution]
explain_rows = 8
threads = 1
select_images = "correct_by_both"
design_reference = "dense"
[[datasets]]
name = "synthetic_lesions"
params = { n_images = 80, size = 32, radius = [1.5, 3.0] }
[[models]]
name = "small_cnn"
params = { channels = [4, 8], epochs = 2 }
[[explainers]]
name = "softcam"
id = "dense"
[[explainers]]
name = "softcam"
id = "sparse"
params = { l1 = 1e-3 }
[[explainers]]
name = "grad_cam"
[[explainers]]
name = "saliency"
id = "saliency_on_sparse"
explains = "sparse"
"""


def test_the_models_a_group_needs_are_each_one_training_task() -> None:
    from harness.runner.executor import model_groups
    from harness.runner.parallel import automatic_jobs, training_units
    from harness.runner.plan import plan

    suite = parse_suite(DESIGN_SUITE)
    work = [(cells, {}) for cells in model_groups(plan(suite))]
    units = training_units(suite, work)
    # per seed: the black box, then each by-design model once (grad_cam's partner is
    # "dense", already there; saliency_on_sparse's model is "sparse")
    assert units == [
        [
            (f"synthetic_lesions/small_cnn/dense/seed={seed}", None),
            (f"synthetic_lesions/small_cnn/dense/seed={seed}", "dense"),
            (f"synthetic_lesions/small_cnn/sparse/seed={seed}", "sparse"),
        ]
        for seed in (0, 1)
    ]
    from harness.runner.threads import usable_cores

    assert automatic_jobs(suite, cache=True) == min(usable_cores(), 6)
    assert automatic_jobs(suite, cache=False) == min(usable_cores(), 2)


def test_jobs_auto_starts_workers_only_where_they_pay() -> None:
    from harness.runner.parallel import GROUPS_PER_WORKER, automatic_jobs
    from harness.runner.threads import usable_cores

    cores = usable_cores()
    # images to train: a worker per core (up to the 6 models to train)
    assert automatic_jobs(parse_suite(DESIGN_SUITE), cache=True) == min(cores, 6)
    # tables: serial below GROUPS_PER_WORKER groups per worker, parallel from there
    few = parse_suite(TINY_SUITE, seeds=list(range(GROUPS_PER_WORKER * cores - 1)))
    many = parse_suite(TINY_SUITE, seeds=list(range(GROUPS_PER_WORKER * cores)))
    assert automatic_jobs(few, cache=True) == 1
    assert automatic_jobs(many, cache=True) == cores
    # every core per cell, or a fixed count that fills the cores: serial
    torch_threads = DESIGN_SUITE.replace("threads = 1", 'threads = "torch"')
    assert automatic_jobs(parse_suite(torch_threads), cache=True) == 1
    wide = DESIGN_SUITE.replace("threads = 1", f"threads = {cores}")
    assert automatic_jobs(parse_suite(wide), cache=True) == 1


@pytest.mark.slow
def test_models_trained_as_tasks_of_their_own_give_the_serial_scores(tmp_path: Path) -> None:
    # with a cache, each model is trained into it by a task of its own and the groups load
    # them: by-design models, twins, design partners and a post-hoc explainer of a
    # by-design model all give the serial run's scores bit for bit
    run_suite(parse_suite(DESIGN_SUITE), tmp_path / "serial", cache=False)
    summary = run_suite(parse_suite(DESIGN_SUITE), tmp_path / "jobs", executor=ProcessExecutor(2))
    assert summary.counts == {"ok": 8, "failed": 0, "skipped": 0}
    pd.testing.assert_series_equal(scores(tmp_path / "jobs"), scores(tmp_path / "serial"))
    stored = list((tmp_path / "jobs" / "cache" / "models").glob("*/*"))
    assert len(stored) == 6  # 2 seeds × (twin, dense, sparse), each trained once


@pytest.mark.slow
def test_the_command_line_chooses_its_workers_by_default(serial: Path, tmp_path: Path) -> None:
    from harness.store import ResultsStore
    from tests.conftest import cli

    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_SUITE)
    result = cli("run", str(suite), "--out", str(tmp_path / "out"), env={"XAI_HARNESS_JOBS": None})
    assert result.exit_code == 0, result.stdout + result.stderr
    with ResultsStore(tmp_path / "out", create=False) as store:
        (run_id,) = store.run_ids()
        executor = store.run_info(run_id)["environment"]["executor"]
    # 2 groups of tables: workers would not pay for their start
    assert executor == {"kind": "serial", "jobs": 1}
    pd.testing.assert_series_equal(scores(tmp_path / "out"), scores(serial))


@pytest.mark.parametrize("value", ["0", "-2", "many", "2.5"])
def test_a_bad_jobs_value_is_one_error_line(tmp_path: Path, value: str) -> None:
    from tests.conftest import assert_user_error, cli

    result = cli("run", "quick", "--out", str(tmp_path), "--jobs", value)
    assert_user_error(result, f"--jobs '{value}'", "'auto'")
    assert not (tmp_path / "harness.sqlite").exists()
