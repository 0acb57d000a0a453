"""Issue 25: the surfaces added since the first hardening — given models, figures, terminal
and CSV output — refuse or neutralise what an attacker or a careless user gives them."""

from __future__ import annotations

import csv
import functools
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from harness import load_results, run_suite
from harness.report.figures import file_stem, render_figures
from harness.report.render import render_csv
from harness.report.safe_text import printable, spreadsheet_cell
from harness.store import ResultsStore
from harness.suite import parse_suite
from tests.conftest import cli
from tests.suite_builder import suite


def nan_network(n_features: int) -> nn.Module:
    """A user's network whose weights are NaN (a diverged training)."""
    network = nn.Sequential(nn.Linear(n_features, 2))
    nn.init.constant_(network[0].weight, float("nan"))
    return network


def test_a_model_with_nan_outputs_fails_its_cells_naming_the_model(tmp_path: Path) -> None:
    torch.save(nan_network(6).state_dict(), tmp_path / "weights.pt")
    text = suite(
        "nan_model", metrics=["accuracy", "spearman_gt"],
        datasets=[("synthetic_tabular", {"n_samples": 200, "n_features": 6, "n_informative": 3})],
        models=[("given", {"path": str(tmp_path / "weights.pt"), "format": "state_dict",
                           "factory": "tests.test_hardening:nan_network",
                           "factory_args": {"n_features": 6}}, "theirs")],
        explainers=["random", ("integrated_gradients", {"n_steps": 4})],
    )  # fmt: skip
    summary = run_suite(parse_suite(text), tmp_path / "out")
    assert summary.counts == {"ok": 0, "failed": 2, "skipped": 0}
    for _, error in summary.failures:
        assert "model 'theirs'" in error and "non-finite outputs" in error, error
    accuracy = load_results(tmp_path / "out").query("metric == 'accuracy'")["value"]
    assert accuracy.isna().all()  # no accuracy from argmax of NaN


# -- figure files: one per id -------------------------------------------------------------


@given(st.lists(st.text(min_size=1, max_size=40), min_size=2, max_size=6, unique=True))
def test_figure_file_names_are_distinct_per_name_even_ignoring_case(names: list[str]) -> None:
    stems = [file_stem(name) for name in names]
    assert len({stem.casefold() for stem in stems}) == len(names), stems
    for stem in stems:
        assert "/" not in stem and "\\" not in stem and not stem.startswith(".")
        assert 0 < len(stem) <= 150


def test_plain_figure_names_stay_as_they_are() -> None:
    assert file_stem("sweep_irrelevant_features") == "sweep_irrelevant_features"
    assert file_stem("a b") != file_stem("a_b") != file_stem("A_b")
    assert file_stem("a b").startswith("a_b-")


@pytest.mark.slow
def test_datasets_whose_ids_differ_in_separators_and_case_get_their_own_figures(
    tmp_path: Path,
) -> None:
    data = {"n_samples": 200, "n_features": 5, "n_informative": 2}
    ids = ["a b", "a_b", "b", "A_b"]
    text = suite("separators", metrics=["accuracy", "spearman_gt"],
                 datasets=[("synthetic_tabular", data, i) for i in ids],
                 models=[("mlp", {"hidden": [8], "epochs": 2})],
                 explainers=[("integrated_gradients", {"n_steps": 4})])  # fmt: skip
    run_suite(parse_suite(text), tmp_path / "out")
    written = render_figures(tmp_path / "out", None, tmp_path / "figures")
    per_dataset = [p for p in written if p.suffix == ".png" and p.name.startswith("importance")]
    assert len(per_dataset) == len(ids), sorted(p.name for p in written)
    assert len({p.name.casefold() for p in written}) == len(written)


# -- terminal and spreadsheet output -------------------------------------------------------

HOSTILE = "\x1b[2J\x1b]0;owned\x07 text\x00 \u202eevil"


def test_printable_escapes_every_control_character() -> None:
    shown = printable(HOSTILE + "\tkept\nkept")
    assert not any(ord(c) < 32 and c not in "\t\n" for c in shown)
    assert "\u202e" not in shown and "\\x1b[2J" in shown and "\\u202e" in shown
    assert shown.endswith("\tkept\nkept")


