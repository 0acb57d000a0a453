"""Claims as code: statements about a suite's scores, checked against a stored run.

A claim (a ``[[claims]]`` table of a suite) has an ``id``, a ``source`` (paper and place),
the ``text`` in words, and a ``kind``:

- ``value``: a metric of a selection compared with ``value`` (``op`` ``>=``, ``>``,
  ``<=``, ``<`` or ``==`` with ``tolerance``);
- ``ratio`` / ``difference``: metric A of selection A over / minus metric B of selection B
  (``numerator``/``denominator``, ``minuend``/``subtrahend``), compared with ``value``;
- ``rank``: the selected explainer is first (or within the ``top`` n) on a metric among
  the explainers of the selected dataset (and model); controls (oracle, random, …) are
  not ranked unless the claim selects one.

A selection is ``{ metric, explainer, dataset, model }`` (ids of the suite; unset = any).
Its value per seed is the mean over the cells it matches for that seed; the claim's value
is over seeds.

**Statistics** (calibrated at 3–5 seeds; :mod:`harness.statistics`): 95 % Student-t
intervals over seeds — for a value, of the mean; for a difference, of the per-seed
differences when both sides share their seeds (paired), else Welch's; for a ratio,
Fieller's interval of the ratio of means (paired likewise); for a rank, the rank interval
[1 + explainers significantly better, 1 + explainers not significantly worse], each
pairwise comparison a paired t-interval. Verdict: ``holds`` when the whole interval
satisfies the claim, ``fails`` when none of it does, ``inconclusive`` otherwise — so
under no true effect a claim holds at most 2.5 % of the time at any n ≥ 2 (per-seed
values normally distributed; ``tests/test_claim_calibration.py`` simulates it). A claim
is never decided on fewer than 2 seeds, nor on fewer than its ``min_seeds``; an
undecided claim reports how many seeds would decide it were the observed effect and
spread to hold. A metric computed once across all seeds (e.g. ``stability``) has no
interval: its verdict rests on the value and says so.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.errors import HarnessError
from harness.identifiers import Identifier
from harness.statistics import (
    T_METHOD,
    fieller_interval,
    seeds_to_decide,
    t_interval,
    welch_interval,
)

Op = Literal[">=", ">", "<=", "<", "=="]
Verdict = Literal["holds", "fails", "inconclusive"]


class ClaimError(HarnessError):
    """A claim that cannot be evaluated (e.g. its selection matches no stored score)."""


#: A swept parameter's value a selection may ask for.
SweptValue = int | float | str | bool


class Selection(BaseModel):
    """Which scores a side of a claim reads: ids of the suite (an entry's id, or the id
    of a swept entry's base, which selects every entry it generated); unset means any.
    Any other key selects a swept parameter's value, e.g. ``n_samples = 300``."""

    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    metric: str | None = None
    explainer: str | None = None
    dataset: str | None = None
    model: str | None = None

    @model_validator(mode="after")
    def _swept_values_are_scalars(self) -> Selection:
        for key, value in self.swept().items():
            if not isinstance(value, SweptValue):
                raise ValueError(
                    f"{key}: a swept value to select must be a number, a string or a boolean"
                )
        return self

    def swept(self) -> dict[str, SweptValue]:
        """The swept parameters' values this side selects."""
        return dict(self.model_extra or {})

    def describe(self) -> str:
        parts = [f"{k}={v}" for k, v in self.model_dump().items() if v is not None]
        return ", ".join(parts) or "everything"


class ClaimSpec(BaseModel):
    """One ``[[claims]]`` entry of a suite (numbers strict and finite)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    id: Identifier = Field(description="short unique name, used in reports and JUnit")
    source: str = Field(min_length=1, description="paper and place, e.g. 'arXiv:…, abstract'")
    text: str = Field(min_length=1, description="the claim in words")
    kind: Literal["value", "ratio", "difference", "rank"]
    metric: str | None = Field(None, description="value/rank: the metric id (or in select)")
    select: Selection | None = None
    numerator: Selection | list[Selection] | None = None
    denominator: Selection | list[Selection] | None = None
    minuend: Selection | list[Selection] | None = None
    subtrahend: Selection | list[Selection] | None = None
    op: Op = ">="
    per: list[str] = Field(
        default_factory=list,
        description="swept parameters: check the claim once per combination of their values",
    )
    value: float | None = Field(None, description="the number the claim compares with")
    tolerance: float = Field(0.0, ge=0, description="op '==': allowed distance")
    top: int = Field(1, ge=1, description="rank: within the top n")
    min_seeds: int = Field(
        2, ge=2, le=10_000, description="seeds below which the claim stays inconclusive"
    )
    require_trusted: bool = Field(
        True,
        description="inconclusive when the claim's metric does not separate the controls "
        "on the claim's dataset (see harness.meta_evaluation); false: decide it anyway",
    )

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> ClaimSpec:
        needed = {
            "value": ["select"],
            "rank": ["select"],
            "ratio": ["numerator", "denominator"],
            "difference": ["minuend", "subtrahend"],
        }[self.kind]
        missing = [f for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(f"kind '{self.kind}' needs {' and '.join(missing)}")
        if self.kind != "rank" and self.value is None:
            raise ValueError(f"kind '{self.kind}' needs `value`")
        for side in self.sides():
            if side.metric is None:
                raise ValueError("name the metric (`metric = …` or in each selection)")
        if self.kind == "rank" and (self.select is None or self.select.explainer is None):
            raise ValueError("kind 'rank' needs `select.explainer`")
        return self

    def terms(self) -> list[tuple[str, list[Selection]]]:
        """Each side the claim reads (``select``, ``numerator``, …) with its selections —
        several on a side are summed, e.g. explaining time plus the twin's training time
        — and the claim-level metric filled in."""
        names = ["select", "numerator", "denominator", "minuend", "subtrahend"]
        sides = []
        for name in names:
            given = getattr(self, name)
            if given is None:
                continue
            chosen = given if isinstance(given, list) else [given]
            sides.append(
                (
                    name,
                    [
                        s
                        if s.metric is not None or self.metric is None
                        else s.model_copy(update={"metric": self.metric})
                        for s in chosen
                    ],
                )
            )
        return sides

    def sides(self) -> list[Selection]:
        """Every selection the claim reads, side by side."""
        return [s for _, chosen in self.terms() for s in chosen]

    def statement(self) -> str:
        """The claim as a formula, e.g. ``ratio ≥ 150``."""
        if self.kind == "rank":
            return "rank 1" if self.top == 1 else f"rank ≤ {self.top}"
        symbol = {">=": "≥", "<=": "≤", "==": "="}.get(self.op, self.op)
        tolerance = f" ± {self.tolerance:g}" if self.op == "==" and self.tolerance else ""
        return f"{self.kind} {symbol} {self.value:g}{tolerance}"


def claim_problems(claim: ClaimSpec, ids: dict[str, list[str]]) -> list[str]:
    """Suite-level checks of a claim: every id it names exists in ``ids`` (keys
    ``metric``, ``explainer``, ``dataset``, ``model``) and every swept parameter it
    selects or checks ``per`` is swept (``ids["swept"]``). Messages start with the key."""
    from harness.errors import did_you_mean

    swept = ids.get("swept", [])
    known_swept = f"Swept parameters: {', '.join(swept) or 'none (the suite has no sweep)'}"
    problems = []
    for name, side in ((n, s) for n, chosen in claim.terms() for s in chosen):
        for key in ("metric", "explainer", "dataset", "model"):
            known = ids.get(key, [])
            wanted = getattr(side, key)
            if wanted is not None and wanted not in known:
                problems.append(
                    f"{name}.{key}: '{wanted}' is not a {key} id of this suite"
                    f"{did_you_mean(wanted, known)} Known: {', '.join(known)}"
                )
        for key in side.swept():
            if key not in swept:
                problems.append(
                    f"{name}.{key}: not a swept parameter of this suite"
                    f"{did_you_mean(key, swept)} {known_swept}"
                )
    for key in claim.per:
        if key not in swept:
            problems.append(
                f"per: '{key}' is not a swept parameter of this suite"
                f"{did_you_mean(key, swept)} {known_swept}"
            )
    return problems


@dataclass(frozen=True)
class ClaimResult:
    """A claim's measured value, its interval, the verdict and what they rest on."""

    claim: ClaimSpec
    verdict: Verdict
    measured: float
    low: float
    high: float
    seeds: int
    note: str = ""
    has_interval: bool = True
    #: the swept values this verdict is for (claims checked ``per`` regime)
    regime: tuple[tuple[str, Any], ...] = ()
    #: how the interval was computed, in words
    method: str = ""
    #: undecided: the seeds that would decide it at the observed effect and spread
    seeds_needed: int | None = None

    @property
    def label(self) -> str:
        """The claim's id, with its regime: ``gain[n_samples=300,n_features=16]``."""
        if not self.regime:
            return self.claim.id
        return f"{self.claim.id}[{','.join(f'{k}={v}' for k, v in self.regime)}]"


def selected(
    results: pd.DataFrame,
    side: Selection,
    keys: tuple[str, ...] = ("metric", "explainer", "dataset", "model"),
) -> pd.DataFrame:
    """The rows whose ``keys`` the selection names: an id matches an entry's id or the id
    of the swept entry it was generated from; an unset key matches everything."""
    rows = results
    for key in keys:
        wanted = getattr(side, key)
        if wanted is not None:
            match = rows[key] == wanted
            if f"{key}_base" in rows.columns:
                match |= rows[f"{key}_base"] == wanted
            rows = rows[match]
    return rows


def per_seed(results: pd.DataFrame, side: Selection, claim_id: str) -> pd.Series:
    """The selection's value per seed: the mean over the cells it matches (NaN-free).

    Ids match as :func:`selected` says; swept values match the rows whose entry has that
    value."""
    rows = selected(results, side)
    for name, value in side.swept().items():
        if name not in rows.columns:
            raise ClaimError(f"claim '{claim_id}': '{name}' is not swept in this run")
        rows = rows[rows[name] == value]
    values = rows.dropna(subset=["value"]).groupby("seed")["value"].mean()
    if values.empty:
        raise ClaimError(
            f"claim '{claim_id}': the selection ({side.describe()}) matches no stored value "
            "in this run; check its ids, or whether those cells were skipped or failed"
        )
    return values


def summed_per_seed(results: pd.DataFrame, sides: list[Selection], claim_id: str) -> pd.Series:
    """The sum of several selections' values per seed (the seeds they all have)."""
    values = [per_seed(results, side, claim_id) for side in sides]
    total = values[0]
    for more in values[1:]:
        total = total.add(more, fill_value=None).dropna()
    if total.empty:
        raise ClaimError(f"claim '{claim_id}': the summed selections share no seed")
    return total


def _across_seeds(results: pd.DataFrame, side: Selection) -> bool:
    """Whether the side's metric is one statistic over all seeds (e.g. ``stability``), as
    stored on its rows."""
    if "across_seeds" not in results.columns:
        return False
    rows = results.loc[results["metric"] == side.metric, "across_seeds"].dropna()
    return bool(len(rows)) and bool(rows.iloc[0])


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}


