"""Tree-ensemble recipes, their non-pickle storage, ``shap_tree`` against shap's own
TreeExplainer and KernelSHAP, and captum's feature ablation on a model that is not torch."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation
from scipy.stats import spearmanr

from harness.datasets import dataset_registry
from harness.explainers import ExplainContext, explainer_registry
from harness.explainers.shap_methods import sample_rows
from harness.models import model_registry
from harness.models.estimators import PROBABILITY_FLOOR, SklearnEstimator
from harness.runner.cache import ResultCache
from harness.runner.plan import cell_skip_reason
from harness.suite import Resolved

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import shap

CPU = torch.device("cpu")
SEED = 4
RECIPES = ("random_forest", "hist_gradient_boosting", "xgboost", "lightgbm")


@pytest.fixture(scope="module")
def dataset():
    return dataset_registry.get("synthetic_tabular")(n_samples=800, n_features=8).load(seed=SEED)


@pytest.fixture(scope="module")
def three_classes():
    source = dataset_registry.get("synthetic_tabular")(n_samples=900, n_features=6, n_classes=3)
    return source.load(seed=SEED)


def fit(name: str, dataset, seed: int = SEED, **params):
    return model_registry.get(name)(n_estimators=params.pop("n_estimators", 30), **params).fit(
        dataset, seed, CPU
    )


@pytest.mark.parametrize("name", RECIPES)
def test_recipes_are_seeded_accurate_and_round_trip_without_pickle(name, dataset, tmp_path):
    model = fit(name, dataset)
    again = fit(name, dataset)
    probabilities = model.predict_proba(dataset.x_test)
    np.testing.assert_array_equal(probabilities, again.predict_proba(dataset.x_test))
    assert probabilities.shape == (len(dataset.x_test), 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (model.predict(dataset.x_test) == dataset.y_test).mean() > 0.7
    assert not model.differentiable and model.estimator is not None
    # stored in the library's own format and read back through the recipe
    path = tmp_path / f"model{model.estimator.suffix}"
    model.estimator.save(path)
    assert path.read_bytes()[:2] != b"\x80\x04"  # not a pickle
    loaded = model_registry.get(name)().load_fitted(path)
    np.testing.assert_allclose(loaded.predict_proba(dataset.x_test), probabilities, atol=1e-7)


def test_a_forest_differs_across_seeds(dataset):
    first = fit("random_forest", dataset, seed=0).predict_proba(dataset.x_test)
    second = fit("random_forest", dataset, seed=1).predict_proba(dataset.x_test)
    assert not np.array_equal(first, second)


def test_the_estimator_logits_are_log_probabilities(dataset):
    model = fit("random_forest", dataset)
    probabilities = model.predict_proba(dataset.x_test)
    logits = model.logits(dataset.x_test)
    np.testing.assert_allclose(logits, np.log(np.maximum(probabilities, PROBABILITY_FLOOR)),
                               rtol=1e-6)  # fmt: skip
    np.testing.assert_array_equal(model.predict(dataset.x_test), probabilities.argmax(axis=1))


def _resolved(component, id_: str):
    return Resolved(id=id_, component=component)


@pytest.mark.parametrize("explainer", ["integrated_gradients", "saliency", "shap_deep"])
def test_gradient_explainers_are_skipped_on_trees_with_the_reason(explainer):
    source = _resolved(dataset_registry.get("synthetic_tabular")(), "syn")
    recipe = _resolved(model_registry.get("xgboost")(), "xgb")
    method = _resolved(explainer_registry.get(explainer)(), explainer)
    reason = cell_skip_reason(source, recipe, method)
    assert reason == f"explainer '{explainer}' needs gradients; model 'xgb' has none"


def test_shap_tree_is_skipped_on_torch_models():
    source = _resolved(dataset_registry.get("synthetic_tabular")(), "syn")
    recipe = _resolved(model_registry.get("mlp")(), "mlp")
    method = _resolved(explainer_registry.get("shap_tree")(), "shap_tree")
    assert "needs a model that is a tree ensemble" in cell_skip_reason(source, recipe, method)


def _explain(name: str, model, dataset, rows: np.ndarray, targets: np.ndarray, **params):
    context = ExplainContext(dataset, SEED, rows)
    explainer = explainer_registry.get(name)(**params)
    return explainer.explain(model, dataset.x_test[rows], targets, context)


@pytest.mark.filterwarnings("ignore:LightGBM binary classifier:UserWarning")
@pytest.mark.parametrize("name", RECIPES)
def test_shap_tree_equals_a_direct_tree_explainer_call(name, dataset):
    model = fit(name, dataset)
    rows = np.arange(12)
    targets = np.arange(12) % 2  # both classes
    ours = _explain("shap_tree", model, dataset, rows, targets).local
    direct = np.asarray(
        shap.TreeExplainer(model.estimator.native).shap_values(dataset.x_test[rows])
    )
    if direct.ndim == 2:  # one output (class 1): class 0's values are its negation
        expected = np.where(targets[:, None] == 1, direct, -direct)
    else:
        expected = direct[np.arange(12), :, targets]
    assert np.abs(ours - expected).max() == 0.0


def test_shap_tree_interventional_probability_equals_shap_with_the_seeded_background(dataset):
    model = fit("xgboost", dataset)
    rows = np.arange(8)
    targets = np.ones(8, dtype=np.int64)
    params = {"feature_perturbation": "interventional", "output": "probability",
              "background_size": 40}  # fmt: skip
    ours = _explain("shap_tree", model, dataset, rows, targets, **params).local
    background = sample_rows(dataset.x_train, 40, SEED)
    explainer = shap.TreeExplainer(model.estimator.native, data=background,
                                   feature_perturbation="interventional",
                                   model_output="probability")  # fmt: skip
    assert np.abs(ours - explainer.shap_values(dataset.x_test[rows])).max() == 0.0
    # additive: the values add up to P(class 1) − its mean over the background
    probability = model.predict_proba(dataset.x_test[rows])[:, 1]
    baseline = model.predict_proba(background)[:, 1].mean()
    np.testing.assert_allclose(ours.sum(axis=1), probability - baseline, atol=1e-5)


def test_shap_tree_multiclass(three_classes):
    model = fit("lightgbm", three_classes)
    rows = np.arange(9)
    targets = np.arange(9) % 3
    ours = _explain("shap_tree", model, three_classes, rows, targets).local
    direct = np.asarray(shap.TreeExplainer(model.estimator.native).shap_values(
        three_classes.x_test[rows]))  # fmt: skip
    assert np.abs(ours - direct[np.arange(9), :, targets]).max() == 0.0
    with pytest.raises(ValueError, match=r"two classes only.*use output = 'raw'"):
        _explain("shap_tree", model, three_classes, rows, targets,
                 feature_perturbation="interventional", output="probability")  # fmt: skip


def test_probability_output_needs_a_background():
    with pytest.raises(ValueError, match="needs feature_perturbation = 'interventional'"):
        explainer_registry.get("shap_tree")(output="probability")


def test_shap_tree_agrees_with_kernel_shap_on_global_importance(dataset):
    """Spearman ρ of global importance (mean |φ| per feature, 40 rows, class 1 probability
    of a 30-tree forest) between exact TreeSHAP (interventional, 50 background rows) and
    KernelSHAP (its k-means background of 50, 2,000 samples): measured 0.98 here."""
    model = fit("random_forest", dataset)
    rows = np.arange(40)
    targets = np.ones(40, dtype=np.int64)
    tree = _explain("shap_tree", model, dataset, rows, targets,
                    feature_perturbation="interventional", background_size=50)  # fmt: skip
    kernel = _explain("shap_kernel", model, dataset, rows, targets, nsamples=2000)
    rho = spearmanr(tree.global_importance, kernel.global_importance).statistic
    print(f"Spearman rho of global importance, TreeSHAP vs KernelSHAP: {rho:.3f}")
    assert rho >= 0.9, rho


def test_feature_ablation_on_trees_equals_captum_with_a_forward_function(dataset):
    model = fit("hist_gradient_boosting", dataset)
    rows = np.arange(10)
    targets = model.predict(dataset.x_test[rows])
    ours = _explain("feature_ablation", model, dataset, rows, targets).local

    def log_probability(x: torch.Tensor) -> torch.Tensor:
        p = model.estimator.predict_proba(x.numpy())
        return torch.from_numpy(np.log(np.maximum(p, PROBABILITY_FLOOR)))

    expected = FeatureAblation(log_probability).attribute(
        torch.as_tensor(dataset.x_test[rows]), target=torch.as_tensor(targets), baselines=0.0
    )
    np.testing.assert_allclose(ours, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(ours).sum() > 0


def test_a_damaged_stored_tree_model_is_recomputed(dataset, tmp_path: Path):
    from harness.runner.plan import Cell

    recipe = model_registry.get("xgboost")(n_estimators=10)
    cell = Cell(_resolved(dataset_registry.get("synthetic_tabular")(n_samples=800, n_features=8),
                          "syn"),
                _resolved(recipe, "xgb"), _resolved(explainer_registry.get("random")(), "random"),
                SEED)  # fmt: skip
    cache = ResultCache(tmp_path)
    model = recipe.fit(dataset, SEED, CPU)
    key = cache.model_key(cell, dataset, CPU, by_design=False)
    cache.save_model(key, model, model.predict_proba(dataset.x_test))
    no_network = lambda: None  # noqa: E731 (a tree ensemble builds no network)
    loaded = cache.load_model(key, cell, dataset, CPU, untrained=no_network)
    assert loaded is not None and loaded[0].estimator is not None
    np.testing.assert_array_equal(loaded[0].predict(dataset.x_test), model.predict(dataset.x_test))
    (stored,) = tmp_path.rglob("estimator.json")
    stored.write_text('{"learner": "damaged"}')
    assert cache.load_model(key, cell, dataset, CPU, untrained=no_network) is None
    assert cache.discarded == 1


def test_skops_refuses_untrusted_types_and_pickles(dataset, tmp_path: Path):
    import pickle

    import skops.io
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from harness.models.estimators import SklearnEstimator as Sk

    pipeline = make_pipeline(FunctionTransformer(shift), RandomForestClassifier(5, random_state=0))
    pipeline.fit(dataset.x_train, dataset.y_train)
    skops.io.dump(pipeline, tmp_path / "p.skops")
    with pytest.raises(ValueError, match=r"not trusted: tests\.test_tree_models\.shift.*trusted"):
        Sk.load(tmp_path / "p.skops")
    trusted = Sk.load(tmp_path / "p.skops", trusted=["tests.test_tree_models.shift"])
    assert trusted.n_features == 8
    marker = tmp_path / "ran"
    (tmp_path / "evil.skops").write_bytes(pickle.dumps(_Evil(str(marker))))
    with pytest.raises(ValueError, match="not a skops file"):
        SklearnEstimator.load(tmp_path / "evil.skops")
    assert not marker.exists()


def shift(x: np.ndarray) -> np.ndarray:
    """A user's own function in a pipeline: a type skops does not trust by default."""
    return x + 1.0