@given(st.text())
def test_printable_leaves_no_control_character(text: str) -> None:
    shown = printable(text)
    assert all(c in "\t\n" or (32 <= ord(c) != 127 and not 0x80 <= ord(c) <= 0x9F)
               for c in shown)  # fmt: skip


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_spreadsheet_cells_that_start_a_formula_are_neutralised(start: str) -> None:
    assert spreadsheet_cell(f"{start}cmd|' -C calc'!A0") == f"'{start}cmd|' -C calc'!A0"
    assert spreadsheet_cell("plain") == "plain" and spreadsheet_cell(-1.5) == -1.5


def test_the_leaderboard_csv_has_no_formula_cell_and_keeps_numbers() -> None:
    summary = pd.DataFrame({"dataset": ["=cmd|' -C calc'!A0", "ok"], "mean": [-0.5, 0.25]})
    rows = list(csv.DictReader(io.StringIO(render_csv(summary))))
    assert rows[0]["dataset"] == "'=cmd|' -C calc'!A0" and rows[1]["dataset"] == "ok"
    assert [float(r["mean"]) for r in rows] == [-0.5, 0.25]


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run whose dataset id is a formula and whose claim text drives the terminal."""
    folder = tmp_path_factory.mktemp("hostile")
    text = suite("hostile", metrics=["accuracy"],
                 datasets=[("synthetic_tabular", {"n_samples": 200}, "=cmd|' -C calc'!A0")],
                 models=[("mlp", {"hidden": [8], "epochs": 2})], explainers=["random"])  # fmt: skip
    text += (
        '\n[[claims]]\nid = "c"\nsource = "x"\ntext = "\\u001b[2J\\u001b]0;owned\\u0007 cleared"\n'
        'kind = "value"\nmetric = "accuracy"\nselect = { explainer = "random" }\nop = ">="\n'
        "value = 0.0\n"
    )
    (folder / "hostile.toml").write_text(text)
    run_suite(folder / "hostile.toml", folder / "out")
    return folder


def test_check_shows_control_characters_of_claims_as_escapes(hostile_store: Path) -> None:
    result = cli("check", str(hostile_store / "hostile.toml"), "--out", str(hostile_store / "out"))
    output = result.stdout + result.stderr
    assert "cleared" in output, output
    assert "\x1b" not in output and "\x07" not in output
    assert "\\x1b[2J" in output


def test_show_csv_neutralises_formula_ids(hostile_store: Path) -> None:
    result = cli("show", "--out", str(hostile_store / "out"), "--format", "csv")
    assert result.exit_code == 0, result.stdout + result.stderr
    cells = [cell for row in csv.reader(io.StringIO(result.stdout)) for cell in row]
    assert "'=cmd|' -C calc'!A0" in cells
    assert not any(c.startswith(("=", "+", "@")) for c in cells)
    assert not any(c.startswith("-") and not _is_number(c) for c in cells)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_an_unmodified_number_column_stays_numeric() -> None:
    frame = pd.DataFrame({"value": np.array([-1.0, 2.0])})
    assert render_csv(frame).splitlines()[1:] == ["-1.0", "2.0"]


# -- budgets: sweeps and tables ------------------------------------------------------------


def test_a_sweep_over_the_cell_budget_is_refused_before_expanding() -> None:
    from harness.errors import HarnessError
    from harness.sweeps import MAX_CELLS

    values = list(range(1_000))
    text = suite("huge", seeds=[0, 1],
                 datasets=[("synthetic_tabular", {"n_samples": {"sweep": values},
                                                  "n_features": {"sweep": values},
                                                  "n_informative": {"sweep": values}})],
                 models=["mlp"], explainers=["random"])  # fmt: skip
    with pytest.raises(HarnessError) as refused:
        parse_suite(text)  # 2 × 10⁹ cells: a MemoryError after minutes before
    message = str(refused.value)
    assert "plans 2,000,000,000 cells (2 seeds × 1,000,000,000 datasets × 1 models" in message
    assert f"over the budget of {MAX_CELLS:,}" in message and "\n" not in message


def test_a_large_sweep_validates_with_its_plan_in_counts(tmp_path: Path) -> None:
    """10,000 cells: the ids are checked with a set (it was a list: quadratic), and the
    plan lists 200 combinations and counts the rest."""
    text = suite("large", datasets=[("synthetic_tabular", {
                     "n_samples": {"sweep": list(range(100, 1_100))},
                     "n_features": {"sweep": list(range(5, 15))}})],
                 models=["mlp"], explainers=["random"])  # fmt: skip
    (tmp_path / "large.toml").write_text(text)
    result = cli("validate", str(tmp_path / "large.toml"))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "10000 cells" in result.stdout
    assert "… and 9,800 more combinations (of 10,000: 10,000 to run)" in result.stdout


def _table(tmp_path: Path, text: str, **params: object):
    from harness.datasets import dataset_registry

    (tmp_path / "t.csv").write_text(text)
    return dataset_registry.get("table_file")(path=tmp_path / "t.csv", **params)


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [("age,age,y\n1,2,a\n3,4,b\n", {},
      r"column 'age' appears twice in the header \(columns 1 and 2\)"),
     ("a,b,y\n", {}, "no data rows"),
     ("a,b,y\n1,2,\n3,4,\n5,6,\n", {}, "target column 'y' is empty in all 3 rows"),
     ("a,b,y\n1,2,p\n3,4,q\n", {}, "too few rows — 2 rows, 2 classes, 0 with at least 2"),
     ("a,b,c,y\n" + "1,2,3,p\n" * 10, {"max_columns": 3},
      r"4 columns, over the budget of 3 \(max_columns\)"),
     ("a,b,y\n" + "1,2,p\n" * 10, {"max_values": 20},
      r"about 10 rows × 3 columns = 30 values, over the budget of 20 \(max_values\)")],
)  # fmt: skip
def test_table_files_that_cannot_make_a_dataset_say_why(tmp_path, text, params, message):
    from harness.datasets.tables import DatasetError

    with pytest.raises(DatasetError, match=message):
        _table(tmp_path, text, target="y", **params).load(0)


def test_a_wide_table_is_refused_from_its_header_alone(tmp_path: Path) -> None:
    """10⁶ columns × 24 rows: refused before pandas reads it (it took 15 minutes and
    4.5 GB before)."""
    from harness.datasets.tables import DatasetError

    header = ",".join(f"c{i}" for i in range(1_000_000)) + ",y\n"
    source = _table(tmp_path, header + ("0," * 1_000_000 + "a\n") * 24, target="y")
    with pytest.raises(DatasetError, match=r"1,000,001 columns, over the budget of 10,000"):
        source.load(0)


def test_a_column_of_lists_is_named(tmp_path: Path) -> None:
    from harness.datasets import dataset_registry
    from harness.datasets.tables import DatasetError

    frame = pd.DataFrame({"a": [[1, 2], [3]] * 10, "b": range(20), "y": ["p", "q"] * 10})
    frame.to_parquet(tmp_path / "t.parquet")
    source = dataset_registry.get("table_file")(path=tmp_path / "t.parquet", target="y")
    with pytest.raises(DatasetError, match="column 'a' holds lists, arrays or tables"):
        source.load(0)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["run", "--worker-timeout", "0"], "Invalid value for '--worker-timeout'"),
     (["run", "--seeds", "0"], "Invalid value for '--seeds'"),
     (["show", "--bogus"], "No such option: --bogus")],
)  # fmt: skip
def test_a_command_line_click_refuses_is_one_error_line(args, fragment, tmp_path) -> None:
    import subprocess

    result = subprocess.run(["xai-harness", *args], capture_output=True, text=True,
                            cwd=tmp_path, check=False)  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], lines
    assert "╭" not in result.stderr and "Traceback" not in result.stderr


# -- MedMNIST: damaged archives and extractions, impossible labels ---------------------------


def _medmnist(root: Path):
    from harness.datasets import dataset_registry

    return dataset_registry.get("medmnist")(root=root)


def _flip_bytes_of(path: Path, marker: bytes) -> None:
    """Flip a byte inside the pixels: the data after ``marker`` (a member's .npy header)."""
    content = bytearray(path.read_bytes())
    at = content.index(marker) + 200
    content[at] ^= 0xFF
    path.write_bytes(bytes(content))


def test_a_stored_member_with_flipped_pixels_is_refused(tmp_path: Path) -> None:
    from harness.datasets.medmnist_source import medmnist_file
    from harness.datasets.tables import DatasetError
    from tests.test_image_datasets import write_medmnist

    write_medmnist(tmp_path, "pneumoniamnist", 28, compressed=False)
    _flip_bytes_of(medmnist_file(tmp_path, "pneumoniamnist", 28), b"train_images.npy")
    with pytest.raises(DatasetError, match=r"member train_images of .* is damaged .*CRC-32"):
        _medmnist(tmp_path).load(0)


def test_an_extraction_with_flipped_bytes_of_the_same_size_is_extracted_again(
    tmp_path: Path,
) -> None:
    from tests.test_image_datasets import channels_first, write_medmnist

    arrays = write_medmnist(tmp_path, "pneumoniamnist", 28)
    _medmnist(tmp_path).load(0)
    (extracted,) = (tmp_path / "extracted").glob("*train_images*.npy")
    size = extracted.stat().st_size
    _flip_bytes_of(extracted, b"NUMPY")
    assert extracted.stat().st_size == size
    data = _medmnist(tmp_path).load(0)
    np.testing.assert_array_equal(np.asarray(data.x_train),
                                  channels_first(arrays["train_images"]))  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda a: a.update(train_labels=np.zeros((20, 1, 2), np.uint8)),
      r"multi-label targets \(2 labels per image, labels shaped \(20, 1, 2\)\)"),
     (lambda a: a.update(test_labels=np.full((10, 1), -1, np.int64)),
      "labels must be class indices 0, 1, …; found -1"),
     (lambda a: a.update(test_images=np.zeros((10, 20, 20), np.uint8)),
      r"training images are \(1, 28, 28\) .* but test images \(1, 20, 20\)")],
)  # fmt: skip
def test_impossible_medmnist_contents_are_refused(tmp_path: Path, change, message) -> None:
    from harness.datasets.medmnist_source import medmnist_file
    from harness.datasets.tables import DatasetError
    from tests.test_image_datasets import write_medmnist

    arrays = write_medmnist(tmp_path, "pneumoniamnist", 28)
    change(arrays)
    np.savez_compressed(medmnist_file(tmp_path, "pneumoniamnist", 28), **arrays)
    with pytest.raises(DatasetError, match=message):
        _medmnist(tmp_path).load(0)


