"""The control explainers calibrate the metrics: oracle ≥ random ≥ inverted, constant ≠ perfect."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.explainers import ExplainContext, explainer_registry
from harness.metrics import metric_registry
from tests.conftest import CONTROL_EXPLAINERS, control_scores_table

#: Every registered metric that reads ground-truth importance (new ones join automatically).
IMPORTANCE_METRICS = sorted(
    name for name in metric_registry.names() if "importance" in metric_registry.get(name).needs
)

CONTROLS_SUITE = (
    f"""
name = "controls"
seeds = [0, 1, 2]
metrics = {IMPORTANCE_METRICS!r}

[[datasets]]
name = "synthetic_tabular"
params = {{ n_samples = 400, n_features = 16, n_informative = 5 }}

[[models]]
name = "mlp"
params = {{ hidden = [8], epochs = 2 }}

"""
    + CONTROL_EXPLAINERS
)


@pytest.fixture(scope="module")
def control_scores(tmp_path_factory: pytest.TempPathFactory):
    return control_scores_table(CONTROLS_SUITE, tmp_path_factory.mktemp("controls"), cells=12)


def test_there_are_importance_metrics_to_check() -> None:
    assert {"spearman_gt", "kendall_gt", "topk_precision_gt"} <= set(IMPORTANCE_METRICS)


@pytest.mark.parametrize("metric", IMPORTANCE_METRICS)
def test_oracle_beats_random_beats_inverted_on_every_seed(control_scores, metric: str) -> None:
    scores = control_scores.loc[metric]
    assert (scores["oracle"] >= scores["random"]).all(), scores
    assert (scores["random"] >= scores["inverted"]).all(), scores
    assert (scores["oracle"] > scores["inverted"]).all(), scores


@pytest.mark.parametrize("metric", IMPORTANCE_METRICS)
def test_constant_never_gets_a_perfect_score(control_scores, metric: str) -> None:
    for value in control_scores.loc[metric]["constant"]:
        assert math.isnan(value) or value < 1.0


def test_exact_control_values_on_16_features_5_relevant(control_scores) -> None:
    # oracle: perfect; inverted: the exact reverse; constant: ρ, τ undefined, top-k = 5/16
    assert (control_scores.loc["spearman_gt"]["oracle"] == 1).all()
    assert (control_scores.loc["spearman_gt"]["inverted"] == -1).all()
    np.testing.assert_allclose(control_scores.loc["kendall_gt"]["inverted"], -1, atol=1e-12)
    assert (control_scores.loc["topk_precision_gt"]["inverted"] == 0).all()
    assert control_scores.loc["spearman_gt"]["constant"].isna().all()
    np.testing.assert_allclose(control_scores.loc["topk_precision_gt"]["constant"], 5 / 16)


def test_image_controls_use_each_images_mask(plugins_on_path: None) -> None:
    from sample_plugins import SquaresWithMasks

    dataset = SquaresWithMasks().load(0)
    rows = np.array([1, 3, 4])
    context = ExplainContext(dataset, 0, rows)
    inputs, targets = dataset.x_test[rows], np.zeros(3, dtype=np.int64)
    model = None  # controls never touch the model

    def explain(name: str) -> np.ndarray:
        return explainer_registry.get(name)().explain(model, inputs, targets, context).local

    masks = dataset.ground_truth.masks[rows]
    np.testing.assert_array_equal(explain("oracle"), masks.astype(float))
    np.testing.assert_array_equal(explain("inverted")[0], 1.0 - masks[0])  # row 1 has a square
    np.testing.assert_array_equal(explain("inverted")[2], 0.0 * masks[2])  # row 4: empty mask
    assert explain("constant").shape == (3, 12, 12) and np.ptp(explain("constant")) == 0
    centre = explain("centre")[0]
    assert centre.shape == (12, 12) and centre[5:7, 5:7].min() == centre.max()
    assert centre[0, 0] < 0.1 * centre.max()
    random = explain("random")
    assert random.shape == (3, 12, 12) and random.min() >= 0 and random.max() < 1


def _squares(plugins_on_path: None):
    from sample_plugins import SquaresWithMasks

    dataset = SquaresWithMasks().load(0)
    rows = np.array([1, 3, 4])
    return dataset, rows, ExplainContext(dataset, 0, rows)


def test_edge_controls_equal_the_textbook_kernels(plugins_on_path: None) -> None:
    """Sobel magnitude and |Laplacian| of the channel mean, borders mirrored — computed
    here by 2-D convolution with the kernels written out (scipy.signal, 'symm')."""
    from scipy.signal import convolve2d

    dataset, rows, context = _squares(plugins_on_path)
    inputs = dataset.x_test[rows]
    grey = inputs.astype(np.float64).mean(axis=1)
    sobel_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    laplace = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    targets = np.zeros(3, dtype=np.int64)

    def explain(name: str) -> np.ndarray:
        return explainer_registry.get(name)().explain(None, inputs, targets, context).local

    for image, sobel, lap in zip(grey, explain("sobel"), explain("laplace"), strict=True):
        gx = convolve2d(image, sobel_x, mode="same", boundary="symm")
        gy = convolve2d(image, sobel_x.T, mode="same", boundary="symm")
        np.testing.assert_allclose(sobel, np.hypot(gx, gy), atol=1e-12)
        np.testing.assert_allclose(lap, np.abs(convolve2d(image, laplace, "same", "symm")),
                                   atol=1e-12)  # fmt: skip
    assert explainer_registry.get("sobel").role() == "control"


def test_parameter_noise_passes_the_randomisation_checks_by_construction(
    plugins_on_path: None,
) -> None:
    """Binder et al.: a map that carries nothing of the model's computation, yet changes
    whenever a weight changes — MPRT and random-logit call it model-dependent, while a
    model-blind map (random, seeded by the cell) scores 1."""
    import torch
    from torch import nn

    from harness.metrics import Evidence
    from harness.metrics.reexplaining import Reexplainer
    from harness.models.base import TrainedModel

    dataset, rows, _ = _squares(plugins_on_path)
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                            nn.Linear(4 * 12 * 12, 2)).eval()  # fmt: skip
    inputs = dataset.x_test[rows].astype(np.float32)
    targets = np.array([0, 1, 0])

    def reexplainer(name: str, **params: float) -> Reexplainer:
        control = explainer_registry.get(name)(**params)

        def explain(net, x, classes, positions):
            model = TrainedModel(net, torch.device("cpu"), 0.0, 0)
            where = ExplainContext(dataset, 0, rows[positions])
            return control.explain(model, x, classes, where).local

        return Reexplainer(network, explain)

    def scores(name: str, **params: float) -> tuple[float, float]:
        again = reexplainer(name, **params)
        evidence = Evidence(
            attributions=again(inputs, targets), inputs=inputs, targets=targets,
            reexplain=again, y_score=np.ones((3, 2)) / 2,
        )  # fmt: skip
        mprt = metric_registry.get("mprt")().compute(evidence).value
        logit = metric_registry.get("random_logit")().compute(evidence).value
        return mprt, logit

    noise_mprt, noise_logit = scores("parameter_noise", smoothing=0.0)
    assert abs(noise_mprt) < 0.15 and abs(noise_logit) < 0.15  # independent fields: ≈ 0
    blobs = scores("parameter_noise")  # smooth fields: fewer independent blobs, more spread
    assert max(abs(v) for v in blobs) < 0.5
    assert scores("random") == (pytest.approx(1.0), pytest.approx(1.0))
    again = reexplainer("parameter_noise")
    np.testing.assert_array_equal(again(inputs, targets), again(inputs, targets))
