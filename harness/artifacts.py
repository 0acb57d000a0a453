"""The typed, versioned record of what a cell produced besides its scores: one writer
(:func:`products_arrays`) and one reader (:func:`read_products`), the only contract
between running, rescoring and reports on the arrays a cell stores.

A cell's record holds, for rescoring: the explanation (local attributions or global
scores, whether signed, the channel pooling, every class's maps with
``explain_classes = "all"``), the explained rows and their target classes, the model's
test predictions and class probabilities on the test and validation splits (and its
twin's, with the twin's training seconds, for by-design cells), the design reference's
predictions (``select_images = "correct_by_both"``), whether the model was given (loaded
from a file), the model's cache key and the dataset's content hash. For reports: the
global importance, the ground-truth importance per original column (with the column
names for tables), the dataset's card, what the model recorded while training, and for
images the first explained images with their maps and masks (the gallery). The arrays
are stored by name in the store's ``arrays`` table, with the record's :data:`VERSION`.
Readers of reports import this module without torch: the explanation type is imported
when a record is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from harness.datasets.explained_rows import gallery_rows
from harness.errors import StoreError

if TYPE_CHECKING:
    from harness.datasets.base import Dataset
    from harness.explainers.base import Explanation
    from harness.runner.scoring import CellProducts

#: The version of the record this harness writes; a newer one is refused when read.
VERSION = 1
#: Image cells keep the maps of this many explained images (float32), for galleries —
#: every class in turn (:func:`~harness.datasets.explained_rows.gallery_rows`), with their
#: test-row indices and class names.
GALLERY_IMAGES = 8

#: Arrays that reports read across the cells of a run (by these names only).
GLOBAL_IMPORTANCE = "global_importance"
GROUND_TRUTH_IMPORTANCE = "ground_truth_importance"
COLUMN_NAMES = "column_names"
DATASET_CARD = "dataset_card"
GALLERY_MAPS = "gallery_maps"
GALLERY_INPUTS = "gallery_images"
GALLERY_MASKS = "gallery_masks"
GALLERY_ROWS = "gallery_rows"
GALLERY_LABELS = "gallery_labels"
EXPLANATION_SIGNED = "explanation.signed"

#: What a model records while training (its ``history``), stored with the cell as is.
SCORE_TRAJECTORY = "score_trajectory"
EPOCH_SECONDS = "epoch_seconds"
LEARNING_RATE = "learning_rate"
HISTORY_KEYS = (SCORE_TRAJECTORY, EPOCH_SECONDS, LEARNING_RATE)

#: Keys of the arrays metrics return with their scores, read by figures; stored as
#: ``<metric id>.<key>`` (:func:`metric_array`).
CURVE = "curve"
SIMILARITY = "similarity"
LAYERS = "layers"
PRECISION_AT_K = "precision_at_k"
FIGURE_ARRAYS = (CURVE, SIMILARITY, LAYERS, PRECISION_AT_K)
#: The wall seconds a metric's ``compute`` took on a cell (stored as ``<id>.seconds``;
#: re-explaining included), for the report card's cost column.
SECONDS = "seconds"
#: Wall seconds a cell spent in each stage of :data:`harness.runner.timing.CELL_STAGES`
#: (stored for every cell; ``xai-harness run --profile`` prints the largest)
STAGE_SECONDS = "stage_seconds"


def metric_array(metric_id: str, key: str) -> str:
    """The stored name of array ``key`` that metric ``metric_id`` returned."""
    return f"{metric_id}.{key}"


_PROBABILITIES = (
    "test_probabilities",
    "twin_test_probabilities",
    "validation_probabilities",
    "twin_validation_probabilities",
)


@dataclass(frozen=True)
class StoredProducts:
    """A cell's products as read back from the store (see the module)."""

    rows: np.ndarray
    targets: np.ndarray
    test_predictions: np.ndarray
    explanation: Explanation
    test_probabilities: np.ndarray | None = None
    validation_probabilities: np.ndarray | None = None
    twin_test_predictions: np.ndarray | None = None
    twin_test_probabilities: np.ndarray | None = None
    twin_validation_probabilities: np.ndarray | None = None
    twin_train_seconds: float | None = None
    class_explanations: np.ndarray | None = None
    design_test_predictions: np.ndarray | None = None
    model_given: bool = False
    model_cache_key: str | None = None
    data_fingerprint: str | None = None
    history: dict[str, np.ndarray] = field(default_factory=dict)


