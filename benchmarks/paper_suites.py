"""Each bundled paper suite from an empty cache, before and after, side by side in one run.

Run: ``python benchmarks/paper_suites.py [SUITE ...] [--before ARGS] [--after ARGS]``
(default: ``softcam_paper softcam scores_activation_regimes``; about 80 minutes on 2
cores). "Before" is ``xai-harness run SUITE --jobs 1`` (serial: what the harness did
before ``--jobs auto``), "after" the default command; ``--before`` and ``--after`` replace
those extra arguments. Each run is a fresh process with an empty results folder and
cache, one after the other, so they never share the cores.

Printed per suite: both wall times and their ratio; the claims' verdicts of both runs
(``check``), with every verdict that differs; the non-timing scores compared cell by cell
(how many are bit-equal, the largest difference) and, for the scores that differ, whether
the after run's seed-mean lies inside the before run's 95 % interval of the mean.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
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


def interval_check(before: pd.DataFrame, after: pd.DataFrame) -> tuple[int, int]:
    """Of the (cell without seed, metric) means whose values differ: how many there are,
    and how many after-means lie inside the before run's 95 % t interval of its mean."""
    from scipy import stats

    def by_mean(frame: pd.DataFrame) -> pd.core.groupby.DataFrameGroupBy:
        keys = frame.reset_index()
        keys["cell"] = keys["cell_id"].str.replace(r"/seed=\d+$", "", regex=True)
        return keys.groupby(["cell", "metric"])["value"]

    b, a = by_mean(before), by_mean(after)
    mean_b, mean_a, sd, n = b.mean(), a.mean(), b.std(ddof=1), b.count()
    differs = (mean_a - mean_b).abs() > 0
    half = stats.t.ppf(0.975, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    inside = ((mean_a - mean_b).abs() <= half.fillna(0)) & differs
    return int(differs.sum()), int(inside.sum())


def compare(suite: str, before_args: list[str], after_args: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix=f"{suite}-") as folder:
        before_out, after_out = Path(folder) / "before", Path(folder) / "after"
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
            differ, inside = interval_check(s_before, s_after)
            print(
                f"  seed-means that differ: {differ}; inside the before run's 95 % "
                f"interval: {inside}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", default=SUITES)
    parser.add_argument("--before", default="--jobs 1", help="extra arguments of the before run")
    parser.add_argument("--after", default="", help="extra arguments of the after run")
    arguments = parser.parse_args()
    print(
        f"usable cores: {len(os.sched_getaffinity(0))}; before: `run SUITE "
        f"{arguments.before}`, after: `run SUITE {arguments.after}`"
    )
    for suite in arguments.suites:
        compare(suite, arguments.before.split(), arguments.after.split())


if __name__ == "__main__":
    main()
