"""The training loop shared by every recipe: mini-batch Adam with optional early stopping."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from harness.component import Params


class TrainingParams(Params):
    """Training options every recipe accepts."""

    epochs: int = Field(
        30, ge=1, le=100_000, description="maximum number of passes over the training set"
    )
    batch_size: int = Field(128, ge=1, le=1_000_000)
    learning_rate: float = Field(1e-3, gt=0, le=10, description="Adam step size")
    weight_decay: float = Field(0.0, ge=0, le=10, description="Adam (L2) weight decay")
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="stop after this many epochs without a better validation score",
    )
    early_stopping_metric: Literal["loss", "accuracy"] = Field(
        "loss",
        description="early stopping: keep the epoch with the lowest validation loss, or "
        "the highest validation accuracy (ties: the earlier epoch)",
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="training share held out for early stopping"
    )


#: Called with the module and the epoch number: 0 before training, then after each epoch.
EpochObserver = Callable[[nn.Module, int], None]

#: Extra loss term added to the cross-entropy of every batch, from the module's state
#: after its forward pass (e.g. a penalty on class-evidence maps).
Penalty = Callable[[nn.Module], torch.Tensor]


def parameter_groups(
    module: nn.Module, weight_decay: float, learning_rate: float
) -> list[dict[str, Any]]:
    """Adam parameter groups of the trainable parameters: weight decay everywhere except
    in submodules that set ``exempt_from_weight_decay = True`` (e.g. a score layer that
    decay would pull to uniform), the learning rate times the
    ``learning_rate_multiplier`` a submodule sets (default 1)."""
    settings: dict[int, tuple[bool, float]] = {}
    for m in module.modules():
        exempt = bool(getattr(m, "exempt_from_weight_decay", False))
        multiplier = float(getattr(m, "learning_rate_multiplier", 1.0))
        if exempt or multiplier != 1.0:
            settings |= {id(p): (exempt, multiplier) for p in m.parameters()}
    groups: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for p in module.parameters():
        if p.requires_grad:
            groups.setdefault(settings.get(id(p), (False, 1.0)), []).append(p)
    return [
        {"params": params, "weight_decay": 0.0 if exempt else weight_decay,
         "lr": learning_rate * multiplier}
        for (exempt, multiplier), params in groups.items()
    ]  # fmt: skip


def train_classifier(
    module: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    params: TrainingParams,
    *,
    seed: int,
    device: torch.device,
    observer: EpochObserver | None = None,
    penalty: Penalty | None = None,
) -> int:
    """Train ``module`` in place with cross-entropy; return the epoch whose weights the
    module ends with: the last one run, or with early stopping the restored best one.

    The batch order comes from a generator seeded with ``seed``. With early stopping, a
    stratified ``validation_fraction`` of the rows is held out and the weights of the
    epoch with the lowest validation loss (or highest accuracy, ``early_stopping_metric``)
    are restored. ``observer`` sees the module
    before training (epoch 0) and after every epoch; ``penalty(module)`` is added to the
    loss of every batch.
    """
    x_val = y_val = None
    if params.early_stopping_patience is not None:
        from sklearn.model_selection import train_test_split

        x, x_val, y, y_val = train_test_split(
            x, y, test_size=params.validation_fraction, stratify=y, random_state=seed
        )
    inputs = torch.as_tensor(x, device=device)
    labels = torch.as_tensor(y, device=device)
    optimiser = torch.optim.Adam(
        parameter_groups(module, params.weight_decay, params.learning_rate),
        lr=params.learning_rate,
    )
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    best_score, best_state, best_epoch, stale = float("inf"), None, 0, 0
    epoch = 0
    if observer is not None:
        observer(module, 0)
    for epoch in range(1, params.epochs + 1):
        module.train()
        order = torch.randperm(len(inputs), generator=generator).to(device)
        for start in range(0, len(order), params.batch_size):
            batch = order[start : start + params.batch_size]
            optimiser.zero_grad()
            loss = loss_fn(module(inputs[batch]), labels[batch])
            if penalty is not None:
                loss = loss + penalty(module)
            loss.backward()
            optimiser.step()
        if observer is not None:
            observer(module, epoch)
        if x_val is not None and params.early_stopping_patience is not None:
            module.eval()
            with torch.no_grad():
                logits = module(torch.as_tensor(x_val, device=device))
                labels_val = torch.as_tensor(y_val, device=device)
                score = (
                    loss_fn(logits, labels_val).item()
                    if params.early_stopping_metric == "loss"
                    else -(logits.argmax(dim=1) == labels_val).float().mean().item()
                )  # lower is better either way
            if score < best_score:
                best_score, best_state, stale = score, copy.deepcopy(module.state_dict()), 0
                best_epoch = epoch
            else:
                stale += 1
                if stale >= params.early_stopping_patience:
                    break
    if best_state is not None:
        module.load_state_dict(best_state)
        return best_epoch
    return epoch
