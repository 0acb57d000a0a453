"""How many rows go into one batch: a budget of input numbers, so memory follows the
batch's size and not the number of rows or the size of an input.

Shared by the model's forward passes (:mod:`harness.models.batched`), the faithfulness
curves (:mod:`harness.metrics.faithfulness`) and the statistics over streamed images
(:mod:`harness.datasets.streamed_images`).
"""

from __future__ import annotations

import numpy as np

#: Input numbers per batch: 2²² float32 = 16 MiB — 4,096 rows of 1,024 features, or 27
#: images of 3×224×224.
BATCH_ELEMENTS = 2**22
#: Input numbers per forward pass of a model: 2²⁰ — 6 images of 3×224×224, 85 of 3×64×64.
#: On the CPU a CNN's time per image grows with the batch once its activations leave the
#: caches: a small CNN at 224 px took 5.5 ms per image in batches of 8 and 11–17 ms in
#: batches of 27–64 (resnet18: 44 ms vs 47–57 ms; ``benchmarks/image_scoring.py``).
FORWARD_ELEMENTS = 2**20
#: Input numbers per micro-batch of a training step on images (at least
#: :data:`MIN_MICRO_ROWS` rows): a step's batch is split and its gradients accumulated —
#: the same gradient — when the network has no batch statistics. Measured on the CPU (1
#: thread, small CNN): 1.18 ms per image in micro-batches of 16–64 at 64 px against 1.56
#: in one batch of 128; at 224 px 14.8 ms in micro-batches of 8 against 29.4.
TRAIN_ELEMENTS = 2**18
MIN_MICRO_ROWS = 8


def rows_per_batch(
    input_shape: tuple[int, ...],
    inputs_per_row: int = 1,
    max_rows: int | None = None,
    budget: int | None = None,
) -> int:
    """How many rows, each needing ``inputs_per_row`` inputs of ``input_shape``, fit in
    ``budget`` input numbers (default :data:`BATCH_ELEMENTS`) — at least 1, at most
    ``max_rows``."""
    budget = BATCH_ELEMENTS if budget is None else budget
    rows = max(1, budget // (max(1, int(np.prod(input_shape))) * inputs_per_row))
    return rows if max_rows is None else min(rows, max_rows)