def products_arrays(
    products: CellProducts,
    dataset: Dataset,
    history: dict[str, np.ndarray],
    cache_key: str | None,
    importance: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """The arrays a cell stores besides its scores (the writer of the record)."""
    explanation = products.explanation
    arrays: dict[str, np.ndarray] = {"products_version": np.array(VERSION), **history}
    if importance is not None:
        arrays[GLOBAL_IMPORTANCE] = importance
    if explanation.local is not None:
        arrays["explanation.local"] = np.asarray(explanation.local, dtype=np.float32)
    if explanation.global_scores is not None:
        arrays["explanation.global_scores"] = np.asarray(explanation.global_scores)
    arrays[EXPLANATION_SIGNED] = np.array(explanation.signed)
    arrays["explanation.channel_pooling"] = np.array(explanation.channel_pooling or "")
    arrays["rows"] = products.rows
    arrays["targets"] = np.asarray(products.targets)
    arrays["test_predictions"] = np.asarray(products.test_predictions)
    if products.twin_test_predictions is not None:
        arrays["twin_test_predictions"] = np.asarray(products.twin_test_predictions)
        arrays["twin_train_seconds"] = np.array(products.twin_train_seconds)
    if products.class_explanations is not None:
        arrays["explanation.per_class"] = np.asarray(products.class_explanations, np.float32)
    if products.design_test_predictions is not None:
        arrays["design_test_predictions"] = np.asarray(products.design_test_predictions)
    if products.model_given:
        arrays["model_given"] = np.array(True)
    for name in _PROBABILITIES:
        value = getattr(products, name)
        if value is not None:
            arrays[name] = np.asarray(value, np.float32)
    if cache_key is not None:
        arrays["model_cache_key"] = np.array(cache_key)
    arrays["data_fingerprint"] = np.array(dataset.fingerprint)
    truth = dataset.ground_truth.importance
    if truth is not None:
        arrays[GROUND_TRUTH_IMPORTANCE] = dataset.per_column(truth)
    if dataset.modality == "tabular":
        arrays[COLUMN_NAMES] = np.array(dataset.column_names)
    card = dataset.card
    arrays[DATASET_CARD] = np.array([card.source, card.licence, card.citation, card.notes])
    if dataset.modality == "image" and explanation.local is not None:
        picked = gallery_rows(dataset.y_test[products.rows], GALLERY_IMAGES)
        shown = products.rows[picked]
        arrays[GALLERY_MAPS] = explanation.local[picked].astype(np.float32)
        arrays[GALLERY_INPUTS] = dataset.x_test[shown].astype(np.float32)
        arrays[GALLERY_ROWS] = shown
        arrays[GALLERY_LABELS] = np.array([dataset.class_names[k] for k in dataset.y_test[shown]])
        if dataset.ground_truth.masks is not None:
            arrays[GALLERY_MASKS] = dataset.ground_truth.masks[shown]
    return arrays


def read_products(arrays: dict[str, np.ndarray], cell_id: str) -> StoredProducts | None:
    """A cell's record from its stored arrays (the reader); None when the cell stored
    none (it was run by an xai-harness before rescoring existed). A record of a newer
    version than this harness writes is refused."""
    from harness.explainers.base import Explanation

    if "test_predictions" not in arrays:
        return None
    version = int(arrays["products_version"]) if "products_version" in arrays else 1
    if version > VERSION:
        raise StoreError(
            f"cell {cell_id} was stored by a newer xai-harness (products version {version}, "
            f"this one reads up to {VERSION}); use that version"
        )
    pooling = str(arrays["explanation.channel_pooling"])
    explanation = Explanation(
        local=arrays.get("explanation.local"),
        global_scores=arrays.get("explanation.global_scores"),
        signed=bool(arrays[EXPLANATION_SIGNED]),
        channel_pooling=pooling or None,
    )
    twin_seconds = arrays.get("twin_train_seconds")
    key, fingerprint = arrays.get("model_cache_key"), arrays.get("data_fingerprint")
    return StoredProducts(
        rows=arrays["rows"],
        targets=arrays["targets"],
        test_predictions=arrays["test_predictions"],
        explanation=explanation,
        test_probabilities=arrays.get("test_probabilities"),
        validation_probabilities=arrays.get("validation_probabilities"),
        twin_test_predictions=arrays.get("twin_test_predictions"),
        twin_test_probabilities=arrays.get("twin_test_probabilities"),
        twin_validation_probabilities=arrays.get("twin_validation_probabilities"),
        twin_train_seconds=None if twin_seconds is None else float(twin_seconds),
        class_explanations=arrays.get("explanation.per_class"),
        design_test_predictions=arrays.get("design_test_predictions"),
        model_given=bool(arrays.get("model_given", False)),
        model_cache_key=None if key is None else str(key),
        data_fingerprint=None if fingerprint is None else str(fingerprint),
        history={k: arrays[k] for k in HISTORY_KEYS if k in arrays},
    )
