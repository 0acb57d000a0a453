"""Metrics. Importing this package registers the built-ins."""

from harness.metrics import (  # noqa: F401  (registers)
    agreement,
    cost,
    faithfulness,
    localisation,
    model,
    stability,
)
from harness.metrics.base import (
    Evidence,
    Metric,
    MetricResult,
    metric_registry,
)

__all__ = ["Evidence", "Metric", "MetricResult", "metric_registry"]
