"""Issue 30 (part): the ``vit`` recipe and the attention explainers — rollout by hand,
Chefer's relevance from its definition, fused attention on and off, and a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from timm.models.vision_transformer import VisionTransformer

from harness import load_results, run_suite
from harness.explainers.attention import gradient_weighted, patch_maps, recorded_attention, rollout
from harness.models.vision_transformer import token_grid
from tests.suite_builder import suite


def tiny_vit(seed: int = 0) -> VisionTransformer:
    """8-px images in 4-px patches: a 2 × 2 grid, 5 tokens, 2 blocks of 2 heads."""
    torch.manual_seed(seed)
    vit = VisionTransformer(img_size=8, patch_size=4, in_chans=1, num_classes=3,
                            embed_dim=8, depth=2, num_heads=2, mlp_ratio=2.0)  # fmt: skip
    return vit.eval()


def images(count: int = 3) -> torch.Tensor:
    return torch.as_tensor(
        np.random.default_rng(0).normal(size=(count, 1, 8, 8)), dtype=torch.float32
    )


def test_rollout_of_uniform_attention_by_hand() -> None:
    """Two blocks of uniform attention U over 3 tokens: each step is (U + I)/2, and
    ((U + I)/2)² = (3U + I)/4 since U² = U — the class token's row is [½, ¼, ¼]."""
    uniform = torch.full((1, 2, 3, 3), 1 / 3)  # batch, heads, tokens, tokens
    result = rollout([uniform, uniform])
    assert torch.allclose(result[0, 0], torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64))


def test_rollout_of_a_two_block_vit_equals_the_hand_computation() -> None:
    vit = tiny_vit()
    with torch.no_grad(), recorded_attention(vit) as attentions:
        vit(images())
    assert len(attentions) == 2 and attentions[0].shape == (3, 2, 5, 5)
    by_hand = []
    for image in range(3):
        steps = []
        for attention in attentions:
            mean = attention[image].double().numpy().mean(axis=0)
            step = (mean + np.eye(5)) / 2
            steps.append(step / step.sum(axis=1, keepdims=True))
        by_hand.append(steps[1] @ steps[0])  # first block rightmost
    assert np.allclose(rollout(attentions).numpy(), np.stack(by_hand), rtol=1e-12)
    # every row of a rollout is a distribution over tokens
    assert np.allclose(rollout(attentions, "max", 0.5).sum(dim=-1).numpy(), 1.0)


def test_fused_attention_on_and_off_give_the_same_rollout_and_it_is_restored() -> None:
    vit = tiny_vit()
    assert all(block.attn.fused_attn for block in vit.blocks)  # timm's default here
    x = images()
    with torch.no_grad():
        fused_logits = vit(x)
        with recorded_attention(vit) as attentions:
            assert not any(block.attn.fused_attn for block in vit.blocks)
            plain_logits = vit(x)
    assert all(block.attn.fused_attn for block in vit.blocks)  # switched back on
    assert torch.allclose(fused_logits, plain_logits, atol=1e-5)
    for block in vit.blocks:  # a model the user set up unfused keeps that too
        block.attn.fused_attn = False
    with torch.no_grad(), recorded_attention(vit) as again:
        vit(x)
    assert not any(block.attn.fused_attn for block in vit.blocks)
    assert torch.allclose(rollout(attentions), rollout(again))


def test_transformer_attribution_follows_chefer_et_al_definition() -> None:
    """R = I; per block R ← R + mean_h[(∂y/∂A ⊙ A)⁺] R — the gradients taken here with
    torch.autograd.grad, independently of the explainer's backward."""
    vit = tiny_vit(1)
    x = images()
    targets = torch.tensor([0, 2, 1])
    with recorded_attention(vit) as attentions:
        logits = vit(x)
        chosen = logits.gather(1, targets[:, None]).sum()
        grads = torch.autograd.grad(chosen, attentions)
    expected = []
    for image in range(3):
        relevance = np.eye(5)
        for attention, grad in zip(attentions, grads, strict=True):
            product = grad[image].double().numpy() * attention[image].detach().double().numpy()
            relevance = relevance + np.clip(product, 0, None).mean(axis=0) @ relevance
        expected.append(relevance)
    with recorded_attention(vit, gradients=True) as recorded:
        vit.zero_grad()
        vit(x).gather(1, targets[:, None]).sum().backward()
    assert np.allclose(gradient_weighted(recorded).numpy(), np.stack(expected), rtol=1e-6)


