"""ViT explainers at 224 px on the CPU, side by side in one run: images per second of
raw attention, attention rollout, transformer attribution, the gradient and Integrated
Gradients (16 steps), each as a ratio to Grad-CAM (pytorch_grad_cam, tokens reshaped) on
the same ``vit_tiny_patch16_224`` (random weights: nothing is downloaded), 8 images per
call — and the peak resident memory each adds while explaining, measured in a fresh
process per explainer and batch (Linux: the peak ``VmHWM`` reset after the model and a
warm-up, less the resident memory then) at two ``explain_batch`` sizes: the harness
hands an explainer at most that many rows at a time, so the peak follows the batch.

    python benchmarks/vit_explainers.py [--images 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.datasets import dataset_registry
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


def peak_extra_mib(name: str, batch: int, images: int, threads: int) -> float:
    """Peak resident memory (MiB) a fresh process adds while explaining ``images`` in
    batches of ``batch``, over what it held after building the model and a warm-up."""
    command = [sys.executable, __file__, "--memory", name, str(batch), "--images",
               str(images), "--threads", str(threads)]  # fmt: skip
    return float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def _status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def setup(images: int, threads: int):
    """The ViT, the 224-px images (3 channels), targets and the explain context."""
    torch.set_num_threads(threads)
    import timm

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    model = TrainedModel(module=vit, device=torch.device("cpu"), train_seconds=0.0,
                         epochs_trained=0)  # fmt: skip
    # synthetic lesions at 224 px, made 3-channel (what captum's baselines read)
    data = dataset_registry.get("synthetic_lesions")(n_images=4 * images, size=224).load(0)
    inputs = np.repeat(data.x_test[:images], 3, axis=1).astype(np.float32)
    targets = np.random.default_rng(0).integers(0, 10, images)
    return model, inputs, targets, ExplainContext(dataset=data, seed=0, rows=np.arange(images))


def explain_all(explainer, model, inputs, targets, context, batch: int) -> None:
    for i in range(0, len(inputs), batch):
        explainer.explain(model, inputs[i : i + batch], targets[i : i + batch], context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", nargs=2, metavar=("EXPLAINER", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    model, inputs, targets, context = setup(args.images, args.threads)
    if args.memory:  # the child of peak_extra_mib
        name, batch = args.memory[0], int(args.memory[1])
        explainer = explainer_registry.get(name)(**EXPLAINERS[name])
        explainer.explain(model, inputs[:1], targets[:1], context)
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak (VmHWM) restarts
        before = _status_kib("VmRSS")
        explain_all(explainer, model, inputs, targets, context, batch)
        print((_status_kib("VmHWM") - before) / 1024)
        return
    print(f"vit_tiny_patch16_224, {args.images} images of 224 px, {args.threads} threads, CPU")
    print(f"{'explainer':<26}{'images/s':>10}{'÷ Grad-CAM':>12}"
          f"{'peak +MiB, batch 2':>20}{'batch 8':>9}")  # fmt: skip
    reference = None
    for name, params in EXPLAINERS.items():
        explainer = explainer_registry.get(name)(**params)
        explainer.explain(model, inputs[:1], targets[:1], context)  # warm-up
        began = time.perf_counter()
        explain_all(explainer, model, inputs, targets, context, 8)
        rate = args.images / (time.perf_counter() - began)
        reference = reference or rate
        peaks = [peak_extra_mib(name, b, args.images, args.threads) for b in (2, 8)]
        print(f"{name:<26}{rate:>10.1f}{rate / reference:>12.2f}{peaks[0]:>20.0f}{peaks[1]:>9.0f}")


if __name__ == "__main__":
    warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require")
    main()
