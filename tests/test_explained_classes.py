"""Which class is explained (prediction, label, class:K, every class), which explained
images are scored (all, predicted positive, correct by both), and the validation split."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness import load_results, run_suite
from harness.datasets import dataset_registry
from harness.datasets.base import with_validation_split
from harness.explainers import Explanation
from harness.runner.scoring import CellProducts, scored_images
from harness.store import ResultsStore
from harness.suite import ExecutionOptions, SuiteError, parse_suite
from tests.suite_builder import suite

LESIONS = ("synthetic_lesions", {"n_images": 120, "size": 32})
CNN = ("small_cnn", {"channels": [4, 8], "epochs": 2})


def _run(tmp_path: Path, explainers, metrics=("pointing_game",), **execution):
    text = suite("classes", datasets=[LESIONS], models=[CNN], explainers=explainers,
                 metrics=metrics, execution={"explain_rows": 10, **execution})  # fmt: skip
    summary = run_suite(parse_suite(text), tmp_path)
    with ResultsStore(tmp_path, create=False) as store:
        arrays = {cell: store.cell_arrays(summary.run_id, cell)
                  for cell in store.cell_statuses(summary.run_id)}  # fmt: skip
    return summary, arrays


def test_class_k_explains_that_class_for_every_image_and_all_classes_alongside(tmp_path):
    summary, arrays = _run(tmp_path, ["softcam"], target="class:1", explain_classes="all")
    assert summary.counts["ok"] == 1
    (stored,) = arrays.values()
    assert (stored["targets"] == 1).all()
    per_class = stored["explanation.per_class"]
    assert per_class.shape == (10, 2, 32, 32)
    np.testing.assert_allclose(per_class[:, 1], stored["explanation.local"], rtol=1e-6)
    assert not np.allclose(per_class[:, 0], per_class[:, 1])


def test_a_class_the_dataset_lacks_fails_the_cell_naming_the_classes(tmp_path):
    summary, _ = _run(tmp_path, ["random"], target="class:5")
    assert summary.counts["failed"] == 1
    (message,) = [why for _, why in summary.failures]
    assert "class:5" in message and "2 classes" in message


def _products(predictions, twin=None, design=None, rows=4):
    return CellProducts(
        rows=np.arange(rows), targets=np.ones(rows, dtype=int),
        test_predictions=np.asarray(predictions),
        explanation=Explanation(local=np.zeros((rows, 2))),
        explain_seconds=0.0, train_seconds=0.0,
        twin_test_predictions=None if twin is None else np.asarray(twin),
        design_test_predictions=None if design is None else np.asarray(design),
    )  # fmt: skip


def test_scored_images_by_hand() -> None:
    data = dataset_registry.get("synthetic_lesions")(n_images=40, size=32).load(0)
    y = data.y_test[:4]
    right, wrong = y, 1 - y
    mixed = np.where(np.arange(4) < 2, right, wrong)
    both = ExecutionOptions(select_images="correct_by_both")
    np.testing.assert_array_equal(
        scored_images(_products(right, twin=mixed), data, both), [True, True, False, False]
    )
    np.testing.assert_array_equal(  # a post-hoc cell pairs with the design reference
        scored_images(_products(mixed, design=right), data, both), [True, True, False, False]
    )
    with pytest.raises(ValueError, match="no partner predictions"):
        scored_images(_products(right), data, both)
    positive = ExecutionOptions(select_images="predicted_positive", target="class:1")
    np.testing.assert_array_equal(
        scored_images(_products([1, 0, 1, 1]), data, positive), [True, False, True, True]
    )


def test_correct_by_both_is_recorded_and_uses_the_design_model(tmp_path):
    summary, arrays = _run(
        tmp_path, [("softcam", {}, "dense"), "grad_cam"],
        metrics=["accuracy", "pointing_game"], select_images="correct_by_both",
    )  # fmt: skip
    assert summary.counts["ok"] == 2
    design = next(a for cell, a in arrays.items() if "/dense/" in cell)
    posthoc = next(a for cell, a in arrays.items() if "/grad_cam/" in cell)
    np.testing.assert_array_equal(posthoc["design_test_predictions"], design["test_predictions"])
    scores = load_results(tmp_path).set_index(["explainer", "metric"])
    conventions = scores["conventions"].map(json.loads)
    assert conventions[("grad_cam", "pointing_game")]["images"] == "correct_by_both"
    assert "images" not in conventions[("grad_cam", "accuracy")]  # the whole test split


@pytest.mark.parametrize(
    ("execution", "explainers", "message"),
    [
        ({"select_images": "predicted_positive"}, ["random"], "needs target = 'class:K'"),
        ({"select_images": "correct_by_both"}, ["random"], "needs a by-design explainer"),
        ({"design_reference": "dens"}, [("softcam", {}, "dense")], "did you mean 'dense'"),
        ({"target": "class:x"}, ["random"], "execution.target"),
        ({"validation_fraction": 1.5}, ["random"], "validation_fraction"),
    ],
)
def test_selection_options_are_validated(execution, explainers, message) -> None:
    text = suite("bad", datasets=[LESIONS], models=[CNN], explainers=explainers,
                 execution=execution)  # fmt: skip
    with pytest.raises(SuiteError, match=message):
        parse_suite(text)


def test_validation_split_is_held_out_of_training() -> None:
    data = dataset_registry.get("synthetic_lesions")(n_images=80, size=32).load(0)
    split = with_validation_split(data, 0.25, seed=3)
    assert len(split.x_val) == 15 and len(split.x_train) == len(data.x_train) - 15
    np.testing.assert_array_equal(split.x_test, data.x_test)
    assert np.bincount(split.y_val).min() >= 7  # stratified
    rows = {r.tobytes() for r in split.x_train} & {r.tobytes() for r in split.x_val}
    assert not rows
    again = with_validation_split(data, 0.25, seed=3)
    np.testing.assert_array_equal(again.y_val, split.y_val)


def test_validation_scores_for_model_selection(tmp_path):
    metrics = [{"name": "accuracy", "id": "val_accuracy", "params": {"split": "validation"}},
               {"name": "gain_over_twin", "params": {"score": "accuracy", "split": "validation"}},
               {"name": "roc_auc", "params": {"split": "validation"}}]  # fmt: skip
    summary, arrays = _run(tmp_path, ["softcam"], metrics=metrics, validation_fraction=0.25)
    assert summary.counts["ok"] == 1
    (stored,) = arrays.values()
    assert stored["validation_probabilities"].shape == (len(_validation_labels()), 2)
    scores = load_results(tmp_path).set_index("metric")["value"]
    accuracy = scores["val_accuracy"]
    twin_predictions = stored["twin_validation_probabilities"].argmax(1)
    assert 0 <= accuracy <= 1
    assert scores["gain_over_twin"] == pytest.approx(
        100 * (accuracy - np.mean(twin_predictions == _validation_labels()))
    )


def _validation_labels() -> np.ndarray:
    data = dataset_registry.get("synthetic_lesions")(n_images=120, size=32).load(0)
    return with_validation_split(data, 0.25, seed=0).y_val


def test_without_a_validation_split_validation_scores_say_so(tmp_path):
    metrics = [{"name": "accuracy", "params": {"split": "validation"}}]
    _run(tmp_path, ["random"], metrics=metrics)
    row = load_results(tmp_path).iloc[0]
    assert math.isnan(row["value"]) and "validation_fraction" in row["note"]


TABLE = ("synthetic_tabular", {"n_samples": 300, "n_features": 6, "n_informative": 3})
MLP = ("mlp", {"hidden": [8], "epochs": 3})


def _explains(explainers: str) -> str:
    return suite("explains", datasets=[TABLE], models=[MLP], explainers=[],
                 metrics=["accuracy"]) + explainers  # fmt: skip


def test_a_post_hoc_explainer_can_explain_the_by_design_model(tmp_path):
    text = _explains(
        '[[explainers]]\nname = "scores_activation"\n'
        '[[explainers]]\nname = "saliency"\n'
        '[[explainers]]\nname = "saliency"\nid = "saliency_on_sa"\nexplains = "scores_activation"\n'
    )
    summary = run_suite(parse_suite(text), tmp_path)
    assert summary.counts["ok"] == 3
    with ResultsStore(tmp_path, create=False) as store:
        arrays = {c.split("/")[2]: store.cell_arrays(summary.run_id, c)
                  for c in store.cell_statuses(summary.run_id)}  # fmt: skip
    np.testing.assert_array_equal(  # the by-design model's predictions, not the twin's
        arrays["saliency_on_sa"]["test_probabilities"],
        arrays["scores_activation"]["test_probabilities"],
    )
    assert not np.allclose(
        arrays["saliency_on_sa"]["explanation.local"], arrays["saliency"]["explanation.local"]
    )
    config = parse_suite(text).resolved_config()
    assert config["explainers"][2]["explains"] == "scores_activation"


@pytest.mark.parametrize(
    ("explainers", "message"),
    [
        ('[[explainers]]\nname = "saliency"\nexplains = "scores_activatoin"\n'
         '[[explainers]]\nname = "scores_activation"\n', "did you mean 'scores_activation'"),
        ('[[explainers]]\nname = "scores_activation"\nexplains = "scores_activation"\n',
         "is by design; it explains its own model"),
    ],
)  # fmt: skip
def test_explains_must_name_a_by_design_explainer(explainers: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        parse_suite(_explains(explainers))
