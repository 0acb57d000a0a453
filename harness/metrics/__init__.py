"""Metrics. Importing this package registers the built-ins."""

from harness.metrics import (  # noqa: F401  (registers)
    agreement,
    classification,
    consistency,
    cost,
    faithfulness,
    localisation,
    model,
    patch_deletion,
    patch_precision,
    stability,
)
from harness.metrics.base import (
    Evidence,
    Metric,
    MetricResult,
    metric_registry,
)

__all__ = ["Evidence", "Metric", "MetricResult", "metric_registry"]
