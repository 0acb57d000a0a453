"""Every explainer wrapper against a direct call of its library (same settings, seed, class).

Two standard small models: an MLP on synthetic_tabular (16 features, 5 relevant) and
small_cnn on 16×16 digits. Targets are the predictions, and for the methods that choose
the class themselves also the *other* class, to check the class selection.
"""

from __future__ import annotations

import warnings
from collections import namedtuple

import numpy as np
import pytest
import torch
from captum.attr import (
    DeepLift,
    FeatureAblation,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Saliency,
)
from lime.lime_image import LimeImageExplainer
from lime.lime_tabular import LimeTabularExplainer
from lime.wrappers.scikit_image import SegmentationAlgorithm
from torchvision.transforms.functional import gaussian_blur

from harness.datasets import dataset_registry
from harness.explainers import ExplainContext, Explanation, explainer_registry
from harness.explainers.captum_methods import patch_mask
from harness.explainers.shap_methods import numpy_global_seed, sample_rows
from harness.models import model_registry

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import shap

CPU = torch.device("cpu")
SEED = 3
Setting = namedtuple("Setting", "dataset model inputs targets context")


def _setting(dataset, model, n_rows: int) -> Setting:
    rows = np.arange(n_rows)
    inputs = dataset.x_test[rows]
    return Setting(
        dataset, model, inputs, model.predict(inputs), ExplainContext(dataset, SEED, rows)
    )


@pytest.fixture(scope="module")
def tabular() -> Setting:
    dataset = dataset_registry.get("synthetic_tabular")(n_samples=600).load(seed=SEED)
    model = model_registry.get("mlp")(hidden=[16, 16], epochs=5).fit(dataset, SEED, CPU)
    return _setting(dataset, model, 6)


@pytest.fixture(scope="module")
def trees() -> Setting:
    """The tabular setting's dataset with a small XGBoost model (for tree explainers)."""
    dataset = dataset_registry.get("synthetic_tabular")(n_samples=600).load(seed=SEED)
    model = model_registry.get("xgboost")(n_estimators=20).fit(dataset, SEED, CPU)
    return _setting(dataset, model, 6)


@pytest.fixture(scope="module")
def image() -> Setting:
    dataset = dataset_registry.get("digits")(size=16).load(seed=SEED)
    model = model_registry.get("small_cnn")(channels=[8, 16], epochs=2).fit(dataset, SEED, CPU)
    return _setting(dataset, model, 4)


def explain(name: str, s: Setting, targets: np.ndarray | None = None, **params) -> Explanation:
    chosen = s.targets if targets is None else targets
    return explainer_registry.get(name)(**params).explain(s.model, s.inputs, chosen, s.context)


def tensors(s: Setting, targets: np.ndarray | None = None):
    return torch.tensor(s.inputs), torch.tensor(s.targets if targets is None else targets)


def other_class(s: Setting) -> np.ndarray:
    return (s.targets + 1) % s.dataset.n_classes


def pooled(a: torch.Tensor) -> np.ndarray:
    return a.detach().abs().sum(dim=1).numpy()


# --- captum -------------------------------------------------------------------------


@pytest.mark.parametrize("baseline", ["zero", "train_mean"])
def test_integrated_gradients_tabular(tabular: Setting, baseline: str) -> None:
    x, t = tensors(tabular)
    rows = tabular.dataset.x_train.astype(np.float64)  # the mean row, summed in float64
    mean = rows.mean(0, keepdims=True).astype(np.float32)
    reference = 0.0 if baseline == "zero" else torch.tensor(mean)
    direct = IntegratedGradients(tabular.model.module).attribute(
        x, baselines=reference, target=t, n_steps=24
    )
    ours = explain("integrated_gradients", tabular, n_steps=24, baseline=baseline)
    np.testing.assert_array_equal(ours.local, direct.detach().numpy())
    assert ours.signed and ours.channel_pooling is None


def test_integrated_gradients_image_blur_baseline(image: Setting) -> None:
    x, t = tensors(image)
    blurred = gaussian_blur(x, kernel_size=[7, 7], sigma=[1.0, 1.0])  # 2·ceil(3σ) + 1
    direct = IntegratedGradients(image.model.module).attribute(
        x, baselines=blurred, target=t, n_steps=16
    )
    ours = explain("integrated_gradients", image, n_steps=16, baseline="blur", blur_sigma=1.0)
    np.testing.assert_array_equal(ours.local, pooled(direct))
    assert ours.channel_pooling == "sum_abs"