def test_patch_maps_drop_the_class_token_and_upsample_the_grid() -> None:
    vit = tiny_vit()
    assert token_grid(vit) == (1, 2, 2)
    relevance = torch.zeros(1, 5, 5, dtype=torch.float64)
    relevance[0, 0, 1:] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # the top-left patch
    maps = patch_maps(relevance, token_grid(vit), (8, 8))
    assert maps.shape == (1, 8, 8) and maps[0, 0, 0] == maps.max() and maps[0, 7, 7] == 0.0


def test_grad_cam_on_a_vit_equals_pytorch_grad_cam_with_its_documented_reshape() -> None:
    """The library's ViT recipe (its docs): target layer blocks[-1].norm1, the class
    token dropped and the rest reshaped to (images, channels, rows, columns)."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from harness.explainers.base import ExplainContext
    from harness.explainers.cam_library import GradCamLibrary
    from harness.models.base import TrainedModel

    vit = tiny_vit(2)
    x, targets = images(), np.array([1, 0, 2])

    def documented(tensor: torch.Tensor, height: int = 2, width: int = 2) -> torch.Tensor:
        result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    with GradCAM(model=vit, target_layers=[vit.blocks[-1].norm1],
                 reshape_transform=documented) as cam:  # fmt: skip
        expected = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(t)) for t in targets])
    model = TrainedModel(module=vit, device=torch.device("cpu"), train_seconds=0.0,
                         epochs_trained=0)  # fmt: skip
    context = ExplainContext(dataset=None, seed=0, rows=np.arange(3))  # type: ignore[arg-type]
    ours = GradCamLibrary().explain(model, x.numpy(), targets, context).local
    assert ours is not None and ours.shape == (3, 8, 8)
    assert np.allclose(ours, expected, atol=1e-6)


def test_the_by_design_vit_logits_are_the_mean_of_its_token_evidence_maps() -> None:
    from harness.explainers.softcam import SoftCAM, SoftCAMNetwork
    from harness.models.vision_transformer import VisionTransformerRecipe, ViTParams

    class Images:  # what the recipe reads of a dataset
        x_train = np.random.default_rng(0).random((4, 1, 16, 16)).astype(np.float32)
        n_classes = 3

    recipe = VisionTransformerRecipe(ViTParams(patch_size=4, embed_dim=8, depth=2, heads=2))
    torch.manual_seed(0)
    network = SoftCAM().architecture(recipe, Images(), 0).eval()  # type: ignore[arg-type]
    assert isinstance(network, SoftCAMNetwork)
    x = torch.as_tensor(Images.x_train)
    with torch.no_grad():
        maps = network.evidence_maps(x)
        logits = network(x)
    assert maps.shape == (4, 3, 4, 4)  # one evidence value per class and patch token
    assert torch.allclose(logits, maps.mean(dim=(2, 3)), atol=1e-6)


VIT_SUITE = suite(
    "vit",
    metrics=["accuracy", "pointing_game", "activation_precision"],
    execution={"explain_rows": 8, "threads": 1},
    datasets=[("synthetic_lesions", {"n_images": 120, "size": 32})],
    models=[("vit", {"patch_size": 8, "embed_dim": 32, "depth": 2, "heads": 2, "epochs": 2}),
            ("small_cnn", {"channels": [4], "epochs": 1})],
    explainers=["raw_attention", ("attention_rollout", {"discard_ratio": 0.5}),
                "transformer_attribution", "saliency", "grad_cam", "grad_cam_library",
                "softcam"],
)  # fmt: skip


def test_a_suite_explains_a_small_vit_with_attention_and_gradients(tmp_path: Path) -> None:
    (tmp_path / "vit.toml").write_text(VIT_SUITE)
    summary = run_suite(tmp_path / "vit.toml", tmp_path / "out")
    assert summary.counts == {"ok": 10, "failed": 0, "skipped": 4}
    results = load_results(tmp_path / "out")
    cells = results.drop_duplicates("cell_id").set_index("cell_id")
    assert cells.loc["synthetic_lesions/vit/grad_cam/seed=0", "status"] == "skipped"
    skipped = cells.loc["synthetic_lesions/small_cnn/attention_rollout/seed=0"]
    assert "patch tokens" in skipped["error"]
    scored = results.query("model == 'vit' and metric == 'activation_precision'")
    ran = scored[scored["explainer"] != "grad_cam"]
    assert ran["value"].notna().all() and len(ran) == 6


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "deit_tiny_patch16_224"])
def test_timm_vits_by_name_build_at_the_dataset_size_without_downloading(name: str) -> None:
    from harness.models.vision_transformer import VisionTransformerRecipe, ViTParams

    class Images:  # what network() reads of a dataset
        x_train = np.zeros((2, 3, 32, 32), dtype=np.float32)
        n_classes = 2

    recipe = VisionTransformerRecipe(ViTParams(architecture=name))
    network = recipe.network(Images())  # type: ignore[arg-type]
    assert token_grid(network) == (1, 2, 2) and network(torch.zeros(1, 3, 32, 32)).shape == (1, 2)


def test_mprt_by_block_randomises_a_whole_block_at_each_step_top_first() -> None:
    from harness.metrics.base import Evidence
    from harness.metrics.randomisation import (
        MPRT,
        MPRTParams,
        block_steps,
        parameterised_layers,
        randomised_models,
    )
    from harness.metrics.reexplaining import Reexplainer

    vit = tiny_vit(3)
    steps = block_steps(parameterised_layers(vit))[::-1]
    assert steps[:4] == ["head", "norm", "blocks.1", "blocks.0"]
    original = {k: v.clone() for k, v in vit.state_dict().items()}
    states = {  # cascading: one copy changed step by step, so each state is kept as it was
        name: {k: v.clone() for k, v in changed.state_dict().items()}
        for name, changed in randomised_models(vit, steps, cumulative=True, seed=0)
    }
    after_block_1 = states["blocks.1"]
    for key, value in after_block_1.items():
        if key.startswith("blocks.1.") and key.endswith("weight") and "norm" not in key:
            # every linear layer of the block re-drawn (a LayerNorm's reset is 1 and 0,
            # what an untrained one holds already)
            assert not torch.equal(value, original[key]), key
        if key.startswith("blocks.0."):
            assert torch.equal(value, original[key]), key  # the block below did not (yet)

    def gradient(network, inputs, targets, positions):
        x = torch.tensor(inputs, requires_grad=True)
        network(x)[torch.arange(len(x)), torch.as_tensor(targets)].sum().backward()
        return x.grad.abs().sum(axis=1).numpy()

    again = Reexplainer(vit, gradient)
    x, targets = images().numpy(), np.array([0, 1, 2])
    evidence = Evidence(attributions=again(x, targets), inputs=x, targets=targets, reexplain=again)
    result = MPRT(MPRTParams(steps="blocks")).compute(evidence)
    assert list(result.arrays["layers"]) == steps and np.isfinite(result.value)


def test_vit_weights_come_from_a_local_file_without_the_head(tmp_path: Path) -> None:
    """A state dict written by torch.save (read with weights_only): every tensor but the
    head's is the file's; the head keeps its own initialisation (another class count)."""
    from harness.models.vision_transformer import VisionTransformerRecipe, ViTParams

    class Images:
        x_train = np.zeros((2, 1, 16, 16), dtype=np.float32)
        n_classes = 2

    torch.manual_seed(5)
    source = VisionTransformer(img_size=16, patch_size=4, in_chans=1, num_classes=7,
                               embed_dim=8, depth=2, num_heads=2, mlp_ratio=2.0)  # fmt: skip
    torch.save(source.state_dict(), tmp_path / "vit.pth")
    params = ViTParams(patch_size=4, embed_dim=8, depth=2, heads=2, weights=tmp_path / "vit.pth")
    loaded = VisionTransformerRecipe(params).network(Images()).state_dict()  # type: ignore[arg-type]
    for key, value in source.state_dict().items():
        if key.startswith("head."):
            assert loaded[key].shape[0] == 2  # the dataset's classes, not the file's 7
        else:
            assert torch.equal(loaded[key], value), key


def test_a_given_vit_from_a_state_dict_is_explained_by_its_attention(tmp_path: Path) -> None:
    """A ViT trained elsewhere: timm's class as the factory, the weights from a state dict,
    the traits declared — the attention explainers and Grad-CAM on tokens run on it."""
    args = {"img_size": 32, "patch_size": 8, "in_chans": 1, "num_classes": 2,
            "embed_dim": 8, "depth": 2, "num_heads": 2}  # fmt: skip
    torch.manual_seed(0)
    torch.save(VisionTransformer(**args).state_dict(), tmp_path / "vit.pth")
    text = suite(
        "given_vit",
        metrics=["accuracy", "pointing_game"],
        execution={"explain_rows": 4},
        datasets=[("synthetic_lesions", {"n_images": 60, "size": 32})],
        models=[("given", {"path": "vit.pth", "format": "state_dict",
                           "factory": "timm.models.vision_transformer:VisionTransformer",
                           "factory_args": args, "traits": ["attention", "tokens"]})],
        explainers=["raw_attention", "transformer_attribution", "grad_cam_library"],
    )  # fmt: skip
    (tmp_path / "given.toml").write_text(text)
    summary = run_suite(tmp_path / "given.toml", tmp_path / "out")
    assert summary.counts == {"ok": 3, "failed": 0, "skipped": 0}, summary.failures
    scores = load_results(tmp_path / "out").query("metric == 'pointing_game'")["value"]
    assert scores.notna().all() and len(scores) == 3


def _exported(vit: VisionTransformer, path: Path) -> None:
    x = torch.zeros(2, *vit.patch_embed.img_size).unsqueeze(1)
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(vit, (x,), dynamic_shapes={"x": {0: batch}}), path)


def test_an_exported_vit_gives_the_same_attention_maps_as_the_module(tmp_path: Path) -> None:
    """torch.export: the softmax nodes are recorded (a node inserted after each for the
    call, removed after); the grid inferred from the token count and the image size."""
    from harness.explainers.attention import AttentionRollout, RawAttention, TransformerAttribution
    from harness.explainers.base import ExplainContext
    from harness.models.base import TrainedModel
    from harness.models.given import _Exported
    from harness.models.torch_files import load_exported_program

    vit = tiny_vit(4)
    for block in vit.blocks:
        block.attn.fused_attn = False  # an exported program keeps only what it traced
    _exported(vit, tmp_path / "vit.pt2")
    program = _Exported(load_exported_program(tmp_path / "vit.pt2").module())
    nodes = len(program.program.graph.nodes)
    x, targets = images().numpy(), np.array([2, 0, 1])
    context = ExplainContext(dataset=None, seed=0, rows=np.arange(3))  # type: ignore[arg-type]
    for explainer in (
        RawAttention(),
        AttentionRollout(discard_ratio=0.3),
        TransformerAttribution(),
    ):
        maps = [
            explainer.explain(TrainedModel(module=m, device=torch.device("cpu"),
                                           train_seconds=0.0, epochs_trained=0),
                              x, targets, context).local
            for m in (vit, program)
        ]  # fmt: skip
        assert np.allclose(maps[0], maps[1], atol=1e-6), explainer.name
    assert len(program.program.graph.nodes) == nodes  # the recorders are gone


def test_an_exported_vit_with_fused_attention_is_refused_saying_why(tmp_path: Path) -> None:
    vit = VisionTransformer(img_size=32, patch_size=8, in_chans=1, num_classes=2,
                            embed_dim=8, depth=2, num_heads=2).eval()  # fmt: skip
    _exported(vit, tmp_path / "fused.pt2")  # timm's default: fused attention
    args = {"path": "fused.pt2", "traits": ["attention", "tokens"]}
    text = suite("fused", metrics=["accuracy"], execution={"explain_rows": 2},
                 datasets=[("synthetic_lesions", {"n_images": 40, "size": 32})],
                 models=[("given", args)], explainers=["raw_attention"])  # fmt: skip
    (tmp_path / "fused.toml").write_text(text)
    summary = run_suite(tmp_path / "fused.toml", tmp_path / "out")
    assert summary.counts["failed"] == 1
    (failure,) = summary.failures
    assert "export it with fused attention off" in str(failure)
