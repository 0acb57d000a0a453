"""Monte Carlo of claim verdicts: how often ``check`` says HOLDS when the claim sits
exactly on its boundary (no true effect: should be ≤ 2.5 %), and how often when a true
effect of a given size exists (power). Shared by ``tests/test_claim_calibration.py`` and
``benchmarks/claim_calibration.py`` (which prints the full table)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from harness.claims import (
    ClaimResult,
    ClaimSpec,
    decide_rank,
    decide_two_sided,
    decide_value,
    verdict,
)

#: The previous method's resamples per interval.
RESAMPLES = 10_000

#: Claim kinds simulated, each on its boundary when ``effect`` = 0 (effect in units of the
#: per-seed noise's standard deviation, in the direction that makes the claim true).
KINDS = (
    "value",
    "difference_paired",
    "difference_unpaired",
    "ratio_paired",
    "ratio_fieller",
    "equivalence",
    "rank",
)


def _spec(kind: str) -> ClaimSpec:
    sides = {"metric": "m"}
    fields: dict = {"id": "c", "source": "simulation", "text": "t", "value": 0.0, "op": ">"}
    if kind in ("value", "equivalence"):
        fields |= {"kind": "value", "select": sides}
        if kind == "equivalence":
            fields |= {"op": "==", "tolerance": 2.0}
    elif kind.startswith("difference"):
        fields |= {"kind": "difference", "minuend": sides, "subtrahend": sides}
    elif kind.startswith("ratio"):
        fields |= {"kind": "ratio", "numerator": sides, "denominator": sides, "value": 2.0}
    else:
        fields |= {"kind": "rank", "select": {"metric": "m", "explainer": "mine"}}
        fields.pop("value")
    return ClaimSpec.model_validate(fields)


def draw(
    kind: str, n: int, effect: float, rng: np.random.Generator
) -> Callable[[ClaimSpec], ClaimResult]:
    """One simulated run's per-seed values for a claim of ``kind`` at ``n`` seeds, as the
    call that decides the claim on them."""
    seeds = pd.RangeIndex(n)
    shared = rng.normal(0, 3, n)  # seed effects common to both sides (cancel when paired)
    if kind == "value":
        values = pd.Series(effect + rng.normal(size=n), index=seeds)
        return lambda claim: decide_value(claim, values)
    if kind == "equivalence":
        # the true mean on the band's edge (effect > 0 moves it inside, 2: the centre)
        values = pd.Series(2.0 - effect + rng.normal(size=n), index=seeds)
        return lambda claim: decide_value(claim, values)
    if kind == "difference_paired":
        a = pd.Series(shared + effect + rng.normal(size=n), index=seeds)
        b = pd.Series(shared, index=seeds)
        return lambda claim: decide_two_sided(claim, a, b)
    if kind == "difference_unpaired":
        a = pd.Series(effect + rng.normal(size=n), index=seeds)
        b = pd.Series(rng.normal(0, 2, n), index=pd.RangeIndex(100, 100 + n))
        return lambda claim: decide_two_sided(claim, a, b)
    if kind == "ratio_paired":
        # positive times: log ratio normal around log 2 (+ effect)
        base = np.exp(rng.normal(0, 1, n))
        a = pd.Series(base * 2 * np.exp(effect * 0.2 + rng.normal(0, 0.2, n)), index=seeds)
        return lambda claim: decide_two_sided(claim, a, pd.Series(base, index=seeds))
    if kind == "ratio_fieller":
        # independent sides with a sign-indefinite numerator: Fieller's interval
        b = pd.Series(5 + rng.normal(size=n), index=pd.RangeIndex(100, 100 + n))
        a = pd.Series(10 + effect + rng.normal(size=n), index=seeds)
        return lambda claim: decide_two_sided(claim, a, b)
    # rank: 'mine' against one equal rival (on the boundary of rank 1) and two far worse
    table = pd.DataFrame(
        {
            "mine": shared + effect + rng.normal(size=n),
            "rival": shared + rng.normal(size=n),
            "worse": shared - 20 + rng.normal(size=n),
            "worst": shared - 30 + rng.normal(size=n),
        },
        index=seeds,
    )
    return lambda claim: decide_rank(claim, table, higher=True)


def holds_rate(kind: str, n: int, effect: float = 0.0, runs: int = 2000, seed: int = 0) -> float:
    """The fraction of ``runs`` simulated runs whose verdict is ``holds``."""
    rng = np.random.default_rng([seed, n, KINDS.index(kind)])
    claim = _spec(kind)
    return float(
        np.mean([draw(kind, n, effect, rng)(claim).verdict == "holds" for _ in range(runs)])
    )


def old_bootstrap_holds_rate(n: int, runs: int = 4000, seed: int = 0) -> float:
    """The HOLDS rate of the previous method — a 95 % percentile bootstrap of the mean
    over seeds, 10,000 resamples drawn from a generator seeded with 0, as the harness
    computed claim intervals before — for a value claim ``> 0`` whose true mean is 0."""
    claim = _spec("value")
    values = np.random.default_rng([seed, n]).normal(size=(runs, n))
    picks = np.random.default_rng(0).integers(0, n, size=(RESAMPLES, n))
    means = values[:, picks].mean(axis=2)
    lows, highs = np.quantile(means, [0.025, 0.975], axis=1)
    verdicts = [verdict(claim, low, high) for low, high in zip(lows, highs, strict=True)]
    return float(np.mean([v == "holds" for v in verdicts]))
