"""ROAD (batched noisy linear imputation) and infidelity: hand-computed cases, the
official imputer's equations (pytorch-grad-cam's copy), Quantus's ROAD and captum."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from harness.metrics import Evidence, metric_registry
from harness.metrics.linear_imputation import impute


def test_imputing_the_centre_of_a_3x3_image_by_hand() -> None:
    image = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    removed = np.zeros((1, 3, 3), bool)
    removed[0, 1, 1] = True
    filled = impute(image, removed, noise=0.0)
    # all 8 neighbours are in the image: weights sum to 1 (4 × 1/6 + 4 × 1/12)
    direct, diagonal = 1 + 3 + 5 + 7, 0 + 2 + 6 + 8
    assert filled[0, 0, 1, 1] == pytest.approx(direct / 6 + diagonal / 12, rel=1e-6)
    np.testing.assert_array_equal(filled.reshape(-1)[[0, 1, 2, 3, 5, 6, 7, 8]],
                                  image.reshape(-1)[[0, 1, 2, 3, 5, 6, 7, 8]])  # fmt: skip


def test_imputing_a_corner_uses_the_in_image_neighbours_only() -> None:
    image = np.zeros((1, 1, 2, 2), np.float32)
    image[0, 0] = [[0, 2], [4, 8]]
    removed = np.array([[[True, False], [False, False]]])
    # corner (0, 0): neighbours (0,1) and (1,0) at 1/6, (1,1) at 1/12; s = 5/12
    expected = (2 / 6 + 4 / 6 + 8 / 12) / (5 / 12)
    assert impute(image, removed, noise=0.0)[0, 0, 0, 0] == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_batched_imputation_solves_the_official_system(share: float) -> None:
    """Equal to pytorch-grad-cam's copy of the official imputer (one sparse solve per
    image), noise off; several images and channels at once — within the float32 solve's
    tolerance (1e-4, a hundredth of the default noise)."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer

    rng = np.random.default_rng(1)
    images = rng.random((5, 3, 20, 24)).astype(np.float32)
    removed = rng.random((5, 20, 24)) < share
    mine = impute(images, removed, noise=0.0)
    official = NoisyLinearImputer(noise=0.0)
    for i in range(5):
        kept = torch.from_numpy((~removed[i]).astype(np.float32))  # its mask: 1 = kept
        reference = official(torch.from_numpy(images[i]), kept).numpy()
        np.testing.assert_allclose(mine[i], reference, atol=1e-4)


def test_noise_only_on_imputed_pixels_and_seeded() -> None:
    rng = np.random.default_rng(2)
    images = rng.random((2, 1, 8, 8)).astype(np.float32)
    removed = rng.random((2, 8, 8)) < 0.4
    draws = [impute(images, removed, 0.5, torch.Generator().manual_seed(3)) for _ in range(2)]
    np.testing.assert_array_equal(draws[0], draws[1])
    clean = impute(images, removed, 0.0)
    moved = ~np.isclose(draws[0], clean)
    assert moved[:, 0][removed].mean() > 0.9 and not moved[:, 0][~removed].any()
    with pytest.raises(ValueError, match="kept pixel"):
        impute(images, np.ones((2, 8, 8), bool))


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(16, 3),
        )  # fmt: skip
        with torch.no_grad():  # sharp enough that removing pixels changes predictions
            self.net[-1].weight.mul_(200)

    def forward(self, x):
        return self.net(x)


