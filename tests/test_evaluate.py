"""``harness.evaluate``: a model and data in memory give the scores of the equivalent
suite run — a suite that loads the same model from its own file (a state dict with its
factory, an XGBoost file) and the same data from the dataset's own registry entry — and
bad input raises one HarnessError with a one-line message before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import harness
from harness.datasets import dataset_registry
from harness.errors import HarnessError
from harness.runner import run_suite
from harness.store import load_results
from tests.suite_builder import suite as suite_text

#: the columns that identify a score apart from the suite's ids
KEY = ["explainer", "seed", "metric"]
#: the synthetic table of the tabular tests, and the controls evaluate adds
TABLE = {"n_samples": 400, "n_features": 8, "n_informative": 3}
CONTROLS = ["oracle", "random"]


def _scores(frame: pd.DataFrame) -> pd.DataFrame:
    """Non-timing scores, keyed by explainer, seed and metric."""
    timing = frame["metric"].isin(["explain_seconds", "train_seconds"])
    kept = frame.loc[~timing, [*KEY, "value", "status", "conventions_hash"]]
    return kept.sort_values(KEY).reset_index(drop=True)


def _suite_scores(tmp_path: Path, text: str) -> pd.DataFrame:
    path = tmp_path / "suite" / "equivalent.toml"
    path.parent.mkdir()
    path.write_text(text)
    summary = run_suite(path, tmp_path / "suite_out", cache=False)
    assert summary.counts["failed"] == 0
    return _scores(load_results(tmp_path / "suite_out", summary.run_id))


def build_mlp(features: int = 8) -> nn.Module:
    """The test MLP's factory (read by the equivalent suite's ``given`` model)."""
    return nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, 2))


def _trained_mlp(x: np.ndarray, y: np.ndarray) -> nn.Module:
    torch.manual_seed(0)
    net = build_mlp(x.shape[1])
    optimiser = torch.optim.Adam(net.parameters(), 1e-2)
    inputs, labels = torch.tensor(x), torch.tensor(y)
    for _ in range(60):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(inputs), labels).backward()
        optimiser.step()
    return net.eval()


@pytest.fixture(scope="module")
def table() -> harness.datasets.Dataset:
    source = dataset_registry.get("synthetic_tabular")
    return source(**TABLE).load(0)


def test_torch_mlp_equals_the_suite(tmp_path: Path, table) -> None:
    net = _trained_mlp(table.x_train, table.y_train)
    torch.save(net.state_dict(), tmp_path / "mlp.pt")
    metrics = ["accuracy", "spearman_gt", "topk_precision_gt", "deletion_auc", "explain_seconds"]
    result = harness.evaluate(
        net,
        table.x_test,
        table.y_test,
        x_train=table.x_train,
        y_train=table.y_train,
        importance=table.ground_truth.importance,
        explainers=[harness.explainer("integrated_gradients", n_steps=16), "saliency"],
        metrics=metrics,
        seeds=[0, 1],
        out=tmp_path / "evaluated",
        progress=False,
    )
    evaluated = _scores(result.frame)
    suite = _suite_scores(
        tmp_path,
        suite_text(
            "equivalent",
            seeds=[0, 1],
            metrics=metrics,
            execution={"explain_rows": len(table.x_test), "data_seed": 0},
            datasets=[("synthetic_tabular", TABLE)],
            models=[("given", {"path": str(tmp_path / "mlp.pt"), "format": "state_dict",
                               "factory": "tests.test_evaluate:build_mlp"})],
            explainers=[("integrated_gradients", {"n_steps": 16}), "saliency", *CONTROLS],
        ),
    )  # fmt: skip
    assert len(evaluated) == 4 * 2 * 4  # explainers (2 + oracle + random) × seeds × metrics
    assert (evaluated["status"] == "ok").all()
    pd.testing.assert_frame_equal(evaluated, suite, check_exact=True)


def test_xgboost_equals_the_suite(tmp_path: Path, table) -> None:
    xgboost = pytest.importorskip("xgboost")
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3, random_state=0)
    model.fit(table.x_train, table.y_train)
    model.get_booster().save_model(tmp_path / "trees.json")
    metrics = ["accuracy", "spearman_gt", "kendall_gt", "explain_seconds"]
    result = harness.evaluate(
        model,
        table.x_test,
        table.y_test,
        x_train=table.x_train,
        y_train=table.y_train,
        importance=table.ground_truth.importance,
        explainers=["shap_tree"],
        metrics=metrics,
        seeds=[3],
        progress=False,
    )
    suite = _suite_scores(
        tmp_path,
        suite_text(
            "equivalent",
            seeds=[3],
            metrics=metrics,
            execution={"explain_rows": len(table.x_test), "data_seed": 0},
            datasets=[("synthetic_tabular", TABLE)],
            models=[("given", {"path": str(tmp_path / "trees.json")})],
            explainers=["shap_tree", *CONTROLS],
        ),
    )
    evaluated = _scores(result.frame)
    assert (evaluated["status"] == "ok").all() and len(evaluated) == 3 * 3
    pd.testing.assert_frame_equal(evaluated, suite, check_exact=True)


@pytest.mark.slow
def test_torchvision_resnet_on_lesions_equals_the_suite(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    lesions = dataset_registry.get("synthetic_lesions")(n_images=48, size=64, channels=3).load(0)
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(num_classes=2).eval()
    torch.save(resnet.state_dict(), tmp_path / "resnet.pt")
    metrics = ["accuracy", "pointing_game", "relevance_mass_accuracy", "deletion_auc"]
    result = harness.evaluate(
        resnet,
        torch.tensor(lesions.x_test),  # tensors are taken as they are
        torch.tensor(lesions.y_test),
        x_train=lesions.x_train,
        y_train=lesions.y_train,
        masks=lesions.ground_truth.masks,
        explainers=["grad_cam", "saliency"],
        metrics=metrics,
        seeds=[0],
        out=tmp_path / "evaluated",
        progress=False,
    )
    assert result.frame.query("metric == 'pointing_game'")["status"].eq("ok").all()
    suite = _suite_scores(
        tmp_path,
        suite_text(
            "equivalent",
            seeds=[0],
            metrics=metrics,
            execution={"explain_rows": len(lesions.x_test), "data_seed": 0},
            datasets=[("synthetic_lesions", {"n_images": 48, "size": 64, "channels": 3})],
            models=[("given", {"path": str(tmp_path / "resnet.pt"), "format": "state_dict",
                               "factory": "torchvision.models:resnet18",
                               "factory_args": {"num_classes": 2},
                               "traits": ["convolutional"], "cam_layer": "layer4"})],
            explainers=["grad_cam", "saliency", *CONTROLS],
        ),
    )  # fmt: skip
    pd.testing.assert_frame_equal(_scores(result.frame), suite, check_exact=True)


def test_a_second_evaluation_reuses_the_inputs_and_the_cached_model(tmp_path: Path, table) -> None:
    net = _trained_mlp(table.x_train, table.y_train)
    kwargs = dict(explainers=["saliency"], controls=False, out=tmp_path, progress=False)
    first = harness.evaluate(net, table.x_test, table.y_test, **kwargs)
    second = harness.evaluate(net, table.x_test, table.y_test, **kwargs)
    assert first.run_id != second.run_id
    assert len(list((tmp_path / "inputs").iterdir())) == 1  # keyed by content
    pd.testing.assert_frame_equal(_scores(first.frame), _scores(second.frame))
    with torch.no_grad():
        net[0].weight[0, 0] += 1.0  # other weights: other content, other folder
    harness.evaluate(net, table.x_test, table.y_test, **kwargs)
    assert len(list((tmp_path / "inputs").iterdir())) == 2


def test_a_stored_evaluation_works_from_the_command_line(tmp_path: Path, table) -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    net = _trained_mlp(table.x_train, table.y_train)
    claim = {
        "id": "saliency_ranks",
        "source": "test",
        "text": "saliency finds the informative features",
        "kind": "value",
        "metric": "topk_precision_gt",
        "select": {"explainer": "saliency"},
        "value": 0.5,
    }
    result = harness.evaluate(
        net,
        pd.DataFrame(table.x_test, columns=[f"f{i}" for i in range(8)]),
        table.y_test,
        importance=table.ground_truth.importance,
        explainers=["saliency"],
        seeds=[0, 1, 2],
        claims=[claim],
        out=tmp_path,
        progress=False,
    )
    runner = CliRunner()
    shown = runner.invoke(app, ["show", result.run_id, "--out", str(tmp_path)])
    assert shown.exit_code == 0 and "saliency" in shown.output
    suite = next((tmp_path / "inputs").iterdir()) / "suite.toml"
    checked = runner.invoke(app, ["check", str(suite), "--out", str(tmp_path)])
    assert "saliency_ranks" in checked.output
    verdicts = result.check()
    assert [o.claim.id for o in verdicts.outcomes] == ["saliency_ranks"]
    assert (verdicts.frame["verdict"] == "holds").tolist() == [checked.exit_code == 0]
    rescored = runner.invoke(
        app, ["rescore", result.run_id, "--metric", "kendall_gt", "--out", str(tmp_path)]
    )
    assert rescored.exit_code == 0, rescored.output


def test_results_render_in_a_notebook_and_a_terminal(tmp_path: Path, table) -> None:
    net = _trained_mlp(table.x_train, table.y_train)
    result = harness.evaluate(
        net,
        table.x_test,
        table.y_test,
        importance=table.ground_truth.importance,
        explainers=["saliency"],
        seeds=[0, 1],
        progress=False,
    )
    board = result.leaderboard()
    html = board._repr_html_()
    assert '<table class="leaderboard">' in html and "saliency" in html
    assert "spearman_gt ↑" in str(board) and "±" in str(board)
    expected = harness.leaderboard(result.out_dir, result.run_id)
    pd.testing.assert_frame_equal(board.frame, expected)
    assert "oracle" in result._repr_html_()
    figures = result.figures(["metric"])
    assert figures and all(type(f).__name__ == "Figure" for f in figures)
    report = result.report(tmp_path / "report")
    assert report.is_file() and "saliency" in report.read_text()
    folder = result.out_dir
    del result  # a run kept in memory lives in a temporary folder as long as its Results
    import gc

    gc.collect()
    assert not folder.exists()


@pytest.fixture(scope="module")
def small() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    return {"x": x, "y": (x[:, 0] > 0).astype(np.int64)}


def _one_line_error(call) -> str:
    with pytest.raises(HarnessError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message
    error = caught.value  # no chained traceback from torch or numpy beneath it
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    return message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"y": np.zeros(39, dtype=int)}, "x has 40 rows but its labels have 39"),
        ({"model": "not a model"}, "model is a str, which evaluate cannot score"),
        ({"model": nn.Linear(5, 2)}, "the model does not take x's rows (4,)"),
        ({"model": nn.Linear(4, 1, bias=False).requires_grad_(False)}, None),
        ({"x_nan": True}, "x_test has NaN or infinite values in 1 rows"),
        ({"importance": np.ones(3)}, "importance has shape (3,); give one value per feature"),
        ({"explainers": ["integrated_gradient"]}, "unknown explainer 'integrated_gradient'"),
        ({"metrics": ["spearman"]}, "unknown metric 'spearman'"),
    ],
)
def test_bad_input_is_one_line_before_anything_runs(
    tmp_path: Path, small: dict[str, np.ndarray], change: dict, expected: str | None
) -> None:
    torch.manual_seed(0)
    arguments = {"model": nn.Linear(4, 2), "x": small["x"].copy(), "y": small["y"]}
    arguments |= {k: v for k, v in change.items() if k != "x_nan"}
    if change.get("x_nan"):
        arguments["x"][3, 1] = np.nan
    model, x, y = arguments.pop("model"), arguments.pop("x"), arguments.pop("y")
    message = _one_line_error(
        lambda: harness.evaluate(model, x, y, out=tmp_path, progress=False, **arguments)
    )
    if expected is None:  # one output for two classes
        expected = "the model returns (2, 1) for 2 rows"
        assert "model" in message
    assert expected in message
    assert not (tmp_path / "harness.sqlite").exists()  # nothing ran, nothing stored


def test_image_masks_of_another_size_are_refused(tmp_path: Path) -> None:
    images = np.zeros((6, 1, 16, 16), dtype=np.float32)
    network = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    message = _one_line_error(
        lambda: harness.evaluate(
            network, images, np.arange(6) % 2, masks=np.ones((6, 8, 8), bool), out=tmp_path
        )
    )
    assert "masks have shape (6, 8, 8); give one (height, width) mask per test image" in message


def test_an_unknown_explainer_parameter_is_named() -> None:
    message = _one_line_error(lambda: harness.explainer("integrated_gradients", steps=3))
    assert message.startswith("explainer 'integrated_gradients': steps:")


def test_boxes_become_masks() -> None:
    from harness.evaluation import box_masks

    masks = box_masks([[(1, 2, 3, 4)], []], np.zeros((2, 1, 6, 6)))
    expected = np.zeros((2, 6, 6), bool)
    expected[0, 2:4, 1:3] = True
    np.testing.assert_array_equal(masks, expected)
    with pytest.raises(HarnessError, match="has no area"):
        box_masks([[(3, 2, 1, 4)]], np.zeros((1, 1, 6, 6)))


def test_labels_as_strings_name_the_classes(tmp_path: Path, small: dict[str, np.ndarray]) -> None:
    labels = np.where(small["y"] == 1, "sick", "healthy")
    torch.manual_seed(0)
    result = harness.evaluate(
        nn.Linear(4, 2), small["x"], labels, explainers=["saliency"], out=tmp_path, progress=False
    )
    with np.load(next((tmp_path / "inputs").iterdir()) / "data.npz") as data:
        assert data["class_names"].tolist() == ["healthy", "sick"]
        np.testing.assert_array_equal(data["y_test"], small["y"])
    assert (result.frame["status"] == "ok").all()
