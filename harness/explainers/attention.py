"""Explanations read from a vision transformer's attention (the ``vit`` recipe).

- ``raw_attention``: the last block's attention of the class token to each patch token,
  averaged over heads.
- ``attention_rollout`` (Abnar & Zuidema, ACL 2020): per block the heads' attention fused
  (``mean``, ``max`` or ``min``), optionally the weakest ``discard_ratio`` of each row's
  entries set to 0 (the class token's own column kept; as in Gildenblat's vit-explain,
  the common implementation), the residual stream added — (A + I) / 2 — and each row
  renormalised to sum 1 (vit-explain divides by ``sum(dim=-1)`` without keeping the
  dimension, which scales columns instead; the paper's rows are used here); the blocks'
  matrices multiplied, first block rightmost:
  R = Â_L ⋯ Â_1; the map is R's class-token row over the patch tokens.
- ``transformer_attribution`` (Chefer, Gur & Wolf, ICCV 2021, "Generic attention-model
  explainability"): R = I; per block, in order, Ā = mean over heads of (∇A ⊙ A)⁺ — the
  attention weighted by the gradient of the explained class's logit with respect to it,
  negative parts dropped — and R ← R + Ā R; the map is R's class-token row over the patch
  tokens (no LRP: the paper's rule for self-attention encoders).

Maps are at **token resolution** (one value per patch) and upsampled to the image
(``interpolation``, bilinear by default, ``align_corners = False``; a parameter, stored
with the suite like every explainer's); unsigned. Fused attention is switched off on
every attention module for the call (timm's ``fused_attn``) and restored after, so the
weights exist; the softmax output is read where timm applies attention dropout
(``attn_drop``, the identity in eval mode). An exported ViT (``torch.export``): the outputs
of its softmax nodes (:func:`recorded_attention`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from harness.component import Params
from harness.datasets.base import Modality
from harness.explainers.base import ExplainContext, Explainer, Explanation, explainer_registry
from harness.models.base import TrainedModel
from harness.models.vision_transformer import token_grid, vision_transformer


@contextlib.contextmanager
def recorded_attention(network: nn.Module, gradients: bool = False) -> Iterator[list[torch.Tensor]]:
    """Within the block, every forward of ``network`` appends each block's attention
    weights (batch, heads, tokens, tokens) to the yielded list, in block order; with
    ``gradients`` they keep their gradient (``retain_grad``). A timm ViT inside
    ``network``: read where timm applies attention dropout, fused attention off inside
    the block and restored after. Otherwise an exported program (``torch.export``) inside
    it: the outputs of its softmax nodes, recorded by nodes inserted for the block."""
    try:
        vit = vision_transformer(network)
    except ValueError:
        with _recorded_softmax(_exported_graph(network), gradients) as recorded:
            yield recorded
        return
    attentions: list[torch.Tensor] = []
    blocks: Any = vit.blocks
    modules: list[Any] = [block.attn for block in blocks]
    fused = [getattr(m, "fused_attn", False) for m in modules]

    def keep(_: nn.Module, __: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if gradients:
            output.retain_grad()
        attentions.append(output)

    hooks = [m.attn_drop.register_forward_hook(keep) for m in modules]
    try:
        for module in modules:
            module.fused_attn = False
        yield attentions
    finally:
        for module, was in zip(modules, fused, strict=True):
            module.fused_attn = was
        for hook in hooks:
            hook.remove()


def _exported_graph(network: nn.Module) -> torch.fx.GraphModule:
    """The graph of an exported vision transformer inside ``network`` (its softmax nodes
    are the attention); ``ValueError`` saying what to do otherwise."""
    for module in network.modules():
        if isinstance(module, torch.fx.GraphModule):
            targets = [str(n.target) for n in module.graph.nodes if n.op == "call_function"]
            if any("softmax" in t for t in targets):
                return module
            if any("scaled_dot_product_attention" in t for t in targets):
                raise ValueError(
                    "the exported model computes attention with scaled_dot_product_attention, "
                    "which forms no weights; export it with fused attention off (timm: "
                    "block.attn.fused_attn = False for every block)"
                )
    raise ValueError(
        "the model is not a vision transformer: neither a timm ViT (patch_embed, blocks) "
        "nor an exported program with attention (softmax)"
    )


@contextlib.contextmanager
def _recorded_softmax(graph: torch.fx.GraphModule, gradients: bool) -> Iterator[list[torch.Tensor]]:
    """Every softmax output of ``graph`` appended to the yielded list while inside (a node
    inserted after each, removed after)."""
    attentions: list[torch.Tensor] = []

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        if gradients and tensor.requires_grad:
            tensor.retain_grad()
        attentions.append(tensor)
        return tensor

    softmaxes = [
        n for n in graph.graph.nodes if n.op == "call_function" and "softmax" in str(n.target)
    ]
    inserted = []
    for node in softmaxes:
        with graph.graph.inserting_after(node):
            recorder = graph.graph.call_function(keep, (node,))
        node.replace_all_uses_with(recorder, delete_user_cb=lambda user, r=recorder: user is not r)
        inserted.append((node, recorder))
    graph.recompile()
    try:
        yield attentions
    finally:
        for node, recorder in inserted:
            recorder.replace_all_uses_with(node)
            graph.graph.erase_node(recorder)
        graph.recompile()


def attention_grid(network: nn.Module, tokens: int, size: tuple[int, int]) -> tuple[int, int, int]:
    """(prefix tokens, rows, columns) of the attention's ``tokens``: from a timm ViT's
    patch embedding, else inferred for an exported one — the class token (and a
    distillation token) before a square grid of patches that divides the image ``size``."""
    try:
        return token_grid(vision_transformer(network))
    except ValueError:
        pass
    for prefix in (1, 2, 0):
        side = round((tokens - prefix) ** 0.5)
        if side > 0 and side * side == tokens - prefix and size[0] % side == size[1] % side == 0:
            return prefix, side, side
    raise ValueError(
        f"cannot lay {tokens} tokens out as a class token and a square grid of patches of "
        f"a {size[0]} × {size[1]} image"
    )


def attention_of(network: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Each block's attention weights for ``x`` (no gradients), in block order."""
    with torch.no_grad(), recorded_attention(network) as attentions:
        network(x)
    return attentions


