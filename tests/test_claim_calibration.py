"""Claim verdicts are calibrated at the seeds suites use: under no true effect a claim
HOLDS at most 2.5 % of the time (the one-sided level of a 95 % interval) for n = 3, 5 and
10 seeds and every claim kind — and the previous percentile bootstrap did not (a
regression test reproducing the 11.5 % / 8.4 % a reviewer measured). Power under a true
effect matches the noncentral-t power computed independently."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from tests.claim_simulation import KINDS, holds_rate, old_bootstrap_holds_rate

RUNS = 2000
NOMINAL = 0.025
#: three Monte Carlo standard errors of a rate of 2.5 % over RUNS runs
MC_ALLOWANCE = 3 * math.sqrt(NOMINAL * (1 - NOMINAL) / RUNS)


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("kind", KINDS)
def test_no_effect_holds_at_most_at_the_nominal_level(kind: str, n: int) -> None:
    rate = holds_rate(kind, n, effect=0.0, runs=RUNS)
    assert rate <= NOMINAL + MC_ALLOWANCE, f"{kind} at n={n}: HOLDS {rate:.1%} under no effect"


@pytest.mark.parametrize(("n", "low", "high"), [(3, 0.09, 0.15), (5, 0.065, 0.11)])
def test_the_old_percentile_bootstrap_held_far_too_often(n: int, low: float, high: float) -> None:
    # the reviewer's measurement: 11.5 % at 3 seeds, 8.4 % at 5 (nominal 2.5 %); the
    # bounds are that figure ± about 4 Monte Carlo standard errors of 4,000 runs
    assert low <= old_bootstrap_holds_rate(n) <= high


@pytest.mark.parametrize("n", [3, 5, 10])
def test_power_under_a_true_effect_is_the_noncentral_t_power(n: int) -> None:
    # a value claim '> 0' with per-seed values N(1, 1): HOLDS iff the one-sided t-test at
    # 2.5 % rejects, whose power is 1 − F_nct(t_crit; n − 1, √n)
    expected = 1 - stats.nct.cdf(stats.t.ppf(0.975, n - 1), n - 1, math.sqrt(n))
    rate = holds_rate("value", n, effect=1.0, runs=RUNS)
    allowance = 4 * math.sqrt(expected * (1 - expected) / RUNS)
    assert rate == pytest.approx(expected, abs=allowance)
