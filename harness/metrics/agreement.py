"""Agreement of an explainer's global importance with ground-truth feature importance.

All three metrics compare the explainer's global importance (mean |attribution| for
local explainers) with the dataset's ground-truth importance vector. Sparse ground truth
(relevant = 1, irrelevant = 0) creates ties, which cap Spearman ρ below 1 even for a
perfect ranking of a continuous score; Kendall τ-b and top-k precision are reported
beside it for that reason.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy.stats import kendalltau, spearmanr

from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry


class AgreementParams(Params):
    sign: Literal["abs", "raw"] = Field(
        "abs", description="rank |score| (default) or the signed score"
    )


class _GroundTruthAgreement(Metric):
    """Shared checks: same length, non-constant ground truth, and (for rank correlations,
    which are undefined then) a non-constant explanation."""

    needs: ClassVar[frozenset[str]] = frozenset({"global_importance", "importance"})
    undefined_for_constant_scores: ClassVar[bool] = True
    Params = AgreementParams
    params: AgreementParams

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.global_importance is not None and evidence.importance is not None
        scores = np.asarray(evidence.global_importance, dtype=float).ravel()
        if self.params.sign == "abs":
            scores = np.abs(scores)
        truth = np.asarray(evidence.importance, dtype=float).ravel()
        if scores.shape != truth.shape:
            return MetricResult.undefined(
                f"explanation has {scores.size} scores but ground truth {truth.size} features"
            )
        if self.undefined_for_constant_scores and np.ptp(scores) == 0:
            return MetricResult.undefined(f"explanation scores are constant: {self.name} undefined")
        if np.ptp(truth) == 0:
            return MetricResult.undefined("ground-truth importance is constant")
        return MetricResult(self.statistic(scores, truth))

    def statistic(self, scores: np.ndarray, truth: np.ndarray) -> float:
        raise NotImplementedError


@metric_registry.register("spearman_gt")
class SpearmanGroundTruth(_GroundTruthAgreement):
    """Spearman ρ between global importance and ground-truth importance, in [-1, 1].

    Ties get average ranks (scipy). A constant explanation leaves ρ undefined: recorded
    as missing with that reason.
    """

    fixed_conventions: ClassVar[dict[str, str]] = {"ties": "average ranks"}

    def statistic(self, scores: np.ndarray, truth: np.ndarray) -> float:
        return float(spearmanr(scores, truth).statistic)


@metric_registry.register("kendall_gt")
class KendallGroundTruth(_GroundTruthAgreement):
    """Kendall τ-b between global importance and ground-truth importance, in [-1, 1].

    τ-b corrects for ties on both sides (scipy's ``kendalltau``, variant "b").
    """

    fixed_conventions: ClassVar[dict[str, str]] = {"ties": "tau-b"}

    def statistic(self, scores: np.ndarray, truth: np.ndarray) -> float:
        return float(kendalltau(scores, truth, variant="b").statistic)


@metric_registry.register("topk_precision_gt")
class TopKPrecisionGroundTruth(_GroundTruthAgreement):
    """Share of the k highest-scored features that are relevant, k = number relevant; [0, 1].

    Relevant = ground-truth importance > 0. Features tied at the k-th highest score share
    the remaining slots: the value is the expectation over a uniformly random order within
    the tie group, so a constant explanation scores chance (k / features), never 1, and no
    feature order is favoured.
    """

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
