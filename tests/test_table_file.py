"""``table_file``: the four real clinical tables of ../shared, and the errors a user meets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.datasets import dataset_registry
from harness.datasets.table_file import cleaned_column
from harness.datasets.tables import DatasetError
from harness.suite import SuiteError, parse_suite
from tests.conftest import cli
from tests.suite_builder import suite

MEDICAL = Path(__file__).resolve().parents[1].parent / "shared/data/medical"
ZEROS_MEAN_MISSING = ["Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"]
TABLES = {
    "heart_disease_uci.csv": {"target": "num", "drop": ["id"], "positive_above": 0},
    "heart_failure_clinical_records.csv": {"target": "DEATH_EVENT", "drop": ["time"]},
    "diabetes.csv": {"target": "Outcome",
                     "missing_values": {c: [0] for c in ZEROS_MEAN_MISSING}},
    "thyroidDF.csv": {"target": "target", "drop": ["patient_id"]},
}  # fmt: skip


def load(path: Path, **params):
    return dataset_registry.get("table_file")(path=path, **params).load(0)


@pytest.fixture
def medical() -> Path:
    if not MEDICAL.is_dir():
        pytest.skip(f"needs the shared medical tables at {MEDICAL} (present in CI)")
    return MEDICAL


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_real_clinical_table_loads(medical: Path, name: str) -> None:
    """Rows, classes and columns against the file read directly with pandas: every
    labelled row of a class with at least 2 rows; every column but the target and the
    dropped ones, each grouping its one-hot features."""
    params = TABLES[name]
    data = load(medical / name, **params)
    assert np.isfinite(data.x_train).all() and np.isfinite(data.x_test).all()
    frame = pd.read_csv(medical / name)
    labels = frame[params["target"]].dropna()
    if "positive_above" in params:
        labels = labels > params["positive_above"]
    counts = labels.astype(str).value_counts()
    assert len(data.x_train) + len(data.x_test) == counts[counts >= 2].sum()
    assert data.n_classes == (counts >= 2).sum()
    dropped = set(params.get("drop", []))
    assert set(data.columns) == set(frame.columns) - dropped - {params["target"]}
    grouping = np.asarray(data.column_of_feature)
    assert sorted(set(grouping)) == list(range(len(data.columns)))
    assert len(grouping) == data.n_features


def test_the_mess_is_cleaned(medical: Path) -> None:
    failure = load(medical / "heart_failure_clinical_records.csv", target="DEATH_EVENT")
    platelets = failure.feature_names.index("platelets")  # "265,000" read as a number
    assert failure.x_train[:, platelets].max() > 100_000
    heart = load(medical / "heart_disease_uci.csv", **TABLES["heart_disease_uci.csv"])
    assert heart.class_names == ["negative", "positive"]  # num > 0
    assert "fbs" in heart.feature_names  # TRUE/FALSE became one 0/1 feature, not one-hot
    assert set(np.unique(heart.x_train[:, heart.feature_names.index("fbs")])) <= {0.0, 1.0} | {
        float(np.median(heart.x_train[:, heart.feature_names.index("fbs")]))
    }
    diabetes = load(medical / "diabetes.csv", **TABLES["diabetes.csv"])
    glucose = diabetes.x_train[:, diabetes.feature_names.index("Glucose")]
    assert glucose.min() > 0  # the zeros were missing values, imputed with the median


def test_importance_is_ground_truth_per_column(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    rows = ["a,b,colour,y"] + [f"{i % 7},{i % 3},{'red' if i % 2 else 'blue'},{i % 2}"
                               for i in range(40)]  # fmt: skip
    path.write_text("\n".join(rows) + "\n")
    data = load(path, target="y", importance={"a": 1.0, "colour": 2.0})
    np.testing.assert_allclose(data.per_column(data.ground_truth.importance), [1.0, 0.0, 2.0])


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        ("a,label\n1,0\n2,1\n", {"target": "lable"},
         r"target: 'lable' is not a column of t\.csv; did you mean 'label'"),
        ("a,y\n1,0\n2,1\n", {"target": "y", "drop": ["b"]}, "drop: 'b' is not a column"),
        ("a,y\n1,0\n2,x\n3,1\n", {"target": "y", "positive_above": 0},
         r"t\.csv line 3: target 'y' = 'x' is not a number"),
        ('a,y\n1,0\n"2,1\n', {"target": "y"}, r"t\.csv: cannot read the table"),
    ],
)  # fmt: skip
def test_problems_name_the_file_and_the_line_or_column(tmp_path, text, params, message) -> None:
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        load(path, **params)


def test_a_missing_file_is_refused_when_the_suite_is_validated(tmp_path: Path) -> None:
    text = suite("table", datasets=[("table_file", {"path": "nowhere.csv", "target": "y"})],
                 models=["mlp"], explainers=["saliency"])  # fmt: skip
    (tmp_path / "somewhere.csv").write_text("y\n1\n")
    with pytest.raises(SuiteError) as raised:
        parse_suite(text, path=tmp_path / "suite.toml")
    assert (
        f"params.path: no file nowhere.csv in {tmp_path} (relative paths are read beside the "
        "suite file); did you mean 'somewhere.csv'?"
    ) in str(raised.value)


def test_planted_labels_on_a_table_file_beside_the_suite(tmp_path: Path) -> None:
    """Regression: a planted source's relative path was resolved against the working
    folder at load time, not beside the suite (the cell failed: 'Path does not point to
    a file')."""
    from harness import load_results, run_suite

    rows = ["age,bmi,smoker,y"] + [f"{20 + i % 50},{18 + (i * 7) % 20},{'yes' if i % 3 else 'no'},"
                                   f"{i % 2}" for i in range(120)]  # fmt: skip
    (tmp_path / "patients.csv").write_text("\n".join(rows) + "\n")
    planted = {"source": "table_file", "columns": ["bmi"],
               "source_params": {"path": "patients.csv", "target": "y"}}  # fmt: skip
    text = suite("planted_table", datasets=[("planted", planted)],
                 models=[("mlp", {"hidden": [8], "epochs": 3})], explainers=["oracle"],
                 metrics=["spearman_gt"])  # fmt: skip
    (tmp_path / "suite.toml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    import os

    from harness.suite import load_suite

    previous = os.getcwd()
    os.chdir(elsewhere)  # the run starts from another folder
    try:
        summary = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "out")
    finally:
        os.chdir(previous)
    assert summary.counts["ok"] == 1, summary.failures
    truth = load_results(tmp_path / "out")
    assert truth["value"].iloc[0] == pytest.approx(1.0)  # the oracle names the planted column


@pytest.mark.slow
def test_trees_and_an_mlp_on_a_real_clinical_table(medical: Path, tmp_path: Path) -> None:
    """Issue 17's acceptance: mlp, hist_gradient_boosting and xgboost on a real table,
    model-agnostic explainers, shap_tree, feature ablation and the controls: no cell
    fails; gradient explainers on trees are skipped, saying why."""
    from harness import load_results, run_suite
    from harness.suite import load_suite

    table = {"path": str(medical / "heart_failure_clinical_records.csv"),
             **TABLES["heart_failure_clinical_records.csv"]}  # fmt: skip
    fast = {"nsamples": 200, "background_size": 10}
    text = suite(
        "clinical_trees", datasets=[("table_file", table, "heart_failure")],
        models=[("mlp", {"hidden": [16], "epochs": 20}),
                ("hist_gradient_boosting", {"n_estimators": 50}),
                ("xgboost", {"n_estimators": 50})],
        explainers=[("shap_kernel", fast), ("shap_permutation", {"max_evals": 200}),
                    ("lime_tabular", {"num_samples": 300}), "shap_tree", "feature_ablation",
                    "integrated_gradients", "random", "constant"],
        metrics=["accuracy", "roc_auc", "deletion_auc", "explain_seconds"],
        execution={"explain_rows": 20},
    )  # fmt: skip
    (tmp_path / "suite.toml").write_text(text)
    summary = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "out")
    assert summary.counts == {"ok": 21, "failed": 0, "skipped": 3}, summary.failures
    scores = load_results(tmp_path / "out")
    skipped = scores[scores.status == "skipped"]
    assert set(skipped.explainer) == {"integrated_gradients", "shap_tree"}
    reasons = set(skipped.note)
    for model in ("hist_gradient_boosting", "xgboost"):
        assert (f"cell skipped: explainer 'integrated_gradients' needs gradients; model "
                f"'{model}' has none") in reasons  # fmt: skip
    assert skipped[skipped.explainer == "shap_tree"].model.tolist() == ["mlp"] * 4
    ok = scores[scores.status == "ok"]
    assert ok.value.notna().all(), ok[ok.value.isna()][["model", "explainer", "metric", "note"]]


