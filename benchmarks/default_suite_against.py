"""The default suite's run time, this checkout against another one, side by side.

    git worktree add /tmp/baseline <commit>
    python benchmarks/default_suite_against.py /tmp/baseline [--repeats 5] [--cached]

Runs ``xai-harness run`` (the default suite) alternately with this checkout's ``harness``
and the baseline's (each put first on ``PYTHONPATH``, so both use this environment's
libraries), each time into a fresh results folder, and prints for both the median of
the run's own wall time (the ``wall … s`` line: the run without Python's start-up and
imports) and of the whole process, and their ratio. ``--cached`` measures re-runs that
find every model and explanation in a cache filled beforehand (the path that reads and
checks cache entries); the default measures cold runs (``--no-cache``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
COMMAND = "import sys; from harness.cli import main; sys.argv[0] = 'xai-harness'; main()"


def run_once(checkout: Path, out: Path, cache: Path | None) -> tuple[float, float]:
    """(the run's own wall seconds, the process's wall seconds)."""
    args = ["run", "--out", str(out)]
    args += ["--cache", str(cache)] if cache is not None else ["--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(checkout), "MPLBACKEND": "Agg", "COLUMNS": "200"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", COMMAND, *args], capture_output=True,
                          text=True, env=env, check=False)  # fmt: skip
    process = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{checkout}: exit {done.returncode}\n{done.stderr[-2000:]}")
    match = re.search(r"^wall ([0-9.]+) s", done.stdout, flags=re.MULTILINE)
    if match is None:
        raise SystemExit(f"{checkout}: no 'wall … s' line in its output")
    return float(match[1]), process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="another checkout of the project")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cached", action="store_true", help="warm runs from a filled cache")
    options = parser.parse_args()
    checkouts = {"this": HERE, "baseline": options.baseline.resolve()}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in checkouts}
    with tempfile.TemporaryDirectory() as scratch:
        caches = {name: Path(scratch) / f"cache-{name}" for name in checkouts}
        if options.cached:  # fill each checkout's cache once (its code is in the key)
            for name, checkout in checkouts.items():
                run_once(checkout, Path(scratch) / f"fill-{name}", caches[name])
        for repeat in range(options.repeats):
            for name, checkout in checkouts.items():  # alternate: same conditions for both
                out = Path(scratch) / f"{name}-{repeat}"
                cache = caches[name] if options.cached else None
                times[name].append(run_once(checkout, out, cache))
    kind = "cached re-runs" if options.cached else "cold runs (--no-cache)"
    print(f"default suite, {kind}, median of {options.repeats} (seconds)")
    medians = {}
    for name in checkouts:
        run, process = (statistics.median(t[i] for t in times[name]) for i in (0, 1))
        medians[name] = (run, process)
        print(f"  {name:9} run {run:6.2f}   process {process:6.2f}")
    for i, what in enumerate(("run", "process")):
        ratio = medians["this"][i] / medians["baseline"][i]
        print(f"  this / baseline, {what}: {ratio:.3f}")


if __name__ == "__main__":
    main()
