"""Agreement of an explainer's global importance with ground-truth feature importance.

All three metrics compare the explainer's global importance (mean |attribution| for
local explainers) with the dataset's ground-truth importance vector. Sparse ground truth
(relevant = 1, irrelevant = 0) creates ties, which cap Spearman ρ below 1 even for a
perfect ranking of a continuous score; Kendall τ-b and top-k precision are reported
beside it for that reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily, MetricRole


class AgreementParams(Params):
    sign: Literal["abs", "raw"] = Field(
        "abs", description="rank |score| (default) or the signed score"
    )


Statistic = Callable[[np.ndarray, np.ndarray], float]


def compare_importances(
    scores: np.ndarray,
    other: np.ndarray,
    statistic: Statistic,
    *,
    sign: str,
    other_name: str,
    undefined_for_constant_scores: bool = True,
) -> MetricResult:
    """``statistic(scores, other)`` after the sign convention, or missing with the reason.

    Missing when the lengths differ, when ``other`` is constant, or (rank correlations)
    when ``scores`` is constant: the statistic is undefined then.
    """
    scores = np.asarray(scores, dtype=float).ravel()
    other = np.asarray(other, dtype=float).ravel()
    if sign == "abs":
        scores, other = np.abs(scores), np.abs(other)
    if scores.shape != other.shape:
        return MetricResult.undefined(
            f"explanation has {scores.size} scores but {other_name} {other.size}"
        )
    if undefined_for_constant_scores and np.ptp(scores) == 0:
        return MetricResult.undefined("explanation scores are constant: the statistic is undefined")
    if np.ptp(other) == 0:
        return MetricResult.undefined(f"{other_name} is constant")
    return MetricResult(statistic(scores, other))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman ρ with average ranks for ties (scipy)."""
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson r of the values themselves (scipy): sensitive to magnitudes, not ranks."""
    from scipy.stats import pearsonr

    return float(pearsonr(a, b).statistic)


class _GroundTruthAgreement(Metric):
    """Compares global importance with the ground-truth importance vector."""

    value_range = (-1.0, 1.0)

    family: ClassVar[MetricFamily] = "agreement"

    needs: ClassVar[frozenset[str]] = frozenset({"global_importance", "importance"})
    undefined_for_constant_scores: ClassVar[bool] = True
    params: AgreementParams

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.global_importance is not None and evidence.importance is not None
        return compare_importances(
            evidence.global_importance,
            evidence.importance,
            self.statistic,
            sign=self.params.sign,
            other_name="ground-truth importance",
            undefined_for_constant_scores=self.undefined_for_constant_scores,
        )

    def statistic(self, scores: np.ndarray, truth: np.ndarray) -> float:
        raise NotImplementedError


@metric_registry.register("spearman_gt")
class SpearmanGroundTruth(_GroundTruthAgreement):
    """Spearman ρ between global importance and ground-truth importance, in [-1, 1].

    Ties get average ranks (scipy). A constant explanation leaves ρ undefined: recorded
    as missing with that reason.
    """

    role: ClassVar[MetricRole] = "ground_truth_rank_agreement"

    fixed_conventions: ClassVar[dict[str, str]] = {"ties": "average ranks"}

    def statistic(self, scores: np.ndarray, truth: np.ndarray) -> float:
        return spearman(scores, truth)


@metric_registry.register("pearson_gt")
class PearsonGroundTruth(_GroundTruthAgreement):
    """Pearson r between global importance and ground-truth importance, in [-1, 1].

    Compares values, not ranks (the ScoresActivation paper's agreement statistic); a
    constant explanation leaves r undefined: recorded as missing with that reason.
    """

    role: ClassVar[MetricRole] = "ground_truth_linear_agreement"

    fixed_conventions: ClassVar[dict[str, str]] = {"statistic": "Pearson r of the values"}

    def statistic(self, scores: np.ndarray, truth: np.ndarray) -> float:
        return pearson(scores, truth)


@metric_registry.register("kendall_gt")
class KendallGroundTruth(_GroundTruthAgreement):
    """Kendall τ-b between global importance and ground-truth importance, in [-1, 1].

    τ-b corrects for ties on both sides (scipy's ``kendalltau``, variant "b").
    """

    fixed_conventions: ClassVar[dict[str, str]] = {"ties": "tau-b"}

    def statistic(self, scores: np.ndarray, truth: np.ndarray) -> float:
        from scipy.stats import kendalltau

        return float(kendalltau(scores, truth, variant="b").statistic)


@metric_registry.register("topk_precision_gt")
class TopKPrecisionGroundTruth(_GroundTruthAgreement):
    """Share of the k highest-scored features that are relevant, k = number relevant; [0, 1].

    Relevant = ground-truth importance > 0. Features tied at the k-th highest score share
    the remaining slots: the value is the expectation over a uniformly random order within
    the tie group, so a constant explanation scores chance (k / features), never 1, and no
    feature order is favoured.
    """

    value_range = (0.0, 1.0)

    undefined_for_constant_scores: ClassVar[bool] = False
    fixed_conventions: ClassVar[dict[str, str]] = {
        "k": "number of relevant features",
        "ties": "expected value over random order within the tie group at the k-th score",
    }

    def statistic(self, scores: np.ndarray, truth: np.ndarray) -> float:
        relevant = truth > 0
        k = int(relevant.sum())
        kth = np.sort(scores)[::-1][k - 1]
        above, tied = scores > kth, scores == kth
        slots = k - int(above.sum())
        hits = relevant[above].sum() + slots * relevant[tied].mean()
        return float(hits / k)


class ReferenceParams(AgreementParams):
    reference: str = Field(
        description="id of the reference explainer in the suite, e.g. 'shap_kernel'"
    )


class _ReferenceAgreement(Metric):
    """Compares global importance with a reference explainer's (by id, same suite)."""

    value_range = (-1.0, 1.0)

    family: ClassVar[MetricFamily] = "agreement"

    needs: ClassVar[frozenset[str]] = frozenset({"global_importance", "reference"})
    statistic: ClassVar[Statistic]
    params: ReferenceParams

    def references(self) -> list[str]:
        return [self.params.reference]

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.global_importance is not None
        reference = (evidence.reference_importance or {}).get(self.params.reference)
        if reference is None:
            return MetricResult.undefined(
                f"reference explainer '{self.params.reference}' has no result for this "
                "dataset, model and seed (failed or skipped)"
            )
        return compare_importances(
            evidence.global_importance,
            reference,
            type(self).statistic,
            sign=self.params.sign,
            other_name=f"reference '{self.params.reference}'",
        )


@metric_registry.register("spearman_ref")
class SpearmanReference(_ReferenceAgreement):
    """Spearman ρ between global importance and a reference explainer's, in [-1, 1].

    The reference is another explainer of the same suite (by id), on the same dataset,
    model recipe and seed — for a by-design explainer, the reference explains its
    black-box twin. Ties get average ranks; ``sign = "abs"`` compares |scores|.
    """

    role: ClassVar[MetricRole] = "reference_rank_agreement"

    fixed_conventions: ClassVar[dict[str, str]] = {"ties": "average ranks"}
    statistic = spearman


@metric_registry.register("pearson_ref")
class PearsonReference(_ReferenceAgreement):
    """Pearson r between global importance and a reference explainer's, in [-1, 1]
    (values, not ranks); otherwise as ``spearman_ref``."""

    fixed_conventions: ClassVar[dict[str, str]] = {"statistic": "Pearson r of the values"}
    statistic = pearson
