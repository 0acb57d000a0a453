"""Time of the Soft-CAM paper's metrics and of the CAM baselines, measured side by side.

Run: ``python benchmarks/paper_metrics.py [--repeats 3]``. Prints the fastest of the
repeats (the least disturbed by other processes) and the median beside it:

* each new metric on 256 maps of 64×64 (random maps, lesion-like masks, a small CNN for
  the deletion curve), and ``topk_patch_precision`` (both rules) on 64 maps at 512 px;
* seconds per image of every CAM baseline against ``grad_cam`` on the same trained
  small_cnn (64-px synthetic lesions, 64 images, the same targets).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

warnings.filterwarnings("ignore")

from harness.datasets import dataset_registry  # noqa: E402
from harness.explainers import ExplainContext, explainer_registry  # noqa: E402
from harness.metrics import Evidence, metric_registry  # noqa: E402
from harness.models import model_registry  # noqa: E402


def timed(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return min(seconds), statistics.median(seconds)


def blobs(images: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean masks with one disc of radius size/16 per image at a random place."""
    rows, cols = np.mgrid[0:size, 0:size]
    centres = rng.uniform(size * 0.2, size * 0.8, size=(images, 2))
    radius = size / 16
    return (rows[None] - centres[:, 0, None, None]) ** 2 + (
        cols[None] - centres[:, 1, None, None]
    ) ** 2 <= radius**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    repeats = parser.parse_args().repeats
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    data = dataset_registry.get("synthetic_lesions")(n_images=800, size=64).load(0)
    model = model_registry.get("small_cnn")(epochs=5).fit(data, 0, torch.device("cpu"))
    rows = np.arange(64)
    x = np.concatenate([data.x_test] * 2)[:256]
    maps = rng.normal(size=(256, 64, 64))
    evidence = Evidence(
        attributions=maps, masks=blobs(256, 64, rng), inputs=x,
        targets=model.predict(x), explained_labels=np.concatenate([data.y_test] * 2)[:256],
        predict_proba=model.predict_proba, train_mean=data.train_mean,
    )  # fmt: skip
    print("metric on 256 maps of 64×64: fastest s (median s)")
    for name, params in [
        ("topk_patch_precision", {}),
        ("topk_patch_precision", {"rule": "official"}),
        ("activation_precision", {"no_positive": "zero"}),
        ("activation_consistency_pos", {"grid": 8}),
        ("activation_consistency_neg", {"grid": 8}),
        ("deletion_patch_auc", {}),
        ("deletion_auc", {}),
    ]:
        metric = metric_registry.get(name)(**params)
        fastest, median = timed(lambda m=metric: m.compute(evidence), repeats)
        print(f"  {name} {params or ''}: {fastest:.3f} ({median:.3f})")
    large = Evidence(attributions=rng.normal(size=(64, 512, 512)) + 1,
                     masks=blobs(64, 512, rng))  # fmt: skip
    print("topk_patch_precision on 64 maps of 512×512 (G = 60, P = 33, S = 8):")
    for params in ({}, {"rule": "official"}):
        metric = metric_registry.get("topk_patch_precision")(**params)
        fastest, median = timed(lambda m=metric: m.compute(large), repeats)
        print(f"  {params or 'scale_free'}: {fastest:.3f} s ({median:.3f})")
    print("CAM baselines on small_cnn, 64 images of 64×64: ms per image (median), vs grad_cam")
    inputs, targets = data.x_test[rows], model.predict(data.x_test[rows])
    context = ExplainContext(data, 0, rows)
    reference = None
    for name in ["grad_cam", "grad_cam_plus_plus", "xgrad_cam", "hires_cam", "layer_cam",
                 "eigen_cam", "score_cam", "ablation_cam"]:  # fmt: skip
        explainer = explainer_registry.get(name)()
        explainer.explain(model, inputs[:1], targets[:1], ExplainContext(data, 0, rows[:1]))
        fastest, median = timed(
            lambda e=explainer: e.explain(model, inputs, targets, context), repeats
        )
        reference = reference or fastest
        print(f"  {name}: {1000 * fastest / 64:.2f} ({1000 * median / 64:.2f}); "
              f"{fastest / reference:.1f}× grad_cam")  # fmt: skip


if __name__ == "__main__":
    main()
