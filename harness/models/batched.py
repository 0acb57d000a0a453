"""Forward passes without gradients in batches whose memory is bounded by their size,
not by the number of rows — and split again when a device runs out of memory.

A batch holds at most :data:`~harness.batching.FORWARD_ELEMENTS` input numbers (and
:data:`MAX_ROWS` rows): thousands of table rows, six 224-px RGB images (smaller batches
run faster per image on the CPU; see that constant). When the
device still runs out of memory (``torch.OutOfMemoryError``, CUDA's or another
backend's), the batch is halved and retried, down to one row, with a
:class:`MemorySplitWarning` — which the cell's record keeps among its warnings.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from harness.batching import FORWARD_ELEMENTS, rows_per_batch
from harness.datasets.streamed_images import Rows

#: Rows per forward pass at most (small table rows).
MAX_ROWS = 8192


class MemorySplitWarning(RuntimeWarning):
    """A batch was split and retried because the device ran out of memory (the cell's
    timings include the failed attempt)."""


def split_after_out_of_memory(device: torch.device) -> None:
    """Free the device's cached blocks and warn that a batch is split and retried."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    warnings.warn(
        f"out of {device.type} memory: batches were split and retried (timings include the "
        "failed attempts)",
        MemorySplitWarning,
        stacklevel=3,
    )


def rows_per_forward(input_shape: tuple[int, ...]) -> int:
    """Rows of ``input_shape`` per forward pass: within the element budget, at least 1."""
    return rows_per_batch(input_shape, max_rows=MAX_ROWS, budget=FORWARD_ELEMENTS)


def forward_in_batches(
    module: nn.Module,
    x: Rows,
    device: torch.device,
    *,
    rows: int | None = None,
) -> np.ndarray:
    """``module``'s outputs for ``x`` (float32, on the CPU as numpy), in batches of
    ``rows`` (default :func:`rows_per_forward`); a batch that runs out of device memory
    is halved and retried, down to one row (:func:`split_after_out_of_memory`)."""
    size = rows or rows_per_forward(tuple(x.shape[1:]))
    outputs: list[np.ndarray] = []
    start = 0
    with torch.no_grad():
        while start < len(x):
            chunk = x[start : start + size]
            try:
                batch = torch.as_tensor(chunk, dtype=torch.float32, device=device)
                outputs.append(module(batch).float().cpu().numpy())
            except torch.OutOfMemoryError:
                if size == 1:
                    raise
                size = max(1, len(chunk) // 2)
                split_after_out_of_memory(device)
                continue
            start += len(chunk)
    return np.concatenate(outputs) if outputs else np.empty((0, 0), dtype=np.float32)


def probabilities_of(network: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """``network`` (raw inputs → class logits) as a function of rows returning class
    probabilities (the softmax), run in batches on the device its parameters are on
    (the CPU without parameters)."""
    parameter = next(network.parameters(), None)
    device = torch.device("cpu") if parameter is None else parameter.device

    def predict_proba(x: np.ndarray) -> np.ndarray:
        logits = forward_in_batches(network, x, device)
        return np.asarray(torch.softmax(torch.from_numpy(logits), dim=1).numpy())

    return predict_proba
