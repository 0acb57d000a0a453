"""The rows of the results store: a cell, a score, and the facts every row carries.

Besides its ids, timings and value, every row carries the facts about its metric and
explainer that reports need — a metric's kind and direction, whether it is an
across-seeds statistic, an explainer's role — so reports, figures, regressions and claims
read them from the store, never from a plugin registry, and a stored run renders the same
whether or not its plugins are installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

#: What a metric measures: the explanation, the model, the cost — or it is a reference
#: (a baseline to read other scores against, never ranked) or ``meta``: a score of
#: another metric (:mod:`harness.meta_consistency`), never in leaderboards.
MetricKind = Literal["explanation", "model", "cost", "reference", "meta"]
#: What a metric is to figures — the panel or curve it is drawn as — a closed set that
#: figures choose metrics by (with the family), never by name or id; "" for none.
MetricRole = Literal[
    "",
    "accuracy",
    "accuracy_gain",
    "accuracy_gain_relative",
    "ground_truth_rank_agreement",
    "ground_truth_linear_agreement",
    "reference_rank_agreement",
    "deletion_curve",
    "insertion_curve",
    "deletion_random",
    "insertion_random",
    "patch_deletion_curve",
    "patch_deletion_random",
    "precision_at_k_curve",
    "randomisation_curve",
    "explain_time",
    "explain_time_per_row",
]
#: What family a metric belongs to — a closed set that figures and report cards choose
#: metrics by (never by name); ``other`` for plugins that do not say.
MetricFamily = Literal[
    "model",
    "cost",
    "agreement",
    "localisation",
    "faithfulness",
    "randomisation",
    "robustness",
    "complexity",
    "meta",
    "other",
]

#: An explainer is post-hoc, by-design (it builds the model it explains) or a control
#: (a reference explanation: oracle, inverted, random, constant, centre).
ExplainerRole = Literal["post_hoc", "by_design", "control"]

CellStatus = Literal["ok", "failed", "skipped"]
#: A score is ``ok`` (a value, or none because the metric is undefined there — its note
#: says why) or ``failed`` (its metric raised, or gave an impossible value).
ScoreStatus = Literal["ok", "failed"]

#: Columns of :func:`load_results`, in order.
RESULT_COLUMNS = [
    "run_id",
    "dataset",
    "model",
    "explainer",
    "seed",
    "metric",
    "value",
    "higher_is_better",
    "status",
    "note",
    "error",
    "unit",
    "cell_id",
    "dataset_name",
    "model_name",
    "explainer_name",
    "metric_name",
    "conventions",
    "conventions_hash",
    "train_seconds",
    "explain_seconds",
    "score_seconds",
    "n_explained",
    "torch_threads",
    "warnings",
    "metric_kind",
    "across_seeds",
    "explainer_role",
    "metric_family",
    "metric_version",
    "metric_role",
    "range_low",
    "range_high",
]


@dataclass(frozen=True)
class CellRecord:
    """One finished (or skipped, or failed) cell. Timings are wall seconds.

    ``warnings``: the distinct warnings libraries raised while the cell ran, one per line.
    """

    cell_id: str
    dataset: str
    model: str
    explainer: str
    seed: int
    dataset_name: str
    model_name: str
    explainer_name: str
    status: CellStatus
    explainer_role: ExplainerRole = "post_hoc"
    error: str | None = None
    train_seconds: float | None = None
    explain_seconds: float | None = None
    score_seconds: float | None = None
    n_explained: int | None = None
    torch_threads: int | None = None
    warnings: str | None = None


@dataclass(frozen=True)
class ScoreRecord:
    """One metric of one cell; ``value`` is None when it could not be computed (see ``note``).

    ``kind``, ``higher_is_better`` and ``across_seeds`` are the metric's facts, stored on
    the row so that reports never need the metric's plugin. ``status`` is ``failed`` when
    the metric itself failed (the cell's other scores and products are stored all the
    same, so a rescoring can fill it in once the metric is fixed).
    """

    metric: str
    metric_name: str
    value: float | None
    higher_is_better: bool
    unit: str
    conventions: dict[str, Any]
    conventions_hash: str
    note: str = ""
    kind: MetricKind = "explanation"
    across_seeds: bool = False
    status: ScoreStatus = "ok"
    #: the metric's family and the version of its definition (None: stored before they
    #: were kept)
    family: MetricFamily | None = None
    metric_version: int | None = None
    #: its role in figures ("" for none; None: stored before roles were kept)
    role: MetricRole | None = None
    #: the values the metric can take, (low, high) (None: unbounded, or stored before
    #: ranges were kept) — for axis limits and for telling seeds that disagree
    value_range: tuple[float, float] | None = None
