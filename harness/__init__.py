"""xai-harness: a benchmark harness for explainability methods.

Public API: :func:`evaluate` (a model and data in memory, scored as a suite would),
:class:`Results` (a stored run: ``.frame``, ``.leaderboard()``, ``.figures()``, ``.check()``,
``.report()``, ``.log_mlflow()``), :func:`explainer` (a configured explainer),
:func:`run_suite`, :func:`load_suite`, :func:`load_results`, :func:`load_arrays`,
:func:`load_importance` (global importance with column names),
:func:`leaderboard` (a run's leaderboard as a DataFrame), :func:`metric` (a metric with
Quantus's call signature, per-sample scores) and the plugin registries
(``explainer_registry``, ``dataset_registry``, ``metric_registry``, ``model_registry``).
Each is imported on first access, so ``import harness`` (and a command that only reads
the store) does not pay for torch and the explainer libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: public name → the module that defines it
_EXPORTS = {
    "dataset_registry": "harness.datasets",
    "explainer_registry": "harness.explainers",
    "metric_registry": "harness.metrics",
    "model_registry": "harness.models",
    "run_suite": "harness.runner",
    "load_results": "harness.store",
    "load_suite": "harness.suite",
    "metric": "harness.metric_call",
    "leaderboard": "harness.report.aggregate",
    "evaluate": "harness.evaluation",
    "load_arrays": "harness.store",
    "load_importance": "harness.report.importance",
    "explainer": "harness.evaluation",
    "Results": "harness.results",
}

__all__ = [
    "Results",
    "dataset_registry",
    "evaluate",
    "explainer",
    "explainer_registry",
    "leaderboard",
    "load_arrays",
    "load_importance",
    "load_results",
    "load_suite",
    "metric",
    "metric_registry",
    "model_registry",
    "run_suite",
]

if TYPE_CHECKING:
    from harness.datasets import dataset_registry
    from harness.evaluation import evaluate, explainer
    from harness.explainers import explainer_registry
    from harness.metric_call import metric
    from harness.metrics import metric_registry
    from harness.models import model_registry
    from harness.report.aggregate import leaderboard
    from harness.report.importance import load_importance
    from harness.results import Results
    from harness.runner import run_suite
    from harness.store import load_arrays, load_results
    from harness.suite import load_suite


def __dir__() -> list[str]:
    """The public names (imported on first access), so tab completion finds them."""
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
