"""Metrics. Importing this package registers the built-ins."""

from harness.metrics import (  # noqa: F401  (registers)
    agreement,
    classification,
    complexity,
    consistency,
    cost,
    faithfulness,
    infidelity,
    localisation,
    model,
    patch_deletion,
    patch_precision,
    randomisation,
    road,
    robustness,
    sanity_revisited,
    stability,
    suppressors,
    transport,
)
from harness.metrics.base import (
    Evidence,
    Metric,
    MetricResult,
    metric_registry,
)

__all__ = ["Evidence", "Metric", "MetricResult", "metric_registry"]
