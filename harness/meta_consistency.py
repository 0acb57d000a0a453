"""Is a metric resilient to noise and reactive to adversaries? MetaQuantus's scores.

MetaQuantus (Hedström et al., TMLR 2023) meta-evaluates an explanation metric from its
per-row values q (one per explained row, per explainer) before and after perturbations:

- *resilience* tests perturb slightly (the model's parameters by N(1, σ²) with σ = 0.001,
  or the input by uniform noise) and keep the rows whose predicted class is unchanged: a
  metric should not move;
- *adversary* tests perturb disruptively (σ = 2; uniform noise of 5) and keep the rows
  whose predicted class changed: a metric should move, and get worse.

Four scores per perturbation type (model, input), each in [0, 1], higher is better:

- IAC_NR (intra-consistency, noise resilience): the two-sided Wilcoxon signed-rank p-value
  of q against the perturbed q̂ over the kept rows (zero differences split, scipy's
  ``zero_method = "zsplit"``; :func:`wilcoxon_p`), averaged over perturbations and
  explainers;
- IAC_AR: 1 − that p-value, on the adversary's rows;
- IEC_NR (inter-consistency): the share of (explainer, row) pairs whose explainer keeps
  its place when the explainers are sorted by q on each row (``numpy.argsort`` of q and of
  q̂, compared place by place);
- IEC_AR: the share of (explainer, row) pairs whose q̂ is worse than q (lower when higher
  is better).

MC, the meta-consistency, is their mean; the harness stores per dataset × model × seed
``<metric>:nr`` (mean of IAC_NR and IEC_NR over both types), ``<metric>:ar`` (the same of
the AR scores) and ``<metric>:mc`` (the mean of all eight: MetaQuantus's MC averaged over
its model and input tests). Equal to MetaQuantus 0.0.5's ``MetaEvaluation`` on the same
values (tested), with four differences stated: with ties or zero differences the p-value
is the normal approximation (scipy's ``auto`` when MetaQuantus was written; today's runs a
random permutation test); rows with an undefined value (NaN) are
left out of the tests (MetaQuantus passes them on, and its IEC counts them as disagreeing);
a perturbation that kept no row is left out of the means (MetaQuantus's mean becomes NaN);
and IEC_AR takes the metric's direction
from its declaration — MetaQuantus's benchmarks pass the strings "higher"/"lower", both
true, so it counts an *improvement* under the adversary for every metric.

What a metric that carries no information scores: one that returns a constant has NR 1
and AR 0 (p = 1 everywhere, nothing gets worse); one that is noise, drawn afresh at each
call, has IAC_NR ≈ ½ (a p-value under the null is uniform), IEC_NR ≈ 1/m with m
explainers (a random order keeps a place with chance 1/m), IAC_AR ≈ ½ and IEC_AR ≈ ½ —
its **chance levels** (:func:`chance_levels`). A metric is flagged when its NR or AR,
mean over seeds, is not *clearly* above chance: below a quarter of the way from chance to
1; *undecided* when its mean is above that but its 95 % interval over seeds reaches below
(:meth:`MetaCheck.verdict`). The margin is a choice: an interval over 2–5 seeds of a
near-chance estimate can be narrow by luck (two seeds of a noise metric gave NR 0.433 and
0.435 against chance 0.417), and IAC_NR alone cannot tell noise from a stable metric (both
≈ ½: the Wilcoxon test sees no shift).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: The scores stored per meta-evaluated metric: noise resilience, adversary reactivity,
#: meta-consistency.
META_SCORES = ("nr", "ar", "mc")
#: The arrays each post-hoc cell stores per meta-evaluated metric (``<metric>.<key>``):
#: per-row values (rows), under each perturbation (tests × draws × rows), whether each
#: row's predicted class was unchanged (tests × draws × rows), the rows' test indices and
#: the seconds the meta-evaluation took per metric.
Q, Q_HAT, UNCHANGED, ROWS = "meta_q", "meta_q_hat", "meta_unchanged", "meta_rows"
META_SECONDS = "meta_seconds"
#: The perturbation tests, in the order their values are stored.
TESTS = ("model_resilience", "model_adversary", "input_resilience", "input_adversary")


def meta_score_id(metric_id: str, which: str) -> str:
    """The id under which ``which`` (one of :data:`META_SCORES`) of a metric is stored."""
    return f"{metric_id}:{which}"


def wilcoxon_p(q: np.ndarray, q_hat: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired values (zero differences split
    between the signs, ``zsplit``), over the pairs where both are finite; NaN when there
    is none (or scipy refuses the test). Exact for up to 50
    pairs without ties or zeros (scipy's ``auto``); otherwise the normal approximation
    with tie correction — scipy ≥ 1.15's ``auto`` would run a permutation test there,
    random and, on binary metrics, seconds per call."""
    from scipy.stats import wilcoxon

    finite = np.isfinite(q) & np.isfinite(q_hat)
    if not finite.any():
        return math.nan
    difference = np.abs(q[finite] - q_hat[finite])
    tied = (difference == 0).any() or len(np.unique(difference)) < len(difference)
    method = "asymptotic" if tied or len(difference) > 50 else "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on small samples; the p-value stands
        try:
            result = wilcoxon(
                q[finite], q_hat[finite], alternative="two-sided", zero_method="zsplit",
                method=method,
            )  # fmt: skip
        except ValueError:  # too few pairs for scipy: no test
            return math.nan
    return float(result.pvalue)


