"""Explainers. Importing this package registers the built-ins."""

from harness.explainers import (  # noqa: F401  (registers)
    attention,
    cam_library,
    captum_methods,
    controls,
    lime_methods,
    scores_activation,
    shap_methods,
    shap_tree,
    softcam,
)
from harness.explainers.base import (
    ExplainContext,
    Explainer,
    Explanation,
    explainer_registry,
)

__all__ = ["ExplainContext", "Explainer", "Explanation", "explainer_registry"]