class _Evil:
    """A pickle that would create a file when unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_a_missing_optional_package_is_named_with_the_install_command(dataset, monkeypatch):
    from harness.errors import MissingPackageError

    monkeypatch.setitem(sys.modules, "xgboost", None)  # as if it were not installed
    with pytest.raises(MissingPackageError, match=r"model recipe 'xgboost' needs the Python "
                       r"package 'xgboost'.*pip install xgboost"):  # fmt: skip
        fit("xgboost", dataset)


def test_shaps_additivity_failure_on_very_deep_trees_says_what_to_do():
    """shap#4042: exact TreeSHAP of a forest of very deep trees (unbounded depth on many
    one-hot columns) fails shap's own additivity check; the cell says so and how to avoid
    it, instead of storing values that do not add up."""
    from harness.datasets.base import Dataset, DatasetCard, GroundTruth

    rng = np.random.default_rng(0)
    rows = 480
    x = np.column_stack([rng.normal(size=(rows, 4)), np.eye(rows)[rng.permutation(rows)]])
    y = (x[:, 0] > 0).astype(np.int64)
    names = [f"f{i}" for i in range(x.shape[1])]
    data = Dataset(name="sparse", modality="tabular", x_train=x.astype(np.float32), y_train=y,
                   x_test=x[:20].astype(np.float32), y_test=y[:20], feature_names=names,
                   class_names=["0", "1"], card=DatasetCard("test", "-", "-", "-"),
                   ground_truth=GroundTruth(None, None))  # fmt: skip
    model = fit("random_forest", data, n_estimators=200)
    with pytest.raises(ValueError, match=r"additivity check.*shap#4042.*max_depth"):
        _explain("shap_tree", model, data, np.arange(20), np.ones(20, dtype=np.int64))
    shallow = fit("random_forest", data, n_estimators=200, max_depth=8)
    values = _explain("shap_tree", shallow, data, np.arange(20), np.ones(20, dtype=np.int64))
    assert values.is_finite()


def test_a_booster_that_cannot_be_written_is_a_cache_error(dataset, tmp_path: Path, monkeypatch):
    """The boosters raise their own errors when a file cannot be written (a full disk, a
    missing folder); the cache turns them into its one-line CacheError like any other."""
    from harness.runner.cache import CacheError
    from harness.runner.plan import Cell

    recipe = model_registry.get("lightgbm")(n_estimators=5)
    model = recipe.fit(dataset, SEED, CPU)
    with pytest.raises(OSError, match="cannot write"):
        model.estimator.save(tmp_path / "no such folder" / "model.txt")
    source = dataset_registry.get("synthetic_tabular")(n_samples=800, n_features=8)
    cell = Cell(_resolved(source, "syn"), _resolved(recipe, "lgb"),
                _resolved(explainer_registry.get("random")(), "random"), SEED)  # fmt: skip
    cache = ResultCache(tmp_path / "cache")
    original = type(model.estimator).save

    def full_disk(self, path):
        original(self, tmp_path / "no such folder" / "model.txt")

    monkeypatch.setattr(type(model.estimator), "save", full_disk)
    with pytest.raises(CacheError, match="cannot write to the cache"):
        cache.save_model(cache.model_key(cell, dataset, CPU, False), model,
                         model.predict_proba(dataset.x_test))  # fmt: skip