def verdict(claim: ClaimSpec, low: float, high: float) -> Verdict:
    """``holds`` if every value in [low, high] satisfies the claim, ``fails`` if none does."""
    assert claim.value is not None
    if claim.op == "==":
        lo, hi = claim.value - claim.tolerance, claim.value + claim.tolerance
        if lo <= low and high <= hi:
            return "holds"
        return "fails" if high < lo or low > hi else "inconclusive"
    satisfied = _COMPARE[claim.op]
    if satisfied(low, claim.value) and satisfied(high, claim.value):
        return "holds"
    if not satisfied(low, claim.value) and not satisfied(high, claim.value):
        return "fails"
    return "inconclusive"


def regimes(claim: ClaimSpec, results: pd.DataFrame) -> list[dict[str, Any]]:
    """The combinations of the claim's ``per`` parameters' values in the run, in the
    order they first appear."""
    missing = [name for name in claim.per if name not in results.columns]
    if missing:
        raise ClaimError(f"claim '{claim.id}': {', '.join(missing)} not swept in this run")
    combos = results[claim.per].dropna().drop_duplicates()
    return [dict(zip(claim.per, row, strict=True)) for row in combos.itertuples(index=False)]


def evaluate_all(claim: ClaimSpec, results: pd.DataFrame) -> list[ClaimResult]:
    """The claim's verdict, or one per regime when it is checked ``per`` swept
    parameters: in each, rows whose entry sweeps a ``per`` parameter keep only that
    regime's value (rows of entries that do not sweep it take part in every regime,
    e.g. the twin's explainer against a swept by-design explainer)."""
    if not claim.per:
        return [_trusted(claim, evaluate(claim, results), results)]
    outcomes = []
    for regime in regimes(claim, results):
        keep = pd.Series(True, index=results.index)
        for name, value in regime.items():
            keep &= results[name].isna() | (results[name] == value)
        outcome = _trusted(claim, evaluate(claim, results[keep]), results[keep])
        outcomes.append(dataclasses.replace(outcome, regime=tuple(regime.items())))
    return outcomes


