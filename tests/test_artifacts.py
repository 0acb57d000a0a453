"""Issue 26: one typed, versioned record of what a cell produced (harness.artifacts):
the writer's arrays read back as the same products; a record of a newer version is
refused in one line, not misread."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from harness import run_suite
from harness.artifacts import VERSION, read_products
from harness.errors import StoreError
from harness.rescoring import rescore_run
from harness.store import ResultsStore, _npy
from tests.conftest import ONE_SEED_SUITE


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("artifacts")
    (out / "s.toml").write_text(ONE_SEED_SUITE)
    return out, run_suite(out / "s.toml", out / "out").run_id


def test_the_record_reads_back_what_the_cell_produced(stored: tuple[Path, str]) -> None:
    folder, run_id = stored
    with ResultsStore(folder / "out", create=False) as store:
        cell_id = next(iter(store.cell_statuses(run_id)))
        arrays = store.cell_arrays(run_id, cell_id)
        record = store.cell_records(run_id)[cell_id]
    products = read_products(arrays, cell_id)
    assert products is not None and int(arrays["products_version"]) == VERSION
    assert len(products.rows) == record.n_explained == len(products.targets)
    assert products.explanation.local is not None
    assert products.explanation.local.shape == (len(products.rows), 8)
    assert products.test_probabilities is not None
    np.testing.assert_array_equal(products.test_predictions,
                                  products.test_probabilities.argmax(axis=1))  # fmt: skip
    assert products.data_fingerprint and len(products.data_fingerprint) == 64
    assert read_products({}, cell_id) is None  # a cell that stored none


def test_a_record_of_a_newer_version_is_refused(stored: tuple[Path, str], tmp_path: Path) -> None:
    import shutil

    folder, run_id = stored
    out = tmp_path / "out"
    shutil.copytree(folder / "out", out)
    with closing(sqlite3.connect(out / "harness.sqlite")) as db, db:
        db.execute("UPDATE arrays SET data = ? WHERE name = 'products_version'",
                   (_npy(np.array(VERSION + 1)),))  # fmt: skip
    with pytest.raises(StoreError, match=r"stored by a newer xai-harness \(products version 2"):
        rescore_run(out, run_id)
