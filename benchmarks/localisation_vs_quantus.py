"""Localisation metrics: the harness's batch implementation against Quantus, side by side.

Run: ``python benchmarks/localisation_vs_quantus.py``. 256 random maps of 64×64 with
rectangular masks; both get the same arrays; the fastest of 5 repeats of each is compared
and the values printed next to each other. Equal by definition: relevance rank and mass
accuracy, mask ROC-AUC. Different by definition (timings still comparable): the pointing
game (here a 15-pixel tolerance and strict ties; Quantus: none) and top-k IoU (Quantus's
TopKIntersection is the share of its k = 1000 top pixels inside the mask).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")

import quantus  # noqa: E402

from harness.metrics import Evidence, metric_registry  # noqa: E402

PAIRS = [
    ("relevance_rank_accuracy", quantus.RelevanceRankAccuracy),
    ("relevance_mass_accuracy", quantus.RelevanceMassAccuracy),
    ("pointing_game", quantus.PointingGame),
    ("topk_iou", quantus.TopKIntersection),
    ("mask_roc_auc", quantus.AUC),
]


def fastest(call, repeats: int = 5) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    rng = np.random.default_rng(0)
    n = 256
    maps = rng.random((n, 1, 64, 64))
    masks = np.zeros((n, 1, 64, 64))
    for i in range(n):
        r, c = rng.integers(0, 52, size=2)
        masks[i, 0, r : r + rng.integers(4, 12), c : c + rng.integers(4, 12)] = 1
    inputs, labels = rng.random((n, 1, 64, 64)), np.zeros(n, int)
    evidence = Evidence(attributions=maps[:, 0], masks=masks[:, 0] > 0)
    header = ["harness ms", "quantus ms", "ratio", "harness", "quantus"]
    print(f"{'metric':26}", *(f"{h:>11}" for h in header))
    for name, reference in PAIRS:
        ours_seconds, ours = fastest(
            lambda name=name: metric_registry.get(name)().compute(evidence)
        )
        metric = reference(disable_warnings=True, display_progressbar=False, normalise=False)

        def theirs(metric=metric):
            return metric(model=None, x_batch=inputs, y_batch=labels, a_batch=maps,
                          s_batch=masks, channel_first=True)  # fmt: skip

        their_seconds, values = fastest(theirs)
        ratio = f"{their_seconds / ours_seconds:.0f}×"
        print(
            f"{name:26} {ours_seconds * 1e3:>11.1f} {their_seconds * 1e3:>11.1f} {ratio:>11} "
            f"{ours.value:>11.4f} {np.mean(values):>11.4f}"
        )


if __name__ == "__main__":
    main()