def untrusted_metric(claim: ClaimSpec, results: pd.DataFrame) -> str | None:
    """Why the claim's metric cannot be trusted where the claim reads it — it fails to
    separate the controls on a dataset × model a side selects
    (:func:`~harness.meta_evaluation.control_separation`) — or None."""
    from harness.meta_evaluation import control_separation

    for side in claim.sides():  # every explainer of the side's metric, dataset and model
        rows = selected(results, side, ("metric", "dataset", "model"))
        for check in control_separation(rows):
            if check.verdict == "fails":
                return (
                    "the metric does not separate the controls on this dataset "
                    f"({check.metric} on {check.dataset} / {check.model}: {check.summary}); "
                    "set require_trusted = false to decide it anyway"
                )
    return None


def _trusted(claim: ClaimSpec, outcome: ClaimResult, results: pd.DataFrame) -> ClaimResult:
    """``outcome``, inconclusive when the claim requires a trusted metric and its metric
    does not separate the controls there."""
    reason = untrusted_metric(claim, results) if claim.require_trusted else None
    if reason is None:
        return outcome
    note = "; ".join(filter(None, [reason, outcome.note]))
    return dataclasses.replace(outcome, verdict="inconclusive", note=note, seeds_needed=None)


@dataclass(frozen=True)
class _Estimate:
    """A claim's point value, its interval, how it was computed, and the per-seed
    distance from the claim's boundary (mean and spread) for the seeds-needed hint."""

    measured: float
    low: float
    high: float
    seeds: int
    method: str
    effect: float = math.nan
    spread: float = math.nan


