"""The ``timm`` recipe: a zoo CNN by name, local weights only, its CAM layer found, and
Soft-CAM built on its backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import timm
import torch

from harness import load_results, run_suite
from harness.datasets import dataset_registry
from harness.models import model_registry
from harness.suite import load_suite
from tests.suite_builder import suite

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def lesions():
    return dataset_registry.get("synthetic_lesions")(n_images=60, size=64).load(seed=0)


@pytest.mark.parametrize(
    ("architecture", "layer"), [("resnet10t", "network.layer4"), ("efficientnet_b0", "network.bn2")]
)
def test_the_cam_layer_is_the_last_module_before_pooling(architecture, layer):
    recipe = model_registry.get("timm")(architecture=architecture)
    assert recipe.cam_layer_name() == layer
    chosen = model_registry.get("timm")(architecture=architecture, cam_layer="layer3")
    assert chosen.cam_layer_name() == "network.layer3"


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_weights_are_loaded_without_the_head(suffix, lesions, tmp_path: Path):
    torch.manual_seed(1)
    source = timm.create_model("resnet10t", pretrained=False, num_classes=1000, in_chans=3)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(source.state_dict(), str(path))
    else:
        torch.save(source.state_dict(), path)
    network = model_registry.get("timm")(architecture="resnet10t", weights=str(path)).build(lesions)
    loaded = network.get_submodule("network").state_dict()
    grey = lesions.x_train.shape[1] == 1
    for key, tensor in source.state_dict().items():
        if key.startswith("fc."):
            continue
        if grey and key == "conv1.0.weight":  # RGB kernels summed for one channel
            tensor = tensor.sum(dim=1, keepdim=True)
        torch.testing.assert_close(loaded[key], tensor)
    assert loaded["fc.weight"].shape == (lesions.n_classes, 512)


def test_an_unknown_architecture_is_a_clear_error(lesions):
    with pytest.raises(ValueError, match=r"timm: Unknown model .*timm.list_models"):
        model_registry.get("timm")(architecture="no_such_net").build(lesions)


def test_soft_cam_backbone_is_the_timm_model_before_pooling(lesions):
    recipe = model_registry.get("timm")(architecture="resnet10t")
    torch.manual_seed(0)
    backbone, channels = recipe.backbone(lesions)
    torch.manual_seed(0)
    twin = recipe.build(lesions).eval()
    x = torch.as_tensor(lesions.x_test[:2])
    with torch.no_grad():
        maps = backbone.eval()(x)
        expected = twin.network.forward_features(twin.standardize(x))
    assert channels == 512 and maps.shape[1] == 512
    np.testing.assert_allclose(maps.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_a_timm_cnn_runs_grad_cam_score_cam_and_soft_cam(tmp_path: Path):
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=1000)
    torch.save(model.state_dict(), tmp_path / "resnet10t.pth")
    text = suite(
        "timm", datasets=[("synthetic_lesions", {"n_images": 120, "size": 64})],
        models=[("timm", {"architecture": "resnet10t", "weights": "resnet10t.pth",
                          "epochs": 1})],
        explainers=["grad_cam", "score_cam", "softcam"],
        metrics=["accuracy", "pointing_game", "deletion_auc"],
        execution={"explain_rows": 8},
    )  # fmt: skip
    (tmp_path / "suite.toml").write_text(text)
    summary = run_suite(load_suite(tmp_path / "suite.toml"), tmp_path / "out")
    assert summary.counts == {"ok": 3, "failed": 0, "skipped": 0}, summary.failures
    scores = load_results(tmp_path / "out")
    assert scores.value.notna().all(), scores[scores.value.isna()][["explainer", "note"]]


def test_pretrained_normalisation_is_declared_by_the_recipe(lesions):
    """normalisation = "imagenet": the statistics the weights were trained with (timm's
    pretrained_cfg; torchvision's ImageNet values), averaged for grey images — not the
    dataset's own."""
    from harness.models.cnn import IMAGENET_MEAN, IMAGENET_STD, channel_standardize

    grey = lesions.x_train.shape[1] == 1
    expected_mean = np.mean(IMAGENET_MEAN) if grey else np.array(IMAGENET_MEAN)
    expected_std = np.mean(IMAGENET_STD) if grey else np.array(IMAGENET_STD)
    for name, params in (("timm", {"architecture": "resnet10t"}), ("resnet18", {})):
        recipe = model_registry.get(name)(normalisation="imagenet", **params)
        layer = recipe.build(lesions).standardize
        np.testing.assert_allclose(layer.mean.flatten().numpy(), expected_mean, rtol=1e-6)
        np.testing.assert_allclose(layer.std.flatten().numpy(), expected_std, rtol=1e-6)
        own = model_registry.get(name)(**params).build(lesions).standardize
        np.testing.assert_array_equal(own.mean, channel_standardize(lesions.x_train).mean)
