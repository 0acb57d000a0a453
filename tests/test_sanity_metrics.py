"""Randomisation, robustness and complexity metrics: hand-computed values, captum and
Quantus where they define the same quantity, and what each control must score."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import entropy as scipy_entropy
from scipy.stats import spearmanr
from torch import nn

from harness.metrics import Evidence, metric_registry
from harness.metrics.reexplaining import Reexplainer
from harness.metrics.robustness import SensitivityParams, perturbed_copies


def metric(name: str, **params):
    return metric_registry.get(name)(**params)


def complexity_evidence(maps: np.ndarray) -> Evidence:
    return Evidence(attributions=maps)


# --- complexity ------------------------------------------------------------------------


def test_complexity_family_by_hand() -> None:
    maps = np.array([[0.0, -1.0, 3.0], [0.0, 0.0, 0.0]])  # the zero row is left out
    evidence = complexity_evidence(maps)
    # sorted |a| = 0, 1, 3; weights 2k − N − 1 = −2, 0, 2: (0 + 0 + 6) / (3 · 4)
    sparse = metric("sparseness").compute(evidence)
    assert sparse.value == pytest.approx(0.5) and "1 of 2 maps are zero" in sparse.note
    # p = 0, 1/4, 3/4
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert metric("complexity").compute(evidence).value == pytest.approx(expected)
    # |a| / max = 0, 1/3, 1: one of three above 0.5
    assert metric("effective_complexity", threshold=0.5).compute(evidence).value == (
        pytest.approx(1 / 3)
    )
    assert math.isnan(metric("sparseness").compute(complexity_evidence(maps[1:])).value)


def test_constant_and_single_feature_maps_take_the_extreme_values() -> None:
    n = 64
    constant = complexity_evidence(np.ones((3, 8, 8)))
    single = np.zeros((3, 8, 8))
    single[:, 2, 5] = 4.0
    peaked = complexity_evidence(single)
    assert metric("sparseness").compute(constant).value == pytest.approx(0.0, abs=1e-12)
    assert metric("sparseness").compute(peaked).value == pytest.approx((n - 1) / n)
    assert metric("complexity").compute(constant).value == pytest.approx(math.log(n))
    assert metric("complexity").compute(peaked).value == pytest.approx(0.0, abs=1e-12)
    assert metric("effective_complexity").compute(constant).value == 1.0
    assert metric("effective_complexity").compute(peaked).value == pytest.approx(1 / n)


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, (4, 12), elements=st.floats(-5, 5, allow_subnormal=False)))
def test_complexity_agrees_with_scipy_and_numpy(maps: np.ndarray) -> None:
    magnitudes = np.abs(maps)
    kept = magnitudes.sum(axis=1) > 0
    if not kept.any():
        return
    entropies = [scipy_entropy(row) for row in magnitudes[kept]]
    assert metric("complexity").compute(complexity_evidence(maps)).value == pytest.approx(
        np.mean(entropies), rel=1e-9, abs=1e-12
    )
    # Gini as the mean absolute difference over twice the mean (an independent formula)
    ginis = [np.abs(r[:, None] - r[None]).sum() / (2 * len(r) ** 2 * r.mean())
             for r in magnitudes[kept]]  # fmt: skip
    assert metric("sparseness").compute(complexity_evidence(maps)).value == pytest.approx(
        np.mean(ginis), rel=1e-9, abs=1e-12
    )


def quantus_module():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip(
            "quantus", reason="quantus (the [test] extra) cannot be imported",
            exc_type=ImportError,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("ours", "reference", "tolerance"),
    [("sparseness", "Sparseness", 1e-6), ("complexity", "Complexity", 1e-9)],
)
def test_complexity_equals_quantus_per_row(ours: str, reference: str, tolerance: float) -> None:
    """Quantus adds 1e-7 to every value before the Gini index and 1e-12 in the log: equal
    within that."""
    quantus = quantus_module()
    rng = np.random.default_rng(3)
    maps = rng.random((16, 1, 12, 12))
    expected = getattr(quantus, reference)(
        abs=True, normalise=False, disable_warnings=True, display_progressbar=False
    )(model=None, x_batch=maps.copy(), y_batch=np.zeros(16, int), a_batch=maps.copy(),
      channel_first=True)  # fmt: skip
    for i, value in enumerate(expected):
        mine = metric(ours).compute(complexity_evidence(maps[i : i + 1, 0])).value
        assert mine == pytest.approx(value, rel=tolerance)


def test_effective_complexity_is_quantus_count_as_a_share() -> None:
    quantus = quantus_module()
    rng = np.random.default_rng(4)
    maps = rng.random((8, 1, 10, 10))
    maps /= maps.max(axis=(1, 2, 3), keepdims=True)  # our threshold is relative to the max
    maps[maps < 0.3] = 0.0
    counts = quantus.EffectiveComplexity(
        eps=1e-5, abs=True, normalise=False, disable_warnings=True, display_progressbar=False
    )(model=None, x_batch=maps.copy(), y_batch=np.zeros(8, int), a_batch=maps.copy(),
      channel_first=True)  # fmt: skip
    for i, count in enumerate(counts):
        mine = metric("effective_complexity").compute(complexity_evidence(maps[i : i + 1, 0]))
        assert mine.value == pytest.approx(count / 100)


# --- robustness ------------------------------------------------------------------------


def linear_explainer(weights: np.ndarray):
    """a(x) = W x, whatever the network and class."""

    def explain(network, inputs, targets, positions):
        return inputs.reshape(len(inputs), -1).astype(np.float64) @ weights.T

    return explain


def robustness_evidence(x: np.ndarray, explain, *, classes: int = 2) -> Evidence:
    network = nn.Linear(x.shape[1], classes)
    reexplain = Reexplainer(network, explain)
    targets = np.zeros(len(x), dtype=np.int64)
    maps = explain(network, x, targets, np.arange(len(x)))
    return Evidence(attributions=maps, inputs=x, targets=targets, reexplain=reexplain,
                    train_std=np.full(x.shape[1:], 2.0, np.float32),
                    predict_proba=lambda rows: np.tile([0.9, 0.1], (len(rows), 1)))  # fmt: skip


def test_max_sensitivity_equals_captum_on_the_same_copies() -> None:
    from captum.metrics import sensitivity_max

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5)).astype(np.float32)
    weights = rng.normal(size=(5, 5))
    explain = linear_explainer(weights)
    params = dict(samples=7, radius=0.1, seed=3)
    copies = perturbed_copies(x, SensitivityParams(**params), np.full(5, 2.0, np.float32))
    # captum repeats each row `samples` times (row-major); hand it the same copies
    ordered = torch.from_numpy(copies.transpose(1, 0, 2).reshape(-1, 5).copy())

    def explanation_func(inputs):
        if isinstance(inputs, tuple):  # captum's convention: a tuple in, a tuple out
            return tuple(explanation_func(rows) for rows in inputs)
        return torch.from_numpy(explain(None, inputs.numpy(), None, None))

    expected = sensitivity_max(
        explanation_func, torch.from_numpy(x), perturb_func=lambda _: ordered, n_perturb_samples=7
    )
    mine = metric("max_sensitivity", **params).compute(robustness_evidence(x, explain))
    assert mine.value == pytest.approx(float(expected.mean()), rel=1e-6)
    average = metric("avg_sensitivity", **params).compute(robustness_evidence(x, explain))
    assert 0 < average.value < mine.value


def test_lipschitz_and_relative_stability_by_hand() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 4)).astype(np.float32) + 3.0
    # a(x) = 3x: ‖a(x) − a(x')‖ / ‖x − x'‖ = 3 for every copy
    tripled = linear_explainer(3 * np.eye(4))
    value = metric("local_lipschitz").compute(robustness_evidence(x, tripled)).value
    assert value == pytest.approx(3.0, rel=1e-5)
    # a(x) = x: relative changes of map and input are the same vectors, ratio 1
    same = linear_explainer(np.eye(4))
    ris = metric("relative_input_stability").compute(robustness_evidence(x, same))
    assert ris.value == pytest.approx(1.0, rel=1e-4)


def test_a_map_that_ignores_the_input_has_zero_sensitivity() -> None:
    x = np.random.default_rng(2).normal(size=(4, 6)).astype(np.float32)

    def constant(network, inputs, targets, positions):
        return np.ones((len(inputs), 6))

    for name in ("max_sensitivity", "avg_sensitivity", "local_lipschitz"):
        assert metric(name).compute(robustness_evidence(x, constant)).value == 0.0


def test_copies_that_change_the_class_are_left_out_of_relative_stability() -> None:
    x = np.ones((3, 2), dtype=np.float32)
    evidence = robustness_evidence(x, linear_explainer(np.diag([1.0, 2.0])))

    def unchanged_only(rows):  # class 0 for the original rows, class 1 for any copy
        original = np.all(rows == 1, axis=1)
        return np.column_stack([original, ~original]).astype(float)

    flipping = Evidence(**{**evidence.__dict__, "predict_proba": unchanged_only})
    result = metric("relative_input_stability").compute(flipping)
    assert math.isnan(result.value) and "changed the predicted class" in result.note
    kept = metric("relative_input_stability").compute(evidence)  # no copy changes the class
    # a = diag(1, 2)·x at x = 1: relative change of a equals that of x, ratio 1
    assert kept.value == pytest.approx(1.0, rel=1e-5) and not kept.note


@pytest.mark.parametrize(
    ("ours", "reference"),
    [
        ("max_sensitivity", "MaxSensitivity"),
        ("avg_sensitivity", "AvgSensitivity"),
        ("local_lipschitz", "LocalLipschitzEstimate"),
        ("relative_input_stability", "RelativeInputStability"),
    ],
)
def test_robustness_equals_quantus_on_the_same_copies(ours: str, reference: str) -> None:
    """Quantus draws its own noise: it is handed the harness's copies in order. Its
    relative input stability takes ``np.max`` over copies, so one copy that changes the
    class makes the row NaN (here: the maximum over the copies that keep it, tested
    above); compared where no copy changes the class."""
    quantus = quantus_module()
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).eval()
    x = np.random.default_rng(3).normal(size=(10, 6)).astype(np.float32) + 2.0
    with torch.no_grad():
        targets = network(torch.from_numpy(x)).argmax(dim=1).numpy()

    def explain(net, inputs, classes, positions):
        return gradient_explainer(net, inputs, classes, positions) * np.sign(inputs)

    params = metric_registry.get(ours)(samples=6, seed=2).params
    copies = perturbed_copies(x, params, np.full(6, 2.0, np.float32))
    step = {"i": 0}

    def given_copies(arr, indices=None, **kwargs):
        out = copies[step["i"]].reshape(arr.shape)
        step["i"] += 1
        return out

    def quantus_explain(model, inputs, targets, **_):  # Quantus passes keywords
        return explain(model, inputs, targets, None)

    def one_class(rows: np.ndarray) -> np.ndarray:  # no copy changes the class
        return np.tile([1.0, 0.0, 0.0], (len(rows), 1))

    evidence = Evidence(attributions=explain(network, x, targets, None), inputs=x,
                        targets=targets, reexplain=Reexplainer(network, explain),
                        train_std=np.full(6, 2.0, np.float32), predict_proba=one_class)  # fmt: skip
    mine = metric(ours, samples=6, seed=2).compute(evidence).value
    options = dict(nr_samples=6, perturb_func=given_copies, abs=False, normalise=False,
                   return_nan_when_prediction_changes=False, disable_warnings=True,
                   display_progressbar=False)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = getattr(quantus, reference)(**options)(
            model=network, x_batch=x, y_batch=targets, a_batch=evidence.attributions,
            explain_func=quantus_explain, device="cpu", batch_size=10,
        )  # fmt: skip
    assert step["i"] == 6  # Quantus used exactly the harness's copies
    assert mine == pytest.approx(float(np.mean(expected)), rel=1e-6)


# --- randomisation ---------------------------------------------------------------------


def gradient_explainer(network, inputs, targets, positions):
    """|∂ logit_target / ∂x| of ``network`` (an independent saliency)."""
    x = torch.from_numpy(np.asarray(inputs, np.float32)).requires_grad_(True)
    logits = network(x)
    chosen = logits[torch.arange(len(x)), torch.as_tensor(targets)]
    (gradient,) = torch.autograd.grad(chosen.sum(), x)
    return gradient.abs().numpy().astype(np.float64)


def randomisation_evidence(explain) -> tuple[Evidence, nn.Module]:
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                            nn.Linear(16, 3))  # fmt: skip
    x = np.random.default_rng(5).normal(size=(10, 8)).astype(np.float32)
    targets = np.arange(10) % 3
    maps = explain(network, x, targets, np.arange(10))
    evidence = Evidence(attributions=maps, inputs=x, targets=targets,
                        reexplain=Reexplainer(network, explain),
                        y_score=np.full((10, 3), 1 / 3))  # fmt: skip
    return evidence, network


def test_mprt_randomises_top_down_and_leaves_the_model_alone() -> None:
    evidence, network = randomisation_evidence(gradient_explainer)
    before = copy.deepcopy(network.state_dict())
    result = metric("mprt").compute(evidence)
    assert list(result.arrays["layers"]) == ["4", "2", "0"]  # output layer first
    points = result.arrays["similarity"]
    assert len(points) == 3 and result.value == pytest.approx(points.mean())
    assert result.value < 0.9 and not result.note
    for key, value in network.state_dict().items():  # worked on a copy
        assert torch.equal(value, before[key])
    # the first cascading step is the independent one of the top layer; later ones differ
    independent = metric("mprt", order="independent").compute(evidence).arrays["similarity"]
    assert independent[0] == pytest.approx(points[0]) and not np.allclose(independent, points)


def test_mprt_similarity_is_spearman_of_magnitudes() -> None:
    evidence, network = randomisation_evidence(gradient_explainer)
    changed = copy.deepcopy(network)
    from harness.metrics.randomisation import randomise

    randomise(changed.get_submodule("4"), 0)  # what the first cascading step does (seed 0)
    new = gradient_explainer(changed, evidence.inputs, evidence.targets, None)
    expected = np.mean([spearmanr(np.abs(a), np.abs(b)).statistic
                        for a, b in zip(evidence.attributions, new, strict=True)])  # fmt: skip
    first = metric("mprt").compute(evidence).arrays["similarity"][0]
    assert first == pytest.approx(expected, rel=1e-9)


def test_explanations_that_ignore_the_model_are_flagged() -> None:
    def fixed(network, inputs, targets, positions):  # like the oracle or a seeded random map
        return np.random.default_rng(0).random((10, 8))[positions]

    evidence, _ = randomisation_evidence(fixed)
    mprt = metric("mprt").compute(evidence)
    assert mprt.value == pytest.approx(1.0) and "does not change" in mprt.note
    logit = metric("random_logit").compute(evidence)
    assert logit.value == pytest.approx(1.0) and "does not change with the class" in logit.note

    def constant(network, inputs, targets, positions):
        return np.ones((len(inputs), 8))

    evidence, _ = randomisation_evidence(constant)
    assert "constant" in metric("mprt").compute(evidence).note
    assert math.isnan(metric("random_logit").compute(evidence).value)


def test_random_logit_compares_with_another_class() -> None:
    evidence, network = randomisation_evidence(gradient_explainer)
    shift = np.random.default_rng(0).integers(1, 3, 10)
    others = (evidence.targets + shift) % 3
    assert (others != evidence.targets).all()
    new = gradient_explainer(network, evidence.inputs, others, None)
    expected = np.mean([spearmanr(a, b).statistic
                        for a, b in zip(evidence.attributions, new, strict=True)])  # fmt: skip
    assert metric("random_logit").compute(evidence).value == pytest.approx(expected, rel=1e-9)


def test_ssim_needs_image_maps() -> None:
    evidence, _ = randomisation_evidence(gradient_explainer)
    with pytest.raises(ValueError, match="ssim"):
        metric("mprt", similarity="ssim").compute(evidence)


# --- the bundled suite -----------------------------------------------------------------


@pytest.mark.slow
def test_the_sanity_suite_scores_every_family_and_the_controls_as_written(tmp_path) -> None:
    from harness import load_results, run_suite
    from harness.suite import load_suite

    summary = run_suite(load_suite("sanity"), tmp_path)
    assert summary.counts["failed"] == 0 and summary.counts["ok"] >= 15
    scores = load_results(tmp_path)
    ok = scores[scores["status"] == "ok"]
    value = ok.set_index(["dataset", "explainer", "metric"])["value"]
    note = ok.set_index(["dataset", "explainer", "metric"])["note"]
    for dataset in ("table", "lesions"):
        for control in ("oracle", "random") + (("centre",) if dataset == "lesions" else ()):
            assert value[dataset, control, "mprt"] == pytest.approx(1.0)
            assert "does not change" in note[dataset, control, "mprt"]
        for name in ("max_sensitivity", "avg_sensitivity", "local_lipschitz"):
            assert value[dataset, "constant", name] == 0.0
        assert value[dataset, "constant", "sparseness"] == pytest.approx(0.0, abs=1e-12)
        assert value[dataset, "constant", "effective_complexity"] == 1.0
        # the constant map has the largest entropy of all: log of the number of features
        entropies = value.xs((dataset, "complexity"), level=("dataset", "metric"))
        assert entropies.idxmax() == "constant"
        for explainer in ("saliency", "guided_backprop", "integrated_gradients"):
            assert value[dataset, explainer, "mprt"] < 0.9  # depends on the model
    # the classic sanity-check result (Adebayo et al. 2018) on the three-convolution CNN:
    # Guided Backprop stays similar under cascading randomisation, gradient and Grad-CAM
    # do not (measured 0.52 against 0.30 and −0.02)
    guided = value["lesions", "guided_backprop", "mprt"]
    assert guided > value["lesions", "saliency", "mprt"] + 0.1
    assert guided > value["lesions", "grad_cam", "mprt"] + 0.1
    assert math.isnan(value["lesions", "saliency", "relative_input_stability"])
    assert "applies to tabular data" in note["lesions", "saliency", "relative_input_stability"]
    assert value["table", "saliency", "relative_input_stability"] > 0
    # the MPRT figure: one line per explainer with a defined similarity, the stored points
    from harness.report.figures import load_run_data, randomisation_figure, render_figures
    from harness.store import ResultsStore

    written = {path.name for path in render_figures(tmp_path, None, tmp_path / "figures")}
    assert {"randomisation_lesions_cnn.png", "randomisation_table_mlp.png"} <= written
    with ResultsStore(tmp_path, create=False) as store:
        data = load_run_data(store, summary.run_id)
    figure = randomisation_figure(data.results, data.arrays, "lesions", "cnn")
    lines = {line.get_label().split(" ")[0]: line.get_ydata() for line in figure.axes[0].lines
             if not line.get_label().startswith("_")}  # fmt: skip
    assert "constant" not in lines and "guided_backprop" in lines
    stored = data.arrays["mprt.similarity"]["lesions/cnn/guided_backprop/seed=0"]
    np.testing.assert_allclose(lines["guided_backprop"], stored)


def test_mprt_equals_quantus_cascading_per_layer() -> None:
    """Same layers (top first), same re-initialisation (Quantus seeds torch with its
    seed + 1 before each layer), Spearman of |a| per image: equal per layer."""
    quantus = quantus_module()
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 8 * 8, 3),
    ).eval()  # fmt: skip
    x = np.random.default_rng(6).random((12, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        targets = network(torch.from_numpy(x)).argmax(dim=1).numpy()

    def explain(net, inputs, classes, positions):
        return gradient_explainer(net, inputs, classes, positions)[:, 0]

    def quantus_explain(model, inputs, targets, **_):
        return explain(model, inputs, targets, None)[:, None]

    maps = explain(network, x, targets, None)
    evidence = Evidence(attributions=maps, inputs=x, targets=targets,
                        reexplain=Reexplainer(network, explain))  # fmt: skip
    mine = metric("mprt", seed=5).compute(evidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = quantus.MPRT(
            similarity_func=quantus.similarity_func.correlation_spearman, abs=True,
            normalise=False, seed=4, layer_order="top_down", disable_warnings=True,
            display_progressbar=False,
        )(model=network, x_batch=x, y_batch=targets, a_batch=maps[:, None], channel_first=True,
          explain_func=quantus_explain, device="cpu", batch_size=12)  # fmt: skip
    layers = [name for name in reference if name != "original"]
    assert layers == list(mine.arrays["layers"]) == ["5", "2", "0"]
    expected = [np.mean(reference[name]) for name in layers]
    np.testing.assert_allclose(mine.arrays["similarity"], expected, rtol=1e-9)


# --- sMPRT and eMPRT (Hedström et al. 2023) against Quantus ------------------------------


def _small_cnn_and_batch(rows: int = 6) -> tuple[nn.Module, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 8 * 8, 3),
    ).eval()  # fmt: skip
    x = np.random.default_rng(6).random((rows, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        targets = network(torch.from_numpy(x)).argmax(dim=1).numpy()
    return network, x, targets


def _quantus_saliency(net, inputs, classes, positions=None):
    quantus = quantus_module()
    return quantus.explain(net, np.asarray(inputs, np.float32), classes, method="Saliency")[:, 0]


@pytest.mark.parametrize("order", ["bottom_up", "top_down"])
def test_smprt_equals_quantus_per_layer_on_the_same_noise(
    order: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quantus draws its noise from numpy's global ``randn`` and re-draws it for every
    model state (and twice for the original); fed the noise ours draws — the same copies
    for every model state, from the seed — it gives the same similarity per layer."""
    quantus = quantus_module()
    network, x, targets = _small_cnn_and_batch()
    samples, seed = 4, 3
    maps = _quantus_saliency(network, x, targets)
    again = Reexplainer(network, _quantus_saliency)
    evidence = Evidence(attributions=maps, inputs=x, targets=targets, reexplain=again)
    mine = metric("smprt", samples=samples, noise=0.2, order=order, seed=seed).compute(evidence)
    draws = {"count": 0}

    def our_noise(*shape):  # the k-th draw of each pass is ours: a fresh generator per pass
        if draws["count"] % (samples - 1) == 0:
            draws["rng"] = np.random.default_rng(seed)
        draws["count"] += 1
        return draws["rng"].standard_normal(shape)

    monkeypatch.setattr(np.random, "randn", our_noise)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = quantus.SmoothMPRT(
            nr_samples=samples, noise_magnitude=0.2, layer_order=order, seed=seed - 1,
            disable_warnings=True, display_progressbar=False,
        )(model=network, x_batch=x, y_batch=targets, a_batch=None, channel_first=True,
          explain_func=quantus.explain, explain_func_kwargs={"method": "Saliency"},
          device="cpu", batch_size=len(x))  # fmt: skip
    layers = [name for name in reference if name != "original"]
    assert layers == list(mine.arrays["layers"])
    assert np.allclose(reference["original"], 1.0)  # the same noise: the same smoothed map
    expected = [np.mean(reference[name]) for name in layers]
    np.testing.assert_allclose(mine.arrays["similarity"], expected, rtol=1e-6)
    assert mine.value == pytest.approx(np.mean(expected), rel=1e-6)
    last = metric("smprt", samples=samples, noise=0.2, order=order, seed=seed, value="last")
    assert last.compute(evidence).value == pytest.approx(expected[-1], rel=1e-6)