def intra_consistency(q: np.ndarray, q_hat: np.ndarray, kept: np.ndarray, adversary: bool) -> float:
    """IAC of one explainer under one perturbation: the p-value over the ``kept`` rows
    (resilience), or 1 − p (adversary)."""
    p = wilcoxon_p(q[kept], q_hat[kept])
    return 1 - p if adversary else p


def inter_consistency(
    q: np.ndarray, q_hat: np.ndarray, kept: np.ndarray, adversary: bool, higher_is_better: bool
) -> float:
    """IEC under one perturbation: ``q``, ``q_hat`` are explainers × rows. Resilience:
    the share of places that hold the same explainer when each row's explainers are
    sorted by q and by q̂; adversary: the share of (explainer, row) with q̂ worse than q.
    Over the ``kept`` rows where every value is finite; NaN when there is none."""
    columns = kept & np.isfinite(q).all(axis=0) & np.isfinite(q_hat).all(axis=0)
    if not columns.any():
        return math.nan
    before, after = q[:, columns], q_hat[:, columns]
    if adversary:
        worse = after < before if higher_is_better else after > before
        return float(worse.mean())
    return float((np.argsort(before, axis=0) == np.argsort(after, axis=0)).mean())


@dataclass(frozen=True)
class MetaConsistency:
    """The eight MetaQuantus scores of one metric on one model (see the module):
    ``components[(type, score)]`` with type ``model``/``input`` and score ``IAC_NR``,
    ``IAC_AR``, ``IEC_NR``, ``IEC_AR``; NaN where no row was kept."""

    components: dict[tuple[str, str], float]
    explainers: int

    @property
    def nr(self) -> float:
        return _mean([v for (_, s), v in self.components.items() if s.endswith("NR")])

    @property
    def ar(self) -> float:
        return _mean([v for (_, s), v in self.components.items() if s.endswith("AR")])

    @property
    def mc(self) -> float:
        return _mean(list(self.components.values()))

    @property
    def undefined(self) -> list[str]:
        """The components without a value, as ``type IAC_AR``."""
        return [f"{t} {s}" for (t, s), v in self.components.items() if math.isnan(v)]

    @property
    def text(self) -> str:
        """The components, one type after the other."""
        parts = []
        for kind in ("model", "input"):
            scores = ", ".join(f"{s} {v:.3f}" for (t, s), v in self.components.items() if t == kind)
            parts.append(f"{kind}: {scores}")
        return "; ".join(parts)


def _mean(values: list[float]) -> float:
    """The mean, NaN when any value is NaN (a score with an undefined part is undefined)."""
    return float(np.mean(values)) if values else math.nan


def meta_consistency(
    q: np.ndarray, q_hat: np.ndarray, unchanged: np.ndarray, higher_is_better: bool
) -> MetaConsistency:
    """MetaQuantus's scores from per-row metric values: ``q`` explainers × rows (no
    perturbation), ``q_hat`` tests × perturbations × explainers × rows (tests in the
    order of :data:`TESTS`), ``unchanged`` tests × perturbations × rows (the predicted
    class kept its value under that perturbation)."""
    components: dict[tuple[str, str], float] = {}
    for index, test in enumerate(TESTS):
        kind, which = test.split("_")
        adversary = which == "adversary"
        suffix = "AR" if adversary else "NR"
        intra, inter = [], []
        for k in range(q_hat.shape[1]):
            kept = ~unchanged[index, k] if adversary else unchanged[index, k]
            intra += [
                intra_consistency(q[e], q_hat[index, k, e], kept, adversary) for e in range(len(q))
            ]
            inter.append(inter_consistency(q, q_hat[index, k], kept, adversary, higher_is_better))
        components[(kind, f"IAC_{suffix}")] = _nanmean(intra)
        components[(kind, f"IEC_{suffix}")] = _nanmean(inter)
    order = [(t, s) for t in ("model", "input") for s in ("IAC_NR", "IAC_AR", "IEC_NR", "IEC_AR")]
    return MetaConsistency({key: components[key] for key in order}, len(q))


