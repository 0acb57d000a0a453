"""Real tables: OpenML through its cache (the shared copy of dataset 2, 'anneal'),
preprocessing with declared choices, scikit-learn's bundled tables, planted ground truth."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import openml
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from harness import load_results, run_suite
from harness.cli import app
from harness.datasets import dataset_registry
from harness.datasets.base import DatasetCard
from harness.datasets.tables import DatasetError, TableParams, table_dataset
from harness.store import load_arrays
from harness.suite import parse_suite

CARD = DatasetCard(source="test", licence="test")


def test_openml_anneal_loads_from_the_cache_with_its_mess_handled(openml_cache: Path) -> None:
    data = dataset_registry.get("openml")(data_id=2, cache_dir=openml_cache).load(0)
    openml.config.set_root_cache_directory(openml_cache)  # openml itself, as the reference
    openml.config.set_retry_policy("human", 1)
    raw, target, *_ = openml.datasets.get_dataset(2, download_data=True).get_data(target="class")
    assert raw.isna().sum().sum() > 0 and (target.value_counts() == 0).any()  # the mess
    assert data.class_names == ["1", "2", "3", "5", "U"]  # class '4' has no rows: dropped
    assert "'4' (0 rows)" in data.card.notes
    assert len(data.y_train) + len(data.y_test) == 898
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
    assert data.n_features > len(data.columns)  # one-hot columns map back to their column
    widths = data.per_column(np.ones(data.n_features))
    family = data.columns.index("family")
    assert widths[family] == sum(name.startswith("family=") for name in data.feature_names)
    assert data.per_column(np.arange(data.n_features, dtype=float)).sum() == pytest.approx(
        np.arange(data.n_features).sum()
    )
    by_name = dataset_registry.get("openml")(name="anneal", cache_dir=openml_cache).load(0)
    np.testing.assert_array_equal(by_name.x_train, data.x_train)


OPENML_SUITE = """
name = "openml_anneal"
seeds = [0]
metrics = ["accuracy"]
[execution]
explain_rows = 20
[[datasets]]
id = "anneal"
name = "openml"
params = {{ data_id = 2, cache_dir = "{cache}" }}
[[models]]
name = "mlp"
params = {{ epochs = 5 }}
[[explainers]]
name = "saliency"
[[explainers]]
name = "feature_ablation"
"""


def test_a_suite_on_openml_reports_importance_per_original_column(
    openml_cache: Path, tmp_path: Path
) -> None:
    summary = run_suite(parse_suite(OPENML_SUITE.format(cache=openml_cache)), tmp_path / "out")
    assert summary.counts == {"ok": 2, "failed": 0, "skipped": 0}
    importance = load_arrays(tmp_path / "out", "global_importance")
    names = load_arrays(tmp_path / "out", "column_names")
    cell = "anneal/mlp/saliency/seed=0"
    assert importance[cell].shape == names[cell].shape and "family" in names[cell]
    assert load_results(tmp_path / "out").query("metric == 'accuracy'")["value"].iloc[0] > 0.7
    for form in ("table", "markdown"):
        result = CliRunner().invoke(
            app, ["show", "--out", str(tmp_path / "out"), "--importance", "--format", form]
        )
        assert result.exit_code == 0, result.output
        assert "family" in result.stdout and "feature_ablation" in result.stdout
    header = next(line for line in result.stdout.splitlines() if line.startswith("| column |"))
    assert {"saliency", "feature_ablation"} <= set(header.replace("|", " ").split())


def test_an_uncached_openml_dataset_without_network_fails_fast_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a server name that cannot resolve stands for "no network", whatever this machine has
    monkeypatch.setattr(openml.config, "server", "https://openml.invalid/api/v1/xml")
    source = dataset_registry.get("openml")(data_id=31, cache_dir=tmp_path / "empty")
    with pytest.raises(DatasetError) as caught:
        source.load(0)
    message = str(caught.value)
    assert "data_id=31" in message and str(tmp_path / "empty") in message
    assert "\n" not in message


@pytest.mark.slow
def test_the_cli_exits_non_zero_with_one_line_naming_the_missing_dataset(tmp_path: Path):
    suite = tmp_path / "missing.toml"
    suite.write_text(OPENML_SUITE.format(cache=tmp_path / "nothing").replace(
        "data_id = 2", "data_id = 987654"))  # fmt: skip
    result = subprocess.run(
        ["xai-harness", "run", str(suite), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "data_id=987654" in result.stdout + result.stderr
    assert str(tmp_path / "nothing") in (result.stdout + result.stderr).replace("\n", "")
    assert "Traceback" not in result.stdout + result.stderr


def test_openml_parameters_need_exactly_one_identifier(tmp_path: Path) -> None:
    from harness.suite import SuiteError

    text = OPENML_SUITE.format(cache=tmp_path).replace("data_id = 2, ", "")
    with pytest.raises(SuiteError, match="exactly one of `data_id` and `name`"):
        parse_suite(text)


def test_a_single_class_target_is_refused_naming_the_dataset() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DatasetError, match=r"dataset 'mine': the target has a single class"):
        table_dataset("mine", frame, pd.Series(["x"] * 4), TableParams(), 0, CARD)


def test_infinite_values_are_refused_naming_the_column() -> None:
    frame = pd.DataFrame({"ok": np.arange(8.0), "bad": [np.inf, *np.arange(7.0)]})
    labels = pd.Series(["a", "b"] * 4)
    with pytest.raises(DatasetError, match=r"dataset 'mine': infinite values in columns bad;"):
        table_dataset("mine", frame, labels, TableParams(test_fraction=0.5), 0, CARD)
    huge = pd.DataFrame({"ok": np.arange(8.0), "huge": [1e300, *np.arange(7.0)]})
    with pytest.raises(DatasetError, match=r"NaN or infinite values left after preprocessing"):
        table_dataset("mine", huge, labels, TableParams(test_fraction=0.5), 0, CARD)


@st.composite
def messy_tables(draw: st.DrawFn) -> tuple[pd.DataFrame, pd.Series]:
    rows = draw(st.integers(8, 40))
    numeric = draw(st.integers(0, 3))
    categorical = draw(st.integers(0 if numeric else 1, 3))
    columns: dict[str, object] = {}
    for i in range(numeric):
        values = draw(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=rows,
                               max_size=rows))  # fmt: skip
        columns[f"n{i}"] = pd.Series(values, dtype=float)
    for i in range(categorical):
        values = draw(st.lists(st.one_of(st.none(), st.sampled_from("abc")), min_size=rows,
                               max_size=rows))  # fmt: skip
        columns[f"c{i}"] = pd.Series(values, dtype="category")
    labels = pd.Series(["p", "q"] * (rows // 2) + ["p"] * (rows % 2))
    return pd.DataFrame(columns), labels


@settings(max_examples=40, deadline=None)
@given(messy_tables(), st.sampled_from(["missing_category", "most_frequent"]))
def test_any_messy_table_becomes_finite_features_mapped_to_their_columns(
    table: tuple[pd.DataFrame, pd.Series], categorical: str
) -> None:
    frame, labels = table
    params = TableParams(test_fraction=0.5, impute_categorical=categorical)  # type: ignore[arg-type]
    try:
        data = table_dataset("messy", frame, labels, params, 0, CARD)
    except DatasetError as error:  # only when nothing usable is left
        assert "every feature column is constant or empty" in str(error)
        return
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
    assert data.x_train.shape[1] == data.n_features == len(data.feature_names)
    assert set(data.columns) <= set(frame.columns)
    widths = data.per_column(np.ones(data.n_features))
    assert (widths >= 1).all() and widths.sum() == data.n_features
    for column, width in zip(data.columns, widths, strict=True):
        if column.startswith("n"):
            assert width == 1


@pytest.mark.parametrize(("name", "shape", "classes"), [
    ("breast_cancer", 30, 2), ("wine", 13, 3), ("iris", 4, 3),
])  # fmt: skip
def test_bundled_tables_load_offline(name: str, shape: int, classes: int) -> None:
    data = dataset_registry.get(name)().load(0)
    assert data.n_features == shape and data.n_classes == classes
    assert set(np.unique(data.y_test)) == set(range(classes))  # stratified


PLANTED_SUITE = """
name = "planted"
seeds = [0, 1]
metrics = ["accuracy", "spearman_gt"]
[execution]
explain_rows = 50
[[datasets]]
name = "planted"
params = {{ source = "breast_cancer", function = "{function}", n_relevant = 4 }}
[[models]]
name = "mlp"
params = {{ epochs = 30 }}
[[explainers]]
name = "oracle"
[[explainers]]
name = "inverted"
"""


@pytest.mark.parametrize("function", ["sparse_logistic", "interaction", "threshold"])
def test_planted_truth_on_breast_cancer_gives_the_oracle_a_perfect_spearman(
    tmp_path: Path, function: str
) -> None:
    run_suite(parse_suite(PLANTED_SUITE.format(function=function)), tmp_path)
    scores = load_results(tmp_path).query("metric == 'spearman_gt'")
    oracle = scores[scores["explainer"] == "oracle"]["value"]
    assert oracle.tolist() == pytest.approx([1.0, 1.0])
    assert (scores[scores["explainer"] == "inverted"]["value"] < 0).all()


def test_planted_labels_are_reproducible_per_seed_and_follow_the_function() -> None:
    source = dataset_registry.get("planted")(source="breast_cancer", n_relevant=3)
    first, again, other = source.load(0), source.load(0), source.load(1)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.y_train, other.y_train)  # the seed changes split and draw
    np.testing.assert_array_equal(first.ground_truth.importance, other.ground_truth.importance)
    relevant = np.flatnonzero(first.ground_truth.importance)
    assert len(relevant) == 3
    # the label depends on the planted columns: a logistic fit on them beats chance clearly
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    fit = make_pipeline(StandardScaler(), LogisticRegression())
    fit.fit(first.x_train[:, relevant], first.y_train)
    assert fit.score(first.x_test[:, relevant], first.y_test) > 0.75


def test_planted_columns_by_name_with_a_did_you_mean() -> None:
    source = dataset_registry.get("planted")(columns=["mean radius", "worst area"])
    data = source.load(0)
    names = [data.feature_names[i] for i in np.flatnonzero(data.ground_truth.importance)]
    assert names == ["mean radius", "worst area"]
    # refused when the parameters are validated, before anything loads
    with pytest.raises(
        ValidationError, match=r"no column 'mean radios'; did you mean 'mean radius'"
    ):
        dataset_registry.get("planted")(columns=["mean radios"])


def test_planted_on_openml_reports_truth_per_original_column(openml_cache: Path) -> None:
    source = dataset_registry.get("planted")(
        source="openml", source_params={"data_id": 2, "cache_dir": str(openml_cache)},
        columns=["family", "carbon"],
    )  # fmt: skip
    data = source.load(0)
    per_column = data.per_column(data.ground_truth.importance)
    assert set(np.asarray(data.columns)[per_column > 0]) == {"family", "carbon"}
