"""Gradient attribution methods from captum."""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from pydantic import Field

from harness.component import Params
from harness.explainers.base import (
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
)
from harness.models.base import TrainedModel


class IntegratedGradientsParams(Params):
    n_steps: int = Field(50, ge=1, description="points on the straight-line path")
    method: Literal["gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right"] = (
        "gausslegendre"
    )
    baseline: Literal["zero", "train_mean"] = Field(
        "zero", description="reference input: all zeros, or the training-split mean row"
    )
    internal_batch_size: int | None = Field(
        None, ge=1, description="path points evaluated per forward pass (None: all at once)"
    )


@explainer_registry.register("integrated_gradients")
class IntegratedGradients(Explainer):
    """Integrated Gradients (Sundararajan et al. 2017) via captum, on the class logit.

    Signed local attributions in input units; attributions sum to
    logit(x) − logit(baseline) up to the integration error.
    """

    needs_gradients: ClassVar[bool] = True
    Params = IntegratedGradientsParams
    params: IntegratedGradientsParams

    def explain(
        self,
        model: TrainedModel,
        inputs: np.ndarray,
        targets: np.ndarray,
        context: ExplainContext,
    ) -> Explanation:
        x = torch.as_tensor(inputs, device=model.device)
        if self.params.baseline == "zero":
            baseline: torch.Tensor | float = 0.0
        else:
            mean = context.dataset.x_train.mean(axis=0, keepdims=True)
            baseline = torch.as_tensor(mean, device=model.device)
        attributions = CaptumIntegratedGradients(model.module).attribute(
            x,
            baselines=baseline,
            target=torch.as_tensor(targets, device=model.device),
            n_steps=self.params.n_steps,
            method=self.params.method,
            internal_batch_size=self.params.internal_batch_size,
        )
        return Explanation(local=attributions.detach().cpu().numpy(), signed=True)
