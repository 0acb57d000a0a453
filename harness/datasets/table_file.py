"""``table_file``: a user's own table — CSV, TSV, Parquet or Feather — as a dataset.

The file is read with pandas (pyarrow for Parquet and Feather; never unpickled), then
cleaned the way real clinical tables need, in this order:

1. ``drop`` columns are removed (identifiers, or leakage such as follow-up time);
2. ``missing_values`` per column are set missing (e.g. ``{ Glucose = [0] }``: a zero that
   means "not measured");
3. text columns whose every value is a number, some written with thousands separators
   (``"265,000"`` beside ``"527"``), become numbers; columns of words for booleans
   (``TRUE``/``FALSE``, ``t``/``f``, ``yes``/``no``, any case) become 1/0;
4. the ``target`` column gives the classes; ``positive_above`` (``num > 0``) or
   ``positive_values`` turns a multi-valued target into a binary task, classes
   ``negative`` and ``positive``;
5. the real-table preprocessing of :mod:`harness.datasets.tables` (imputation, one-hot,
   importance per original column, the dataset card's notes).

``importance`` (ground truth per original column, e.g. where truth is known or planted)
is spread evenly over a column's encoded features, so it sums back per column. Errors
name the file, and the line or the column.
"""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import Field

from harness.component import SuiteFile
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
)
from harness.datasets.tables import DatasetError, TableParams, table_dataset
from harness.errors import MissingPackageError, did_you_mean, optional_import

#: Words read as booleans (lower case).
BOOLEAN_WORDS = {"true": 1.0, "false": 0.0, "t": 1.0, "f": 0.0, "yes": 1.0, "no": 0.0}
#: a number with or without thousands separators: "265,000", "1,250.5", "527", "-3.2"
_GROUPED_NUMBER = re.compile(r"^-?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")


class TableFileParams(TableParams):
    path: SuiteFile = Field(
        description="CSV, TSV, Parquet or Feather file (in a suite, relative to its folder)"
    )
    target: str = Field(min_length=1, description="the column with the class labels")
    drop: list[str] = Field(default_factory=list, description="columns left out")
    positive_above: float | None = Field(
        None, ge=-1e300, le=1e300, description="binary task: target > this is 'positive'"
    )
    positive_values: list[str] | None = Field(
        None, min_length=1, description="binary task: these target values are 'positive'"
    )
    missing_values: dict[str, list[float | str]] = Field(
        default_factory=dict, description="per column, values that mean 'not measured'"
    )
    importance: dict[str, float] | None = Field(
        None, description="ground-truth importance per original column (others: 0)"
    )
    max_columns: int = Field(
        10_000, ge=2, description="most columns read; a wider file is refused before loading"
    )
    max_values: int = Field(
        50_000_000,
        ge=2,
        description="most rows × columns read; a larger file is refused before loading",
    )


def read_table(path: Path) -> pd.DataFrame:
    """The file as a frame, by its suffix; errors name the file (and line, for text)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq", ".feather", ".arrow"):
            optional_import("pyarrow", f"reading {path.name}")
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".feather", ".arrow"):
            return pd.read_feather(path)
        return pd.read_csv(path, sep="\t" if suffix in (".tsv", ".tab") else ",")
    except MissingPackageError:
        raise
    except (OSError, ValueError, ImportError) as exc:  # pandas' ParserError is a ValueError
        raise DatasetError(f"{path}: cannot read the table ({exc})") from exc


def table_shape(path: Path) -> tuple[list[str], int]:
    """A table file's column names and (an upper bound of) its data rows, without
    loading it: a text file's first line and its line count, a Parquet file's metadata,
    a Feather file's schema and batch lengths."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            parquet = optional_import("pyarrow.parquet", f"reading {path.name}", "pyarrow")
            metadata = parquet.read_metadata(path)
            return [str(n) for n in metadata.schema.to_arrow_schema().names], metadata.num_rows
        if suffix in (".feather", ".arrow"):
            pyarrow = optional_import("pyarrow", f"reading {path.name}")
            with pyarrow.memory_map(str(path)) as source:
                reader = pyarrow.ipc.open_file(source)
                rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
                return [str(n) for n in reader.schema.names], rows
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline()
            header = next(
                csv.reader([first], delimiter="\t" if suffix in (".tsv", ".tab") else ","), []
            )
            lines = sum(block.count("\n") for block in iter(lambda: handle.read(1 << 20), ""))
        # names as pandas reads them: kept as they are, an empty one "Unnamed: i"
        return [name or f"Unnamed: {i}" for i, name in enumerate(header)], lines
    except MissingPackageError:
        raise
    except (OSError, ValueError, ImportError) as exc:  # pyarrow's errors are ValueErrors
        raise DatasetError(f"{path}: cannot read the header ({exc})") from exc


