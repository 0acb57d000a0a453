"""Where a run's time went: per stage, per cell and per metric, from the store.

Every cell stores its wall seconds per stage (``stage_seconds``: data, train, decode,
explain, score) and each metric's seconds on it (``<metric>.seconds``, re-explaining
included); ``xai-harness run --profile`` prints the largest of them after the run.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from harness.artifacts import SECONDS, STAGE_SECONDS
from harness.runner.timing import CELL_STAGES
from harness.store import ResultsStore


def profile_lines(store: ResultsStore, run_id: str, top: int = 10) -> list[str]:
    """The run's costs: seconds per stage over all cells, the ``top`` costliest cell
    stages and the ``top`` costliest metrics (total and per cell), largest first."""
    stages = store.arrays(run_id, STAGE_SECONDS)
    if not stages:
        return [f"run {run_id} stored no per-cell stage seconds (made by an older version)"]
    totals = np.sum(list(stages.values()), axis=0)
    everything = float(totals.sum()) or 1.0
    lines = [
        f"profile of run {run_id} ({len(stages)} cells, {everything:.1f} s in cells):",
        "  by stage: "
        + " · ".join(
            f"{stage} {seconds:.1f} s ({seconds / everything:.0%})"
            for stage, seconds in sorted(
                zip(CELL_STAGES, totals.tolist(), strict=True), key=lambda item: -item[1]
            )
        ),
    ]
    cell_stages = sorted(
        (
            (float(seconds), stage, cell_id)
            for cell_id, row in stages.items()
            for stage, seconds in zip(CELL_STAGES, row.tolist(), strict=True)
        ),
        reverse=True,
    )[:top]
    lines.append(f"  costliest cell stages (top {len(cell_stages)}):")
    lines += [f"    {s:9.2f} s  {stage:<8} {cell}" for s, stage, cell in cell_stages]
    per_metric: dict[str, list[float]] = defaultdict(list)
    suffix = f".{SECONDS}"
    for name in store.array_names(run_id):
        if name.endswith(suffix) and name != STAGE_SECONDS:
            metric = name[: -len(suffix)]
            per_metric[metric] += [float(v) for v in store.arrays(run_id, name).values()]
    if per_metric:
        ranked = sorted(per_metric.items(), key=lambda item: -sum(item[1]))[:top]
        lines.append(f"  costliest metrics (top {len(ranked)}; total, mean per cell):")
        lines += [
            f"    {sum(v):9.2f} s  {np.mean(v) * 1000:9.1f} ms/cell  {metric}"
            for metric, v in ranked
        ]
    return lines
