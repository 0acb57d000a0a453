"""Checking a suite's claims — and, optionally, every score — against stored runs.

``check_run`` reads one stored run of a suite (its latest by default), evaluates the
suite's ``[[claims]]`` on it and, given a baseline run, lists the scores that moved
(:mod:`harness.regression`). It reads the store only: the suite's spec (not its
plugins), and the facts on the stored rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.claims import ClaimResult, ClaimSpec, evaluate_all
from harness.errors import HarnessError
from harness.regression import (
    Change,
    NotComparable,
    compare_runs,
    config_differences,
    not_comparable,
    numeric_differences,
    without,
)
from harness.store import ResultsStore


@dataclass
class Comparison:
    """A run against a baseline: the moved entries, how many were compared, and why
    timings were left out (different executors or machines), if they were."""

    baseline: str
    changes: list[Change]
    compared: int
    timings_left_out: list[str] = field(default_factory=list)
    #: entries of both runs whose definitions differ: neither moved nor unmoved
    not_comparable: list[NotComparable] = field(default_factory=list)
    #: what differs between the runs' environments that can change scores (empty: the
    #: runs should agree bit for bit)
    numeric_differences: list[str] = field(default_factory=list)
    #: whether non-timing changes were judged against the seed spread
    spread: bool = False
    #: the keys of the two runs' resolved configurations that differ
    config_differences: list[str] = field(default_factory=list)


@dataclass
class CheckReport:
    """The verdicts on a run, and its comparison with a baseline when one was asked for."""

    run_id: str
    outcomes: list[ClaimResult]
    comparison: Comparison | None = None

    @property
    def failed(self) -> bool:
        comparison = self.comparison
        moved = comparison is not None and bool(comparison.changes or comparison.not_comparable)
        return moved or any(o.verdict != "holds" for o in self.outcomes)


def check_run(
    suite_name: str,
    claims: list[ClaimSpec],
    out_dir: str | Path,
    run_id: str,
    *,
    against: str | None = None,
    tolerance: float = 1e-6,
    per_metric: dict[str, float] | None = None,
    time_factor: float = 3.0,
    exact: bool = False,
) -> CheckReport:
    """Evaluate ``claims`` on stored run ``run_id`` (a run of suite ``suite_name``) and,
    with ``against``, compare its scores with that baseline run's — against their seed
    spread when the two environments differ in what decides floating-point results,
    unless ``exact`` (:mod:`harness.regression`)."""
    with ResultsStore(out_dir, create=False) as store:
        run_id, info = store.run_with_cells(run_id)
        if info["suite_name"] != suite_name:
            raise HarnessError(
                f"run {run_id} is of suite '{info['suite_name']}', not '{suite_name}'; pass a "
                "run of this suite with --run, or leave --run out for its latest run"
            )
        results = store.results(run_id)
        comparison = None
        if against:
            baseline_id, baseline_info = store.run_with_cells(against)
            baseline = store.results(baseline_id)
            comparison = Comparison(baseline_id, [], 0, _timing_caveats(baseline_info, info))
            comparison.numeric_differences = numeric_differences(
                baseline_info["environment"] or {}, info["environment"] or {}
            )
            comparison.spread = bool(comparison.numeric_differences) and not exact
            comparison.config_differences = config_differences(
                baseline_info["config"], info["config"]
            )
            comparison.not_comparable = not_comparable(
                baseline, results, baseline_info["config"], info["config"]
            )
    report = CheckReport(run_id, [o for claim in claims for o in evaluate_all(claim, results)])
    if comparison is not None:
        unlike = comparison.not_comparable
        comparable = [without(frame, unlike) for frame in (baseline, results)]
        comparison.changes, comparison.compared = compare_runs(
            comparable[0],
            comparable[1],
            tolerance=tolerance,
            time_factor=time_factor,
            per_metric=per_metric,
            timings=not comparison.timings_left_out,
            spread=comparison.spread,
        )
        report.comparison = comparison
    return report


def _timing_caveats(baseline: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Why the two runs' timings cannot be compared (empty when they can)."""
    caveats = []
    executors = [
        (info["environment"] or {}).get("executor", {"kind": "serial"})
        for info in (baseline, current)
    ]
    if executors[0] != executors[1]:
        caveats.append("the runs used different executors (serial vs parallel)")
    if baseline.get("machine") != current.get("machine"):
        caveats.append(
            f"the runs come from different machines ({baseline.get('machine')} vs "
            f"{current.get('machine')})"
        )
    return caveats
