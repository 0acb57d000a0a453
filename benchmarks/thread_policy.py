"""The thread policy against torch's default threads, idle and beside a CPU hog.

Runs two workloads side by side in one script, each as ``xai-harness run`` in its own
process with an empty output folder and no cache:

- ``quick``: the default suite (6 small MLPs on tables, IG and two controls);
- ``images``: synthetic lesion images at 128 px, a small CNN (2 epochs), Grad-CAM and
  saliency, pointing game and deletion AUC;

each with ``[execution] threads`` unset (the policy) and ``threads = "torch"`` (torch's
default, what the harness did before), first on the idle machine, then beside a CPU hog
(one busy-looping process per usable core). Prints wall and CPU seconds and the ratios
default ÷ policy. Usage::

    python benchmarks/thread_policy.py [--repeats N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.runner.threads import usable_cores
from harness.suite import find_suite

IMAGES = """
name = "images"
seeds = [0]
metrics = ["accuracy", "pointing_game", "deletion_auc"]
[execution]
explain_rows = 40
[[datasets]]
name = "synthetic_lesions"
params = { n_images = 240, size = 128 }
[[models]]
name = "small_cnn"
params = { epochs = 2 }
[[explainers]]
name = "grad_cam"
[[explainers]]
name = "saliency"
"""


def _busy() -> None:  # pragma: no cover - killed from outside
    while True:
        pass


def _suite(folder: Path, name: str, text: str, threads: str | None) -> Path:
    if threads is not None:
        text = text.replace("[execution]", f'[execution]\nthreads = "{threads}"', 1)
        if "[execution]" not in text:
            text += f'\n[execution]\nthreads = "{threads}"\n'
    path = folder / f"{name}-{threads or 'policy'}.toml"
    path.write_text(text)
    return path


def _run(suite: Path, folder: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, of the child) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = Path(tempfile.mkdtemp(dir=folder))
    command = [sys.executable, "-c", "from harness.cli import main; main()", "run", str(suite)]
    command += ["--out", str(out)]
    subprocess.run([*command, "--no-cache"], check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs per setting (best kept)")
    args = parser.parse_args()
    cores = usable_cores()
    print(f"usable cores: {cores}; torch default threads: {os.cpu_count()}")
    workloads = {"quick": find_suite("quick").read_text(), "images": IMAGES}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for condition in ("idle", "hog"):
            hogs = []
            if condition == "hog":
                hogs = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(cores)]
                for hog in hogs:
                    hog.start()
            try:
                for name, text in workloads.items():
                    measured = {}
                    for threads in (None, "torch"):
                        suite = _suite(folder, name, text, threads)
                        runs = [_run(suite, folder) for _ in range(args.repeats)]
                        measured[threads] = min(runs)
                    (pw, pc), (dw, dc) = measured[None], measured["torch"]
                    print(
                        f"{condition:<4} {name:<6}  policy {pw:6.1f} s wall {pc:6.1f} s CPU"
                        f"  | torch default {dw:6.1f} s wall {dc:6.1f} s CPU"
                        f"  | default ÷ policy: wall {dw / pw:4.2f}×, CPU {dc / pc:4.2f}×",
                        flush=True,
                    )
            finally:
                for hog in hogs:
                    hog.kill()


if __name__ == "__main__":
    main()
