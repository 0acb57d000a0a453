"""Turning a real table (a pandas frame and a target column) into a :class:`Dataset`.

The choices are declared as parameters (:class:`TableParams`) and stored with every run;
what they did to a particular table (columns dropped, classes dropped, rows sampled) is
returned as a one-line ``report`` in the dataset's card. Steps, in order:

1. rows without a target are dropped; classes with fewer than 2 rows (an empty category
   included) are dropped — a class must be able to appear in both splits;
2. optional stratified subsampling to ``max_rows`` (seeded);
3. columns that would be constant after imputation are dropped (a categorical column
   with one value and gaps is kept when gaps are their own category: the default);
4. stratified train/test split by seed;
5. missing values imputed with statistics of the training split (numeric: median or
   mean; categorical: a ``"missing"`` category, or the most frequent value);
6. categorical columns one-hot encoded (categories of the training split; unseen ones
   encode as all zeros). Every encoded feature remembers its original column, so
   importance and ground truth are reported per original column (summed over its
   features).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from harness.component import Params
from harness.datasets.base import Dataset, DatasetCard
from harness.errors import HarnessError


class DatasetError(HarnessError):
    """Data that cannot become a dataset; the message names the dataset and the problem."""


class TableParams(Params):
    """Preprocessing choices for real tables (stored with every run)."""

    test_fraction: float = Field(0.25, gt=0, lt=1, description="stratified test share")
    max_rows: int | None = Field(
        None,
        ge=10,
        le=100_000_000,
        description="stratified subsample of at most this many rows (seeded)",
    )
    impute_numeric: Literal["median", "mean"] = Field(
        "median", description="missing numeric values: training median or mean"
    )
    impute_categorical: Literal["missing_category", "most_frequent"] = Field(
        "missing_category",
        description="missing categories: a category of their own, or the training mode",
    )


def _holds_containers(column: pd.Series) -> bool:
    """Whether an object column holds lists, arrays or dicts (Parquet nested types)."""
    if column.dtype != object:
        return False
    return bool(column.map(lambda v: isinstance(v, list | tuple | dict | set | np.ndarray)).any())


def is_categorical(column: pd.Series) -> bool:
    """Category, string, object and boolean columns are categorical; numbers are not."""
    return not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def table_dataset(
    name: str,
    frame: pd.DataFrame,
    target: pd.Series,
    params: TableParams,
    seed: int,
    card: DatasetCard,
) -> Dataset:
    """Preprocess ``frame`` (features) and ``target`` (class labels) as described above.

    Raises :class:`DatasetError` naming ``name`` and the problem. No ground truth.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    if len(frame) != len(target):
        raise DatasetError(f"dataset '{name}': {len(frame)} feature rows but {len(target)} labels")
    if len(target) == 0:
        raise DatasetError(f"dataset '{name}': the table has no data rows (a header only?)")
    nested = [
        str(c)
        for c in (*frame.columns, target.name)
        if _holds_containers(frame[c] if c in frame.columns else target)
    ]
    if nested:
        raise DatasetError(
            f"dataset '{name}': column '{nested[0]}' holds lists, arrays or tables, not single "
            "values; flatten it into columns of its own, or drop it"
        )
    notes: list[str] = []
    labelled = target.notna().to_numpy()
    if not labelled.any():
        raise DatasetError(
            f"dataset '{name}': the target column '{target.name}' is empty in all "
            f"{len(target)} rows; choose the column that holds the class labels"
        )
    if not labelled.all():
        notes.append(f"{int((~labelled).sum())} rows without a target dropped")
    frame, labels = frame.loc[labelled].reset_index(drop=True), target[labelled].astype(str)
    counts = labels.value_counts()
    declared = list(target.cat.categories) if isinstance(target.dtype, pd.CategoricalDtype) else []
    rare = sorted(set(map(str, declared)) - set(counts.index)) + sorted(counts[counts < 2].index)
    if rare:
        listed = ", ".join(f"'{c}' ({counts.get(c, 0)} rows)" for c in rare)
        notes.append(f"classes with fewer than 2 rows dropped: {listed}")
    kept = labels.map(counts).to_numpy() >= 2
    frame, labels = frame.loc[kept].reset_index(drop=True), labels[kept].reset_index(drop=True)
    class_names = sorted(labels.unique())
    if len(class_names) < 2 and len(counts) >= 2:
        raise DatasetError(
            f"dataset '{name}': too few rows — {len(labelled)} rows, {len(counts)} classes, "
            f"{len(class_names)} with at least 2 rows; a train/test split needs each class "
            "on both sides"
        )
    if len(class_names) < 2:
        found = f"'{class_names[0]}'" if class_names else "none"
        raise DatasetError(
            f"dataset '{name}': the target has a single class ({found}); a classifier needs "
            "at least two — choose another target column or dataset"
        )
    y = labels.map({c: i for i, c in enumerate(class_names)}).to_numpy(dtype=np.int64)
    if params.max_rows is not None and len(y) > params.max_rows:
        chosen, _ = train_test_split(
            np.arange(len(y)), train_size=params.max_rows, stratify=y, random_state=seed
        )
        chosen = np.sort(chosen)
        frame, y = frame.iloc[chosen].reset_index(drop=True), y[chosen]
        notes.append(f"subsampled to {params.max_rows} rows")
    own_category = params.impute_categorical == "missing_category"
    useless = [
        c
        for c in frame.columns
        if frame[c].nunique(dropna=not (own_category and is_categorical(frame[c]))) <= 1
    ]
    if useless:
        notes.append(f"constant or empty columns dropped: {', '.join(map(str, useless))}")
    columns = [c for c in frame.columns if c not in useless]
    if not columns:
        raise DatasetError(f"dataset '{name}': every feature column is constant or empty")
    frame = frame[columns]
    train, test = train_test_split(
        np.arange(len(y)), test_size=params.test_fraction, stratify=y, random_state=seed
    )
    categorical = [c for c in columns if is_categorical(frame[c])]
    numeric = [c for c in columns if c not in categorical]
    infinite = [str(c) for c in numeric if np.isinf(frame[c].to_numpy(dtype=float)).any()]
    if infinite:
        raise DatasetError(
            f"dataset '{name}': infinite values in columns {', '.join(infinite[:5])}; "
            "replace them (e.g. by missing values) or drop the columns"
        )
    frame = frame.astype({c: object for c in categorical})
    fill: dict[str, str] = (
        {"strategy": "most_frequent"}
        if params.impute_categorical == "most_frequent"
        else {"strategy": "constant", "fill_value": "missing"}
    )
    encoder = ColumnTransformer(
        [
            (
                "numeric",
                SimpleImputer(strategy=params.impute_numeric, keep_empty_features=True),
                numeric,
            ),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(**fill, keep_empty_features=True),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            ),
        ],
        sparse_threshold=0.0,
    )
    with np.errstate(over="ignore"):  # values beyond float32 become inf: reported below
        x_train = encoder.fit_transform(frame.iloc[train]).astype(np.float32)
        x_test = encoder.transform(frame.iloc[test]).astype(np.float32)
    one_hot = encoder.named_transformers_["categorical"][-1]
    widths = [1] * len(numeric) + [len(c) for c in getattr(one_hot, "categories_", [])]
    ordered = numeric + categorical  # the encoder's output order: numeric columns first
    column_of_feature = np.repeat(np.arange(len(ordered)), widths)
    for split, x in (("training", x_train), ("test", x_test)):
        if not np.isfinite(x).all():
            features = np.flatnonzero(~np.isfinite(x).all(axis=0))
            bad = sorted({str(ordered[column_of_feature[i]]) for i in features})
            raise DatasetError(
                f"dataset '{name}': NaN or infinite values left after preprocessing in the "
                f"{split} split (columns {', '.join(bad[:5])}); clean them or drop the columns"
            )
    feature_names = [str(c) for c in numeric] + [
        f"{column}={value}"
        for column, values in zip(categorical, getattr(one_hot, "categories_", []), strict=True)
        for value in values
    ]
    report = "; ".join(notes) if notes else "no rows, columns or classes dropped"
    return Dataset(
        name=name,
        modality="tabular",
        x_train=np.ascontiguousarray(x_train),
        y_train=y[train],
        x_test=np.ascontiguousarray(x_test),
        y_test=y[test],
        feature_names=feature_names,
        class_names=class_names,
        card=DatasetCard(card.source, card.licence, card.citation, notes=report),
        columns=[str(c) for c in ordered],
        column_of_feature=column_of_feature,
    )
