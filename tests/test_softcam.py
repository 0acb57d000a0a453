"""Soft-CAM: evidence maps, equivalence with the GAP+FC twin, the penalty, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness import load_results, run_suite
from harness.datasets import dataset_registry
from harness.explainers import ExplainContext, explainer_registry
from harness.explainers.softcam import SoftCAMNetwork, elastic_net_penalty
from harness.models import model_registry
from harness.suite import parse_suite

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lesions():
    return dataset_registry.get("synthetic_lesions")(n_images=240, size=32, radius=(2.0, 3.5)).load(
        0
    )


def test_logits_are_the_spatial_means_of_the_evidence_maps(lesions) -> None:
    model = explainer_registry.get("softcam")().fit_model(
        model_registry.get("small_cnn")(channels=[8, 16], epochs=1), lesions, 0, CPU
    )
    network = model.module
    assert isinstance(network, SoftCAMNetwork)
    x = torch.as_tensor(lesions.x_test[:5])
    with torch.no_grad():
        maps = network.evidence_maps(x)
        assert maps.shape == (5, 2, 16, 16)  # one map per class, one 2×2 pooling
        torch.testing.assert_close(network(x), maps.mean(dim=(2, 3)))


@pytest.mark.parametrize(
    ("recipe_name", "params"),
    [("resnet18", {}), ("resnet50", {}), ("vgg16", {"head": "pointwise_gap"})],
)
def test_with_no_penalty_softcam_is_its_gap_fc_twin(lesions, recipe_name: str, params) -> None:
    recipe = model_registry.get(recipe_name)(**params)
    torch.manual_seed(0)
    twin = recipe.build(lesions).eval()
    torch.manual_seed(0)  # same seed, same construction order: the same backbone weights
    backbone, channels = recipe.backbone(lesions)
    softcam = SoftCAMNetwork(backbone, channels, lesions.n_classes).eval()
    fc = [m for m in twin.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        softcam.evidence.weight.copy_(fc.weight[:, :, None, None])
        softcam.evidence.bias.copy_(fc.bias)
        x = torch.as_tensor(lesions.x_test[:6])
        # mean(W·z + b) over positions = W·mean(z) + b: the same function, maps exposed
        torch.testing.assert_close(softcam(x), twin(x), rtol=1e-4, atol=1e-5)


def test_the_twin_is_trained_independently_of_the_evidence_layer(lesions) -> None:
    """The twin's head and Soft-CAM's evidence layer have the same shape and fan-in; drawn
    from one stream they started — and with the same batches ended — equal (1.5e-8)."""
    recipe = model_registry.get("small_cnn")(channels=[8, 16], epochs=3)
    twin = recipe.fit(lesions, 0, CPU).module
    softcam = explainer_registry.get("softcam")().fit_model(recipe, lesions, 0, CPU).module
    head = twin.get_submodule("head").weight.detach()
    evidence = softcam.evidence.weight.detach()[:, :, 0, 0]
    assert (head - evidence).abs().max().item() > 1e-2
    assert (
        twin(torch.as_tensor(lesions.x_test)) - softcam(torch.as_tensor(lesions.x_test))
    ).abs().max() > 1e-3
    # the backbones still start from the same weights, by design
    torch.manual_seed(0)
    twin_start = recipe.build(lesions)
    torch.manual_seed(0)
    design_start = explainer_registry.get("softcam")().architecture(recipe, lesions, 0)
    first_twin = twin_start.get_submodule("features.0").weight
    first_design = design_start.backbone.get_submodule("features.0").weight
    torch.testing.assert_close(first_twin, first_design)
    assert not torch.allclose(
        twin_start.get_submodule("head").weight, design_start.evidence.weight[:, :, 0, 0]
    )


def test_vgg_black_box_is_torchvisions_classifier(lesions) -> None:
    twin = model_registry.get("vgg16")().build(lesions)
    linears = [m for m in twin.get_submodule("classifier") if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (25088, 4096),
        (4096, 4096),
        (4096, lesions.n_classes),
    ]
    assert twin.get_submodule("pool").output_size == (7, 7)
    with torch.no_grad():
        assert twin.eval()(torch.as_tensor(lesions.x_test[:2])).shape == (2, lesions.n_classes)


def test_vgg_softcam_has_the_two_pointwise_layers_before_the_evidence_layer(lesions) -> None:
    backbone, channels = model_registry.get("vgg16")().backbone(lesions)
    convs = [m for m in backbone.get_submodule("pointwise") if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (512, 4096, (1, 1)),
        (4096, 4096, (1, 1)),
    ]
    assert channels == 4096


def test_elastic_net_penalty_by_hand() -> None:
    maps = torch.tensor([[[[3.0, -4.0]]], [[[0.0, 1.0]]]])  # 2 images, 1 class, 1×2
    # image 1: Σ|A| = 7, ‖A‖ = 5; image 2: 1 and 1 → mean of (λ1·7 + λ2·5, λ1·1 + λ2·1)
    value = elastic_net_penalty(maps, l1=0.1, l2=0.01)
    assert value.item() == pytest.approx(((0.7 + 0.05) + (0.1 + 0.01)) / 2)
    first = elastic_net_penalty(maps, l1=0.1, l2=0.01, first_image_only=True)
    assert first.item() == pytest.approx(0.75)


def test_the_l1_penalty_makes_the_maps_sparser(lesions) -> None:
    recipe = model_registry.get("small_cnn")(channels=[8, 16], epochs=6, learning_rate=3e-3)
    x = torch.as_tensor(lesions.x_test)
    magnitude = {}
    for l1 in (0.0, 0.01):
        model = explainer_registry.get("softcam")(l1=l1).fit_model(recipe, lesions, 0, CPU)
        with torch.no_grad():
            magnitude[l1] = model.module.evidence_maps(x).abs().mean().item()
    assert magnitude[0.01] < 0.5 * magnitude[0.0]


def test_explanations_are_the_upsampled_signed_maps(lesions) -> None:
    explainer = explainer_registry.get("softcam")()
    model = explainer.fit_model(
        model_registry.get("small_cnn")(channels=[8], epochs=1), lesions, 0, CPU
    )
    rows = np.arange(4)
    targets = np.array([0, 1, 1, 0])
    explanation = explainer.explain(
        model, lesions.x_test[rows], targets, ExplainContext(lesions, 0, rows)
    )
    assert explanation.local.shape == (4, 32, 32) and explanation.signed
    with torch.no_grad():
        maps = model.module.evidence_maps(torch.as_tensor(lesions.x_test[rows]))
    # channels=[8] has no pooling: the map is at input resolution, upsampling is the identity
    np.testing.assert_allclose(explanation.local, maps[np.arange(4), targets].numpy(), rtol=1e-6)


SUITE = """
name = "softcam_small"
seeds = [0]
metrics = ["accuracy", "accuracy_gain_pp", "pointing_game", "energy_pointing_game",
           "activation_precision", "activation_sensitivity"]

[execution]
explain_rows = 20

[[datasets]]
name = "synthetic_lesions"
params = { n_images = 240, size = 32, radius = [2.0, 3.5] }

[[models]]
name = "small_cnn"
params = { channels = [8, 16], epochs = 3 }

[[explainers]]
name = "softcam"
id = "softcam_sparse"
params = { l1 = 0.001 }
[[explainers]]
name = "grad_cam"
[[explainers]]
name = "oracle"
"""


def test_softcam_runs_against_its_twin_in_a_suite(tmp_path: Path) -> None:
    summary = run_suite(parse_suite(SUITE), tmp_path)
    assert summary.counts == {"ok": 3, "failed": 0, "skipped": 0}, summary.failures
    results = load_results(tmp_path).set_index(["explainer", "metric"])["value"]
    gain = results[("softcam_sparse", "accuracy_gain_pp")]
    expected = 100 * (results[("softcam_sparse", "accuracy")] - results[("grad_cam", "accuracy")])
    assert gain == pytest.approx(expected)
    assert 0 <= results[("softcam_sparse", "activation_precision")] <= 1
    assert results[("oracle", "pointing_game")] == 1.0
