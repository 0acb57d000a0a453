"""The training loop shared by every recipe: mini-batch Adam (or SGD with Nesterov
momentum), a constant or cosine-annealed learning rate, optional seeded image
augmentation, and the last or the best-validation checkpoint (with optional early
stopping). Only a batch at a time is on the device."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from harness.batching import MIN_MICRO_ROWS, TRAIN_ELEMENTS, rows_per_batch
from harness.component import Params
from harness.datasets.base import stratified_split
from harness.datasets.streamed_images import (
    Rows,
    StreamedImages,
    as_torch_dataset,
    read_through,
    stacked_tensor,
    take,
)
from harness.models.batched import forward_in_batches


class AugmentationParams(Params):
    """Image augmentation of each training image (torchvision ``transforms.v2``), drawn
    from a stream seeded by the seed, the epoch and the batch: the same seed gives the
    same batches. Values are the images' own (colour jitter assumes [0, 1])."""

    horizontal_flip: float = Field(0.0, ge=0, le=1, description="probability of a left–right flip")
    vertical_flip: float = Field(0.0, ge=0, le=1, description="probability of an up–down flip")
    rotation: float = Field(0.0, ge=0, le=180, description="rotation by up to ± degrees")
    color_jitter: float = Field(
        0.0, ge=0, le=1, description="brightness and contrast (and saturation, RGB) jitter"
    )
    resized_crop: float | None = Field(
        None, gt=0, le=1, description="random resized crop: smallest area share, resized back"
    )


class TrainingParams(Params):
    """Training options every recipe accepts."""

    epochs: int = Field(
        30, ge=1, le=100_000, description="maximum number of passes over the training set"
    )
    batch_size: int = Field(128, ge=1, le=1_000_000)
    optimizer: Literal["adam", "sgd"] = Field(
        "adam", description="Adam, or SGD with momentum (the Soft-CAM paper's)"
    )
    learning_rate: float = Field(
        1e-3, gt=0, le=10, description="step size (of the first epoch, with a schedule)"
    )
    weight_decay: float = Field(0.0, ge=0, le=10, description="L2 weight decay")
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd: momentum")
    nesterov: bool = Field(True, description="sgd: Nesterov momentum")
    schedule: Literal["constant", "cosine"] = Field(
        "constant",
        description="learning rate per epoch: constant, or cosine-annealed from learning_rate "
        "to min_learning_rate over the epochs (torch's CosineAnnealingLR)",
    )
    min_learning_rate: float = Field(0.0, ge=0, le=10, description="cosine: the floor")
    augmentation: AugmentationParams | None = Field(
        None, description="images: seeded augmentation of every training batch"
    )
    amp: Literal["none", "bf16", "fp16"] = Field(
        "none",
        description="mixed precision (torch.autocast) of training and prediction forward "
        "passes; weights and attributions stay float32",
    )
    micro_batches: bool = Field(
        False,
        description="images: split each step's batch into cache-sized parts and accumulate "
        "their gradients (networks without batch norm or dropout) — the same gradient to "
        "float32 rounding, 1.3× (64 px) to 2× (224 px) faster on the CPU; the weights differ "
        "in the last bits, which can flip a claim near its boundary, so off by default",
    )
    channels_last: bool = Field(
        False,
        description="images: train in channels-last memory format (torch.channels_last) — "
        "on the CPU 1.4× faster for small_cnn at 64 px on one thread, no faster for "
        "resnet18; other convolution kernels, so the weights differ in the last bits",
    )
    checkpoint: Literal["last", "best"] = Field(
        "last",
        description="weights kept: the last epoch's, or the best on the held-out "
        "validation rows by early_stopping_metric",
    )
    early_stopping_patience: int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="stop after this many epochs without a better validation score",
    )
    early_stopping_metric: Literal["loss", "accuracy", "roc_auc"] = Field(
        "loss",
        description="early stopping and checkpoint 'best': the epoch with the lowest "
        "validation loss, or the highest accuracy or ROC-AUC (ties: the earlier epoch)",
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="training share held out for early stopping"
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainingParams:
        if self.schedule == "cosine" and self.min_learning_rate > self.learning_rate:
            raise ValueError("min_learning_rate must not exceed learning_rate")
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("Nesterov momentum needs momentum > 0 (or nesterov = false)")
        return self

    @property
    def selects_on_validation(self) -> bool:
        """Whether rows are held out to choose (or stop at) an epoch."""
        return self.early_stopping_patience is not None or self.checkpoint == "best"


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
        {
            "params": params,
            "weight_decay": 0.0 if exempt else weight_decay,
            "lr": learning_rate * multiplier,
        }
        for (exempt, multiplier), params in groups.items()
    ]


