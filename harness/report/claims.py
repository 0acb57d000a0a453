"""Claim verdicts as text lines and as JUnit XML (one test case per claim)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from harness.claims import ClaimResult, format_number
from harness.errors import HarnessError
from harness.regression import MovedEntry, NotComparable, grouped_changes

if TYPE_CHECKING:
    from harness.checking import Comparison


def describe_outcome(outcome: ClaimResult) -> str:
    """``HOLDS  sa-speedup  ratio = 183 [160, 201]; claim: ratio ≥ 150 (n = 5 seeds, 95 %
    Fieller interval of the ratio of means, paired by seed) — source`` (one line; an
    undecided claim adds the seeds that would decide it)."""
    claim = outcome.claim
    interval = (
        f" [{format_number(outcome.low)}, {format_number(outcome.high)}]"
        if outcome.has_interval
        else ""
    )
    measured = "rank" if claim.kind == "rank" else claim.kind
    details = f"n = {outcome.seeds} seed{'s' if outcome.seeds != 1 else ''}"
    for part in (outcome.method, outcome.note):
        if part:
            details += f", {part}"
    if outcome.seeds_needed is not None:
        details += (
            f"; about {outcome.seeds_needed} seeds would decide it at the observed effect "
            "and spread"
        )
    return (
        f"{outcome.verdict.upper():<12} {outcome.label}  {measured} = "
        f"{format_number(outcome.measured)}{interval}; claim: {claim.statement()} "
        f'({details}) — {claim.source}: "{claim.text}"'
    )


def regime_summary(outcomes: list[ClaimResult]) -> list[str]:
    """One line per claim checked per regime: how many regimes hold, fail, are
    inconclusive (``gain: 12 of 32 regimes hold, 8 fail, 12 inconclusive``)."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in outcomes:
        if outcome.regime:
            tally = counts.setdefault(outcome.claim.id, {})
            tally[outcome.verdict] = tally.get(outcome.verdict, 0) + 1
    return [
        f"{claim}: {tally.get('holds', 0)} of {sum(tally.values())} regimes hold, "
        f"{tally.get('fails', 0)} fail, {tally.get('inconclusive', 0)} inconclusive"
        for claim, tally in counts.items()
    ]


def comparison_lines(comparison: Comparison) -> list[str]:
    """The comparison with a baseline as text: :func:`difference_lines`, then
    :func:`movement_lines`."""
    return difference_lines(comparison) + movement_lines(comparison)


def difference_lines(comparison: Comparison) -> list[str]:
    """What differs between the two runs: configuration keys, what decides floating-point
    results, why timings are left out."""
    lines = [f"configuration differs: {d}" for d in comparison.config_differences]
    if comparison.numeric_differences:
        judged = (
            "a change counts only beyond its seed spread (--exact: tolerance alone)"
            if comparison.spread
            else "compared with the tolerance alone (--exact)"
        )
        lines.append(
            "the runs' environments differ in what decides floating-point results ("
            + "; ".join(comparison.numeric_differences)
            + f"): {judged}"
        )
    return lines + [f"timings not compared: {c}" for c in comparison.timings_left_out]


def movement_lines(comparison: Comparison) -> list[str]:
    """The count, each entry that is not comparable and each move with the seed spread
    of both sides (a model score once per model)."""
    moved = grouped_changes(comparison.changes)
    unlike = comparison.not_comparable
    lines = [
        f"against {comparison.baseline}: {len(moved)} of {comparison.compared} entries moved"
        + (f"; {len(unlike)} not comparable" if unlike else "")
    ]
    lines += [f"  NOT COMPARABLE {_unlike_label(n)}: {n.differs}" for n in unlike]
    return lines + [f"  MOVED {_moved_text(entry)}" for entry in moved]


def _moved_text(entry: MovedEntry) -> str:
    """``lesions/small_cnn/grad_cam tpp: 0.70 (sd 0.01) → 0.60 (sd 0.02) (reason)``."""
    c = entry.change
    return (
        f"{entry.label}: {_with_sd(c.baseline, c.baseline_sd)} → "
        f"{_with_sd(c.current, c.current_sd)} ({c.reason})"
    )


def _unlike_label(entry: NotComparable) -> str:
    return f"{entry.dataset}/{entry.model}/{entry.explainer} {entry.metric}"


def _with_sd(mean: float, sd: float) -> str:
    """``0.703 (sd 0.012)``: a mean with its standard deviation over seeds, when known."""
    return f"{mean:.6g}" if sd != sd else f"{mean:.6g} (sd {sd:.2g})"


#: Characters XML 1.0 does not allow anywhere (most control characters, lone surrogates).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold replaced by U+FFFD, so the file
    stays well-formed whatever a claim's text contains (ElementTree escapes the rest)."""
    return _NOT_XML.sub("\ufffd", text)


def write_junit(
    path: Path,
    suite: str,
    run_id: str,
    outcomes: list[ClaimResult],
    comparison: Comparison | None = None,
) -> None:
    """A JUnit ``testsuite``: each claim a ``testcase``; ``fails`` and ``inconclusive``
    verdicts are ``failure`` elements (type = the verdict), with the measurement. With a
    comparison, each moved entry and each entry that is not comparable is a failing test
    case too (types ``moved``, ``not_comparable``), and one more case stands for the
    entries that did not move — so a CI reading the file sees a regression."""
    cases: list[tuple[str, str, str, str | None]] = [
        (
            f"claims.{suite}",
            outcome.label,
            describe_outcome(outcome),
            None if outcome.verdict == "holds" else outcome.verdict,
        )
        for outcome in outcomes
    ]
    if comparison is not None:
        group = f"regression.{suite}"
        for entry in grouped_changes(comparison.changes):
            cases.append((group, entry.label, f"MOVED {_moved_text(entry)}", "moved"))
        for n in comparison.not_comparable:
            text = f"not comparable: {n.differs}"
            cases.append((group, _unlike_label(n), text, "not_comparable"))
        summary = "\n".join(comparison_lines(comparison))
        cases.append((group, f"against {comparison.baseline}", summary, None))
    root = ET.Element(
        "testsuite",
        name=xml_text(f"xai-harness check {suite}"),
        tests=str(len(cases)),
        failures=str(sum(kind is not None for *_, kind in cases)),
        errors="0",
        skipped="0",
    )
    properties = ET.SubElement(root, "properties")
    ET.SubElement(properties, "property", name="run_id", value=xml_text(run_id))
    for classname, name, text, kind in cases:
        case = ET.SubElement(
            root, "testcase", classname=xml_text(classname), name=xml_text(name), time="0"
        )
        line = xml_text(text)
        if kind is not None:
            failure = ET.SubElement(case, "failure", type=kind, message=line.splitlines()[0])
            failure.text = line
        ET.SubElement(case, "system-out").text = line
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise HarnessError(
            f"--junit {path}: cannot write it ({exc.strerror or exc}); pass a writable file path"
        ) from exc
