"""Issue 25: a run's inputs (table files, model files, image folders…) are fingerprinted
with it; ``--resume`` and ``rescore`` refuse, in one ``error:`` line naming the input,
when one changed — instead of mixing two datasets (or models) under one run. A
rescoring stopped half-way is continued as a rescoring."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from harness import load_results, run_suite
from harness.inputs import path_fingerprint
from harness.rescoring import rescore_run
from harness.store import ResultsStore
from tests.conftest import assert_user_error, cli
from tests.suite_builder import suite


def _forget_seed_1(out: Path, run_id: str | None = None) -> None:
    """The store as if the run was killed before its seed-1 cells were stored."""
    with closing(sqlite3.connect(out / "harness.sqlite")) as db, db:
        for table in ("scores", "arrays", "cells"):
            db.execute(f"DELETE FROM {table} WHERE cell_id LIKE '%seed=1' AND run_id LIKE ?",
                       (run_id or "%",))  # fmt: skip
        db.execute("UPDATE runs SET status = 'running' WHERE run_id LIKE ?", (run_id or "%",))


def _write_table(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(160, 4))
    y = (x[:, 0] + 0.5 * rng.normal(size=160) > 0).astype(int)
    lines = ["a,b,c,d,label"] + [",".join(f"{v:.4f}" for v in row) + f",{t}"
                                 for row, t in zip(x, y, strict=True)]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def table_suite(tmp_path: Path) -> Path:
    _write_table(tmp_path / "table.csv", 0)
    text = suite(
        "tabled", seeds=[0, 1], metrics=["accuracy"],
        datasets=[("table_file", {"path": "table.csv", "target": "label"}, "tab")],
        models=[("mlp", {"hidden": [8], "epochs": 3})],
        explainers=["random"],
    )  # fmt: skip
    (tmp_path / "tabled.toml").write_text(text)
    return tmp_path / "tabled.toml"


def test_each_run_stores_its_inputs_fingerprints(table_suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_suite(table_suite, out)
    with ResultsStore(out, create=False) as store:
        inputs = store.run_info(store.resolve_run_id(None))["environment"]["inputs"]
    assert inputs == {"datasets.tab.path": {
        "path": str(tmp_path / "table.csv"),
        "sha256": path_fingerprint(tmp_path / "table.csv")}}  # fmt: skip


def test_rescoring_after_the_table_changed_is_refused(table_suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_id = run_suite(table_suite, out).run_id
    _write_table(tmp_path / "table.csv", 1)  # edited after the run
    result = cli("rescore", run_id, "--out", str(out))
    assert_user_error(result, "cannot rescore run", "datasets.tab.path", "table.csv", "changed")
    with ResultsStore(out, create=False) as store:
        assert store.run_ids() == [run_id]  # no half-made rescoring left behind


def test_a_rescoring_notices_changed_data_even_without_a_file(
    table_suite: Path, tmp_path: Path
) -> None:
    """The second wall: each cell's data hash (here a run stored before the run-level
    fingerprints existed: its inputs are removed from the store)."""
    out = tmp_path / "out"
    run_id = run_suite(table_suite, out).run_id
    with closing(sqlite3.connect(out / "harness.sqlite")) as db, db:
        db.execute("UPDATE runs SET environment = json_remove(environment, '$.inputs')")
    _write_table(tmp_path / "table.csv", 1)
    result = cli("rescore", run_id, "--out", str(out))
    assert_user_error(result, "cannot rescore run", "dataset 'tab'", "differ")
    with ResultsStore(out, create=False) as store:
        rescoring = store.run_ids()[-1]
        assert store.run_info(rescoring)["status"] == "interrupted"  # not stuck 'running'


def test_resuming_after_the_table_changed_is_refused(table_suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_id = run_suite(table_suite, out).run_id
    _forget_seed_1(out)
    _write_table(tmp_path / "table.csv", 1)
    result = cli("run", str(table_suite), "--out", str(out), "--resume", "latest")
    assert_user_error(result, f"cannot resume run {run_id}", "datasets.tab.path", "changed")
    _write_table(tmp_path / "table.csv", 0)  # restored: resuming works
    resumed = cli("run", str(table_suite), "--out", str(out), "--resume", "latest")
    assert resumed.exit_code == 0, resumed.stdout + resumed.stderr


def test_a_changed_model_file_is_refused_on_resume(tmp_path: Path) -> None:
    import torch

    _write_table(tmp_path / "table.csv", 0)
    network = torch.nn.Sequential(torch.nn.Linear(4, 2))

    def export() -> None:
        batch = ({0: torch.export.Dim("batch")},)
        program = torch.export.export(network, (torch.zeros(3, 4),), dynamic_shapes=batch)
        torch.export.save(program, tmp_path / "model.pt2")

    export()
    text = suite("given", seeds=[0, 1], metrics=["accuracy"],
                 datasets=[("table_file", {"path": "table.csv", "target": "label"}, "tab")],
                 models=[("given", {"path": "model.pt2"}, "theirs")],
                 explainers=["random"])  # fmt: skip
    (tmp_path / "given.toml").write_text(text)
    out = tmp_path / "out"
    run_suite(tmp_path / "given.toml", out)
    _forget_seed_1(out)
    torch.nn.init.zeros_(network[0].weight)
    export()
    result = cli("run", str(tmp_path / "given.toml"), "--out", str(out), "--resume", "latest")
    assert_user_error(result, "cannot resume run", "models.theirs.path", "model.pt2")


def test_a_stopped_rescoring_is_continued_as_a_rescoring(table_suite: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    source = run_suite(table_suite, out).run_id
    rescored = rescore_run(out, source).run_id
    expected = load_results(out, rescored)
    _forget_seed_1(out, rescored)  # killed half-way
    result = cli("run", str(table_suite), "--out", str(out), "--resume", rescored)
    assert result.exit_code == 0, result.stdout + result.stderr
    with ResultsStore(out, create=False) as store:
        assert store.run_ids() == [source, rescored]
        info = store.run_info(rescored)
        assert info["status"] == "ok" and info["source_run"] == source
    with ResultsStore(out, create=False) as store:  # taken from the source, not run again
        continued = store.cell_records(rescored)
        original = store.cell_records(source)
    for cell_id, record in continued.items():
        assert record.train_seconds == original[cell_id].train_seconds, cell_id
    again = load_results(out, rescored)
    assert len(again) == len(expected)
    assert sorted(again["value"].dropna()) == sorted(expected["value"].dropna())


def test_rescore_needs_an_existing_store_and_a_cache_folder(tmp_path: Path) -> None:
    missing = cli("rescore", "20260101-000000-abcdef", "--out", str(tmp_path / "nowhere"))
    assert_user_error(missing, "no results store in", "pass --out")
    assert not (tmp_path / "nowhere").exists()  # nothing created
    out = tmp_path / "out"
    text = suite("tiny", datasets=[("synthetic_tabular", {"n_samples": 200})],
                 models=[("mlp", {"hidden": [8], "epochs": 2})], explainers=["random"])  # fmt: skip
    (tmp_path / "tiny.toml").write_text(text)
    run_id = run_suite(tmp_path / "tiny.toml", out).run_id
    (tmp_path / "afile").write_text("x")
    result = cli("rescore", run_id, "--out", str(out), "--cache", str(tmp_path / "afile"))
    assert_user_error(result, "--cache", "is a file, not a folder")