def test_integrated_gradients_rejects_blur_on_tables(tabular: Setting) -> None:
    with pytest.raises(ValueError, match="baseline 'blur' needs images"):
        explain("integrated_gradients", tabular, baseline="blur")


@pytest.mark.parametrize("fixture", ["tabular", "image"])
@pytest.mark.parametrize(
    ("name", "method", "kwargs"),
    [
        ("saliency", Saliency, {"abs": True}),
        ("input_x_gradient", InputXGradient, {}),
        ("guided_backprop", GuidedBackprop, {}),
        ("deeplift", DeepLift, {"baselines": 0.0}),
    ],
)
def test_gradient_methods(request, fixture: str, name: str, method, kwargs) -> None:
    s: Setting = request.getfixturevalue(fixture)
    for targets in (s.targets, other_class(s)):
        x, t = tensors(s, targets)
        direct = method(s.model.module).attribute(x, target=t, **kwargs)
        expected = pooled(direct) if fixture == "image" else direct.detach().numpy()
        np.testing.assert_array_equal(explain(name, s, targets).local, expected)


def test_feature_ablation_tabular_and_image_patches(tabular: Setting, image: Setting) -> None:
    x, t = tensors(tabular)
    direct = FeatureAblation(tabular.model.module).attribute(
        x, target=t, baselines=0.0, perturbations_per_eval=16
    )
    np.testing.assert_array_equal(explain("feature_ablation", tabular).local, direct.numpy())
    x, t = tensors(image)
    mask = patch_mask((16, 16), 4)
    assert mask.shape == (1, 1, 16, 16) and int(mask.max()) == 15 and int(mask[0, 0, 5, 9]) == 6
    direct = FeatureAblation(image.model.module).attribute(
        x, target=t, baselines=0.0, feature_mask=mask, perturbations_per_eval=16
    )
    np.testing.assert_array_equal(explain("feature_ablation", image).local, pooled(direct))


@pytest.mark.parametrize("relu", [True, False])
def test_grad_cam(image: Setting, relu: bool) -> None:
    x, t = tensors(image)
    module = image.model.module
    maps = LayerGradCam(module, module.features).attribute(x, target=t, relu_attributions=relu)
    direct = LayerAttribution.interpolate(maps, (16, 16), interpolate_mode="bilinear")[:, 0]
    ours = explain("grad_cam", image, relu=relu)
    np.testing.assert_array_equal(ours.local, direct.detach().numpy())
    assert ours.signed is not relu
    # the recipe's feature map is found automatically; a named layer works too
    named = explain("grad_cam", image, relu=relu, layer="features.4")
    np.testing.assert_array_equal(named.local, ours.local)


# --- shap ---------------------------------------------------------------------------


@pytest.mark.parametrize("background", ["kmeans", "sample"])
def test_shap_kernel(tabular: Setting, background: str) -> None:
    x_train = tabular.dataset.x_train
    data = shap.kmeans(x_train, 10) if background == "kmeans" else sample_rows(x_train, 10, SEED)
    explainer = shap.KernelExplainer(tabular.model.predict_proba, data)
    rows = np.arange(len(tabular.inputs))
    for l1_reg in (False, "num_features(3)"):
        np.random.seed(SEED)
        direct = explainer.shap_values(tabular.inputs, nsamples=300, l1_reg=l1_reg, silent=True)
        ours = explain("shap_kernel", tabular, background=background, background_size=10,
                       nsamples=300, l1_reg=l1_reg)  # fmt: skip
        expected = direct[rows, :, tabular.targets]
        np.testing.assert_allclose(ours.local, expected, rtol=1e-6, atol=1e-9)


def test_shap_kernel_keeps_every_feature_by_default(tabular: Setting) -> None:
    """shap's own default, num_features(10), zeroes features whenever it is set: with
    l1_reg = 'num_features(3)' at most 3 values per row are non-zero; by default none is
    forced to 0 (regression: the README said it applied only to small samples)."""
    selected = explain("shap_kernel", tabular, background_size=10, nsamples=300,
                       l1_reg="num_features(3)").local  # fmt: skip
    assert ((selected != 0).sum(axis=1) <= 3).all()
    kept = explain("shap_kernel", tabular, background_size=10, nsamples=300).local
    assert tabular.inputs.shape[1] > 3 and (kept != 0).all()


