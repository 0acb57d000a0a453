"""Claim verdicts as text lines and as JUnit XML (one test case per claim)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.claims import ClaimResult, format_number
from harness.errors import HarnessError


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


#: Characters XML 1.0 does not allow anywhere (most control characters, lone surrogates).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot hold replaced by U+FFFD, so the file
    stays well-formed whatever a claim's text contains (ElementTree escapes the rest)."""
    return _NOT_XML.sub("\ufffd", text)


def write_junit(path: Path, suite: str, run_id: str, outcomes: list[ClaimResult]) -> None:
    """A JUnit ``testsuite``: each claim a ``testcase``; ``fails`` and ``inconclusive``
    verdicts are ``failure`` elements (type = the verdict), with the measurement."""
    failures = [o for o in outcomes if o.verdict != "holds"]
    root = ET.Element(
        "testsuite",
        name=xml_text(f"xai-harness check {suite}"),
        tests=str(len(outcomes)),
        failures=str(len(failures)),
        errors="0",
        skipped="0",
    )
    properties = ET.SubElement(root, "properties")
    ET.SubElement(properties, "property", name="run_id", value=xml_text(run_id))
    for outcome in outcomes:
        case = ET.SubElement(
            root,
            "testcase",
            classname=xml_text(f"claims.{suite}"),
            name=xml_text(outcome.label),
            time="0",
        )
        line = xml_text(describe_outcome(outcome))
        if outcome.verdict != "holds":
            failure = ET.SubElement(case, "failure", type=outcome.verdict, message=line)
            failure.text = line
        ET.SubElement(case, "system-out").text = line
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    except OSError as exc:
        raise HarnessError(
            f"--junit {path}: cannot write it ({exc.strerror or exc}); pass a writable file path"
        ) from exc
