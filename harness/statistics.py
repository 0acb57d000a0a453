"""The one statistics module: the intervals of leaderboards, figures and claims alike —
95 % Student-t intervals over seeds (Welch's and Fieller's where two sides are
independent or a ratio is wanted), calibrated at the 3–5 seeds suites use."""

from __future__ import annotations

import functools
import math

import numpy as np

#: Two-sided confidence of every interval the harness reports.
CONFIDENCE = 0.95

# A percentile bootstrap over 3–5 seeds is [min, max] (or close): under no effect a
# one-sided claim then held about 12 % of the time at 3 seeds, 8 % at 5 (nominal 2.5 %;
# tests/test_claim_calibration.py). Student-t intervals are exact for normally
# distributed per-seed values at any n ≥ 2: paired by seed where both sides share seeds
# (a one-sample interval on the per-seed differences), Welch's where they do not,
# Fieller's for ratios of means.

#: What a claim's interval is, in words (printed with every verdict).
T_METHOD = "95 % Student-t interval of the mean over seeds"


@functools.lru_cache(maxsize=4096)
def t_quantile(df: float, confidence: float = CONFIDENCE) -> float:
    """The two-sided ``confidence`` quantile of Student's t with ``df`` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(1 - (1 - confidence) / 2, df))


def t_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (n ≥ 2; NaNs below): mean ± t·s/√n."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    mean = float(values.mean())
    half = (
        t_quantile(len(values) - 1, confidence) * float(values.std(ddof=1)) / math.sqrt(len(values))
    )
    return mean - half, mean + half


def welch_interval(
    a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Welch's interval of mean(a) − mean(b) for independent samples (each n ≥ 2);
    degrees of freedom by Welch–Satterthwaite."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    difference = float(a.mean() - b.mean())
    if va + vb == 0:
        return difference, difference
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = t_quantile(df, confidence) * math.sqrt(va + vb)
    return difference - half, difference + half


def fieller_interval(
    a: np.ndarray, b: np.ndarray, paired: bool, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Fieller's interval of mean(a) / mean(b): every ρ for which a t-test does not reject
    mean(a − ρ·b) = 0 (paired: on the per-seed a − ρ·b, n − 1 degrees of freedom;
    independent: variances added, min(nₐ, n_b) − 1 degrees of freedom, conservative).
    (−∞, ∞) when the denominator's mean is not distinguishable from 0 (the set is then
    unbounded)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ma, mb = float(a.mean()), float(b.mean())
    if paired:  # variances and covariance of the two means
        (saa, sab), (_, sbb) = np.cov(a, b, ddof=1) / len(a)
        t = t_quantile(len(a) - 1, confidence)
    else:
        t = t_quantile(min(len(a), len(b)) - 1, confidence)
        saa, sbb, sab = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b), 0.0
    t2 = t * t
    quadratic = mb * mb - t2 * sbb
    linear = ma * mb - t2 * sab
    constant = ma * ma - t2 * saa
    if quadratic <= 0:
        return -math.inf, math.inf
    root = math.sqrt(max(linear * linear - quadratic * constant, 0.0))
    return (linear - root) / quadratic, (linear + root) / quadratic


#: Seed counts :func:`seeds_to_decide` tries: every n to 100, then about 10 % apart.
_SEED_COUNTS = np.unique(
    np.concatenate([np.arange(2, 101), np.geomspace(100, 10_000, 50).astype(int)])
)


def seeds_to_decide(effect: float, spread: float, confidence: float = CONFIDENCE) -> int | None:
    """The fewest seeds n at which a t-interval would decide a claim whose per-seed
    distance from its boundary keeps the observed mean ``effect`` and standard deviation
    ``spread``: the smallest n with t(n − 1)·spread/√n < |effect|. None when the effect
    is 0 or more than 10,000 seeds would be needed; 2 when there is no spread."""
    if effect == 0 or not math.isfinite(effect) or not math.isfinite(spread):
        return None
    if spread == 0:
        return 2
    from scipy import stats

    n = _SEED_COUNTS
    widths = stats.t.ppf(1 - (1 - confidence) / 2, n - 1) * spread / np.sqrt(n)
    enough = np.flatnonzero(widths < abs(effect))
    return int(n[enough[0]]) if len(enough) else None