@given(st.lists(st.integers(-(10**9), 10**9), min_size=1, max_size=30))
def test_numbers_with_and_without_thousands_separators_are_read_back(numbers) -> None:
    """Regression: a column mixing "1,058" with "527" (no separator below 1,000) stayed
    text and was one-hot encoded — one feature per distinct value."""
    column = pd.Series([f"{n:,}" for n in numbers] + ["1,000"], dtype=object)
    np.testing.assert_array_equal(cleaned_column(column).to_numpy(), [*numbers, 1000])


def test_text_that_only_looks_numeric_stays_text() -> None:
    for values in (["1,2", "3,4", "1,000"], ["12,34", "1,000"], ["1,000", "n/a"]):
        column = pd.Series(values, dtype=object)
        assert cleaned_column(column).tolist() == values


def test_a_wrong_target_column_is_an_error_at_validate(tmp_path: Path) -> None:
    (tmp_path / "heart.csv").write_text(
        "age,DEATH_EVENT,time\n" + "".join(f"{50 + i},{i % 2},{i}\n" for i in range(40))
    )
    suite = tmp_path / "heart.toml"
    suite.write_text(
        'name = "heart"\nseeds = [0]\nmetrics = ["accuracy"]\n'
        '[[datasets]]\nname = "table_file"\n'
        'params = { path = "heart.csv", target = "death_event", drop = ["tme"] }\n'
        '[[models]]\nname = "mlp"\n'
        '[[explainers]]\nname = "random"\n'
    )
    result = cli("validate", str(suite))
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, errors  # both named columns
    assert errors[0].endswith(
        "datasets[0].params.target: 'death_event' is not a column of heart.csv; did you "
        "mean 'DEATH_EVENT'? Columns: age, DEATH_EVENT, time"
    )
    drop = "datasets[0].params.drop: 'tme' is not a column of heart.csv; did you mean 'time'?"
    assert drop in errors[1]
