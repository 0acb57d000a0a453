"""Issue 25: the surfaces added since the first hardening — given models, figures, terminal
and CSV output — refuse or neutralise what an attacker or a careless user gives them."""

from __future__ import annotations

import csv
import io
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
