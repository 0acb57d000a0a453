"""Real-scale images on the CPU: peak memory and throughput for 200 and 2,000 images.

Run: ``python benchmarks/image_scale.py [--sizes 200 2000] [--side 224] [--model small_cnn]
[--explain-rows 50] [--no-loading]``.

For each size, an ``image_folder`` of that many generated RGB images (half for training,
half for testing; a bright blob on the 'lesion' class, its mask beside it) is written to a
temporary folder, and one suite runs on it in a fresh process: ``resnet18`` trained for
one epoch (batch 32), Grad-CAM and Soft-CAM (which trains its own model) on 32 test
images, pointing game, activation precision and deletion AUC. Printed per size: the peak
resident memory of that process and of its largest child (the ``DataLoader`` workers that
decode images ahead; ``resource.getrusage``), images per second of training (both
models, one epoch each), and images per second of each explainer. Peak memory should
not grow with the number of images (issue target: within 1.5× from 200 to 2,000).

Then, whether reading the images holds training back: ``resnet18`` is trained for one
epoch on the same ``--loading-images`` training images twice in this process, streamed
from the files (2 reader processes) and from the decoded array in memory; printed are
both times, their ratio (the share of streamed training spent computing; target ≥ 0.8)
and the CPU utilisation of the streamed epoch (CPU seconds of this process and its
readers over wall seconds × cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RUN = """
import json, resource, sys
from harness import run_suite
from harness.store import ResultsStore
from harness.suite import load_suite
suite = load_suite(sys.argv[1])
summary = run_suite(suite, sys.argv[2], cache=False)
with ResultsStore(sys.argv[2], create=False) as store:
    cells = list(store.cell_records(summary.run_id).values())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"peak_mib": peak, "child_peak_mib": children, "counts": summary.counts,
                  "stages": summary.stage_seconds,
                  "cells": [[c.explainer, c.train_seconds, c.explain_seconds, c.n_explained]
                            for c in cells]}))
"""

SUITE = """
name = "image_scale"
version = 1
seeds = [0]
metrics = ["accuracy", "pointing_game", "activation_precision", "deletion_auc"]

[execution]
explain_rows = {explain_rows}
device = "{device}"

[[datasets]]
id = "folder"
name = "image_folder"
params = {{ root = "{root}", size = {side}, masks = "masks", workers = {workers} }}

[[models]]
name = "{model}"
params = {{ epochs = 1, batch_size = 32 }}

[[explainers]]
name = "grad_cam"

[[explainers]]
name = "softcam"
"""


def suite_text(
    root: Path, side: int, *, model: str = "resnet18", explain_rows: int = 32,
    device: str = "cpu", workers: int = 2,
) -> str:  # fmt: skip
    """The benchmark suite (one epoch of ``model``, Grad-CAM and Soft-CAM, localisation
    and deletion) on the image folder at ``root``."""
    return SUITE.format(root=root, side=side, model=model, explain_rows=explain_rows,
                        device=device, workers=workers)  # fmt: skip


def write_folder(root: Path, images: int, side: int) -> None:
    """``images`` RGB PNGs, half train and half test, two classes, masks beside them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    radius = side // 10
    yy, xx = np.mgrid[:side, :side]
    for split, count in (("train", images // 2), ("test", images - images // 2)):
        for i in range(count):
            klass = ("healthy", "lesion")[i % 2]
            pixels = rng.integers(0, 140, (side, side, 3), dtype=np.uint8)
            mask = np.zeros((side, side), np.uint8)
            if klass == "lesion":
                r, c = rng.integers(radius, side - radius, 2)
                inside = (yy - r) ** 2 + (xx - c) ** 2 <= radius**2
                pixels[inside] = 240
                mask[inside] = 255
            for folder, array in ((root / split / klass, pixels),
                                  (root / "masks" / split / klass, mask)):  # fmt: skip
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(folder / f"{i}.png")


def measure(images: int, side: int, model: str = "resnet18", explain_rows: int = 32) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        started = time.perf_counter()
        write_folder(root, images, side)
        written = time.perf_counter() - started
        suite = Path(folder) / "suite.toml"
        suite.write_text(suite_text(root, side, model=model, explain_rows=explain_rows))
        out = subprocess.run([sys.executable, "-c", RUN, str(suite), str(Path(folder) / "out")],
                             capture_output=True, text=True, check=True)  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["write_seconds"] = written
        return result


def loading_share(images: int, side: int) -> dict[str, float]:
    """One epoch of resnet18 on ``images`` training images, streamed and in memory."""
    import os
    from dataclasses import replace

    import torch

    from harness.datasets import dataset_registry
    from harness.models import model_registry

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        write_folder(root, 2 * images, side)
        streamed = dataset_registry.get("image_folder")(root=root, size=side, workers=2).load(0)
        in_memory = replace(streamed, x_train=np.asarray(streamed.x_train))
        recipe = model_registry.get("resnet18")(epochs=1, batch_size=32)
        seconds = {}
        for name, data in (("in_memory", in_memory), ("streamed", streamed)):
            before, started = os.times(), time.perf_counter()
            recipe.fit(data, 0, torch.device("cpu"))
            seconds[name] = time.perf_counter() - started
            after = os.times()
        cpu = sum(after[:4]) - sum(before[:4])  # user + system, self and reaped children
    utilisation = cpu / (seconds["streamed"] * (os.cpu_count() or 1))
    return {**seconds, "utilisation": utilisation}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    parser.add_argument("--side", type=int, default=224)
    parser.add_argument("--loading-images", type=int, default=200)
    parser.add_argument("--model", default="resnet18", help="model recipe (e.g. small_cnn)")
    parser.add_argument("--explain-rows", type=int, default=32)
    parser.add_argument("--no-loading", action="store_true", help="skip the loading share")
    args = parser.parse_args()
    peaks = {}
    for images in args.sizes:
        result = measure(images, args.side, args.model, args.explain_rows)
        peaks[images] = result["peak_mib"]
        train_images = images // 2
        print(f"{images} images at {args.side} px ({train_images} train): cells "
              f"{result['counts']}, peak memory {result['peak_mib']:,.0f} MiB "
              f"(largest child {result['child_peak_mib']:,.0f} MiB)")  # fmt: skip
        for explainer, train, explain, rows in result["cells"]:
            speed = f"explain {rows / explain:6.1f} images/s" if explain else ""
            training = f"train {train_images / train:6.1f} images/s" if train else ""
            print(f"  {explainer:10s} {training}  {speed}")
    if len(peaks) > 1:
        low, high = min(peaks), max(peaks)
        print(f"peak memory {high} / {low} images: {peaks[high] / peaks[low]:.2f}×")
    if args.no_loading:
        return
    share = loading_share(args.loading_images, args.side)
    print(f"one epoch of resnet18 on {args.loading_images} images at {args.side} px: in memory "
          f"{share['in_memory']:.1f} s, streamed {share['streamed']:.1f} s — computing share "
          f"{share['in_memory'] / share['streamed']:.2f}; CPU utilisation while streaming "
          f"{share['utilisation']:.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
