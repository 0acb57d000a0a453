"""The thread policy: how many torch CPU threads a cell's work gets.

torch's default — one intra-op thread per core — spin-waits when the cores are shared
(a laptop with a browser open, a CI runner, two ``--jobs`` workers): a small MLP on a
table trains ~10× slower and burns 8× the CPU than on one thread (issue 32's figures;
``benchmarks/thread_policy.py`` measures it side by side). So, unless the suite sets
``[execution] threads``:

- the **budget** is the cores this process may use — its CPU affinity
  (``os.sched_getaffinity``) and its cgroup's CPU quota (``cpu.max``, or v1's
  ``cpu.cfs_quota_us``/``cpu.cfs_period_us``), whichever is smaller — divided by the jobs
  running at once (``--jobs``, Dask workers on one machine), at least 1;
- a cell whose inputs are small — a table, or images of at most
  :data:`SMALL_INPUT` values each (64 × 64 grayscale) — gets **1 thread**: its kernels
  are too small for threads to pay for their synchronisation;
- a cell on larger images (a CNN or ViT at 128 or 224 px) gets the **whole budget**.

``threads = "torch"`` keeps torch's own default (one thread per core of the machine,
what the harness did before); an integer fixes the count for every cell (then non-timing
scores are bit-equal across machines with the same kernels). Each cell stores the count it
ran with (``torch_threads``) and the run stores the policy, the budget and the usable
cores in its environment (``thread_policy``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

#: values per input row at or below which a cell runs on one thread (64 × 64 × 1)
SMALL_INPUT = 64 * 64


def usable_cores() -> int:
    """The cores this process may use: its affinity mask and its cgroup's CPU quota,
    whichever is smaller (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (e.g. 1.5), or None when there is
    none (``max``) or it cannot be read. cgroup v2's ``cpu.max``, else v1's files."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def thread_budget(jobs: int = 1) -> int:
    """The threads each of ``jobs`` concurrent workers may use."""
    return max(1, usable_cores() // max(1, jobs))


def threads_for(input_shape: tuple[int, ...], budget: int) -> int:
    """The policy's thread count for a cell whose rows have ``input_shape`` (one row's
    shape: (features,) or (channels, height, width))."""
    return 1 if math.prod(input_shape) <= SMALL_INPUT else budget


def apply_policy(setting: int | str | None, input_shape: tuple[int, ...], budget: int) -> None:
    """Set torch's intra-op threads for a cell: ``setting`` when it is a count, the
    policy's count when it is None, nothing when it is ``"torch"``."""
    if setting == "torch":
        return
    import torch

    count = setting if isinstance(setting, int) else threads_for(input_shape, budget)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


def describe(setting: int | str | None, budget: int) -> dict[str, Any]:
    """What the run stores about its threads."""
    policy = "torch default" if setting == "torch" else setting or "auto"
    return {"policy": policy, "budget": budget, "usable_cores": usable_cores()}