def _nanmean(values: list[float]) -> float:
    """The mean of the defined values (a perturbation that kept no row has none)."""
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


#: How far above chance NR and AR must be, as a share of the way from chance to 1.
CLEARLY_ABOVE = 0.25


def chance_levels(explainers: int) -> dict[str, float]:
    """NR, AR and MC of a metric that is noise drawn afresh at each call, with
    ``explainers`` explainers compared (see the module)."""
    nr = (0.5 + 1 / explainers) / 2
    ar = 0.5
    return {"nr": nr, "ar": ar, "mc": (nr + ar) / 2}


@dataclass(frozen=True)
class MetaCheck:
    """A metric's stored NR, AR and MC on one dataset × model: ``values[score]`` per seed
    (seed order), ``chance[score]`` what a metric of noise scores there."""

    dataset: str
    model: str
    metric: str
    values: dict[str, tuple[float, ...]]
    chance: dict[str, float]

    def summary(self, which: str) -> tuple[float, float, float]:
        """Mean over seeds and its 95 % t-interval (NaN bounds below two seeds)."""
        from harness.statistics import t_interval

        values = np.array(self.values[which], dtype=float)
        if not len(values):
            return math.nan, math.nan, math.nan
        return float(values.mean()), *t_interval(values)

    def threshold(self, which: str) -> float:
        """Where NR or AR (``which``) is clearly above chance: a quarter of the way from
        the chance level to 1 (:data:`CLEARLY_ABOVE`)."""
        return self.chance[which] + CLEARLY_ABOVE * (1 - self.chance[which])

    def verdict(self, which: str) -> str:
        """NR or AR (``which``) against :meth:`threshold`, as control separation reads
        its differences: ``clear`` (the 95 % interval over seeds lies above it),
        ``undecided`` (the mean does, the interval reaches below: more seeds would
        tell), ``flagged`` (the mean — one seed: its value — is below it), ``undefined``
        (no value). MC is not judged on its own (it is their mean): ``""``."""
        mean, low, _ = self.summary(which)
        if which == "mc":
            return ""
        if math.isnan(mean):
            return "undefined"
        if mean < self.threshold(which):
            return "flagged"
        return "undecided" if math.isnan(low) or low < self.threshold(which) else "clear"

    def flagged(self, which: str) -> bool:
        """Whether NR or AR (``which``) is :meth:`verdict` ``flagged``."""
        return self.verdict(which) == "flagged"

    @property
    def flags(self) -> list[str]:
        """Why the metric cannot be trusted to react as it should (:meth:`flagged`)."""
        words = {"nr": "not resilient to noise", "ar": "not reactive to adversaries"}
        found = []
        for which, meaning in words.items():
            mean = self.summary(which)[0]
            if self.flagged(which):
                found.append(
                    f"{meaning}: {which.upper()} {mean:.3f} is not clearly above chance "
                    f"({self.chance[which]:.3f}; clearly above: ≥ {self.threshold(which):.3f})"
                )
        return found


def meta_checks(results: pd.DataFrame) -> list[MetaCheck]:
    """The stored meta-evaluation of a run's scores (``load_results`` rows), one check
    per dataset × model × meta-evaluated metric, in stored order."""
    if "metric_kind" not in results:  # stored before metrics had kinds: no meta scores
        return []
    meta = results[results["metric_kind"] == "meta"]
    if meta.empty:
        return []
    meta = meta.assign(
        base=meta["metric"].str.rsplit(":", n=1).str[0],
        which=meta["metric"].str.rsplit(":", n=1).str[1],
    )
    checks = []
    for (dataset, model, base), group in meta.groupby(["dataset", "model", "base"], sort=False):
        per_seed = group.drop_duplicates(["seed", "which"]).sort_values("seed", kind="stable")
        values = {
            which: tuple(per_seed.loc[per_seed["which"] == which, "value"].dropna())
            for which in META_SCORES
        }
        conventions = json.loads(per_seed["conventions"].iloc[0] or "{}")
        explainers = max(1, len(conventions.get("explainers", [])))
        checks.append(MetaCheck(dataset, model, base, values, chance_levels(explainers)))
    return checks
