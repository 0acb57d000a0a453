"""Claims as code: statements about a suite's scores, checked against a stored run.

A claim (a ``[[claims]]`` table of a suite) has an ``id``, a ``source`` (paper and place),
the ``text`` in words, and a ``kind``:

- ``value``: a metric of a selection compared with ``value`` (``op`` ``>=``, ``>``,
  ``<=``, ``<`` or ``==`` with ``tolerance``);
- ``ratio`` / ``difference``: metric A of selection A over / minus metric B of selection B
  (``numerator``/``denominator``, ``minuend``/``subtrahend``), compared with ``value``;
- ``rank``: the selected explainer is first (or within the ``top`` n) on a metric among
  the explainers of the selected dataset (and model).

A selection is ``{ metric, explainer, dataset, model }`` (ids of the suite; unset = any).
Its value per seed is the mean over the cells it matches for that seed; the claim's value
is over seeds. **Statistics**: a 95 % percentile bootstrap over seeds (10,000 resamples,
seeded), paired by seed where both sides share seeds (ratio of the resampled means; the
rank among the resampled means). Verdict: ``holds`` when the whole interval satisfies the
claim, ``fails`` when none of it does, ``inconclusive`` otherwise. With one seed the
interval is the point itself and the verdict says so.
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
from harness.statistics import percentile_interval, resample_indices

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
    bootstrapped: bool = True
    #: the swept values this verdict is for (claims checked ``per`` regime)
    regime: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        """The claim's id, with its regime: ``gain[n_samples=300,n_features=16]``."""
        if not self.regime:
            return self.claim.id
        return f"{self.claim.id}[{','.join(f'{k}={v}' for k, v in self.regime)}]"


def per_seed(results: pd.DataFrame, side: Selection, claim_id: str) -> pd.Series:
    """The selection's value per seed: the mean over the cells it matches (NaN-free).

    An id matches an entry's id or the id of the swept entry it was generated from;
    swept values match the rows whose entry has that value."""
    rows = results
    for key in ("metric", "explainer", "dataset", "model"):
        wanted = getattr(side, key)
        if wanted is not None:
            match = rows[key] == wanted
            if f"{key}_base" in rows.columns:
                match |= rows[f"{key}_base"] == wanted
            rows = rows[match]
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


def _two_sided(
    a: pd.Series, b: pd.Series, combine: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> tuple[float, np.ndarray | None, str, int]:
    """Point value and bootstrap samples of combine(mean A, mean B); paired by seed when
    both sides have the same seeds, else resampled independently."""
    measured = float(combine(np.array(a.mean()), np.array(b.mean())))
    if len(a) < 2 or len(b) < 2:
        return measured, None, "one seed on a side: no interval", min(len(a), len(b))
    if list(a.index) == list(b.index):
        picks = resample_indices(len(a))
        samples = combine(a.to_numpy()[picks].mean(axis=1), b.to_numpy()[picks].mean(axis=1))
        return measured, samples, "paired by seed", len(a)
    picks_a, picks_b = resample_indices(len(a)), resample_indices(len(b), seed=1)
    samples = combine(a.to_numpy()[picks_a].mean(axis=1), b.to_numpy()[picks_b].mean(axis=1))
    return (
        measured,
        samples,
        "sides have different seeds: resampled independently",
        min(len(a), len(b)),
    )


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
        return [evaluate(claim, results)]
    outcomes = []
    for regime in regimes(claim, results):
        keep = pd.Series(True, index=results.index)
        for name, value in regime.items():
            keep &= results[name].isna() | (results[name] == value)
        outcome = evaluate(claim, results[keep])
        outcomes.append(dataclasses.replace(outcome, regime=tuple(regime.items())))
    return outcomes


def evaluate(claim: ClaimSpec, results: pd.DataFrame) -> ClaimResult:
    """Evaluate ``claim`` on one run's tidy results (:func:`harness.load_results`)."""
    sides = claim.sides()
    if claim.kind == "rank":
        return _evaluate_rank(claim, results, sides[0])
    if claim.kind == "value":
        values = per_seed(results, sides[0], claim.id)
        measured, note, seeds = float(values.mean()), "", len(values)
        if _across_seeds(results, sides[0]):
            values = values.iloc[:1]  # one statistic of all seeds, repeated on each row
        samples = (
            values.to_numpy()[resample_indices(len(values))].mean(axis=1)
            if len(values) > 1
            else None
        )
    else:
        a, b = (summed_per_seed(results, chosen, claim.id) for _, chosen in claim.terms())
        if claim.kind == "ratio":
            if b.mean() == 0:
                raise ClaimError(f"claim '{claim.id}': the denominator's mean is 0")

            def combine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
                with np.errstate(divide="ignore", invalid="ignore"):
                    return x / y

        else:

            def combine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
                return x - y

        measured, samples, note, seeds = _two_sided(a, b, combine)
    if samples is None:
        low = high = measured
        note = (
            "a statistic across seeds: no interval, the verdict rests on its value"
            if claim.kind == "value" and _across_seeds(results, sides[0])
            else "one seed: no interval, the verdict rests on the point value"
        )
    else:
        low, high = percentile_interval(samples)
    outcome = verdict(claim, low, high)
    return ClaimResult(claim, outcome, measured, low, high, seeds, note, samples is not None)


def _evaluate_rank(claim: ClaimSpec, results: pd.DataFrame, side: Selection) -> ClaimResult:
    """Rank of the selected explainer among all explainers of the selection's dataset
    (and model) on the metric, by mean over seeds; the interval is that of its rank over
    seed resamples (paired: every explainer resampled with the same seeds)."""
    rows = results[results["metric"] == side.metric]
    for key in ("dataset", "model"):
        if getattr(side, key) is not None:
            rows = rows[rows[key] == getattr(side, key)]
    table = rows.pivot_table(index="seed", columns="explainer", values="value", aggfunc="mean")
    table = table.dropna(axis=1, how="all").dropna(axis=0, how="any")
    if side.explainer not in table.columns or table.empty:
        raise ClaimError(
            f"claim '{claim.id}': no complete scores of {side.describe()} to rank in this run"
        )
    higher = bool(rows["higher_is_better"].iloc[0])
    values = table.to_numpy() * (1 if higher else -1)  # larger is better from here on
    mine = list(table.columns).index(side.explainer)

    def rank_of(means: np.ndarray) -> np.ndarray:
        """1 + the number of explainers strictly better (ties share the best rank)."""
        return 1 + (means > means[..., [mine]]).sum(axis=-1)

    measured = float(rank_of(values.mean(axis=0)))
    note = f"among {table.shape[1]} explainers"
    if len(table) > 1:
        ranks = rank_of(values[resample_indices(len(table))].mean(axis=1))
        low, high = percentile_interval(ranks)
    else:
        low = high = measured
        note += "; one seed: no interval"
    top = float(claim.top)
    outcome: Verdict = "holds" if high <= top else "fails" if low > top else "inconclusive"
    return ClaimResult(claim, outcome, measured, low, high, len(table), note, len(table) > 1)


def format_number(value: float) -> str:
    """Three significant digits, or an integer-looking rank as is."""
    if math.isnan(value):
        return "nan"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
