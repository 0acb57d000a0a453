"""torchvision recipes: local weights files (weights_only), grey images, the ResNet stem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.models import resnet18, vgg16

from harness.datasets import dataset_registry
from harness.models import model_registry
from harness.suite import SuiteError, parse_suite


@pytest.fixture(scope="module")
def grey_lesions():
    return dataset_registry.get("synthetic_lesions")(
        n_images=40, size=32, channels=1, radius=(2.0, 3.5)
    ).load(0)


def test_resnet_weights_file_is_loaded_and_rgb_kernels_summed_for_grey_images(
    tmp_path: Path, grey_lesions
) -> None:
    torch.manual_seed(1)
    source = resnet18(weights=None)  # a 1000-class ImageNet-shaped checkpoint
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = model_registry.get("resnet18")(weights=path).build(grey_lesions)
    network = model.get_submodule("network")
    torch.testing.assert_close(network.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    torch.testing.assert_close(network.conv1.weight, source.conv1.weight.sum(1, keepdim=True))
    assert network.fc.out_features == grey_lesions.n_classes  # the head is new


def test_vgg_weights_file_loads_the_features_only(tmp_path: Path, grey_lesions) -> None:
    torch.manual_seed(2)
    source = vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(source.state_dict(), path)
    model = model_registry.get("vgg16")(weights=path).build(grey_lesions)
    torch.testing.assert_close(model.features[28].weight, source.features[28].weight)
    assert model.classifier[6].out_features == grey_lesions.n_classes  # the head is new


def test_a_file_that_is_not_a_state_dict_is_refused_naming_it(tmp_path: Path, grey_lesions):
    pickled = tmp_path / "model.pth"
    torch.save({"optimizer": object()}, pickled)  # arbitrary objects: weights_only refuses
    with pytest.raises(ValueError, match=r"model\.pth: cannot read weights"):
        model_registry.get("resnet18")(weights=pickled).build(grey_lesions)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(ValueError, match=r"list\.pth: not a state dict"):
        model_registry.get("resnet18")(weights=listing).build(grey_lesions)
    wrong = tmp_path / "vgg_for_resnet.pth"
    torch.save(vgg16(weights=None).features.state_dict(), wrong)
    with pytest.raises(ValueError, match=r"vgg_for_resnet\.pth: weights do not fit"):
        model_registry.get("resnet18")(weights=wrong).build(grey_lesions)


WEIGHTS_SUITE = """
name = "w"
seeds = [0]
metrics = ["accuracy"]
[[datasets]]
name = "synthetic_lesions"
[[models]]
name = "resnet18"
params = {{ weights = "{weights}" }}
[[explainers]]
name = "random"
"""


def test_a_weights_path_in_a_suite_is_relative_to_the_suite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "suites" / "weights").mkdir(parents=True)
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "suites/weights/r18.pth")
    monkeypatch.chdir(tmp_path)  # not the suite's folder
    suite_path = tmp_path / "suites" / "w.toml"
    suite = parse_suite(WEIGHTS_SUITE.format(weights="weights/r18.pth"), path=suite_path)
    assert suite.models[0].component.params.weights == tmp_path / "suites/weights/r18.pth"
    with pytest.raises(SuiteError, match=r"models\[0\]\.params\.weights: no file nowhere\.pth in "):
        parse_suite(WEIGHTS_SUITE.format(weights="nowhere.pth"), path=suite_path)


@pytest.mark.parametrize(("stem", "side"), [("imagenet", 2), ("no_maxpool", 4)])
def test_the_resnet_stem_sets_the_feature_map_size(stem: str, side: int) -> None:
    lesions = dataset_registry.get("synthetic_lesions")(n_images=20, size=64).load(0)
    backbone, _ = model_registry.get("resnet18")(stem=stem).backbone(lesions)
    with torch.no_grad():
        maps = backbone(torch.as_tensor(lesions.x_test[:2]))
    assert maps.shape[2:] == (side, side)
    assert np.isfinite(maps.numpy()).all()