@dataclass
class TrainingLog:
    """What training did: the epoch whose weights the module ends with (the last one run,
    or the restored best), and the learning rate of every epoch run."""

    epoch: int
    learning_rates: list[float] = field(default_factory=list)


def mixed_precision(device: torch.device, amp: str) -> torch.autocast:
    """``torch.autocast`` on ``device`` in bfloat16 or float16 (``amp``), or disabled."""
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype, enabled=amp != "none")


def make_optimiser(module: nn.Module, params: TrainingParams) -> torch.optim.Optimizer:
    """Adam, or SGD (momentum, Nesterov), over :func:`parameter_groups`."""
    groups = parameter_groups(module, params.weight_decay, params.learning_rate)
    if params.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=params.learning_rate, momentum=params.momentum, nesterov=params.nesterov
        )
    return torch.optim.Adam(groups, lr=params.learning_rate)


def make_schedule(
    optimiser: torch.optim.Optimizer, params: TrainingParams
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The per-epoch learning-rate schedule: None (constant), or cosine annealing from
    the learning rate to ``min_learning_rate`` over ``epochs`` (η_e = η_min + (η₀ − η_min)
    · (1 + cos(π e / E)) / 2 for epoch e = 0…E−1)."""
    if params.schedule == "constant":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, T_max=params.epochs, eta_min=params.min_learning_rate
    )


def augmenter(params: AugmentationParams, channels: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """One image (C, H, W) → its augmented copy, with torchvision ``transforms.v2``."""
    from torchvision.transforms import v2

    steps: list[Callable[[torch.Tensor], torch.Tensor]] = []
    if params.resized_crop is not None:
        steps.append(_ResizedCrop(params.resized_crop))
    if params.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip(params.horizontal_flip))
    if params.vertical_flip:
        steps.append(v2.RandomVerticalFlip(params.vertical_flip))
    if params.rotation:
        steps.append(v2.RandomRotation(params.rotation))
    if params.color_jitter:
        strength = params.color_jitter
        saturation = strength if channels == 3 else 0.0
        steps.append(v2.ColorJitter(brightness=strength, contrast=strength, saturation=saturation))
    return v2.Compose(steps)


class _ResizedCrop:
    """``v2.RandomResizedCrop`` back to the image's own size."""

    def __init__(self, smallest: float) -> None:
        self.smallest = smallest

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import v2

        size = tuple(image.shape[-2:])
        return v2.RandomResizedCrop(size, scale=(self.smallest, 1.0), antialias=True)(image)


def augmented(
    batch: torch.Tensor,
    transform: Callable[[torch.Tensor], torch.Tensor],
    seed: int,
    epoch: int,
    index: int,
) -> torch.Tensor:
    """Each image of ``batch`` augmented on its own, from torch's CPU generator seeded by
    (seed, epoch, batch index) — the global generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(hash((seed, epoch, index)) % 2**63)
        return torch.stack([transform(image) for image in batch.cpu()]).to(batch.device)


def rows_of(x: Rows, batches: list[torch.Tensor], device: torch.device) -> Iterator[torch.Tensor]:
    """The rows of each batch of indices, in order, as CPU tensors: indexed from memory,
    or decoded from image files ahead of time by a ``DataLoader``'s worker processes
    (:meth:`StreamedImages.loader_workers`), pinned for a CUDA device."""
    if not isinstance(x, StreamedImages):
        inputs = torch.as_tensor(x)
        yield from (inputs[batch] for batch in batches)
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        as_torch_dataset(x),
        batch_sampler=[batch.tolist() for batch in batches],
        num_workers=x.loader_workers(),
        collate_fn=stacked_tensor,
        pin_memory=device.type == "cuda",
    )
    yield from read_through(loader)


def _validation_score(
    module: nn.Module, x: Rows, y: np.ndarray, metric: str, device: torch.device
) -> float:
    """The held-out rows' score, lower is better: loss, −accuracy or −ROC-AUC."""
    module.eval()
    logits = torch.from_numpy(forward_in_batches(module, x, device))
    labels = torch.as_tensor(y)
    if metric == "loss":
        return float(nn.functional.cross_entropy(logits, labels).item())
    if metric == "accuracy":
        return -float((logits.argmax(dim=1) == labels).float().mean().item())
    from sklearn.metrics import roc_auc_score

    probabilities = torch.softmax(logits, dim=1).numpy()
    if probabilities.shape[1] == 2:
        return -float(roc_auc_score(y, probabilities[:, 1]))
    return -float(roc_auc_score(y, probabilities, multi_class="ovr"))


def micro_batch_rows(module: nn.Module, input_shape: tuple[int, ...], batch_size: int) -> int:
    """Rows per forward/backward pass of a training step with ``micro_batches``: the whole
    batch for tables and for networks whose training output depends on the rest of the
    batch (batch normalisation) or on random draws (dropout); else :data:`~harness.batching.
    TRAIN_ELEMENTS` input numbers' worth (at least :data:`~harness.batching.
    MIN_MICRO_ROWS`), the step's gradient accumulated over the parts — the same gradient,
    computed faster on the CPU (see that constant)."""
    batch_dependent = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)
    if len(input_shape) != 3 or any(isinstance(m, batch_dependent) for m in module.modules()):
        return batch_size
    rows = rows_per_batch(input_shape, budget=TRAIN_ELEMENTS)
    return min(batch_size, max(MIN_MICRO_ROWS, rows))


