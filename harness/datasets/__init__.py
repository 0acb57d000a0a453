"""Dataset sources. Importing this package registers the built-ins."""

from harness.datasets import sklearn_bundled, synthetic_tabular  # noqa: F401  (registers)
from harness.datasets.base import Dataset, DatasetCard, DatasetSource, GroundTruth, dataset_registry

__all__ = ["Dataset", "DatasetCard", "DatasetSource", "GroundTruth", "dataset_registry"]