def road_evidence(model: nn.Module, x: np.ndarray, maps: np.ndarray, targets: np.ndarray):
    def predict_proba(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(model(torch.from_numpy(rows)), dim=1).numpy()

    return Evidence(attributions=maps, inputs=x, targets=targets, predict_proba=predict_proba)


def test_road_curves_equal_quantus_on_one_channel_images() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantus = pytest.importorskip("quantus", reason="quantus (the [test] extra) is missing",
                                      exc_type=ImportError)  # fmt: skip
    model = TinyCNN().eval()
    rng = np.random.default_rng(4)
    x = rng.random((12, 1, 16, 16)).astype(np.float32)
    maps = rng.random((12, 16, 16))  # continuous: no ties, so both orders agree
    with torch.no_grad():
        targets = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    evidence = road_evidence(model, x, maps, targets)
    from harness.metrics.road import ROADParams, road_curves

    params = ROADParams(percentages=[0.25, 0.5, 0.75], noise=0.0, curve="correct")
    mine = road_curves(evidence, params, most_relevant_first=True).mean(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = quantus.ROAD(percentages=[25, 50, 75], noise=0.0, disable_warnings=True,
                                 display_progressbar=False)(
            model=model, x_batch=x, y_batch=targets, a_batch=maps[:, None],
            channel_first=True, device="cpu",
        )  # fmt: skip
    np.testing.assert_allclose(mine, [reference[p] for p in (25, 50, 75)], atol=1e-12)
    assert mine.min() < 1  # removal changed some predictions: the comparison has content


def test_road_areas_and_the_model_they_read() -> None:
    model = TinyCNN().eval()
    rng = np.random.default_rng(5)
    x = rng.random((6, 1, 10, 10)).astype(np.float32)
    maps = rng.random((6, 10, 10))
    targets = np.zeros(6, dtype=np.int64)
    evidence = road_evidence(model, x, maps, targets)
    morf = metric_registry.get("road_morf")(noise=0.0).compute(evidence)
    curve = morf.arrays["curve"]
    assert curve[0] == pytest.approx(evidence.predict_proba(x)[:, 0].mean(), rel=1e-6)
    fractions = morf.arrays["fractions"]
    assert morf.value == pytest.approx(np.trapezoid(curve, fractions) / 0.9, rel=1e-9)
    lerf = metric_registry.get("road_lerf")(noise=0.0).compute(evidence)
    assert lerf.arrays["curve"][0] == pytest.approx(curve[0])  # both start unperturbed
    with pytest.raises(ValueError, match="ascending"):
        metric_registry.get("road_morf")(percentages=[0.5, 0.2])


# --- infidelity ------------------------------------------------------------------------


def linear_evidence(x: np.ndarray, weights: np.ndarray, maps: np.ndarray) -> Evidence:
    """A 'model' whose class-0 output is w·x (so f(x) − f(x − I) = w·I exactly)."""

    def outputs(rows: np.ndarray) -> np.ndarray:
        value = rows.reshape(len(rows), -1).astype(np.float64) @ weights.reshape(-1)
        return np.column_stack([value, -value])

    return Evidence(attributions=maps, inputs=x, targets=np.zeros(len(x), dtype=np.int64),
                    predict_proba=outputs, train_std=np.ones(x.shape[1:], np.float32),
                    train_mean=np.zeros(x.shape[1:], np.float32))  # fmt: skip


def test_the_exact_attribution_of_a_linear_model_has_zero_infidelity_at_any_scale() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 7)).astype(np.float32)
    w = rng.normal(size=7)
    infidelity = metric_registry.get("infidelity")()
    for scale in (1.0, 5.0, -0.2):  # normalised: the map's scale does not matter
        maps = np.tile(scale * w, (5, 1))
        assert infidelity.compute(linear_evidence(x, w, maps)).value == pytest.approx(0, abs=1e-9)


def test_infidelity_by_hand_on_the_same_perturbations() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 6)).astype(np.float32)
    w = rng.normal(size=6)
    maps = rng.normal(size=(4, 6))
    samples, seed, radius = 9, 2, 0.3
    value = metric_registry.get("infidelity")(samples=samples, seed=seed, radius=radius)
    measured = value.compute(linear_evidence(x, w, maps)).value
    # captum repeats each row `samples` times (row-major) and asks for all at once
    noise = np.random.default_rng(seed).normal(0.0, radius, (4 * samples, 6))
    per_row = []
    for i in range(4):
        perturbation = noise[i * samples : (i + 1) * samples]
        predicted = perturbation @ maps[i]
        actual = perturbation @ w
        beta = (predicted * actual).sum() / (predicted**2).sum()
        per_row.append(((beta * predicted - actual) ** 2).mean())
    assert measured == pytest.approx(np.mean(per_row), rel=1e-6)