def train_classifier(
    module: nn.Module,
    x: Rows,
    y: np.ndarray,
    params: TrainingParams,
    *,
    seed: int,
    device: torch.device,
    observer: EpochObserver | None = None,
    penalty: Penalty | None = None,
) -> TrainingLog:
    """Train ``module`` in place with cross-entropy; return the epoch whose weights it
    ends with and the learning rate of each epoch.

    The batch order (and any augmentation) comes from generators seeded with ``seed``;
    one batch at a time is moved to ``device``. With early stopping or ``checkpoint =
    "best"``, a stratified ``validation_fraction`` of the rows is held out and the
    weights of the epoch with the best validation score (``early_stopping_metric``) are
    restored. ``observer`` sees the module before training (epoch 0) and after every
    epoch; ``penalty(module)`` is added to the loss of every batch.
    """
    x_val: Rows | None = None
    y_val: np.ndarray | None = None
    if params.selects_on_validation:
        kept, held_out = stratified_split(y, params.validation_fraction, seed)
        x, x_val, y, y_val = take(x, kept), take(x, held_out), y[kept], y[held_out]
    if params.augmentation is not None and x.ndim != 4:
        raise ValueError("training.augmentation needs images; leave it out for tables")
    layout = torch.contiguous_format
    if params.channels_last and x.ndim == 4:
        layout = torch.channels_last
        module.to(memory_format=layout)
    transform = None if params.augmentation is None else augmenter(params.augmentation, x.shape[1])
    labels = torch.as_tensor(y)
    optimiser = make_optimiser(module, params)
    schedule = make_schedule(optimiser, params)
    scaler = torch.amp.GradScaler(device.type, enabled=params.amp == "fp16")
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    micro = params.batch_size
    if params.micro_batches:
        micro = micro_batch_rows(module, tuple(x.shape[1:]), params.batch_size)
    best_score, best_state, best_epoch, stale = float("inf"), None, 0, 0
    log = TrainingLog(epoch=0)
    if observer is not None:
        observer(module, 0)
    for epoch in range(1, params.epochs + 1):
        module.train()
        log.epoch = epoch
        log.learning_rates.append(float(optimiser.param_groups[0]["lr"]))
        order = torch.randperm(len(labels), generator=generator)
        batches = [
            order[s : s + params.batch_size] for s in range(0, len(order), params.batch_size)
        ]
        for index, (batch, rows) in enumerate(
            zip(batches, rows_of(x, batches, device), strict=True)
        ):
            images = rows.to(device, non_blocking=True)
            if transform is not None:
                images = augmented(images, transform, seed, epoch, index)
            images = images.contiguous(memory_format=layout)
            optimiser.zero_grad()
            targets = labels[batch].to(device, non_blocking=True)
            for part in range(0, len(images), micro):
                chunk = slice(part, part + micro)
                with mixed_precision(device, params.amp):
                    loss = loss_fn(module(images[chunk]), targets[chunk])
                    if len(images) > micro:  # the batch's mean, accumulated by part
                        loss = loss * (len(targets[chunk]) / len(images))
                    if penalty is not None and part == 0:
                        loss = loss + penalty(module)
                scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
        if schedule is not None:
            schedule.step()
        if observer is not None:
            observer(module, epoch)
        if x_val is not None and y_val is not None:
            with mixed_precision(device, params.amp):
                score = _validation_score(
                    module, x_val, y_val, params.early_stopping_metric, device
                )
            if score < best_score:
                best_score, best_state, stale = score, copy.deepcopy(module.state_dict()), 0
                best_epoch = epoch
            else:
                stale += 1
                patience = params.early_stopping_patience
                if patience is not None and stale >= patience:
                    break
    if best_state is not None:
        module.load_state_dict(best_state)
        log.epoch = best_epoch
    return log
