"""What a run ran on: package versions, the project's git commit and the machine."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

#: Distributions whose versions can change scores; recorded with every run.
TRACKED_PACKAGES = (
    "xai-harness",
    "torch",
    "torchvision",
    "captum",
    "shap",
    "lime",
    "numpy",
    "scipy",
    "scikit-learn",
    "pandas",
    "pydantic",
    "grad-cam",
    "timm",
    "xgboost",
    "lightgbm",
    "opencv-python",
    "opencv-python-headless",
)


def package_versions() -> dict[str, str | None]:
    """Installed version of each tracked distribution (None when absent)."""
    found: dict[str, str | None] = {}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def git_commit(folder: Path | None = None) -> dict[str, Any] | None:
    """HEAD commit of the git checkout holding the harness, with a dirty flag; None if none."""
    folder = folder or Path(__file__).resolve().parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cuda_devices() -> list[dict[str, Any]]:
    """Name and memory (GiB) of every CUDA device torch sees (none: empty)."""
    if not torch.cuda.is_available():
        return []
    return [
        {
            "name": torch.cuda.get_device_name(i),
            "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1),
        }
        for i in range(torch.cuda.device_count())
    ]


def machine_fingerprint() -> dict[str, Any]:
    """CPU model, cores, torch threads, GPUs (name and memory of each, if any), OS and
    Python version."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cuda_devices": cuda_devices(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
    }


def numerics() -> dict[str, Any]:
    """What decides a run's floating-point results beyond the packages' versions: torch's
    intra- and inter-op threads, the CPU kernels torch dispatches to (``AVX2``,
    ``AVX512``, …), its BLAS/oneDNN build, and the determinism switches. Two runs with
    equal values here, equal package versions, suite and seeds give bit-identical
    non-timing scores (``tests/test_reproducibility.py``); a difference here is the first
    place to look when two runs' scores differ
    (:func:`harness.regression.numeric_differences` lists them)."""
    return {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "blas": _torch_blas(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


def _torch_blas() -> str | None:
    """The BLAS torch was built with (from its build configuration), if it says."""
    found = re.search(r"BLAS_INFO=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else None


def collect_environment() -> dict[str, Any]:
    """Everything above, as stored in the ``runs`` table."""
    return {
        "packages": package_versions(),
        "git": git_commit(),
        "machine": machine_fingerprint(),
        "numerics": numerics(),
    }
