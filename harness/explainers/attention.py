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
bilinearly (``align_corners = False``) — the ``resolution`` convention, stored with each
explanation's metrics; unsigned. Fused attention is switched off on every attention module
for the call (timm's ``fused_attn``) and restored after, so the weights exist; the
softmax output is read where timm applies attention dropout (``attn_drop``, the identity
in eval mode).
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
def recorded_attention(vit: nn.Module, gradients: bool = False) -> Iterator[list[torch.Tensor]]:
    """Within the block, every forward of ``vit`` appends each block's attention weights
    (batch, heads, tokens, tokens) to the yielded list, in block order; with
    ``gradients`` they keep their gradient (``retain_grad``). Fused attention is off
    inside the block and restored after."""
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


def patch_maps(relevance: torch.Tensor, vit: nn.Module, size: tuple[int, int]) -> np.ndarray:
    """The class token's row over the patch tokens as (batch, height, width) maps:
    the token grid upsampled bilinearly to ``size`` (float32)."""
    prefix, rows, columns = token_grid(vit)
    grid = relevance[:, 0, prefix:].reshape(-1, 1, rows, columns).float()
    maps = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)
    return maps[:, 0].numpy()


class RolloutParams(Params):
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
    fixed_conventions: ClassVar[dict[str, str]] = {
        "resolution": "token grid, upsampled bilinearly (align_corners = False)",
    }

    def explain(
        self, model: TrainedModel, inputs: np.ndarray, targets: np.ndarray, context: ExplainContext
    ) -> Explanation:
        network = model.module
        vit = vision_transformer(network)
        device = model.device
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32), device=device)
        chosen = torch.as_tensor(np.asarray(targets), device=device)
        relevance = self.relevance(network, vit, x, chosen).cpu()
        return Explanation(local=patch_maps(relevance, vit, tuple(inputs.shape[-2:])), signed=False)

    def relevance(
        self, network: nn.Module, vit: nn.Module, x: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        """(batch, tokens, tokens): the relevance whose class-token row is the map."""
        raise NotImplementedError

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return 1.0


@explainer_registry.register("raw_attention")
class RawAttention(_AttentionExplainer):
    """The last block's class-token attention to the patches, mean over heads."""

    def relevance(
        self, network: nn.Module, vit: nn.Module, x: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad(), recorded_attention(vit) as attentions:
            network(x)
        return attentions[-1].double().mean(dim=1)


@explainer_registry.register("attention_rollout")
class AttentionRollout(_AttentionExplainer):
    """Attention rollout (Abnar & Zuidema 2020): the blocks' attentions, with the
    residual, multiplied through."""

    params: RolloutParams

    def relevance(
        self, network: nn.Module, vit: nn.Module, x: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        with torch.no_grad(), recorded_attention(vit) as attentions:
            network(x)
        return rollout(attentions, self.params.head_fusion, self.params.discard_ratio)


@explainer_registry.register("transformer_attribution")
class TransformerAttribution(_AttentionExplainer):
    """Chefer et al. (ICCV 2021): gradient-weighted attention propagated through the
    blocks, for the explained class."""

    needs_gradients: ClassVar[bool] = True

    def relevance(
        self, network: nn.Module, vit: nn.Module, x: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        with torch.enable_grad(), recorded_attention(vit, gradients=True) as attentions:
            logits = network(x)
            network.zero_grad(set_to_none=True)
            logits.gather(1, targets[:, None]).sum().backward()
            return gradient_weighted(attentions)

    def model_calls_per_row(self, n_features: int, modality: Modality = "tabular") -> float:
        return 2.0
