"""``synthetic_tabular``: scikit-learn's ``make_classification`` with planted relevant columns."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator

from harness.component import Params
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
)

#: Largest table generated (rows × columns): 2·10⁸ float64 values are 1.6 GB.
MAX_VALUES = 200_000_000


class SyntheticTabularParams(Params):
    n_samples: int = Field(
        5000, ge=20, le=10_000_000, description="rows before the train/test split"
    )
    n_features: int = Field(16, ge=1, le=100_000, description="total columns")
    n_informative: int = Field(5, ge=1, description="relevant columns: the first n_informative")
    n_redundant: int = Field(
        0, ge=0, description="random linear combinations of the informative columns, next"
    )
    redundant_importance: float = Field(
        0.5, ge=0, le=1, description="ground-truth importance given to redundant columns"
    )
    n_classes: int = Field(2, ge=2, le=1000)
    class_sep: float = Field(1.0, gt=0, le=1000, description="separation of the class clusters")
    flip_y: float = Field(0.01, ge=0, le=1, description="fraction of labels flipped at random")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="stratified test share")

    @model_validator(mode="after")
    def _informative_fit(self) -> SyntheticTabularParams:
        if self.n_informative + self.n_redundant > self.n_features:
            raise ValueError(
                f"n_informative + n_redundant ({self.n_informative + self.n_redundant}) "
                f"exceeds n_features ({self.n_features})"
            )
        if self.n_samples * self.n_features > MAX_VALUES:
            raise ValueError(
                f"n_samples × n_features = {self.n_samples * self.n_features:,} values would "
                f"not fit a default machine's memory; keep it ≤ {MAX_VALUES:,}"
            )
        if self.n_classes * 2 > 2**self.n_informative:
            raise ValueError(
                f"n_classes={self.n_classes} needs n_informative ≥ "
                f"{int(np.ceil(np.log2(self.n_classes * 2)))} (make_classification's rule)"
            )
        return self


@dataset_registry.register("synthetic_tabular")
class SyntheticTabular(DatasetSource):
    """Gaussian clusters (make_classification); columns 0…k-1 relevant, the rest pure noise.

    Columns in order: ``n_informative`` informative (importance 1), ``n_redundant``
    redundant — linear combinations of the informative ones, which carry their signal but
    which a model need not use (importance ``redundant_importance``, 0.5 by default) — and
    the remaining irrelevant noise columns (importance 0); names say which is which. The
    seed fixes both generation and the stratified train/test split.
    """

    modality: ClassVar[Modality] = "tabular"
    cacheable: ClassVar[bool] = True  # generated or bundled: parameters and seed decide
    card = DatasetCard(
        source="sklearn.datasets.make_classification (generated)",
        licence="generated data, no licence restrictions",
        citation="Guyon, 'Design of experiments for the NIPS 2003 variable selection "
        "benchmark', 2003",
    )
    size = "5,000 rows × 16 features, 2 classes (default)"
    ground_truth = "importance (planted informative and redundant features)"
    params: SyntheticTabularParams

    def ground_truth_kinds(self) -> frozenset[str]:
        return frozenset({"importance"})

    def load(self, seed: int) -> Dataset:
        from sklearn.datasets import make_classification
        from sklearn.model_selection import train_test_split

        p = self.params
        x, y = make_classification(
            n_samples=p.n_samples,
            n_features=p.n_features,
            n_informative=p.n_informative,
            n_redundant=p.n_redundant,
            n_repeated=0,
            n_classes=p.n_classes,
            class_sep=p.class_sep,
            flip_y=p.flip_y,
            shuffle=False,  # keeps the relevant columns first; rows are shuffled by the split
            random_state=seed,
        )
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=p.test_fraction, stratify=y, random_state=seed
        )
        redundant_end = p.n_informative + p.n_redundant
        importance = np.zeros(p.n_features)
        importance[: p.n_informative] = 1.0
        importance[p.n_informative : redundant_end] = p.redundant_importance
        roles = ["relevant"] * p.n_informative + ["redundant"] * p.n_redundant
        roles += ["noise"] * (p.n_features - redundant_end)
        return Dataset(
            name=self.name,
            modality="tabular",
            x_train=x_train.astype(np.float32),
            y_train=y_train.astype(np.int64),
            x_test=x_test.astype(np.float32),
            y_test=y_test.astype(np.int64),
            feature_names=[f"{role}_{i}" for i, role in enumerate(roles)],
            class_names=[f"class_{c}" for c in range(p.n_classes)],
            card=self.card,
            ground_truth=GroundTruth(importance=importance),
        )


class Paper10Params(SyntheticTabularParams):
    n_features: int = Field(10, ge=1, le=100_000, description="total columns")


class Paper16Params(SyntheticTabularParams):
    n_features: int = Field(16, ge=1, le=100_000, description="total columns")


@dataset_registry.register("paper_10_5")
class Paper10(SyntheticTabular):
    """arXiv 2511.13809's first setting: 10 features, 5 relevant, 5 irrelevant, 5,000 rows.

    ``synthetic_tabular`` with these defaults (any parameter can still be changed).
    """

    size = "5,000 rows × 10 features, 2 classes"
    params: Paper10Params


@dataset_registry.register("paper_16_5")
class Paper16(SyntheticTabular):
    """arXiv 2511.13809's second setting: 16 features, 5 relevant, 11 irrelevant, 5,000 rows.

    ``synthetic_tabular`` with these defaults (any parameter can still be changed).
    """

    size = "5,000 rows × 16 features, 2 classes"
    params: Paper16Params
