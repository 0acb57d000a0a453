"""Each bundled paper suite from an empty cache, before and after, side by side in one run.

Run: ``python benchmarks/paper_suites.py [SUITE ...] [--before ARGS] [--after ARGS]``
(default: ``softcam_paper softcam scores_activation_regimes``; about 80 minutes on 2
cores). "Before" is ``xai-harness run SUITE --jobs 1`` (serial: what the harness did
before ``--jobs auto``), "after" the default command; ``--before`` and ``--after`` replace
those extra arguments; ``--keep DIR`` keeps both runs' stores. Each run is a fresh process
with an empty results folder and cache, one after the other, so they never share the cores.

Printed per suite: both wall times and their ratio; the claims' verdicts of both runs
(``check``), with every verdict that differs; the non-timing scores compared cell by cell
(how many are bit-equal, the largest difference) and, where they differ, how many means
moved beyond their seed spread (``check --against``'s criterion).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from harness import Results

TIMINGS = {"explain_seconds", "train_seconds", "explain_seconds_per_row", "time_to_ranking"}
SUITES = ["softcam_paper", "softcam", "scores_activation_regimes"]


def timed_run(suite: str, out: Path, extra: list[str]) -> float:
    """Wall seconds of ``xai-harness run SUITE`` in a fresh process (output discarded)."""
    command = ["xai-harness", "run", suite, "--out", str(out), *extra]
    environment = {k: v for k, v in os.environ.items() if k != "XAI_HARNESS_JOBS"}
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=environment)
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # 1: a cell failed, still comparable
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds


def scores(out: Path) -> pd.DataFrame:
    frame = Results.open(out).frame
    kept = frame[~frame["metric"].isin(TIMINGS) & frame["value"].notna()]
    return kept.set_index(["cell_id", "metric"])[["value"]].sort_index()


def verdicts(out: Path) -> pd.Series:
    return Results.open(out).check().frame.set_index("claim")["verdict"]


def beyond_spread(before: Path, after: Path) -> tuple[int, int]:
    """How many (dataset, model, explainer, metric) means differ at all, and how many by
    more than their seed spread — the 95 % interval of the per-seed differences (paired by
    seed) excludes 0: ``check --against``'s criterion (:func:`harness.regression.
    compare_runs`, timings left out)."""
    from harness.regression import compare_runs

    frames = [Results.open(out).frame for out in (before, after)]
    moved, _ = compare_runs(*frames, tolerance=0.0, timings=False)
    beyond, _ = compare_runs(*frames, tolerance=0.0, timings=False, spread=True)
    return len(moved), len(beyond)


def compare(suite: str, before_args: list[str], after_args: list[str], keep: Path | None) -> None:
    with tempfile.TemporaryDirectory(prefix=f"{suite}-") as scratch:
        folder = keep / suite if keep is not None else Path(scratch)
        before_out, after_out = folder / "before", folder / "after"
        before = timed_run(suite, before_out, before_args)
        after = timed_run(suite, after_out, after_args)
        print(
            f"\n{suite}: before {before:7.1f} s · after {after:7.1f} s · "
            f"{before / after:.2f}× faster"
        )
        v_before, v_after = verdicts(before_out), verdicts(after_out)
        changed = v_before[v_before != v_after.reindex(v_before.index)]
        counts = v_before.value_counts().to_dict()
        print(f"  verdicts: {len(v_before)} ({counts}); {len(changed)} differ")
        for claim in changed.index:
            print(f"    {claim}: {v_before[claim]} → {v_after.get(claim)}")
        s_before, s_after = scores(before_out), scores(after_out)
        joined = s_before.join(s_after, suffixes=("_before", "_after"), how="outer")
        equal = (joined["value_before"] == joined["value_after"]).sum()
        largest = (joined["value_before"] - joined["value_after"]).abs().max()
        print(
            f"  non-timing scores: {equal} of {len(joined)} bit-equal; largest "
            f"difference {largest:.3g}"
        )
        if equal < len(joined):
            moved, beyond = beyond_spread(before_out, after_out)
            print(
                f"  means that moved: {moved}; beyond their seed spread (paired 95 % "
                f"interval of the change excludes 0): {beyond}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=SUITES)
    parser.add_argument("--before", default="--jobs 1", help="extra arguments of the before run")
    parser.add_argument("--after", default="", help="extra arguments of the after run")
    parser.add_argument("--keep", type=Path, help="keep the runs in KEEP/SUITE/{before,after}")
    arguments = parser.parse_args()
    print(
        f"usable cores: {len(os.sched_getaffinity(0))}; before: `run SUITE "
        f"{arguments.before}`, after: `run SUITE {arguments.after}`"
    )
    for suite in arguments.suites:
        compare(suite, arguments.before.split(), arguments.after.split(), arguments.keep)


if __name__ == "__main__":
    main()
