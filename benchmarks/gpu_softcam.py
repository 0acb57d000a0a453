"""The softcam suite on ResNet-50 at 224 px on CUDA, against the same run on the CPU.

Run on a machine with a CUDA GPU: ``python benchmarks/gpu_softcam.py [--images 2000]
[--tolerance 0.05] [--skip-cpu]``.

An ``image_folder`` of generated RGB images (a bright disc on the 'lesion' class, its
mask beside it; half train, half test) is written once; the same suite — ResNet-50 for
one epoch (batch 32), Soft-CAM and Grad-CAM on 64 test images, accuracy, pointing game,
activation precision, deletion AUC — runs with ``device = "cuda"`` and then ``"cpu"``.
Printed: images per second of training and of each explainer on each device, peak GPU
memory (``torch.cuda.max_memory_allocated``), a plain PyTorch training loop's images per
second on the same images and GPU (the harness should be within 2× of it), and every
non-timing score of both runs with their difference; the exit code is 1 when a
difference exceeds ``--tolerance`` (absolute: the two devices round differently, so the
trained models are close, not equal).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_scale import suite_text, write_folder


def run(root: Path, device: str, folder: Path) -> tuple[dict, dict]:
    from harness import load_results, run_suite
    from harness.store import ResultsStore
    from harness.suite import load_suite

    path = folder / f"{device}.toml"
    path.write_text(suite_text(root, 224, model="resnet50", explain_rows=64, device=device,
                               workers=4))  # fmt: skip
    summary = run_suite(load_suite(path), folder / f"out_{device}", cache=False)
    scores = load_results(folder / f"out_{device}")
    values = {(r.explainer, r.metric): r.value for r in scores.itertuples()}
    with ResultsStore(folder / f"out_{device}", create=False) as store:
        cells = store.cell_records(summary.run_id)
    speeds = {c.explainer: (c.train_seconds, c.explain_seconds, c.n_explained)
              for c in cells.values()}  # fmt: skip
    return values, speeds


def plain_loop_images_per_second(root: Path, images: int) -> float:
    """torchvision ResNet-50, SGD, batch 32, one pass over ``images`` in-memory tensors."""
    import torchvision

    network = torchvision.models.resnet50(num_classes=2).cuda()
    optimiser = torch.optim.SGD(network.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(images, 3, 224, 224)
    y = torch.randint(0, 2, (images,))
    torch.cuda.synchronize()
    started = time.perf_counter()
    for start in range(0, images, 32):
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(
            network(x[start : start + 32].cuda(non_blocking=True)), y[start : start + 32].cuda()
        )
        loss.backward()
        optimiser.step()
    torch.cuda.synchronize()
    return images / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--tolerance", type=float, default=0.05)
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA device; run this benchmark on a machine with a GPU")
        return 2
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        write_folder(folder / "images", args.images, 224)
        torch.cuda.reset_peak_memory_stats()
        gpu, gpu_speed = run(folder / "images", "cuda", folder)
        peak = torch.cuda.max_memory_allocated() / 2**30
        train_images = args.images // 2
        print(f"{torch.cuda.get_device_name(0)}, {args.images} images at 224 px, peak GPU "
              f"memory {peak:.1f} GiB")  # fmt: skip
        for explainer, (train, explain, rows) in gpu_speed.items():
            print(f"  cuda {explainer:9s} train {train_images / train:7.1f} images/s, "
                  f"explain {rows / explain:7.1f} images/s")  # fmt: skip
        plain = plain_loop_images_per_second(folder / "images", train_images)
        print(f"  plain PyTorch loop (in-memory tensors): {plain:7.1f} images/s")
        if args.skip_cpu:
            return 0
        cpu, cpu_speed = run(folder / "images", "cpu", folder)
        for explainer, (train, explain, rows) in cpu_speed.items():
            print(f"  cpu  {explainer:9s} train {train_images / train:7.1f} images/s, "
                  f"explain {rows / explain:7.1f} images/s")  # fmt: skip
    worst = 0.0
    for key in sorted(gpu):
        difference = abs(gpu[key] - cpu.get(key, np.nan))
        worst = max(worst, difference) if np.isfinite(difference) else np.inf
        print(f"  {key[0]:9s} {key[1]:22s} cuda {gpu[key]:.4f}  cpu {cpu.get(key, np.nan):.4f}"
              f"  |Δ| {difference:.4f}")  # fmt: skip
    print(f"largest |Δ| {worst:.4f} (tolerance {args.tolerance})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
