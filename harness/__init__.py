"""xai-harness: a benchmark harness for explainability methods.

Public API: :func:`run_suite`, :func:`load_suite`, :func:`load_results` and the plugin
registries (``explainer_registry``, ``dataset_registry``, ``metric_registry``,
``model_registry``).
"""

from harness.datasets import dataset_registry
from harness.explainers import explainer_registry
from harness.metrics import metric_registry
from harness.models import model_registry
from harness.runner import run_suite
from harness.store import load_results
from harness.suite import load_suite

__all__ = [
    "dataset_registry",
    "explainer_registry",
    "load_results",
    "load_suite",
    "metric_registry",
    "model_registry",
    "run_suite",
]
