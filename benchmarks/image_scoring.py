"""Each image metric's scoring cost per image at 64 and 224 px, against the cost of the
model's forward passes that metric needs.

For each size: synthetic lesion images (3 channels), the ``small_cnn`` recipe trained one
epoch, saliency maps of the explained images; then each metric's ``compute`` on the same
evidence as a suite cell gets it (the best of ``--repeats`` runs), the rows it sends
through the model (counted), and the model's own time per row in batches. Prints ms per
image, forward rows per image, and the ratio metric time ÷ (its forward rows × the time
per forward row) — the overhead of everything else the metric does (ranking, masking,
curves) — plus, for metrics that call no model, their time in units of one forward pass
per image. Each metric runs twice, side by side: with the forward-pass budget of before
issue 32 (``BATCH_ELEMENTS``, 2²² input numbers: 27 images per batch at 224 px) and with
today's (``FORWARD_ELEMENTS``, 2²⁰: 6 images); printed are both times per image and the
speedup. Usage::

    python benchmarks/image_scoring.py [--images N] [--repeats R] [--sizes 64 224]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

import harness.models.batched as batched
from harness.batching import BATCH_ELEMENTS, FORWARD_ELEMENTS
from harness.datasets import dataset_registry
from harness.metrics import metric_registry
from harness.metrics.base import Evidence
from harness.models import model_registry
from harness.models.batched import probabilities_of

METRICS = [
    "pointing_game",
    "energy_pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "activation_precision",
    "activation_sensitivity",
    "mask_roc_auc",
    "topk_iou",
    "emd_localisation",
    "complexity",
    "sparseness",
    "deletion_auc",
    "insertion_auc",
    "deletion_patch_auc",
]


class Counting(torch.nn.Module):
    """The network, counting the rows sent through it."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.network(x)


def _saliency(network: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    inputs = torch.tensor(x, requires_grad=True)
    logits = network(inputs)
    logits[torch.arange(len(y)), torch.as_tensor(y)].sum().backward()
    assert inputs.grad is not None
    return inputs.grad.abs().sum(dim=1).numpy().astype(np.float64)


def _best(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20, help="explained images per size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch threads: {torch.get_num_threads()}; {args.images} images; best of {args.repeats}")
    for size in args.sizes:
        source = dataset_registry.get("synthetic_lesions")(n_images=160, size=size, channels=3)
        data = source.load(0)
        trained = model_registry.get("small_cnn")(epochs=1).fit(data, 0, torch.device("cpu"))
        network = trained.module.eval()
        x, y = data.x_test[: args.images], data.y_test[: args.images]
        assert data.ground_truth.masks is not None
        masks = data.ground_truth.masks[: args.images]
        maps = _saliency(network, x, y)
        counting = Counting(network)
        predict = probabilities_of(counting)
        batch = np.repeat(x, max(1, 64 // len(x)), axis=0)
        per_row = _best(functools.partial(predict, batch), args.repeats) / len(batch)
        print(f"\n{size} px: one forward row {per_row * 1e3:.2f} ms (today's batches)")
        print(
            f"  {'metric':<24} {'before':>9} {'after':>9} {'speedup':>8} {'rows/image':>10} "
            f"{'after ÷ forward':>16}  (ms per image)"
        )
        for name in METRICS:
            if name == "emd_localisation" and size > 64:
                print(
                    f"  {name:<24} left out above 64 px: its exact solver builds a pixels × "
                    "mask pixels cost matrix (4,096 × ~400 at 64 px; 50,176 × ~5,000 at 224)"
                )
                continue
            metric = metric_registry.get(name)()
            evidence = Evidence(
                attributions=maps,
                masks=masks,
                inputs=x,
                targets=y,
                explained_labels=y,
                predict_proba=predict,
                train_mean=data.train_mean,
            ).restricted_to(metric.needs)
            seconds = {}
            for label, budget in (("before", BATCH_ELEMENTS), ("after", FORWARD_ELEMENTS)):
                batched.FORWARD_ELEMENTS = budget  # type: ignore[misc]
                counting.rows = 0
                seconds[label] = _best(lambda m=metric, e=evidence: m.compute(e), args.repeats)
            batched.FORWARD_ELEMENTS = FORWARD_ELEMENTS  # type: ignore[misc]
            rows = counting.rows / args.repeats / len(x)
            before, after = (seconds[k] / len(x) for k in ("before", "after"))
            forward = rows * per_row if rows else per_row
            label = "" if rows else " (no model: ÷ 1 forward row)"
            print(
                f"  {name:<24} {before * 1e3:9.2f} {after * 1e3:9.2f} {before / after:7.2f}× "
                f"{rows:10.1f} {after / forward:16.2f}{label}",
                flush=True,
            )


if __name__ == "__main__":
    main()