def evaluate(claim: ClaimSpec, results: pd.DataFrame) -> ClaimResult:
    """Evaluate ``claim`` on one run's tidy results (:func:`harness.load_results`)."""
    sides = claim.sides()
    if claim.kind == "rank":
        return _evaluate_rank(claim, results, sides[0])
    if claim.kind == "value":
        values = per_seed(results, sides[0], claim.id)
        if _across_seeds(results, sides[0]):
            measured = float(values.mean())
            return ClaimResult(
                claim,
                verdict(claim, measured, measured),
                measured,
                measured,
                measured,
                len(values),
                "a statistic across seeds: no interval, the verdict rests on its value",
                has_interval=False,
                method="one statistic of all seeds",
            )
        return decide_value(claim, values)
    a, b = (summed_per_seed(results, chosen, claim.id) for _, chosen in claim.terms())
    if claim.kind == "ratio" and b.mean() == 0:
        raise ClaimError(f"claim '{claim.id}': the denominator's mean is 0")
    return decide_two_sided(claim, a, b)


def decide_value(claim: ClaimSpec, values: pd.Series) -> ClaimResult:
    """The verdict on a value claim from the selection's per-seed values."""
    return _decide(claim, _value_estimate(claim, values.to_numpy(dtype=float)))


def decide_two_sided(claim: ClaimSpec, a: pd.Series, b: pd.Series) -> ClaimResult:
    """The verdict on a difference or ratio claim from each side's per-seed values
    (indexed by seed: equal indices are paired)."""
    return _decide(claim, _two_sided_estimate(claim, a, b))


