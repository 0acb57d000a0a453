"""Model recipes. Importing this package registers the built-ins."""

from harness.models import cnn, mlp, torchvision_cnns, transformer  # noqa: F401  (registers)
from harness.models.base import ModelRecipe, TrainedModel, model_registry

__all__ = ["ModelRecipe", "TrainedModel", "model_registry"]
