"""Datasets that ship inside scikit-learn, so they load offline."""

from __future__ import annotations

import importlib
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.datasets.base import Dataset, DatasetCard, DatasetSource, Modality, dataset_registry
from harness.datasets.tables import TableParams, table_dataset


class DigitsParams(Params):
    size: int = Field(
        32, ge=8, le=1024, description="side in pixels (8×8 originals, bilinear upsampling)"
    )
    test_fraction: float = Field(0.25, gt=0, lt=1, description="stratified test share")


@dataset_registry.register("digits")
class Digits(DatasetSource):
    """Handwritten digits 0–9 (scikit-learn's bundled UCI set): 1,797 grayscale images.

    Pixel values scaled to [0, 1], upsampled from 8×8 to ``size``; stratified split by
    seed. No ground truth: localisation metrics and the mask-based controls are skipped.
    """

    modality: ClassVar[Modality] = "image"
    cacheable: ClassVar[bool] = True  # generated or bundled: parameters and seed decide
    card = DatasetCard(
        source="sklearn.datasets.load_digits (UCI Optical Recognition of Handwritten "
        "Digits, test part)",
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
        citation="Alpaydin & Kaynak, 'Optical Recognition of Handwritten Digits', "
        "UCI Machine Learning Repository, 1998",
    )
    size = "1,797 images 8×8 upsampled to 32×32, 10 classes"
    params: DigitsParams

    def load(self, seed: int) -> Dataset:
        import torch
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = torch.as_tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
        if self.params.size != 8:
            images = torch.nn.functional.interpolate(
                images, size=(self.params.size, self.params.size), mode="bilinear"
            )
        x = images.numpy()
        x_train, x_test, y_train, y_test = train_test_split(
            x,
            digits.target,
            test_size=self.params.test_fraction,
            stratify=digits.target,
            random_state=seed,
        )
        side = self.params.size
        return Dataset(
            name=self.name,
            modality="image",
            x_train=np.ascontiguousarray(x_train),
            y_train=y_train.astype(np.int64),
            x_test=np.ascontiguousarray(x_test),
            y_test=y_test.astype(np.int64),
            feature_names=[f"pixel_{r}_{c}" for r in range(side) for c in range(side)],
            class_names=[str(d) for d in range(10)],
            card=self.card,
        )


class SklearnTableSource(DatasetSource):
    """A classification table bundled with scikit-learn, preprocessed like any real table
    (stratified split by seed; see ``harness.datasets.tables``). No ground truth."""

    modality: ClassVar[Modality] = "tabular"
    cacheable: ClassVar[bool] = True  # generated or bundled: parameters and seed decide
    #: the ``sklearn.datasets`` loader, by name (scikit-learn is imported when loading)
    loader: ClassVar[str]
    params: TableParams

    def _bunch(self) -> Any:
        return getattr(importlib.import_module("sklearn.datasets"), self.loader)(as_frame=True)

    def load(self, seed: int) -> Dataset:
        import pandas as pd

        bunch = self._bunch()
        labels = pd.Series(np.asarray(bunch.target_names)[bunch.target.to_numpy()])
        return table_dataset(self.name, bunch.data, labels, self.params, seed, self.card)

    def known_columns(self) -> list[str]:
        return [str(c) for c in self._bunch().data.columns]


@dataset_registry.register("breast_cancer")
class BreastCancer(SklearnTableSource):
    """Breast cancer Wisconsin (diagnostic): 569 tumours, 30 numeric features, 2 classes."""

    loader = "load_breast_cancer"
    card = DatasetCard(
        source="sklearn.datasets.load_breast_cancer (UCI Breast Cancer Wisconsin, Diagnostic)",
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
        citation="Street, Wolberg & Mangasarian, 'Nuclear feature extraction for breast "
        "tumor diagnosis', SPIE 1993",
    )
    size = "569 rows × 30 features, 2 classes"


@dataset_registry.register("wine")
class Wine(SklearnTableSource):
    """Wine recognition: 178 wines, 13 chemical measurements, 3 cultivars."""

    loader = "load_wine"
    card = DatasetCard(
        source="sklearn.datasets.load_wine (UCI Wine)",
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
        citation="Aeberhard & Forina, 'Wine', UCI Machine Learning Repository, 1991",
    )
    size = "178 rows × 13 features, 3 classes"


@dataset_registry.register("iris")
class Iris(SklearnTableSource):
    """Fisher's iris: 150 flowers, 4 measurements, 3 species."""

    loader = "load_iris"
    card = DatasetCard(
        source="sklearn.datasets.load_iris (UCI Iris)",
        licence="CC BY 4.0 (UCI Machine Learning Repository)",
        citation="Fisher, 'The use of multiple measurements in taxonomic problems', "
        "Annals of Eugenics, 1936",
    )
    size = "150 rows × 4 features, 3 classes"