@pytest.mark.parametrize(
    ("rows", "message"),
    [("testlesion0,nan,3\n", r"line 2: x = 'nan' is not a number"),
     ("testlesion0,3,4\ntestlesion1,inf,3\n", r"line 3: x = 'inf' is not a number"),
     ("testlesion0,3,\n", r"line 2: some coordinates are empty")],
)  # fmt: skip
def test_points_that_are_not_numbers_are_errors_not_empty_masks(tmp_path, rows, message):
    from harness.datasets import dataset_registry
    from harness.datasets.tables import DatasetError
    from tests.test_image_datasets import make_folder

    make_folder(tmp_path)
    (tmp_path / "points.csv").write_text("image_id,x,y\n" + rows)
    source = dataset_registry.get("image_folder")(root=tmp_path, size=20,
                                                   points=tmp_path / "points.csv")  # fmt: skip
    with pytest.raises(DatasetError, match=message):
        source.load(0)


# -- a full disk is a full disk, not a damaged store ----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("free_kb", [0, 8])
def test_a_full_disk_says_no_space_for_run_and_rescore(tmp_path: Path, free_kb: int) -> None:
    """SQLite says "disk I/O error" when its journal cannot grow: with the disk full,
    that is "no space left", not a damaged store (which told the user to move it aside)."""
    import subprocess

    from tests.test_store_damage import _tmpfs

    text = suite("tiny", datasets=[("synthetic_tabular", {"n_samples": 200})],
                 models=[("mlp", {"hidden": [8], "epochs": 2})], explainers=["random"])  # fmt: skip
    (tmp_path / "tiny.toml").write_text(text)
    stored = tmp_path / "stored"
    run_id = run_suite(parse_suite(text), stored).run_id
    with _tmpfs(tmp_path / "small", "400k") as small:
        subprocess.run(["cp", "-r", str(stored), str(small / "copy")], check=True)
        before = (small / "copy/harness.sqlite").read_bytes()
        total = os.statvfs(small).f_bavail * os.statvfs(small).f_frsize
        (small / "fill").write_bytes(b"\0" * max(total - free_kb * 1024, 0))
        for command in (["run", str(tmp_path / "tiny.toml"), "--out", str(small / "new"),
                         "--no-cache"],
                        ["rescore", run_id, "--out", str(small / "copy")]):  # fmt: skip
            result = subprocess.run(["xai-harness", *command], capture_output=True, text=True,
                                    check=False)  # fmt: skip
            errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
            assert result.returncode == 2 and len(errors) == 1, result.stderr
            assert "no space left" in errors[0] and "damaged" not in errors[0], errors[0]
        (small / "fill").unlink()
        with ResultsStore(small / "copy", create=False) as store:
            assert store.run_ids()[0] == run_id  # nothing stored was lost
        assert len(load_results(small / "copy", run_id)) == len(load_results(stored, run_id))
        assert before[:100] == (small / "copy/harness.sqlite").read_bytes()[:100]


