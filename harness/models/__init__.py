"""Model recipes. Importing this package registers the built-ins."""

from harness.models import (  # noqa: F401  (registers)
    cnn,
    given,
    mlp,
    timm_cnns,
    torchvision_cnns,
    transformer,
    tree_ensembles,
    vision_transformer,
)
from harness.models.base import ModelRecipe, TrainedModel, model_registry

__all__ = ["ModelRecipe", "TrainedModel", "model_registry"]
