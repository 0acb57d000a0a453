"""Cost metrics: how long explaining takes."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from harness import artifacts
from harness.component import Params
from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry
from harness.records import MetricFamily, MetricRole


@metric_registry.register("explain_seconds")
class ExplainSeconds(Metric):
    """Wall time of the explainer call on all explained rows, in seconds (lower is better).

    Measured with ``time.perf_counter`` around the explainer call alone, after a warm-up
    call on one row; the torch thread count is recorded with the cell.
    """

    role: ClassVar[MetricRole] = "explain_time"

    family: ClassVar[MetricFamily] = "cost"

    kind = "cost"

    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"explain_seconds"})
    unit: ClassVar[str] = "s"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "clock": "perf_counter wall time",
        "warmup": "one call on a single row, not timed",
    }

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.explain_seconds is not None
        return MetricResult(float(evidence.explain_seconds))


@metric_registry.register("explain_seconds_per_row")
class ExplainSecondsPerRow(Metric):
    """``explain_seconds`` divided by the number of explained rows, in seconds per row."""

    role: ClassVar[MetricRole] = "explain_time_per_row"

    family: ClassVar[MetricFamily] = "cost"

    kind = "cost"

    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"explain_seconds", "n_explained"})
    unit: ClassVar[str] = "s"
    fixed_conventions: ClassVar[dict[str, str]] = ExplainSeconds.fixed_conventions

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.explain_seconds is not None and evidence.n_explained is not None
        return MetricResult(evidence.explain_seconds / evidence.n_explained)


@metric_registry.register("train_seconds")
class TrainSeconds(Metric):
    """Wall time of training the explained model, in seconds (by-design: the wrapped model)."""

    family: ClassVar[MetricFamily] = "cost"

    kind = "cost"

    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"train_seconds"})
    unit: ClassVar[str] = "s"
    fixed_conventions: ClassVar[dict[str, str]] = {
        "clock": "perf_counter wall time",
        "covers": "model construction and every training epoch",
    }

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.train_seconds is not None
        if evidence.model_given:
            return MetricResult(0.0, "given: trained outside the harness, loaded from a file")
        return MetricResult(float(evidence.train_seconds))


@metric_registry.register("train_overhead_seconds")
class TrainOverheadSeconds(Metric):
    """Training time of the by-design model minus its black-box twin's, in seconds.

    Both are trained in the same process, one after the other, on the same data and seed.
    """

    family: ClassVar[MetricFamily] = "cost"

    kind = "cost"

    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"train_seconds", "twin"})
    unit: ClassVar[str] = "s"
    fixed_conventions: ClassVar[dict[str, str]] = TrainSeconds.fixed_conventions

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.train_seconds is not None and evidence.twin_train_seconds is not None
        return MetricResult(float(evidence.train_seconds - evidence.twin_train_seconds))


class TimeToRankingParams(Params):
    k: int = Field(5, ge=1, le=1_000_000, description="size of the top-k feature set")


@metric_registry.register("time_to_ranking")
class TimeToRanking(Metric):
    """Wall seconds of training until the top-k features of the by-design ranking stop
    changing: from the stored per-epoch trajectory (ScoresActivation), the first epoch
    after which the top-k set (features tied with the k-th weight included) is the same
    at every later epoch, and the training time up to its end (``epoch_seconds``).

    The epoch is in the note and stored as ``<metric id>.epoch``. Explainers without a
    trajectory leave it missing, with the reason.
    """

    family: ClassVar[MetricFamily] = "cost"

    kind = "cost"
    higher_is_better: ClassVar[bool] = False
    unit: ClassVar[str] = "s"
    needs: ClassVar[frozenset[str]] = frozenset({"global_importance", "train_seconds"})
    fixed_conventions: ClassVar[dict[str, str]] = {
        "clock": "wall seconds from the start of training to the end of the epoch",
        "ties": "every feature tied with the k-th weight is in the set",
    }
    params: TimeToRankingParams

    def compute(self, evidence: Evidence) -> MetricResult:
        from harness.metrics.stability import top_set

        history = evidence.history or {}
        trajectory = history.get(artifacts.SCORE_TRAJECTORY)
        seconds = history.get(artifacts.EPOCH_SECONDS)
        if trajectory is None or seconds is None:
            return MetricResult.undefined("no per-epoch score trajectory (by-design rankings only)")
        sets = [top_set(row, self.params.k) for row in trajectory]
        epoch = len(sets) - 1
        while epoch > 0 and sets[epoch - 1] == sets[-1]:
            epoch -= 1
        return MetricResult(
            float(seconds[epoch]),
            f"top-{self.params.k} set final from epoch {epoch}",
            arrays={"epoch": np.array(epoch)},
        )
