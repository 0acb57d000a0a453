"""This checkout against another one (e.g. the previous main), side by side in one run.

Run: ``python benchmarks/compare_checkouts.py --baseline PATH [--repeat 2] [--sweep]``,
with ``PATH`` a checkout of the baseline (``git worktree add /tmp/before REV``).

For each checkout, in fresh processes with that checkout first on ``PYTHONPATH``:
``xai-harness run`` of the default suite into an empty folder, ``rescore`` of that run,
``report`` of it, and ``validate`` of a 1,000-cell sweep — with ``--sweep`` also
``run``, ``rescore`` and ``report`` of that sweep (tiny cells: 200 rows, one epoch, the
random control; minutes). Printed: the wall seconds of each step (the median over
``--repeat`` alternating rounds) and the ratio this / baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

SWEEP = """
name = "sweep_1000"
seeds = [0, 1]
metrics = ["accuracy", "spearman_gt"]

[[datasets]]
name = "synthetic_tabular"
params.n_samples = { sweep = [200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100] }
params.n_features = { sweep = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14] }

[[models]]
name = "mlp"
params = { hidden = { sweep = [[8], [16], [32], [64], [128]] }, epochs = 1 }

[[explainers]]
name = "random"
"""


def _cli(checkout: Path, *args: str) -> float:
    """Wall seconds of ``xai-harness ARGS`` with ``checkout`` imported."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "MPLBACKEND": "Agg"}
    code = "import sys; from harness.cli import main; sys.argv[0] = 'xai-harness'; main()"
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: xai-harness {' '.join(args)} failed:\n{done.stderr}")
    return time.perf_counter() - started


def _run_rescore_report(checkout: Path, folder: Path, suite: str, label: str) -> dict[str, float]:
    out = folder / label
    seconds = {f"run ({label})": _cli(checkout, "run", suite, "--out", str(out))}
    run_id = sorted((out / ".locks").glob("*.lock"))[-1].stem
    seconds[f"rescore ({label})"] = _cli(checkout, "rescore", run_id, "--out", str(out))
    to = str(folder / f"report-{label}")
    seconds[f"report ({label})"] = _cli(checkout, "report", "--out", str(out), "--to", to)
    return seconds


def _round(checkout: Path, folder: Path, sweep: bool) -> dict[str, float]:
    seconds = _run_rescore_report(checkout, folder, "quick", "quick")
    (folder / "sweep.toml").write_text(SWEEP)
    seconds["validate 1,000 cells"] = _cli(checkout, "validate", str(folder / "sweep.toml"))
    if sweep:
        seconds |= _run_rescore_report(checkout, folder, str(folder / "sweep.toml"), "sweep")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--sweep", action="store_true", help="also run the 1,000-cell sweep")
    args = parser.parse_args()
    measured: dict[str, dict[str, list[float]]] = {"this": {}, "baseline": {}}
    for _ in range(args.repeat):
        for label, checkout in (("baseline", args.baseline.resolve()), ("this", HERE)):
            with tempfile.TemporaryDirectory() as folder:
                for step, value in _round(checkout, Path(folder), args.sweep).items():
                    measured[label].setdefault(step, []).append(value)
    print(f"{'step':<24}{'baseline s':>12}{'this s':>10}{'ratio':>8}")
    for step, values in measured["this"].items():
        before = statistics.median(measured["baseline"][step])
        after = statistics.median(values)
        print(f"{step:<24}{before:>12.2f}{after:>10.2f}{after / before:>8.2f}")


if __name__ == "__main__":
    main()
