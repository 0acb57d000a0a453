"""Explainers. Importing this package registers the built-ins."""

from harness.explainers import captum_methods, controls  # noqa: F401  (registers)
from harness.explainers.base import (
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
)

__all__ = ["ExplainContext", "Explainer", "Explanation", "explainer_registry"]