def test_shap_permutation(tabular: Setting) -> None:
    background = sample_rows(tabular.dataset.x_train, 30, SEED)
    masker = shap.maskers.Independent(background, max_samples=30)
    direct = shap.PermutationExplainer(tabular.model.predict_proba, masker, seed=SEED)(
        tabular.inputs, max_evals=200, silent=True
    )
    rows = np.arange(len(tabular.inputs))
    for targets in (tabular.targets, other_class(tabular)):
        ours = explain("shap_permutation", tabular, targets, background_size=30, max_evals=200)
        np.testing.assert_allclose(ours.local, direct.values[rows, :, targets], rtol=1e-6)


@pytest.mark.parametrize("fixture", ["tabular", "image"])
def test_shap_deep_explains_the_requested_class(request, fixture: str) -> None:
    s: Setting = request.getfixturevalue(fixture)
    background = torch.tensor(sample_rows(s.dataset.x_train, 20, SEED))
    everything = shap.DeepExplainer(s.model.module, background).shap_values(torch.tensor(s.inputs))
    rows = np.arange(len(s.inputs))
    for targets in (s.targets, other_class(s)):  # ranked_outputs path, then all outputs
        expected = everything[rows, ..., targets]
        if fixture == "image":
            expected = np.abs(expected).sum(axis=1)
        ours = explain("shap_deep", s, targets, background_size=20)
        np.testing.assert_allclose(ours.local, expected, rtol=1e-5, atol=1e-6)


def test_shap_deep_checks_additivity_itself(tabular: Setting) -> None:
    values = explain("shap_deep", tabular, background_size=20).local
    logits = tabular.model.logits(tabular.inputs)
    background = sample_rows(tabular.dataset.x_train, 20, SEED)
    expected = (
        logits[np.arange(6), tabular.targets]
        - tabular.model.logits(background).mean(0)[tabular.targets]
    )
    np.testing.assert_allclose(values.sum(axis=1), expected, atol=1e-4)


@pytest.mark.parametrize("fixture", ["tabular", "image"])
def test_shap_gradient(request, fixture: str) -> None:
    s: Setting = request.getfixturevalue(fixture)
    background = torch.tensor(sample_rows(s.dataset.x_train, 20, SEED))
    explainer = shap.GradientExplainer(s.model.module, background)
    rows = np.arange(len(s.inputs))
    for targets in (s.targets, other_class(s)):
        values = explainer.shap_values(torch.tensor(s.inputs), nsamples=30, rseed=SEED)
        expected = values[rows, ..., targets]
        if fixture == "image":
            expected = np.abs(expected).sum(axis=1)
        ours = explain("shap_gradient", s, targets, background_size=20, nsamples=30)
        np.testing.assert_allclose(ours.local, expected, rtol=1e-5, atol=1e-7)


# --- lime ---------------------------------------------------------------------------


def test_lime_tabular(tabular: Setting) -> None:
    dataset = tabular.dataset
    explainer = LimeTabularExplainer(
        dataset.x_train, mode="classification", feature_names=dataset.feature_names,
        random_state=SEED,
    )  # fmt: skip
    for targets in (tabular.targets, other_class(tabular)):
        explainer.random_state.seed(SEED)  # a fresh explainer per call in the wrapper
        expected = np.zeros(tabular.inputs.shape)
        for i, (row, target) in enumerate(zip(tabular.inputs, targets, strict=True)):
            weights = explainer.explain_instance(
                row, tabular.model.predict_proba, labels=(int(target),), num_features=16,
                num_samples=400,
            ).as_map()[int(target)]  # fmt: skip
            for feature, weight in weights:
                expected[i, feature] = weight
        ours = explain("lime_tabular", tabular, targets, num_samples=400)
        np.testing.assert_allclose(ours.local, expected, rtol=1e-9)


