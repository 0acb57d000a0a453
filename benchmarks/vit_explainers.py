"""ViT explainers at 224 px on the CPU, side by side in one run: images per second of
raw attention, attention rollout, transformer attribution, the gradient and Integrated
Gradients (16 steps), each as a ratio to Grad-CAM (pytorch_grad_cam, tokens reshaped) on
the same ``vit_tiny_patch16_224`` (random weights: nothing is downloaded) — and the peak
resident memory each adds while explaining, at two ``explain_batch`` sizes (the harness
hands an explainer at most that many rows at a time, so the peak follows the batch).

    python benchmarks/vit_explainers.py [--images 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.explainers import explainer_registry
from harness.explainers.base import ExplainContext
from harness.models.base import TrainedModel

EXPLAINERS = {
    "grad_cam_library": {},
    "raw_attention": {},
    "attention_rollout": {},
    "transformer_attribution": {},
    "saliency": {},
    "integrated_gradients": {"n_steps": 16},
}


def peak_rss_while(work) -> tuple[float, float]:
    """(seconds, peak resident memory above the start, MiB) of ``work()``, sampled every
    5 ms."""
    process = psutil.Process()
    start = process.memory_info().rss
    peak = [start]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.005)

    watcher = threading.Thread(target=sample)
    watcher.start()
    began = time.perf_counter()
    work()
    seconds = time.perf_counter() - began
    done.set()
    watcher.join()
    return seconds, (peak[0] - start) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    model = TrainedModel(module=vit, device=torch.device("cpu"), train_seconds=0.0,
                         epochs_trained=0)  # fmt: skip
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(args.images, 3, 224, 224)).astype(np.float32)
    targets = rng.integers(0, 10, args.images)
    context = ExplainContext(dataset=None, seed=0, rows=np.arange(args.images))  # type: ignore[arg-type]
    print(f"vit_tiny_patch16_224, {args.images} images of 224 px, {args.threads} threads, CPU")
    print(f"{'explainer':<26}{'images/s':>10}{'÷ Grad-CAM':>12}{'peak MiB (batch 2)':>20}"
          f"{'(batch 8)':>11}")  # fmt: skip
    reference = None
    for name, params in EXPLAINERS.items():
        explainer = explainer_registry.get(name)(**params)
        explainer.explain(model, inputs[:1], targets[:1], context)  # warm-up
        peaks = []
        for batch in (2, 8):
            seconds, peak = peak_rss_while(
                lambda size=batch, method=explainer: [
                    method.explain(model, inputs[i : i + size], targets[i : i + size], context)
                    for i in range(0, args.images, size)
                ]
            )
            peaks.append(peak)
        rate = args.images / seconds
        reference = reference or rate
        print(f"{name:<26}{rate:>10.1f}{rate / reference:>12.2f}{peaks[0]:>20.0f}{peaks[1]:>11.0f}")


if __name__ == "__main__":
    main()
