"""The ``Dataset`` every source produces, its ground truth and card, and the source base class."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import ClassVar, Literal

import numpy as np

from harness.component import Component
from harness.datasets.streamed_images import Rows, StreamedImages, pixel_sums, rows_mean, take
from harness.registry import Registry

Modality = Literal["tabular", "image"]


@dataclass(frozen=True)
class GroundTruth:
    """What is known to matter.

    ``importance``: one non-negative value per feature (tabular), 0 = irrelevant.
    ``masks``: one boolean mask per test image, at input resolution (images).
    ``suppressors``: one boolean per feature (images: a pixel mask shared by every
    image), True for a *suppressor* — a feature
    independent of the label that a good model uses to cancel noise (XAI-TRIS; Haufe et
    al. 2014): importance 0, yet a model's weights on it are not.
    """

    importance: np.ndarray | None = None
    masks: np.ndarray | None = None
    suppressors: np.ndarray | None = None


@dataclass(frozen=True)
class DatasetCard:
    """Where a dataset comes from and how to cite it; ``notes``: what loading did to it
    (e.g. rows or columns dropped)."""

    source: str
    licence: str
    citation: str = ""
    notes: str = ""


@dataclass(frozen=True)
class Dataset:
    """Train/test arrays and what is known about them.

    Tabular arrays are ``float32`` of shape (rows, features); image arrays ``float32`` of
    shape (images, channels, height, width) — in memory, or image files decoded a batch
    at a time (:class:`~harness.datasets.streamed_images.StreamedImages`, the same indexing).
    Labels are ``int64`` class indices in ``0 … len(class_names) - 1``. Ground-truth
    masks, when present, are boolean (test images, height, width), aligned with ``x_test``.

    ``x_val``/``y_val``: a validation split held out of the training split (None when the
    suite asks for none, see :func:`with_validation_split`): models never train on it;
    model selection (e.g. a penalty strength) reads scores on it, not on the test split.

    Tables whose features encode original columns (one-hot categories) name those
    ``columns`` and give each feature's column index in ``column_of_feature``; importance
    is then reported per original column (:meth:`per_column`).
    """

    name: str
    modality: Modality
    x_train: Rows
    y_train: np.ndarray
    x_test: Rows
    y_test: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    card: DatasetCard
    ground_truth: GroundTruth = field(default_factory=GroundTruth)
    columns: list[str] | None = None
    column_of_feature: np.ndarray | None = None
    x_val: Rows | None = None
    y_val: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @cached_property
    def train_mean(self) -> np.ndarray:
        """The mean training row (float32, shaped like one input), computed once (batch
        by batch for images on disk)."""
        return rows_mean(self.x_train)

    @cached_property
    def train_std(self) -> np.ndarray:
        """The standard deviation of each input position over the training rows
        (population; float32, shaped like one input), from the same one-pass sums."""
        total, squares = pixel_sums(self.x_train)
        mean = total / len(self.x_train)
        return np.sqrt(np.maximum(squares / len(self.x_train) - mean**2, 0)).astype(np.float32)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the arrays, labels, ground truth and column grouping (computed once;
        the cache keys what is computed from a dataset by it)."""
        digest = hashlib.sha256()
        truth = self.ground_truth
        for array in (
            self.x_train,
            self.y_train,
            self.x_test,
            self.y_test,
            truth.importance,
            truth.masks,
            *([truth.suppressors] if truth.suppressors is not None else []),
            self.column_of_feature,
            self.x_val,
            self.y_val,
        ):
            if array is None:
                digest.update(b"none")
                continue
            if isinstance(array, StreamedImages):
                array.fingerprint(digest)
                continue
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def per_column(self, values: np.ndarray) -> np.ndarray:
        """Per-feature values summed over each original column's features (identity when
        the features are the columns). Importance and ground truth are reported this way."""
        if self.column_of_feature is None or self.columns is None:
            return values
        return np.bincount(
            self.column_of_feature,
            weights=np.asarray(values, dtype=float),
            minlength=len(self.columns),
        )

    @property
    def column_names(self) -> list[str]:
        """Names of the reported importance entries: original columns, else features."""
        return self.columns if self.columns is not None else self.feature_names

    @property
    def attribution_shape(self) -> tuple[int, ...]:
        """Shape of one row's attribution: (features,) or (height, width) for images."""
        if self.modality == "image":
            return tuple(int(s) for s in self.x_train.shape[2:])
        return (self.n_features,)


def with_validation_split(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """``dataset`` with a stratified ``fraction`` of its training split held out as the
    validation split (``seed`` draws it); models then train on the rest."""
    try:
        kept, held_out = stratified_split(dataset.y_train, fraction, seed)
    except ValueError as exc:  # too few rows of a class to stratify
        raise ValueError(
            f"cannot hold out {fraction:g} of the {len(dataset.y_train)} training rows of "
            f"'{dataset.name}' as a validation split ({exc}); change "
            "execution.validation_fraction"
        ) from exc
    return replace(
        dataset,
        x_train=take(dataset.x_train, kept),
        y_train=dataset.y_train[kept],
        x_val=take(dataset.x_train, held_out),
        y_val=dataset.y_train[held_out],
    )


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Row indices (kept, held out): scikit-learn's stratified ``train_test_split`` with
    ``seed`` — the same rows it would split the arrays into — without touching the rows
    (images on disk stay there)."""
    from sklearn.model_selection import train_test_split

    kept, held_out = train_test_split(
        np.arange(len(labels)), test_size=fraction, random_state=seed, stratify=labels
    )
    return kept, held_out


class DatasetSource(Component):
    """A registered way to produce a :class:`Dataset` for a seed.

    ``modality`` and :meth:`ground_truth_kinds` are known before loading, so the planner
    can skip impossible cells without touching any data.
    """

    modality: ClassVar[Modality] = "tabular"
    #: Where the data comes from, its licence and citation (``xai-harness list datasets``).
    card: ClassVar[DatasetCard] = DatasetCard(source="", licence="")
    #: Size with the default parameters, in words (e.g. "800 images 64×64, 2 classes").
    size: ClassVar[str] = ""
    #: Which ground truth the source provides, in words ("none" when it has none).
    ground_truth: ClassVar[str] = "none"
    #: True when the data depend only on the parameters, the seed and library versions
    #: (generated or bundled data): the cache may keep them. Sources that read files a
    #: user may change are never cached.
    cacheable: ClassVar[bool] = False

    def ground_truth_kinds(self) -> frozenset[str]:
        """Which :class:`GroundTruth` fields this source fills: ``"importance"``, ``"masks"``."""
        return frozenset()

    def load(self, seed: int) -> Dataset:
        """Build the dataset; the seed fixes generation and the train/test split."""
        raise NotImplementedError

    def test_truth(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The test split's labels and, per test row, whether it has ground truth (a
        mask, box or point) — when both are known without reading the data (a folder
        listing), so ``validate`` can warn about an explained set without any; None when
        they are not."""
        return None

    def known_columns(self) -> list[str] | None:
        """A table's original column names when they are known without loading the data
        (so a suite naming a column can be checked before anything runs); None if not."""
        return None


dataset_registry: Registry[type[DatasetSource]] = Registry(
    "dataset", DatasetSource, "xai_harness.datasets"
)
