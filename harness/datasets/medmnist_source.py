"""``medmnist``: the official MedMNIST v2 ``.npz`` files from a local folder.

File names follow the official release: ``<flag>.npz`` for 28×28 and ``<flag>_<size>.npz``
for 64, 128 and 224, each with the keys ``train_images``, ``train_labels``,
``val_images``, ``val_labels``, ``test_images``, ``test_labels`` (uint8 images, N×H×W or
N×H×W×3; integer labels N×1). The standard splits are kept: train → training, test →
test (val is not used). Images are memory-mapped, not loaded
(:func:`~harness.datasets.mapped_images.map_member`): the archives are compressed, so each
image member is extracted once, uncompressed, into ``extract_dir`` (default: an
``extracted`` folder beside the file) and read a batch at a time from there. When the
file is missing and the ``medmnist`` package is installed, ``download = true`` lets it
fetch the file into the folder; otherwise the error names the file to put there.
MedMNIST has no lesion masks: localisation metrics are skipped with that reason.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from harness.component import Params, SuitePath
from harness.datasets.base import Dataset, DatasetCard, DatasetSource, Modality, dataset_registry
from harness.datasets.mapped_images import MappedImages, map_member
from harness.datasets.tables import DatasetError

KEYS = ("train_images", "train_labels", "test_images", "test_labels")


class MedMNISTParams(Params):
    flag: str = Field("pneumoniamnist", min_length=1, description="e.g. pneumoniamnist")
    size: Literal[28, 64, 128, 224] = Field(28, description="image side in pixels")
    root: SuitePath | None = Field(
        None, description="folder with the .npz files (default: $MEDMNIST_ROOT, ~/.medmnist)"
    )
    max_train: int | None = Field(
        None, ge=2, le=100_000_000, description="first N training images only"
    )
    max_test: int | None = Field(None, ge=2, le=100_000_000, description="first N test images only")
    download: bool = Field(False, description="fetch a missing file with the medmnist package")
    extract_dir: SuitePath | None = Field(
        None,
        description="where compressed images are extracted to be memory-mapped "
        "(default: <root>/extracted)",
    )


def medmnist_file(root: Path, flag: str, size: int) -> Path:
    """The official file name for ``flag`` at ``size``."""
    return root / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")


@dataset_registry.register("medmnist")
class MedMNIST(DatasetSource):
    """A MedMNIST v2 2-D dataset from its official .npz file (standard train/test splits)."""

    modality: ClassVar[Modality] = "image"
    card = DatasetCard(
        source="MedMNIST v2 (medmnist.com), official .npz files",
        licence="per dataset, CC BY 4.0 or CC BY-NC 4.0 (see medmnist.com)",
        citation="Yang et al., 'MedMNIST v2: a large-scale lightweight benchmark for 2D and "
        "3D biomedical image classification', Scientific Data 10, 2023",
    )
    size = "depends on the flag (e.g. pneumoniamnist: 4,708 + 624 images), 28–224 px"
    params: MedMNISTParams

    def _root(self) -> Path:
        configured = self.params.root or Path(os.environ.get("MEDMNIST_ROOT", "~/.medmnist"))
        return configured.expanduser()

    def input_paths(self) -> dict[str, Path]:
        """The official file (the extraction is checked against it when mapped)."""
        return {"file": medmnist_file(self._root(), self.params.flag, self.params.size)}

    def load(self, seed: int) -> Dataset:
        p = self.params
        root = self._root()
        path = medmnist_file(root, p.flag, p.size)
        label = f"dataset 'medmnist' ({p.flag}, {p.size} px)"
        if not path.exists() and p.download:
            self._download(root, label)
        if not path.exists():
            raise DatasetError(
                f"{label}: {path} not found; put the official file there (medmnist.com, "
                "Zenodo record 10519652), set `root`, or set `download = true` with the "
                "medmnist package installed and network access"
            )
        extract_dir = p.extract_dir or root / "extracted"
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [k for k in KEYS if k not in archive.files]
                if missing:
                    raise DatasetError(f"{label}: {path} lacks the keys {', '.join(missing)}")
                labels = {s: archive[f"{s}_labels"] for s in ("train", "test")}
            images = {s: map_member(path, f"{s}_images", extract_dir) for s in ("train", "test")}
        except (ValueError, KeyError, zipfile.BadZipFile) as error:
            raise DatasetError(f"{label}: cannot read {path} ({error})") from error
        except OSError as error:
            raise DatasetError(
                f"{label}: cannot read {path} or extract its images to {extract_dir} "
                f"({error}); check the file, or set `extract_dir` to a writable folder with "
                "room for the uncompressed images"
            ) from error
        x_train, y_train = self._split(images["train"], labels["train"], p.max_train, label)
        x_test, y_test = self._split(images["test"], labels["test"], p.max_test, label)
        if x_train.shape[1:] != x_test.shape[1:]:
            raise DatasetError(
                f"{label}: training images are {x_train.shape[1:]} (channels, height, width) "
                f"but test images {x_test.shape[1:]}; {path} mixes sizes (a damaged or "
                "foreign file?)"
            )
        n_classes = int(max(y_train.max(), y_test.max())) + 1
        if len(np.unique(y_train)) < 2:
            raise DatasetError(f"{label}: the training split has a single class")
        side = x_train.shape[2]
        return Dataset(
            name=f"medmnist:{p.flag}",
            modality="image",
            x_train=x_train,
            y_train=y_train,
            x_test=x_test,
            y_test=y_test,
            feature_names=[f"pixel_{r}_{c}" for r in range(side) for c in range(side)],
            class_names=[str(c) for c in range(n_classes)],
            card=DatasetCard(
                source=f"MedMNIST v2 {p.flag} ({path.name})",
                licence=self.card.licence,
                citation=self.card.citation,
            ),
        )

    @staticmethod
    def _split(
        images: MappedImages, labels: np.ndarray, limit: int | None, label: str
    ) -> tuple[MappedImages, np.ndarray]:
        per_image = int(np.prod(labels.shape[1:])) if labels.ndim > 1 else 1
        if per_image != 1:
            raise DatasetError(
                f"{label}: multi-label targets ({per_image} labels per image, labels shaped "
                f"{labels.shape}) are not supported; choose a single-label MedMNIST dataset"
            )
        if len(images) != len(labels):
            raise DatasetError(f"{label}: {len(images)} images for {len(labels)} labels")
        if not np.issubdtype(labels.dtype, np.integer) or (len(labels) and labels.min() < 0):
            found = labels.min() if np.issubdtype(labels.dtype, np.number) else labels.dtype
            raise DatasetError(
                f"{label}: labels must be class indices 0, 1, …; found {found} "
                "(a damaged or foreign file?)"
            )
        kept = np.arange(min(len(images), limit or len(images)))
        return images.subset(kept), labels.reshape(-1)[kept].astype(np.int64)

    def _download(self, root: Path, label: str) -> None:
        try:
            import medmnist
        except ImportError as error:
            raise DatasetError(
                f"{label}: `download = true` needs the medmnist package (pip install medmnist)"
            ) from error
        info = medmnist.INFO.get(self.params.flag)
        if info is None:
            raise DatasetError(f"{label}: medmnist has no dataset '{self.params.flag}'")
        root.mkdir(parents=True, exist_ok=True)
        try:
            getattr(medmnist, info["python_class"])(
                split="test", download=True, root=str(root), size=self.params.size
            )
        except Exception as error:  # network errors of several kinds
            raise DatasetError(f"{label}: download failed ({error})") from error
