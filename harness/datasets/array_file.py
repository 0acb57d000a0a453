"""``array_table`` and ``array_images``: a dataset saved as arrays in one ``.npz`` file.

What :func:`harness.evaluate` writes for data given in memory, and a plain way to bring
arrays from anywhere. The file holds (``numpy.savez``; read with ``allow_pickle=False``,
so nothing is unpickled):

- ``x_train``, ``y_train``, ``x_test``, ``y_test`` — rows (tables: (rows, features);
  images: (images, channels, height, width)), read as ``float32``, and integer class
  indices ``0 … classes - 1``; the test split is what is explained and scored;
- optional ``feature_names`` and ``class_names`` (string arrays; defaults ``x0 …`` and
  ``class 0 …``);
- optional ground truth: ``importance`` (tables: one non-negative value per feature) or
  ``masks`` (images: boolean (test images, height, width), aligned with ``x_test``).

The split is the file's: the seed does not change the data (it varies the model's and
the explainers' randomness). Errors name the file and the array.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
from pydantic import Field

from harness.component import Params, SuiteFile
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
)
from harness.datasets.tables import DatasetError

#: the arrays every file holds
REQUIRED = ("x_train", "y_train", "x_test", "y_test")
#: the arrays a file may hold besides
OPTIONAL = ("feature_names", "class_names", "importance", "masks")


class ArrayFileParams(Params):
    path: SuiteFile = Field(description=".npz file of arrays (in a suite, relative to its folder)")


class ArrayFile(DatasetSource):
    """Arrays from one ``.npz`` file (see the module)."""

    card = DatasetCard(source="a local .npz file of arrays", licence="that of the data")
    size = "the file's rows"
    params: ArrayFileParams

    def ground_truth_kinds(self) -> frozenset[str]:
        wanted = "importance" if self.modality == "tabular" else "masks"
        return frozenset({wanted}) & set(self._names())

    def input_problems(self) -> list[str]:
        try:
            names = self._names()
        except DatasetError as exc:
            return [str(exc)]
        missing = [n for n in REQUIRED if n not in names]
        unknown = sorted(set(names) - set(REQUIRED) - set(OPTIONAL))
        problems = []
        if missing:
            problems.append(f"{self.params.path}: no array {', '.join(missing)}")
        if unknown:
            problems.append(
                f"{self.params.path}: unknown array {unknown[0]!r}; known: "
                f"{', '.join(REQUIRED + OPTIONAL)}"
            )
        return problems

    def _names(self) -> list[str]:
        try:
            with np.load(self.params.path, allow_pickle=False) as arrays:
                return list(arrays.files)
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DatasetError(
                f"{self.params.path}: not a readable .npz file ({exc}); save it with numpy.savez"
            ) from None

    def load(self, seed: int) -> Dataset:
        path = self.params.path
        problems = self.input_problems()
        if problems:
            raise DatasetError(problems[0])
        with np.load(path, allow_pickle=False) as file:
            arrays = {name: file[name] for name in file.files}
        return dataset_of_arrays(path.stem, self.modality, arrays, DatasetCard(str(path), ""))


def dataset_of_arrays(
    name: str, modality: Modality, arrays: dict[str, np.ndarray], card: DatasetCard
) -> Dataset:
    """A :class:`Dataset` from the arrays of an array file, each checked (shapes, classes,
    finite values, ground truth's size); a problem raises :class:`DatasetError` naming it."""
    rank = 2 if modality == "tabular" else 4
    x_test = _rows(arrays, "x_test", rank)
    x_train = _rows(arrays, "x_train", rank)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DatasetError(
            f"x_train rows have shape {x_train.shape[1:]}, x_test rows {x_test.shape[1:]}; "
            "give both splits rows of one shape"
        )
    y_train = _labels(arrays, "y_train", len(x_train))
    y_test = _labels(arrays, "y_test", len(x_test))
    classes = int(max(y_train.max(), y_test.max())) + 1
    class_names = _names(arrays, "class_names", [f"class {k}" for k in range(classes)])
    if len(class_names) < classes:
        raise DatasetError(
            f"labels go up to {classes - 1}, but class_names names {len(class_names)} classes"
        )
    width = int(np.prod(x_train.shape[1:]))
    feature_names = _names(arrays, "feature_names", [f"x{i}" for i in range(width)])
    if modality == "tabular" and len(feature_names) != width:
        raise DatasetError(
            f"feature_names has {len(feature_names)} names for {width} features; name each"
        )
    return Dataset(
        name=name,
        modality=modality,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        feature_names=feature_names,
        class_names=class_names,
        card=card,
        ground_truth=_ground_truth(arrays, modality, x_test),
    )


def _rows(arrays: dict[str, np.ndarray], name: str, rank: int) -> np.ndarray:
    rows = arrays[name]
    if rows.ndim != rank:
        layout = "(rows, features)" if rank == 2 else "(images, channels, height, width)"
        raise DatasetError(f"{name} has shape {rows.shape}; give {layout}")
    if len(rows) == 0:
        raise DatasetError(f"{name} has no rows")
    if not np.issubdtype(rows.dtype, np.number) and rows.dtype != bool:
        raise DatasetError(f"{name} holds {rows.dtype} values; give numbers")
    rows = rows.astype(np.float32)
    if not np.isfinite(rows).all():
        bad = int((~np.isfinite(rows)).any(axis=tuple(range(1, rows.ndim))).sum())
        raise DatasetError(
            f"{name} has NaN or infinite values in {bad} rows; impute or drop them first"
        )
    return rows


def _labels(arrays: dict[str, np.ndarray], name: str, rows: int) -> np.ndarray:
    labels = np.asarray(arrays[name])
    if labels.shape != (rows,):
        raise DatasetError(f"{name} has shape {labels.shape}; give one label per row ({rows},)")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise DatasetError(f"{name} must hold class indices 0, 1, … (got {labels.dtype} values)")
    return labels.astype(np.int64)


def _names(arrays: dict[str, np.ndarray], name: str, default: list[str]) -> list[str]:
    return [str(v) for v in arrays[name]] if name in arrays else default


def _ground_truth(
    arrays: dict[str, np.ndarray], modality: Modality, x_test: np.ndarray
) -> GroundTruth:
    if modality == "tabular":
        if "masks" in arrays:
            raise DatasetError("masks are ground truth for images; a table takes importance")
        if "importance" not in arrays:
            return GroundTruth()
        importance = np.asarray(arrays["importance"], dtype=np.float64)
        if importance.shape != (x_test.shape[1],):
            raise DatasetError(
                f"importance has shape {importance.shape}; give one value per feature "
                f"({x_test.shape[1]},)"
            )
        if not np.isfinite(importance).all() or (importance < 0).any():
            raise DatasetError("importance must be finite and non-negative (0 = irrelevant)")
        return GroundTruth(importance=importance)
    if "importance" in arrays:
        raise DatasetError("importance is ground truth for tables; images take masks")
    if "masks" not in arrays:
        return GroundTruth()
    masks = np.asarray(arrays["masks"])
    expected = (len(x_test), *x_test.shape[2:])
    if masks.shape != expected:
        raise DatasetError(
            f"masks have shape {masks.shape}; give one (height, width) mask per test image "
            f"{expected}"
        )
    return GroundTruth(masks=masks.astype(bool))


@dataset_registry.register("array_table")
class ArrayTable(ArrayFile):
    """A table as arrays in a ``.npz`` file (x_train, y_train, x_test, y_test; optional
    feature_names, class_names, importance)."""

    modality: ClassVar[Modality] = "tabular"
    ground_truth = "importance, when the file holds it"


@dataset_registry.register("array_images")
class ArrayImages(ArrayFile):
    """Images as arrays in a ``.npz`` file (x_train, y_train, x_test, y_test as (images,
    channels, height, width); optional class_names, masks)."""

    modality: ClassVar[Modality] = "image"
    ground_truth = "masks, when the file holds them"


def save_arrays(path: Path, **arrays: np.ndarray | list[str] | None) -> None:
    """Write an array file (the arrays given and not None) that the sources above read."""
    present = {name: np.asarray(a) for name, a in arrays.items() if a is not None}
    np.savez(path, **present)  # type: ignore[arg-type]
