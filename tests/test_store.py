"""The SQLite results store: append-only runs, atomic cells, clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.records import CellRecord, ScoreRecord
from harness.store import ResultsStore, StoreError, load_results


def _begin(store: ResultsStore) -> str:
    return store.begin_run(
        suite_name="s", suite_path=None, suite_text="", config={}, environment={}
    )


def _cell(cell_id: str = "d/m/e/seed=0") -> CellRecord:
    return CellRecord(
        cell_id=cell_id, dataset="d", model="m", explainer="e", seed=0,
        dataset_name="d", model_name="m", explainer_name="e", status="ok",
    )  # fmt: skip


def _score(metric: str, value: float | None) -> ScoreRecord:
    return ScoreRecord(
        metric=metric, metric_name=metric, value=value, higher_is_better=True, unit="",
        conventions={"k": 1}, conventions_hash="abc", note="" if value is not None else "why",
    )  # fmt: skip


def test_latest_run_is_the_last_begun_even_within_one_second(tmp_path: Path) -> None:
    # regression: runs were ordered by (started_at, run_id) and run ids end in a random
    # suffix, so two runs begun in the same second could come back in the wrong order
    store = ResultsStore(tmp_path)
    ids = [_begin(store) for _ in range(8)]
    assert store.run_ids() == ids
    assert store.resolve_run_id(None) == ids[-1]


def test_cell_and_scores_round_trip_with_missing_values(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    run_id = _begin(store)
    store.record_cell(run_id, _cell(), [_score("a", 0.5), _score("b", None)])
    store.finish_run(run_id, status="ok", stage_seconds={"total": 1.0})
    store.close()
    frame = load_results(tmp_path)
    assert frame["metric"].tolist() == ["a", "b"]
    assert frame["value"].iloc[0] == 0.5 and math.isnan(frame["value"].iloc[1])
    assert frame["note"].iloc[1] == "why"
    assert frame["conventions"].iloc[0] == '{"k": 1}'


def test_a_cell_write_is_all_or_nothing(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    run_id = _begin(store)
    with pytest.raises(StoreError, match="nothing of this cell was written"):
        store.record_cell(run_id, _cell(), [_score("a", 1.0), _score("a", 2.0)])  # key twice
    assert load_results(tmp_path).empty
    rows = store._db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    assert rows == 0


def test_reading_a_folder_without_a_store_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"no results store at .*run `xai-harness run` first"):
        load_results(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_unknown_and_ambiguous_run_ids(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path)
    with pytest.raises(HarnessError, match="holds no runs yet"):
        store.resolve_run_id(None)
    first, second = _begin(store), _begin(store)
    with pytest.raises(HarnessError, match="no run 'zzz'"):
        store.resolve_run_id("zzz")
    with pytest.raises(HarnessError, match="ambiguous"):
        store.resolve_run_id(first[:4])
    assert store.resolve_run_id(second) == second


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "harness.sqlite").write_text("not a database")
    with pytest.raises(HarnessError, match="damaged or was not written by xai-harness"):
        ResultsStore(tmp_path)


def test_processes_creating_one_store_at_once_set_it_up_once(tmp_path: Path) -> None:
    """Regression: the schema is created and migrated under a write lock, so processes
    that open a new store together do not run the migration twice."""
    import subprocess
    import sys

    from harness.store_schema import SCHEMA_VERSION

    code = (
        "import sys\nfrom harness.store import ResultsStore\n"
        "with ResultsStore(sys.argv[1]) as store:\n"
        "    store.begin_run(suite_name='s', suite_path=None, suite_text='', config={},"
        " environment={})\n"
    )
    processes = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]  # fmt: skip
    for process in processes:
        _, errors = process.communicate(timeout=120)
        assert process.returncode == 0, errors
    with ResultsStore(tmp_path, create=False) as store:
        assert store.version == SCHEMA_VERSION and len(store.run_ids()) == 6
