"""Speed-up of ``--jobs N`` over a serial run, measured side by side in one process.

Run: ``python benchmarks/parallel_speedup.py [N] [ROUNDS]`` (defaults 2 and 1; about 3
minutes on 2 cores). The suite has 8 independent model groups (4 seeds × 2 datasets), each
training an MLP and explaining 500 rows with Integrated Gradients (200 steps) and feature
ablation — enough work per group that starting the workers (spawn: each imports torch,
about 5 s) is a small share. Serial and parallel runs alternate; the fastest of each is
compared and the non-timing scores are checked to match.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from harness import load_results, run_suite
from harness.runner.parallel import ProcessExecutor
from harness.suite import parse_suite

SUITE = """
name = "speedup"
seeds = [0, 1, 2, 3]
metrics = ["accuracy", "spearman_gt"]
[execution]
explain_rows = 500
[[datasets]]
name = "paper_10_5"
[[datasets]]
name = "paper_16_5"
[[models]]
name = "mlp"
params = { hidden = [128, 128], epochs = 40 }
[[explainers]]
name = "integrated_gradients"
params = { n_steps = 200 }
[[explainers]]
name = "feature_ablation"
"""


def timed(executor: ProcessExecutor | None, out: Path) -> float:
    started = time.perf_counter()
    run_suite(parse_suite(SUITE), out, executor=executor, cache=False)
    return time.perf_counter() - started


def main() -> None:
    jobs = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    serial, parallel = [], []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(rounds):
            serial.append(timed(None, Path(folder) / f"serial{round_}"))
            parallel.append(timed(ProcessExecutor(jobs), Path(folder) / f"parallel{round_}"))
        scores = [
            load_results(Path(folder) / name).query("metric != 'explain_seconds'")
            .set_index(["cell_id", "metric"])["value"].sort_index()
            for name in ("serial0", "parallel0")
        ]  # fmt: skip
    same = scores[0].equals(scores[1])
    runs = ", ".join(f"{s:.1f}" for s in serial)
    print(f"serial   {min(serial):6.1f} s  (runs: {runs})")
    print(
        f"jobs={jobs}   {min(parallel):6.1f} s  (runs: {', '.join(f'{s:.1f}' for s in parallel)})"
    )
    print(f"speed-up {min(serial) / min(parallel):.2f}x; non-timing scores identical: {same}")


if __name__ == "__main__":
    main()