def test_lime_image(image: Setting) -> None:
    explainer = LimeImageExplainer(random_state=SEED)
    segmenter = SegmentationAlgorithm(
        "quickshift", kernel_size=4, max_dist=200, ratio=0.2, random_seed=SEED
    )

    def classify(images: np.ndarray) -> np.ndarray:
        return image.model.predict_proba(np.transpose(images, (0, 3, 1, 2))[:, :1])

    ours = explain("lime_image", image, num_samples=60)
    for i, (picture, target) in enumerate(zip(image.inputs, image.targets, strict=True)):
        result = explainer.explain_instance(
            picture[0].astype(np.float64), classify, labels=(int(target),), top_labels=None,
            num_samples=60, batch_size=256, segmentation_fn=segmenter, random_seed=SEED,
        )  # fmt: skip
        weights = dict(result.local_exp[int(target)])
        expected = np.vectorize(lambda s, w=weights: w.get(s, 0.0))(result.segments)
        np.testing.assert_allclose(ours.local[i], expected, rtol=1e-5, atol=1e-9)  # float32 model


# --- every explainer: deterministic per seed, right shape, finite ----------------------

FAST = {
    "lime_tabular": {"num_samples": 300},
    "lime_image": {"num_samples": 40},
    "shap_kernel": {"nsamples": 100, "background_size": 5},
    "shap_permutation": {"max_evals": 100, "background_size": 10},
    "shap_gradient": {"nsamples": 20, "background_size": 10},
    "shap_deep": {"background_size": 10},
}


def _cases():
    for name in explainer_registry.names():
        cls = explainer_registry.get(name)
        for modality in sorted(cls.modalities):
            if modality == "image" and cls.needs_ground_truth.get("image"):
                continue  # digits has no masks; the mask controls are tested in test_controls
            yield pytest.param(name, modality, id=f"{name}-{modality}")


def _by_design(name: str, s: Setting) -> Setting:
    """The setting with the model trained by the by-design explainer itself."""
    if s.dataset.modality == "image":
        recipe = model_registry.get("small_cnn")(channels=[8, 16], epochs=1)
    else:
        recipe = model_registry.get("mlp")(hidden=[16, 16], epochs=2)
    model = explainer_registry.get(name)().fit_model(recipe, s.dataset, SEED, CPU)
    return s._replace(model=model)


def _on_a_vit(s: Setting) -> Setting:
    """The setting with a small vision transformer (for the attention explainers)."""
    recipe = model_registry.get("vit")(patch_size=4, embed_dim=16, depth=1, heads=2, epochs=1)
    return s._replace(model=recipe.fit(s.dataset, SEED, CPU))


@pytest.mark.parametrize(("name", "modality"), list(_cases()))
def test_same_seed_gives_identical_attributions(request, name: str, modality: str) -> None:
    needs_trees = "tree_ensemble" in explainer_registry.get(name).requires_traits
    s: Setting = request.getfixturevalue("trees" if needs_trees else modality)
    if "tokens" in explainer_registry.get(name).requires_traits:
        s = _on_a_vit(s)
    by_design = explainer_registry.get(name).by_design
    first = explain(name, _by_design(name, s) if by_design else s, **FAST.get(name, {}))
    np.random.random(10)  # disturb numpy's global RNG between the calls
    again = explain(name, _by_design(name, s) if by_design else s, **FAST.get(name, {}))
    if first.local is None:  # global-only explainers
        np.testing.assert_array_equal(first.global_scores, again.global_scores)
        assert first.global_importance.shape == s.dataset.attribution_shape
    else:
        np.testing.assert_array_equal(first.local, again.local)
        assert first.local.shape == (len(s.inputs), *s.dataset.attribution_shape)
    assert first.is_finite()


def test_seeded_explainers_leave_numpy_global_state_alone(tabular: Setting) -> None:
    before = np.random.get_state()[1].copy()
    explain("shap_kernel", tabular, **FAST["shap_kernel"])
    explain("shap_permutation", tabular, **FAST["shap_permutation"])
    explain("shap_gradient", tabular, **FAST["shap_gradient"])
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    with numpy_global_seed(1):
        inside = np.random.random()
    assert np.array_equal(np.random.get_state()[1], before) and 0 <= inside < 1


def test_global_importance_of_local_attributions_is_mean_absolute_value() -> None:
    explanation = Explanation(local=np.array([[1.0, -2.0], [-3.0, 0.0]]))
    np.testing.assert_array_equal(explanation.global_importance, [2.0, 1.0])
    assert explanation.is_finite()
    assert not Explanation(global_scores=np.array([np.inf])).is_finite()
    with pytest.raises(ValueError, match="needs local attributions or global scores"):
        Explanation()