def _value_estimate(claim: ClaimSpec, values: np.ndarray) -> _Estimate:
    measured = float(values.mean())
    low, high = t_interval(values)
    spread = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return _Estimate(measured, low, high, len(values), T_METHOD, _effect(claim, measured), spread)


def _two_sided_estimate(claim: ClaimSpec, a: pd.Series, b: pd.Series) -> _Estimate:
    """A difference or ratio of the two sides' means over seeds: paired by seed when both
    sides have the same seeds, else the sides independent."""
    paired = list(a.index) == list(b.index)
    x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
    seeds = min(len(x), len(y))
    ratio = claim.kind == "ratio"
    measured = float(x.mean() / y.mean()) if ratio else float(x.mean() - y.mean())
    pairing = "paired by seed" if paired else "sides have different seeds: independent"
    if seeds < 2:
        return _Estimate(measured, math.nan, math.nan, seeds, pairing)
    boundary = claim.value if claim.value is not None else 0.0
    if ratio and paired and (x > 0).all() and (y > 0).all():
        # positive quantities (times, costs): the per-seed ratios' geometric mean, whose
        # log is a mean of per-seed log ratios (seed effects shared by both sides cancel)
        logs = np.log(x / y)
        low, high = (math.exp(end) for end in t_interval(logs))
        method = "95 % t-interval of the per-seed log ratios (geometric mean), paired by seed"
        measured = math.exp(float(logs.mean()))
        effect = float(logs.mean() - math.log(boundary)) if boundary > 0 else math.nan
        if claim.op == "==":
            effect = math.nan  # no simple boundary distance for an equivalence ratio
        return _Estimate(measured, low, high, seeds, method, effect, float(logs.std(ddof=1)))
    if ratio:
        # Fieller: the ratio of means, from t-tests of mean(a − ρ·b) = 0
        low, high = fieller_interval(x, y, paired)
        method = f"95 % Fieller interval of the ratio of means, {pairing}"
        effect = float(x.mean() - boundary * y.mean()) if claim.op != "==" else math.nan
        spread = (
            float((x - boundary * y).std(ddof=1))
            if paired
            else math.sqrt(x.var(ddof=1) + boundary**2 * y.var(ddof=1))
        )
    elif paired:
        differences = x - y
        low, high = t_interval(differences)
        method = "95 % Student-t interval of the per-seed differences, paired by seed"
        effect, spread = _effect(claim, measured), float(differences.std(ddof=1))
    else:
        low, high = welch_interval(x, y)
        method = "95 % Welch interval of the difference of means, sides independent"
        effect = _effect(claim, measured)
        spread = math.sqrt(x.var(ddof=1) + y.var(ddof=1))
    return _Estimate(measured, low, high, seeds, method, effect, spread)


def _effect(claim: ClaimSpec, measured: float) -> float:
    """The measured value's distance from the claim's boundary (for ``==``, from the
    nearer edge of the tolerance band)."""
    assert claim.value is not None
    if claim.op == "==":
        return claim.tolerance - abs(measured - claim.value)
    return measured - claim.value


def _decide(
    claim: ClaimSpec,
    estimate: _Estimate,
    outcome: Verdict | None = None,
    needed: int | None = None,
) -> ClaimResult:
    """The verdict on an estimate, with the minimum-seeds rules and the seeds-needed hint.
    ``outcome`` defaults to the interval against the claim (:func:`verdict`), ``needed``
    to the seeds that would decide the estimate's effect at its spread (a rank claim
    brings both)."""
    if estimate.seeds < 2 or math.isnan(estimate.low):
        return ClaimResult(
            claim,
            "inconclusive",
            estimate.measured,
            estimate.measured,
            estimate.measured,
            estimate.seeds,
            "one seed: no interval, a claim needs at least 2 seeds to be decided",
            has_interval=False,
            method="none (one seed)",
        )
    outcome = outcome or verdict(claim, estimate.low, estimate.high)
    note = ""
    if estimate.seeds < claim.min_seeds:
        outcome = "inconclusive"
        note = f"fewer seeds than the claim's min_seeds ({claim.min_seeds})"
    if outcome != "inconclusive":
        needed = None
    elif (needed := needed or seeds_to_decide(estimate.effect, estimate.spread)) is not None:
        needed = max(needed, claim.min_seeds, estimate.seeds + 1)
    return ClaimResult(
        claim,
        outcome,
        estimate.measured,
        estimate.low,
        estimate.high,
        estimate.seeds,
        note,
        method=estimate.method,
        seeds_needed=needed,
    )


