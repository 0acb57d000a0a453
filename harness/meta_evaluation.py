"""Which metric can be trusted on this dataset: control separation, read from a run's own
scores.

A metric that measures what its name says must rank the controls as they are built to
rank: the ground truth itself (``oracle``) above a random map above the ground truth
reversed (``inverted``), and the oracle above a model-blind edge map (``sobel``,
``laplace``) where the run has one. For each dataset × model × explanation metric the
per-seed differences, in the metric's direction (positive = the right order), are
compared paired by seed: oracle − random, random − inverted, oracle − each edge map. The
metric **separates** the controls when every difference's 95 % Student-t interval over
seeds lies above 0 (the interval the claims use, :func:`~harness.statistics.t_interval`);
it **fails** when some difference's mean is not positive (the controls tie, or come in
the wrong order); it is **undecided** when every mean is positive but some interval
reaches 0 (more seeds would tell), and **untested** when a control is missing, undefined,
or fewer than two seeds give values. The effect size of each difference is its mean over
its standard deviation over seeds (Cohen's d_z; infinite when every seed agrees).

Metrics of the randomisation, robustness and complexity families are not checked: they do
not measure agreement with the ground truth, so the controls carry no expected order (all
the controls are model-blind and tie under MPRT, as they must). This is derived from the
stored scores whenever it is read — never stored — so it cannot
go stale after a rescoring; leaderboards mark the metrics that fail, claims on them are
inconclusive unless they opt out (``require_trusted = false``), and the report shows one
row per metric (the metric report card).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from harness.statistics import t_interval

#: Families whose metrics do not measure agreement with the ground truth, so the controls
#: carry no expected order for them: randomisation checks ask whether a map depends on the
#: model (every control is model-blind: they must all fail, tied), robustness asks whether
#: it is stable, complexity whether it is concentrated.
UNORDERED_FAMILIES = frozenset({"randomisation", "robustness", "complexity"})

#: The orderings tested: (better control, worse control); edge maps only where present.
ORDERINGS = (("oracle", "random"), ("random", "inverted"))
EDGE_CONTROLS = ("sobel", "laplace")

Separation = Literal["separates", "fails", "undecided", "untested"]


@dataclass(frozen=True)
class Difference:
    """One ordering of two controls over seeds, in the metric's direction (positive: the
    right order): the mean, its 95 % t-interval, d_z and the seeds it rests on."""

    better: str
    worse: str
    mean: float
    low: float
    high: float
    effect: float
    seeds: int

    @property
    def text(self) -> str:
        return f"{self.better} − {self.worse} {self.mean:+.3g} [{self.low:.3g}, {self.high:.3g}]"


@dataclass(frozen=True)
class MetricCheck:
    """Control separation of one metric on one dataset × model."""

    dataset: str
    model: str
    metric: str
    verdict: Separation
    differences: tuple[Difference, ...]
    reason: str = ""

    @property
    def evidence(self) -> str:
        """The differences in words, or why there are none."""
        return "; ".join(d.text for d in self.differences) or self.reason

    @property
    def summary(self) -> str:
        return f"{self.verdict}: {self.evidence}"


def _difference(values: pd.DataFrame, better: str, worse: str, sign: float) -> Difference | None:
    """The paired per-seed difference better − worse (× sign); None without two seeds."""
    if better not in values or worse not in values:
        return None
    paired = (values[better] - values[worse]).dropna() * sign
    if len(paired) < 2:
        return None
    low, high = t_interval(paired.to_numpy())
    spread = float(paired.std(ddof=1))
    mean = float(paired.mean())
    if spread <= 1e-12 * max(1.0, abs(mean)):  # every seed agrees (up to float rounding)
        effect = math.copysign(math.inf, mean) if mean else 0.0
    else:
        effect = mean / spread
    return Difference(better, worse, mean, float(low), float(high), effect, len(paired))


def control_separation(results: pd.DataFrame) -> list[MetricCheck]:
    """Control separation of every explanation metric of ``results`` (one run's scores,
    :func:`~harness.store.load_results`) on each dataset × model; see the module."""
    if not {"oracle", "random", "inverted", *EDGE_CONTROLS} & set(results["explainer"]):
        return []  # no control in the run: nothing to order
    kinds = results.get("metric_kind", pd.Series("explanation", index=results.index))
    across = results.get("across_seeds", pd.Series(False, index=results.index))
    families = results.get("metric_family", pd.Series(None, index=results.index, dtype=object))
    scores = results[
        (kinds.fillna("explanation") == "explanation")
        & ~across.fillna(False).astype(bool)
        & ~families.isin(UNORDERED_FAMILIES)
    ]
    checks = []
    for (dataset, model, metric), block in scores.groupby(
        ["dataset", "model", "metric"], sort=False
    ):
        if block["value"].isna().all():  # skipped or failed everywhere: nothing to read
            continue
        values = block.pivot_table(
            index="seed", columns="explainer", values="value", aggfunc="first", dropna=False
        )
        present = set(block.loc[block["value"].notna(), "explainer"])  # scored somewhere
        higher = block["higher_is_better"].iloc[0] if "higher_is_better" in block else True
        sign = 1.0 if bool(higher) else -1.0
        wanted = [(b, w) for b, w in ORDERINGS if {b, w} <= present]
        wanted += [("oracle", e) for e in EDGE_CONTROLS if {"oracle", e} <= present]
        if not wanted:
            continue  # the run has no pair of controls to order
        found = [_difference(values, better, worse, sign) for better, worse in wanted]
        tested = tuple(d for d in found if d is not None)
        if len(tested) < len(wanted):
            missing = [f"{b} − {w}" for (b, w), d in zip(wanted, found, strict=True) if d is None]
            checks.append(MetricCheck(
                dataset, model, metric, "untested", tested,
                f"no two seeds with both values for {', '.join(missing)}",
            ))  # fmt: skip
            continue
        verdict: Separation = (
            "fails"
            if any(d.mean <= 0 for d in tested)
            else "separates"
            if all(d.low > 0 for d in tested)
            else "undecided"
        )
        checks.append(MetricCheck(dataset, model, metric, verdict, tested))
    return checks