def test_one_channel_images_regression() -> None:
    """Regression: a one-channel map was handed to torch as a read-only numpy view (the
    broadcast to one channel is no copy), which torch warns about."""
    rng = np.random.default_rng(9)
    x = rng.random((3, 1, 4, 4)).astype(np.float32)
    pixel_weights = rng.normal(size=(1, 4, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = metric_registry.get("infidelity")().compute(
            linear_evidence(x, pixel_weights, np.tile(pixel_weights[0], (3, 1, 1)))
        )
    assert value.value == pytest.approx(0, abs=1e-9)


def test_image_maps_apply_to_every_channel_and_subsets_use_the_baseline() -> None:
    rng = np.random.default_rng(8)
    x = rng.random((3, 2, 5, 5)).astype(np.float32)
    pixel_weights = rng.normal(size=(5, 5))
    weights = np.broadcast_to(pixel_weights, (2, 5, 5))  # f = Σ_c Σ_p w_p x_cp
    maps = np.tile(pixel_weights, (3, 1, 1))
    for perturbation in ("gaussian", "subset"):
        infidelity = metric_registry.get("infidelity")(perturbation=perturbation)
        assert infidelity.compute(linear_evidence(x, weights, maps)).value == pytest.approx(
            0, abs=1e-9
        )
    wrong = metric_registry.get("infidelity")(perturbation="subset")
    assert wrong.compute(linear_evidence(x, weights, rng.normal(size=(3, 5, 5)))).value > 0


@pytest.mark.parametrize("perturbation", ["gaussian", "subset"])
@pytest.mark.parametrize("baseline", ["zero", "mean"])
def test_maps_multiplied_by_the_input_are_exact_for_a_linear_model(
    perturbation: str, baseline: str
) -> None:
    """For f = w·x the exact map of each kind scores 0: the gradient w (per unit of
    input), and w ∘ (x − b) of IG/SHAP-like methods with their baseline b — paired with
    I / (x − b), as captum's multiply_by_inputs. Before, w ∘ x scored 0.07–0.09."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(6, 8)).astype(np.float32)
    w = rng.normal(size=8)
    b = np.zeros(8) if baseline == "zero" else rng.normal(size=8)
    infidelity = metric_registry.get("infidelity")(perturbation=perturbation)
    gradient = linear_evidence(x, w, np.tile(w, (6, 1)))
    multiplied = replace(linear_evidence(x, w, w * (x - b)), input_baseline=b[None])
    assert infidelity.compute(gradient).value == pytest.approx(0, abs=1e-6)
    assert infidelity.compute(multiplied).value == pytest.approx(0, abs=1e-6)
    unpaired = linear_evidence(x, w, w * (x - b))  # the old convention: penalised
    assert infidelity.compute(unpaired).value > 1e-3


def test_explainers_say_which_maps_are_multiplied_by_the_input() -> None:
    """The baselines the explainers report: IG and DeepLIFT theirs, input × gradient
    zeros, SHAP the background's mean, saliency none."""
    from harness.datasets import dataset_registry
    from harness.explainers import ExplainContext, explainer_registry

    data = dataset_registry.get("synthetic_tabular")(n_samples=200, n_features=5).load(0)
    x = np.asarray(data.x_test[:3])
    context = ExplainContext(dataset=data, seed=0, rows=np.arange(3))

    def baseline(name: str, **params: object) -> np.ndarray | None:
        return explainer_registry.get(name)(**params).input_baseline(x, context)

    np.testing.assert_array_equal(np.broadcast_to(baseline("input_x_gradient"), x.shape), 0)
    np.testing.assert_allclose(
        np.broadcast_to(baseline("integrated_gradients", baseline="train_mean"), x.shape),
        np.broadcast_to(data.train_mean, x.shape),
    )
    # k-means centroids weighted by their sizes average to the data's mean (shap snaps
    # each centroid coordinate to a data value, hence the tolerance)
    shap_mean = baseline("shap_kernel", background="kmeans", background_size=10)
    np.testing.assert_allclose(shap_mean, data.x_train.mean(axis=0), atol=0.05)
    from harness.explainers.shap_methods import sample_rows

    sampled = baseline("shap_permutation", background_size=20)
    np.testing.assert_allclose(sampled, sample_rows(data.x_train, 20, 0).mean(axis=0), rtol=1e-5)
    assert baseline("saliency") is None and baseline("lime_tabular") is None


def test_multiplied_maps_equal_captums_multiply_by_inputs_convention() -> None:
    """The same perturbations through captum's own decorator
    (``infidelity_perturb_func_decorator(multiply_by_inputs=True)``) give the same
    infidelity for a map multiplied by the input, on a model that is not linear."""
    from captum.metrics import infidelity, infidelity_perturb_func_decorator

    rng = np.random.default_rng(12)
    x = (rng.normal(size=(5, 6)) + 1.5).astype(np.float32)
    w = rng.normal(size=6)
    maps = rng.normal(size=(5, 6)) * x
    baseline = np.full(6, 0.25)
    samples, seed, radius = 7, 3, 0.2

    def outputs(rows: np.ndarray) -> np.ndarray:
        value = np.tanh(rows.reshape(len(rows), -1).astype(np.float64) @ w)
        return np.column_stack([value, -value])

    evidence = replace(
        linear_evidence(x, w, maps), predict_proba=outputs, input_baseline=baseline[None]
    )
    ours = metric_registry.get("infidelity")(samples=samples, seed=seed, radius=radius)
    measured = ours.compute(evidence).value
    draws = np.random.default_rng(seed)  # the harness's draws, in the same order

    @infidelity_perturb_func_decorator(True)
    def perturbed(inputs: torch.Tensor, baselines: torch.Tensor) -> torch.Tensor:
        noise = draws.normal(0.0, radius, tuple(inputs.shape))
        return inputs - torch.from_numpy(noise)

    def forward(inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(outputs(inputs.numpy()))

    expected = infidelity(
        forward, perturbed, torch.from_numpy(x.astype(np.float64)), torch.from_numpy(maps),
        baselines=torch.from_numpy(np.broadcast_to(baseline, x.shape).copy()),
        target=torch.zeros(5, dtype=torch.long), n_perturb_samples=samples,
        max_examples_per_batch=5 * samples, normalize=True,
    )  # fmt: skip
    assert measured == pytest.approx(float(expected.mean()), rel=1e-6)
