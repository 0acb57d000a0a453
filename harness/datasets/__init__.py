"""Dataset sources. Importing this package registers the built-ins."""

from harness.datasets import (  # noqa: F401  (registers)
    array_file,
    image_folder,
    medmnist_source,
    openml_source,
    planted,
    sklearn_bundled,
    suppressor_lesions,
    suppressor_tabular,
    synthetic_lesions,
    synthetic_tabular,
    table_file,
)
from harness.datasets.base import Dataset, DatasetCard, DatasetSource, GroundTruth, dataset_registry

__all__ = ["Dataset", "DatasetCard", "DatasetSource", "GroundTruth", "dataset_registry"]