def rollout(
    attentions: list[torch.Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0
) -> torch.Tensor:
    """Attention rollout (see the module): (batch, tokens, tokens), float64."""
    result: torch.Tensor | None = None
    for attention in attentions:
        heads = attention.detach().double()
        if head_fusion == "mean":
            fused = heads.mean(dim=1)
        else:
            fused = heads.amax(dim=1) if head_fusion == "max" else heads.amin(dim=1)
        if discard_ratio > 0:
            batch, tokens, _ = fused.shape
            flat = fused.reshape(batch, -1)
            count = int(flat.shape[1] * discard_ratio)
            _, lowest = flat.topk(count, dim=-1, largest=False)
            kept = torch.ones_like(flat)
            kept.scatter_(1, lowest, 0.0)
            kept[:, 0] = 1.0  # the class token's attention to itself stays
            fused = (flat * kept).reshape(batch, tokens, tokens)
        identity = torch.eye(fused.shape[-1], dtype=fused.dtype)
        step = (fused + identity) / 2
        step = step / step.sum(dim=-1, keepdim=True)
        result = step if result is None else step @ result
    assert result is not None
    return result


def gradient_weighted(attentions: list[torch.Tensor]) -> torch.Tensor:
    """Chefer et al.'s relevance (see the module): (batch, tokens, tokens), float64;
    each attention must carry its gradient."""
    relevance: torch.Tensor | None = None
    for attention in attentions:
        assert attention.grad is not None, "the attention was recorded without gradients"
        weighted = (attention.grad * attention).detach().double().clamp(min=0).mean(dim=1)
        if relevance is None:
            relevance = torch.eye(weighted.shape[-1], dtype=weighted.dtype).expand_as(weighted)
        relevance = relevance + weighted @ relevance
    assert relevance is not None
    return relevance


def patch_maps(
    relevance: torch.Tensor,
    grid: tuple[int, int, int],
    size: tuple[int, int],
    interpolation: str = "bilinear",
) -> np.ndarray:
    """The class token's row over the patch tokens as (batch, height, width) maps: the
    token grid (``grid``: prefix tokens, rows, columns) upsampled to ``size`` (float32;
    ``align_corners = False``)."""
    prefix, rows, columns = grid
    patches = relevance[:, 0, prefix:].reshape(-1, 1, rows, columns).float()
    corners = None if interpolation == "nearest" else False
    maps = F.interpolate(patches, size=size, mode=interpolation, align_corners=corners)
    return maps[:, 0].numpy()


class AttentionParams(Params):
    interpolation: Literal["bilinear", "nearest", "bicubic"] = Field(
        "bilinear", description="upsampling of the token-grid map to the input size"
    )


class RolloutParams(AttentionParams):
    head_fusion: Literal["mean", "max", "min"] = Field(
        "mean", description="how each block's heads are fused into one attention matrix"
    )
    discard_ratio: float = Field(
        0.0, ge=0.0, lt=1.0, description="share of each block's weakest attentions set to 0"
    )


class _AttentionExplainer(Explainer):
    """Maps from a ViT's attention, batch by batch (no random numbers)."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"image"})
    requires_traits: ClassVar[frozenset[str]] = frozenset({"tokens"})
    params: AttentionParams

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        network = model.module
        device = model.device
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=device)
        chosen = torch.as_tensor(np.asarray(targets), device=device)
        relevance = self.relevance(network, x, chosen).cpu()
        size = (int(inputs.shape[-2]), int(inputs.shape[-1]))
        grid = attention_grid(network, relevance.shape[-1], size)
        maps = patch_maps(relevance, grid, size, self.params.interpolation)
        return Explanation(local=maps, signed=False)

    def relevance(self, network: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, tokens): the relevance whose class-token row is the map."""
        raise NotImplementedError

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return 1.0


@explainer_registry.register("raw_attention")
class RawAttention(_AttentionExplainer):
    """The last block's class-token attention to the patches, mean over heads."""

    def relevance(self, network: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return attention_of(network, x)[-1].double().mean(dim=1)


@explainer_registry.register("attention_rollout")
class AttentionRollout(_AttentionExplainer):
    """Attention rollout (Abnar & Zuidema 2020): the blocks' attentions, with the
    residual, multiplied through."""

    params: RolloutParams

    def relevance(self, network: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        attentions = attention_of(network, x)
        return rollout(attentions, self.params.head_fusion, self.params.discard_ratio)


@explainer_registry.register("transformer_attribution")
class TransformerAttribution(_AttentionExplainer):
    """Chefer et al. (ICCV 2021): gradient-weighted attention propagated through the
    blocks, for the explained class."""

    needs_gradients: ClassVar[bool] = True

    def relevance(self, network: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad(), recorded_attention(network, gradients=True) as attentions:
            logits = network(x)
            network.zero_grad(set_to_none=True)
            logits.gather(1, targets[:, None]).sum().backward()
            return gradient_weighted(attentions)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return 2.0
