"""The CAM baselines of the grad-cam package: agreement with captum, conventions, and
cells on small_cnn and resnet18."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness import load_results, run_suite
from harness.datasets import dataset_registry
from harness.explainers import ExplainContext, explainer_registry
from harness.models import model_registry
from harness.suite import parse_suite

CPU = torch.device("cpu")
CAMS = ["score_cam", "layer_cam", "grad_cam_plus_plus", "xgrad_cam", "hires_cam",
        "eigen_cam", "ablation_cam"]  # fmt: skip


@pytest.fixture(scope="module")
def trained():
    data = dataset_registry.get("synthetic_lesions")(n_images=160, size=32).load(0)
    model = model_registry.get("small_cnn")(channels=[8, 16], epochs=3).fit(data, 0, CPU)
    rows = np.arange(12)
    return data, model, rows, model.predict(data.x_test[rows])


def test_the_library_grad_cam_equals_captums(trained) -> None:
    """pytorch_grad_cam.GradCAM (after its ReLU and min-max scaling) against captum's
    LayerGradCam scaled the same way, on the same model and layer."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    data, model, rows, targets = trained
    x = torch.as_tensor(data.x_test[rows])
    with GradCAM(model=model.module, target_layers=[model.module.get_submodule("features")]) as cam:
        library = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    ours = (
        explainer_registry.get("grad_cam")()
        .explain(model, data.x_test[rows], targets, ExplainContext(data, 0, rows))
        .local
    )
    low = ours.min(axis=(1, 2), keepdims=True)
    scaled = (ours - low) / (ours.max(axis=(1, 2), keepdims=True) - low + 1e-7)
    for a, b in zip(library, scaled, strict=True):
        if b.max() > 0:
            assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("name", CAMS)
def test_cam_maps_follow_their_conventions(trained, name: str) -> None:
    data, model, rows, targets = trained
    context = ExplainContext(data, 0, rows)
    scaled = explainer_registry.get(name)(batch_size=5).explain(
        model, data.x_test[rows], targets, context
    )
    assert scaled.local.shape == (12, 32, 32) and not scaled.signed
    assert scaled.local.min() >= 0 and scaled.local.max() <= 1 + 1e-6
    raw = explainer_registry.get(name)(output="raw").explain(
        model, data.x_test[rows], targets, context
    )
    assert raw.signed and raw.local.shape == (12, 32, 32)
    again = explainer_registry.get(name)(batch_size=12).explain(
        model, data.x_test[rows], targets, context
    )
    np.testing.assert_allclose(again.local, scaled.local, atol=1e-5)  # batching changes nothing


def test_raw_hires_cam_is_gradient_times_activation(trained) -> None:
    """HiRes-CAM's raw map, by hand: Σ_c ∂y/∂A_c · A_c at the layer, then upsampled."""
    data, model, rows, targets = trained
    x = torch.as_tensor(data.x_test[rows[:3]]).requires_grad_(False)
    layer = model.module.get_submodule("features")
    kept = {}
    handle = layer.register_forward_hook(lambda m, i, o: kept.__setitem__("a", o))
    logits = model.module(x)
    handle.remove()
    grads = torch.autograd.grad(logits[torch.arange(3), torch.as_tensor(targets[:3])].sum(),
                                kept["a"])[0]  # fmt: skip
    by_hand = (grads * kept["a"]).sum(dim=1, keepdim=True).detach()
    by_hand = torch.nn.functional.interpolate(by_hand, size=(32, 32), mode="bilinear")[:, 0]
    raw = explainer_registry.get("hires_cam")(output="raw").explain(
        model, data.x_test[rows[:3]], targets[:3], ExplainContext(data, 0, rows[:3])
    )
    np.testing.assert_allclose(raw.local, by_hand.numpy(), rtol=1e-4, atol=1e-7)


CELLS = """
name = "cams"
seeds = [0]
metrics = ["pointing_game", "topk_patch_precision"]
[execution]
explain_rows = 6
[[datasets]]
name = "synthetic_lesions"
params = {{ n_images = 120, size = 64 }}
[[models]]
name = "{model}"
params = {{ epochs = 1 }}
[[explainers]]
name = "score_cam"
params = {{ masks_per_batch = 128 }}
[[explainers]]
name = "layer_cam"
"""


@pytest.mark.slow
@pytest.mark.parametrize("model", ["small_cnn", "resnet18"])
def test_score_cam_and_layer_cam_cells_run(tmp_path: Path, model: str) -> None:
    summary = run_suite(parse_suite(CELLS.format(model=model)), tmp_path)
    assert summary.counts == {"ok": 2, "failed": 0, "skipped": 0}, summary.failures
    scores = load_results(tmp_path)
    pointing = scores[scores["metric"] == "pointing_game"]
    assert len(pointing) == 2 and pointing["value"].notna().all()  # a constant map: a miss
