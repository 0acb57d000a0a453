"""Command-line latency, this checkout against another one, side by side.

    git worktree add /tmp/baseline <commit>
    python benchmarks/commands_against.py /tmp/baseline [--repeats 5]

Times, as whole processes, ``xai-harness --help``, ``show`` of a stored run, ``validate
quick``, a cached re-run of the default suite and a cold run of it (``--no-cache``),
alternately with this checkout's ``harness`` and the baseline's (each put first on
``PYTHONPATH``, so both use this environment's libraries), and prints the median seconds
of each, the ratio, and for the runs the run's own wall time (the ``wall … s`` line,
without Python's start-up and imports).
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


def timed(checkout: Path, args: list[str], cwd: Path) -> tuple[float, float | None]:
    """(process seconds, the run's own wall seconds when it printed them). ``cwd`` must
    hold no ``harness`` package: ``python -c`` puts the working folder first on the path."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "MPLBACKEND": "Agg", "COLUMNS": "200"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", COMMAND, *args], capture_output=True,
                          text=True, env=env, cwd=cwd, check=False)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{checkout} {args}: exit {done.returncode}\n{done.stderr[-2000:]}")
    wall = re.search(r"^wall ([0-9.]+) s", done.stdout, flags=re.MULTILINE)
    return seconds, float(wall[1]) if wall else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, help="another checkout of the project")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--this", type=Path, default=HERE, help="default: this checkout")
    options = parser.parse_args()
    checkouts = {"this": options.this.resolve(), "baseline": options.baseline.resolve()}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for name, checkout in checkouts.items():  # a stored run and a filled cache each
            timed(checkout, ["run", "--out", str(folder / name)], folder)
        commands = {
            "--help": lambda name, i: ["--help"],
            "show": lambda name, i: ["show", "--out", str(folder / name)],
            "validate quick": lambda name, i: ["validate", "quick"],
            "run (cached)": lambda name, i: ["run", "--out", str(folder / name)],
            "run (cold)": lambda name, i: [
                "run",
                "--no-cache",
                "--out",
                str(folder / f"c{i}{name}"),
            ],
        }
        times: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
        for i in range(options.repeats):
            for command, args in commands.items():
                for name, checkout in checkouts.items():  # alternate: same conditions
                    measured = timed(checkout, args(name, i), folder)
                    times.setdefault((command, name), []).append(measured)
    print(f"median of {options.repeats}, seconds (process; the run's own wall time)")
    print(f"  {'command':16} {'this':>16} {'baseline':>16} {'ratio':>7}")
    for command in commands:
        cells, medians = [], []
        for name in checkouts:
            process = statistics.median(t[0] for t in times[(command, name)])
            walls = [t[1] for t in times[(command, name)] if t[1] is not None]
            medians.append(process)
            wall = f" ({statistics.median(walls):.2f})" if walls else ""
            cells.append(f"{process:.2f}{wall}")
        print(f"  {command:16} {cells[0]:>16} {cells[1]:>16} {medians[0] / medians[1]:7.3f}")


if __name__ == "__main__":
    main()
