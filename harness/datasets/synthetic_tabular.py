"""``synthetic_tabular``: scikit-learn's ``make_classification`` with planted relevant columns."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, model_validator
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split

from harness.component import Params
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
)


class SyntheticTabularParams(Params):
    n_samples: int = Field(5000, ge=20, description="rows before the train/test split")
    n_features: int = Field(16, ge=1, description="total columns")
    n_informative: int = Field(5, ge=1, description="relevant columns: the first n_informative")
    n_classes: int = Field(2, ge=2)
    class_sep: float = Field(1.0, gt=0, description="separation of the class clusters")
    flip_y: float = Field(0.01, ge=0, le=1, description="fraction of labels flipped at random")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="stratified test share")

    @model_validator(mode="after")
    def _informative_fit(self) -> SyntheticTabularParams:
        if self.n_informative > self.n_features:
            raise ValueError(
                f"n_informative ({self.n_informative}) exceeds n_features ({self.n_features})"
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

    Ground-truth importance is 1 for the ``n_informative`` relevant columns and 0 for the
    irrelevant ones (no redundant or repeated columns). The seed fixes both generation and
    the stratified train/test split.
    """

    modality: ClassVar[Modality] = "tabular"
    Params = SyntheticTabularParams
    params: SyntheticTabularParams

    def ground_truth_kinds(self) -> frozenset[str]:
        return frozenset({"importance"})

    def load(self, seed: int) -> Dataset:
        p = self.params
        x, y = make_classification(
            n_samples=p.n_samples,
            n_features=p.n_features,
            n_informative=p.n_informative,
            n_redundant=0,
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
        importance = np.zeros(p.n_features)
        importance[: p.n_informative] = 1.0
        return Dataset(
            name=self.name,
            modality="tabular",
            x_train=x_train.astype(np.float32),
            y_train=y_train.astype(np.int64),
            x_test=x_test.astype(np.float32),
            y_test=y_test.astype(np.int64),
            feature_names=[
                f"{'relevant' if i < p.n_informative else 'noise'}_{i}" for i in range(p.n_features)
            ],
            class_names=[f"class_{c}" for c in range(p.n_classes)],
            card=DatasetCard(
                source="sklearn.datasets.make_classification (generated)",
                licence="generated data, no licence restrictions",
                citation="Guyon, 'Design of experiments for the NIPS 2003 variable selection "
                "benchmark', 2003",
            ),
            ground_truth=GroundTruth(importance=importance),
        )