def test_a_damaged_cached_model_is_named_as_such_when_rescoring(tmp_path: Path) -> None:
    from harness.rescoring import rescore_run

    text = suite("cached", metrics=["accuracy", "deletion_auc"],
                 datasets=[("synthetic_tabular", {"n_samples": 200})],
                 models=[("mlp", {"hidden": [8], "epochs": 2})],
                 explainers=[("integrated_gradients", {"n_steps": 4})])  # fmt: skip
    out = tmp_path / "out"
    source = run_suite(parse_suite(text), out, cache_dir=out / "cache").run_id
    (state,) = (out / "cache").rglob("state.pt")
    state.write_bytes(state.read_bytes()[:100])  # truncated
    rescored = rescore_run(out, source, metric_ids=["deletion_auc"]).run_id
    notes = load_results(out, rescored).query("metric == 'deletion_auc'")["note"]
    assert notes.str.contains("whose copy in the cache .* was damaged", regex=True).all(), notes


def test_a_store_error_whose_cause_spans_lines_is_one_line() -> None:
    from harness.store import _store_error

    error = _store_error(ValueError("1 validation error\n  field\n    broken"), Path("s.sqlite"))
    assert "\n" not in str(error) and "1 validation error field broken" in str(error)


def test_a_cached_model_with_a_flipped_bit_of_the_same_size_is_recomputed(tmp_path: Path) -> None:
    """The cache checks each entry's SHA-256 digests: a weight changed in place (a valid,
    finite number of the same size) is found, not used."""
    from harness.runner.cache import ResultCache
    from harness.runner.cell import load_cell_dataset, untrained_network
    from harness.runner.plan import plan

    text = suite("cached", metrics=["accuracy"],
                 datasets=[("synthetic_tabular", {"n_samples": 200})],
                 models=[("mlp", {"hidden": [8], "epochs": 2})], explainers=["random"])  # fmt: skip
    first = run_suite(parse_suite(text), tmp_path / "a", cache_dir=tmp_path / "cache")
    (state,) = (tmp_path / "cache").rglob("state.pt")
    weights = torch.load(state, weights_only=True)
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name].view(-1)[0] += 1.0  # a valid, finite, same-shaped state dict
    torch.save(weights, state)
    cache = ResultCache(tmp_path / "cache")
    (cell,) = plan(parse_suite(text))
    dataset = load_cell_dataset(cell, None, parse_suite(text).spec.execution)
    key = cache.model_key(cell, dataset, torch.device("cpu"), False)
    untrained = functools.partial(untrained_network, cell, dataset, False)
    assert cache.load_model(key, cell, dataset, torch.device("cpu"), untrained) is None
    assert cache.discarded == 1
    again = run_suite(parse_suite(text), tmp_path / "b", cache_dir=tmp_path / "cache")
    assert again.reused["models"] == 0 and first.counts == again.counts


def test_the_header_is_read_as_pandas_reads_it(tmp_path: Path) -> None:
    """Regression: the budget check read the header itself and stripped names and left a
    saved index unnamed, so `drop = ["Unnamed: 0"]` or a name with a space failed to
    validate."""
    from harness.datasets.table_file import table_shape

    path = tmp_path / "t.csv"
    pd.DataFrame({" age": [1, 2], "y": [0, 1]}).to_csv(path)
    assert table_shape(path)[0] == list(pd.read_csv(path, nrows=0).columns)