def _evaluate_rank(claim: ClaimSpec, results: pd.DataFrame, side: Selection) -> ClaimResult:
    """Rank of the selected explainer among the explainers of the selection's dataset
    (and model) on the metric, by mean over seeds (controls left out unless selected).
    The interval: [1 + those significantly better, 1 + those not significantly worse],
    each comparison a paired 95 % t-interval of the per-seed differences — ``holds`` for
    rank ≤ top then needs all but top − 1 others significantly worse (an
    intersection–union test: level 2.5 % without a multiplicity correction)."""
    rows = results[results["metric"] == side.metric]
    for key in ("dataset", "model"):
        if getattr(side, key) is not None:
            rows = rows[rows[key] == getattr(side, key)]
    controls_out = False
    if "explainer_role" in rows.columns:
        is_control = rows["explainer_role"] == "control"
        if is_control.any() and not (is_control & (rows["explainer"] == side.explainer)).any():
            rows, controls_out = rows[~is_control], True
    table = rows.pivot_table(index="seed", columns="explainer", values="value", aggfunc="mean")
    table = table.dropna(axis=1, how="all").dropna(axis=0, how="any")
    if side.explainer not in table.columns or table.empty:
        raise ClaimError(
            f"claim '{claim.id}': no complete scores of {side.describe()} to rank in this run"
        )
    higher = bool(rows["higher_is_better"].iloc[0])
    note = f"among {table.shape[1]} explainers" + (" (controls left out)" if controls_out else "")
    result = decide_rank(claim, table, higher)
    return dataclasses.replace(result, note="; ".join(filter(None, [note, result.note])))


def decide_rank(claim: ClaimSpec, table: pd.DataFrame, higher: bool) -> ClaimResult:
    """The verdict on a rank claim from a complete seeds × explainers table of the metric
    (``higher``: larger values are better)."""
    assert claim.select is not None and claim.select.explainer is not None
    values = table.to_numpy(dtype=float) * (1 if higher else -1)  # larger is better now
    mine = list(table.columns).index(claim.select.explainer)
    means = values.mean(axis=0)
    measured = float(1 + (means > means[mine]).sum())  # ties share the best rank
    method = "95 % rank interval from paired t-intervals of each explainer against it"
    if len(table) < 2:
        return _decide(claim, _Estimate(measured, math.nan, math.nan, len(table), method))
    others = [j for j in range(values.shape[1]) if j != mine]
    intervals = [t_interval(values[:, mine] - values[:, j]) for j in others]
    better = sum(high < 0 for _, high in intervals)
    worse = sum(low > 0 for low, _ in intervals)
    low, high = float(1 + better), float(1 + len(others) - worse)
    top = float(claim.top)
    outcome: Verdict = "holds" if high <= top else "fails" if low > top else "inconclusive"
    # the seeds that would settle every comparison the interval leaves open
    undecided = [
        seeds_to_decide(*_mean_and_spread(values[:, mine] - values[:, j]))
        for j, (lo, hi) in zip(others, intervals, strict=True)
        if lo <= 0 <= hi
    ]
    needed = (
        max(n for n in undecided if n is not None) if undecided and None not in undecided else None
    )
    estimate = _Estimate(measured, low, high, len(table), method)
    return _decide(claim, estimate, outcome, needed)


def _mean_and_spread(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1))


def format_number(value: float) -> str:
    """Three significant digits, or an integer-looking rank as is."""
    if math.isnan(value):
        return "nan"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
