"""``given``: models trained elsewhere, loaded through each supported format, scored as
given (no training), refused when their inputs do not fit — and never unpickled."""

from __future__ import annotations

import copy
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from harness import load_results, run_suite
from harness.datasets import dataset_registry
from harness.models import model_registry
from harness.suite import load_suite
from tests.suite_builder import suite

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")

CPU = torch.device("cpu")
SEED = 0
DATA = {"n_samples": 600, "n_features": 6, "n_informative": 3}


def build_network(n_features: int, width: int = 16) -> nn.Module:
    """The user's own architecture (the factory a state dict is loaded into)."""
    return nn.Sequential(nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, 2))


@pytest.fixture(scope="module")
def dataset():
    return dataset_registry.get("synthetic_tabular")(**DATA).load(seed=SEED)


@pytest.fixture(scope="module")
def trained(dataset):
    """A network trained by 'the user' on standardised inputs, with its scaler's values."""
    torch.manual_seed(0)
    network = build_network(6)
    mean, std = dataset.x_train.mean(axis=0), dataset.x_train.std(axis=0)
    x = torch.as_tensor((dataset.x_train - mean) / std, dtype=torch.float32)
    y = torch.as_tensor(dataset.y_train)
    optimiser = torch.optim.Adam(network.parameters(), lr=1e-2)
    for _ in range(100):
        optimiser.zero_grad()
        nn.functional.cross_entropy(network(x), y).backward()
        optimiser.step()
    network.eval()
    return network, mean, std


def _expected(trained, x: np.ndarray) -> np.ndarray:
    network, mean, std = trained
    with torch.no_grad():
        logits = network(torch.as_tensor((x - mean) / std, dtype=torch.float32))
    return torch.softmax(logits, dim=1).numpy()