def test_emprt_equals_quantus_per_row() -> None:
    quantus = quantus_module()
    network, x, targets = _small_cnn_and_batch(8)
    maps = _quantus_saliency(network, x, targets)
    evidence = Evidence(attributions=maps, inputs=x, targets=targets,
                        reexplain=Reexplainer(network, _quantus_saliency))  # fmt: skip
    mine = metric("emprt", bins=20, seed=7).compute(evidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = quantus.EfficientMPRT(
            complexity_func_kwargs={"n_bins": 20}, seed=6, disable_warnings=True,
            display_progressbar=False,
        )(model=network, x_batch=x, y_batch=targets, a_batch=maps[:, None], channel_first=True,
          explain_func=quantus.explain, explain_func_kwargs={"method": "Saliency"},
          device="cpu", batch_size=len(x))  # fmt: skip
    assert mine.value == pytest.approx(np.mean(reference), rel=1e-6)


def test_emprt_by_hand_and_a_model_blind_map() -> None:
    """A map that does not change with the model has no rise (0); entropy by hand."""
    network, x, targets = _small_cnn_and_batch(2)
    fixed = np.zeros((2, 8, 8))
    fixed[:, :4] = 1.0  # two values, half each: H = log 2 before and after

    def blind(net, inputs, classes, positions):
        return fixed[: len(inputs)]

    evidence = Evidence(attributions=fixed, inputs=x, targets=targets,
                        reexplain=Reexplainer(network, blind))  # fmt: skip
    assert metric("emprt").compute(evidence).value == pytest.approx(0.0, abs=1e-12)
    from harness.metrics.sanity_revisited import histogram_entropy

    assert histogram_entropy(fixed, 10) == pytest.approx([math.log(2)] * 2)