def cleaned_column(column: pd.Series) -> pd.Series:
    """Numbers with thousands separators → numbers; boolean words → 1/0; else as is."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.astype(float) if pd.api.types.is_bool_dtype(column) else column
    present = column.dropna().astype(str).str.strip()
    if present.empty:
        return column
    if present.str.lower().isin(BOOLEAN_WORDS.keys()).all():
        return column.map(lambda v: v if pd.isna(v) else BOOLEAN_WORDS[str(v).strip().lower()])
    if present.str.match(_GROUPED_NUMBER).all() and present.str.contains(",").any():
        return pd.to_numeric(column.astype(str).str.replace(",", ""), errors="coerce")
    return column


@dataset_registry.register("table_file")
class TableFile(DatasetSource):
    """Your own table file (CSV/TSV/Parquet/Feather) with a target column; see the module."""

    modality: ClassVar[Modality] = "tabular"
    card = DatasetCard(source="a local table file", licence="that of the file")
    size = "the file's rows"
    ground_truth = "importance per column, when `importance` is given"
    params: TableFileParams

    def ground_truth_kinds(self) -> frozenset[str]:
        return frozenset({"importance"}) if self.params.importance else frozenset()

    def known_columns(self) -> list[str] | None:
        return [c for c in self._header() if c not in self.params.drop]

    def input_problems(self) -> list[str]:
        """The header's budgets and names, and every column ``target``, ``drop``,
        ``missing_values`` and ``importance`` name, checked against the header."""
        try:
            columns = self._header()
        except DatasetError as exc:
            return [str(exc).replace(f"{self.params.path}: ", "path: ", 1)]
        return self._column_problems(columns)

    def _header(self) -> list[str]:
        """The file's column names, read without loading it; a header naming a column
        twice, or a file over the column or value budget, refused (naming the figures)."""
        p = self.params
        columns, rows = table_shape(p.path)
        seen: dict[str, int] = {}
        for index, column in enumerate(columns):
            if column in seen:
                raise DatasetError(
                    f"{p.path}: column '{column}' appears twice in the header (columns "
                    f"{seen[column] + 1} and {index + 1}); give each column its own name"
                )
            seen[column] = index
        if len(columns) > p.max_columns:
            raise DatasetError(
                f"{p.path}: {len(columns):,} columns, over the budget of {p.max_columns:,} "
                "(max_columns); drop columns first, or raise max_columns"
            )
        if len(columns) * rows > p.max_values:
            raise DatasetError(
                f"{p.path}: about {rows:,} rows × {len(columns):,} columns = "
                f"{rows * len(columns):,} values, over the budget of {p.max_values:,} "
                "(max_values); subsample the file, or raise max_values"
            )
        return columns

    def load(self, seed: int) -> Dataset:
        p = self.params
        self._header()  # the budgets and distinct names, before the file is loaded
        frame = read_table(p.path)
        frame.columns = [str(c) for c in frame.columns]
        self._check_columns(list(frame.columns))
        frame = frame.drop(columns=p.drop)
        for column, values in p.missing_values.items():
            frame[column] = frame[column].mask(frame[column].isin(values))
        frame = frame.apply(cleaned_column)
        target = frame.pop(p.target)
        if p.positive_above is not None or p.positive_values is not None:
            target = self._binary(target)
        name = f"table_file:{p.path.name}"
        dataset = table_dataset(
            name,
            frame,
            target,
            p,
            seed,
            DatasetCard(source=str(p.path), licence="that of the file"),
        )
        if not p.importance:
            return dataset
        assert dataset.columns is not None and dataset.column_of_feature is not None
        per_column = np.array([p.importance.get(c, 0.0) for c in dataset.columns])
        widths = np.bincount(dataset.column_of_feature, minlength=len(dataset.columns))
        per_feature = (per_column / np.maximum(widths, 1))[dataset.column_of_feature]
        return replace(dataset, ground_truth=GroundTruth(importance=per_feature))

    def _check_columns(self, columns: list[str]) -> None:
        problems = self._column_problems(columns)
        if problems:
            raise DatasetError(f"{self.params.path}: {problems[0]}")

    def _column_problems(self, columns: list[str]) -> list[str]:
        """Each named column the header lacks, as ``target: 'x' is not a column of …``."""
        p = self.params
        problems = []
        named = {
            "target": [p.target],
            "drop": p.drop,
            "missing_values": list(p.missing_values),
            "importance": list(p.importance or {}),
        }
        for key, wanted in named.items():
            for column in wanted:
                if column not in columns:
                    listed = ", ".join(columns[:30]) + (" …" if len(columns) > 30 else "")
                    problems.append(
                        f"{key}: '{column}' is not a column of {p.path.name}"
                        f"{did_you_mean(column, columns)} Columns: {listed}"
                    )
        if p.target in p.drop:
            problems.append(f"drop: the target '{p.target}' is also in drop")
        return problems

    def _binary(self, target: pd.Series) -> pd.Series:
        p = self.params
        if p.positive_above is not None:
            numbers = pd.to_numeric(target, errors="coerce")
            bad = numbers.isna() & target.notna()
            if bad.any():
                line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
                raise DatasetError(
                    f"{p.path} line {line}: target '{p.target}' = '{target[bad].iloc[0]}' is "
                    "not a number; positive_above needs numbers (or use positive_values)"
                )
            positive = numbers > p.positive_above
        else:
            positive = target.astype(str).isin(p.positive_values or [])
        return positive.map({True: "positive", False: "negative"}).where(target.notna())