def _save(fmt: str, network: nn.Module, folder: Path) -> tuple[Path, dict]:
    """The network saved in ``fmt``; the given recipe's parameters to load it back."""
    example = torch.zeros(4, 6)
    if fmt == "torch_export":
        program = torch.export.export(network, (example,),
                                      dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
        torch.export.save(program, folder / "model.pt2")
        return folder / "model.pt2", {}
    if fmt == "torchscript":
        torch.jit.save(torch.jit.script(network), folder / "model.ts.pt")
        return folder / "model.ts.pt", {"format": "torchscript"}
    torch.save(network.state_dict(), folder / "weights.pt")
    factory = {"factory": "tests.test_given_models:build_network",
               "factory_args": {"n_features": 6}}  # fmt: skip
    return folder / "weights.pt", factory


def _given(path: Path, **params):
    return model_registry.get("given")(path=str(path), **params)


@pytest.mark.parametrize("fmt", ["torch_export", "torchscript", "state_dict"])
def test_a_torch_model_gives_the_same_predictions_after_loading(fmt, trained, dataset, tmp_path):
    network, mean, std = trained
    path, params = _save(fmt, network, tmp_path)
    scaler = {"preprocessing": "standardize", "mean": mean.tolist(), "std": std.tolist()}
    model = _given(path, **params, **scaler).fit(dataset, SEED, CPU)
    expected = _expected(trained, dataset.x_test)
    np.testing.assert_allclose(model.predict_proba(dataset.x_test), expected, atol=1e-6)
    assert model.given and model.train_seconds == 0.0 and model.differentiable
    assert (model.predict(dataset.x_test) == dataset.y_test).mean() > 0.8
    # the harness does not standardise again: without the declared scaler it differs
    raw = _given(path, **params).fit(dataset, SEED, CPU)
    assert np.abs(raw.predict_proba(dataset.x_test) - expected).max() > 1e-3


def test_declared_probabilities_become_logits(trained, dataset, tmp_path):
    network, mean, std = trained
    with_softmax = nn.Sequential(network, nn.Softmax(dim=1))
    torch.save(with_softmax.state_dict(), tmp_path / "w.pt")
    params = {"factory": "tests.test_given_models:softmax_network", "output": "probabilities",
              "preprocessing": "standardize", "mean": mean.tolist(),
              "std": std.tolist()}  # fmt: skip
    model = _given(tmp_path / "w.pt", **params).fit(dataset, SEED, CPU)
    np.testing.assert_allclose(
        model.predict_proba(dataset.x_test), _expected(trained, dataset.x_test), atol=1e-5
    )


def softmax_network() -> nn.Module:
    return nn.Sequential(build_network(6), nn.Softmax(dim=1))


@pytest.mark.parametrize("fmt", ["torch_export", "torchscript", "state_dict"])
def test_a_model_for_other_inputs_is_refused_naming_both_shapes(fmt, trained, tmp_path):
    path, params = _save(fmt, trained[0], tmp_path)
    seven = dataset_registry.get("synthetic_tabular")(**{**DATA, "n_features": 7}).load(seed=0)
    with pytest.raises(ValueError) as refused:
        _given(path, **params).fit(seven, SEED, CPU)
    message = str(refused.value)
    assert "(rows, 7)" in message and str(path) in message
    if fmt == "torch_export":  # the program declares its shape: named before any call
        assert "takes inputs (rows, 6)" in message


def test_an_export_with_a_fixed_batch_is_refused_with_the_fix(trained, dataset, tmp_path):
    program = torch.export.export(trained[0], (torch.zeros(4, 6),))
    torch.export.save(program, tmp_path / "fixed.pt2")
    with pytest.raises(ValueError, match=r"exactly 4 rows; export with a dynamic batch"):
        _given(tmp_path / "fixed.pt2").fit(dataset, SEED, CPU)


class _Evil:
    """A pickle that creates a file when it is unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.parametrize(
    ("name", "params"),
    [("model.pt2", {}), ("model.pt", {"format": "torchscript"}),
     ("model.pt", {"factory": "tests.test_given_models:build_network",
                   "factory_args": {"n_features": 6}}),
     ("model.skops", {}), ("model.json", {}), ("model.txt", {})],
)  # fmt: skip
def test_a_pickle_where_a_model_file_is_expected_is_refused_unloaded(name, params, dataset,
                                                                     tmp_path):  # fmt: skip
    marker = tmp_path / "the pickle ran"
    (tmp_path / name).write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(ValueError, match=str(tmp_path / name)):
        _given(tmp_path / name, **params).fit(dataset, SEED, CPU)
    assert not marker.exists()


def test_a_pickled_member_inside_an_export_archive_is_refused_unloaded(trained, dataset,
                                                                      tmp_path):  # fmt: skip
    """torch.export.load unpickles members marked use_pickle with weights_only=False:
    the harness checks them first."""
    path, _ = _save("torch_export", trained[0], tmp_path)
    marker = tmp_path / "the pickle ran"
    buffer = io.BytesIO()
    torch.save(_Evil(marker), buffer)
    evil = tmp_path / "evil.pt2"
    with zipfile.ZipFile(path) as original, zipfile.ZipFile(evil, "w") as forged:
        for item in original.infolist():
            data = original.read(item)
            if item.filename.endswith("data/weights/weight_0"):
                data = buffer.getvalue()
            if item.filename.endswith("model_weights_config.json"):
                config = json.loads(data)
                for entry in config["config"].values():
                    if entry["path_name"] == "weight_0":
                        entry["use_pickle"] = True
                data = json.dumps(config).encode()
            forged.writestr(item, data)
    with pytest.raises(ValueError, match=r"refused, member .*weight_0 is not plain tensors"):
        _given(evil).fit(dataset, SEED, CPU)
    assert not marker.exists()


def test_given_tree_ensembles_load_from_their_own_formats(dataset, tmp_path):
    import lightgbm
    import skops.io
    import xgboost
    from sklearn.ensemble import HistGradientBoostingClassifier

    x, y = dataset.x_train, dataset.y_train
    booster = xgboost.XGBClassifier(n_estimators=10).fit(x, y)
    booster.save_model(tmp_path / "x.json")
    light = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(x, y)
    light.booster_.save_model(tmp_path / "l.txt")
    forest = HistGradientBoostingClassifier(max_iter=10).fit(x, y)
    skops.io.dump(forest, tmp_path / "h.skops")
    for file, reference in (("x.json", booster), ("l.txt", light), ("h.skops", forest)):
        recipe = _given(tmp_path / file)
        assert recipe.model_traits() == {"tree_ensemble"} and not recipe.has_gradients()
        model = recipe.fit(dataset, SEED, CPU)
        np.testing.assert_allclose(
            model.predict_proba(dataset.x_test), reference.predict_proba(dataset.x_test),
            atol=1e-6,
        )  # fmt: skip
    seven = dataset_registry.get("synthetic_tabular")(**{**DATA, "n_features": 7}).load(seed=0)
    with pytest.raises(ValueError, match=r"takes \(rows, 6\); dataset .* gives \(rows, 7\)"):
        _given(tmp_path / "x.json").fit(seven, SEED, CPU)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"path": "m.bin"}, "cannot tell the format of m.bin"),
     ({"path": "m.json", "preprocessing": "standardize"}, "is not a torch network"),
     ({"path": "m.pt2", "trusted_types": ["x.y"]}, "trusted_types applies to skops"),
     ({"path": "m.pt2", "format": "state_dict"}, "state_dict' and factory go together"),
     ({"path": "m.pt2", "traits": ["round"]}, "unknown trait 'round'"),
     ({"path": "m.pt2", "mean": [0.0]}, "give mean and std together")],
)  # fmt: skip
def test_inconsistent_parameters_are_refused(params, message, tmp_path):
    for name in ("m.bin", "m.json", "m.pt2"):
        (tmp_path / name).write_bytes(b"x")
    params = {**params, "path": str(tmp_path / params["path"])}
    with pytest.raises(ValueError, match=message):
        model_registry.get("given")(**params)


@pytest.mark.slow
def test_a_suite_over_a_given_model_trains_nothing(trained, tmp_path):
    path, _ = _save("torch_export", trained[0], tmp_path)
    network, mean, std = trained
    given = {"path": path.name, "preprocessing": "standardize", "mean": mean.tolist(),
             "std": std.tolist()}  # fmt: skip
    text = suite("given", datasets=[("synthetic_tabular", DATA)], models=[("given", given)],
                 explainers=["integrated_gradients", "feature_ablation", "oracle"],
                 metrics=["accuracy", "train_seconds", "spearman_gt"], seeds=[SEED])  # fmt: skip
    (tmp_path / "suite.toml").write_text(text)
    cache = tmp_path / "cache"
    summary = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "out", cache_dir=cache)
    assert summary.counts == {"ok": 3, "failed": 0, "skipped": 0}, summary.failures
    assert summary.stage_seconds["train"] == 0.0
    scores = load_results(tmp_path / "out")
    seconds = scores[scores.metric == "train_seconds"]
    assert (seconds.value == 0.0).all() and seconds.note.str.startswith("given").all()
    accuracy = scores[scores.metric == "accuracy"].value.iloc[0]
    dataset = dataset_registry.get("synthetic_tabular")(**DATA).load(seed=SEED)
    expected = (_expected(trained, dataset.x_test).argmax(axis=1) == dataset.y_test).mean()
    assert accuracy == pytest.approx(expected)
    again = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "out", cache_dir=cache)
    assert again.reused == {"models": 0, "explanations": 3}  # keyed by the file's content
    path.write_bytes(path.read_bytes())  # the same content: still reused
    other = copy.deepcopy(network)
    other.apply(lambda m: isinstance(m, nn.Linear) and m.weight.data.mul_(1.01))
    _save("torch_export", other, tmp_path)  # another model in the same file
    changed = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "out", cache_dir=cache)
    assert changed.reused == {"models": 0, "explanations": 0}
