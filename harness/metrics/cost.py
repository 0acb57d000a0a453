"""Cost metrics: how long explaining takes."""

from __future__ import annotations

from typing import ClassVar

from harness.metrics.base import Evidence, Metric, MetricResult, metric_registry


@metric_registry.register("explain_seconds")
class ExplainSeconds(Metric):
    """Wall time of the explainer call on all explained rows, in seconds (lower is better).

    Measured with ``time.perf_counter`` around the explainer call alone, after a warm-up
    call on one row; the torch thread count is recorded with the cell.
    """

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
        return MetricResult(float(evidence.train_seconds))


@metric_registry.register("train_overhead_seconds")
class TrainOverheadSeconds(Metric):
    """Training time of the by-design model minus its black-box twin's, in seconds.

    Both are trained in the same process, one after the other, on the same data and seed.
    """

    kind = "cost"

    higher_is_better: ClassVar[bool] = False
    needs: ClassVar[frozenset[str]] = frozenset({"train_seconds", "twin"})
    unit: ClassVar[str] = "s"
    fixed_conventions: ClassVar[dict[str, str]] = TrainSeconds.fixed_conventions

    def compute(self, evidence: Evidence) -> MetricResult:
        assert evidence.train_seconds is not None and evidence.twin_train_seconds is not None
        return MetricResult(float(evidence.train_seconds - evidence.twin_train_seconds))
