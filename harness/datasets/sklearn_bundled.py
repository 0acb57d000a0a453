"""Datasets that ship inside scikit-learn, so they load offline."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from harness.component import Params
from harness.datasets.base import Dataset, DatasetCard, DatasetSource, Modality, dataset_registry


class DigitsParams(Params):
    size: int = Field(32, ge=8, description="side in pixels (8×8 originals, bilinear upsampling)")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="stratified test share")


@dataset_registry.register("digits")
class Digits(DatasetSource):
    """Handwritten digits 0–9 (scikit-learn's bundled UCI set): 1,797 grayscale images.

    Pixel values scaled to [0, 1], upsampled from 8×8 to ``size``; stratified split by
    seed. No ground truth: localisation metrics and the mask-based controls are skipped.
    """

    modality: ClassVar[Modality] = "image"
    Params = DigitsParams
    params: DigitsParams

    def load(self, seed: int) -> Dataset:
        digits = load_digits()
        images = torch.as_tensor(digits.images[:, None] / 16.0, dtype=torch.float32)
        if self.params.size != 8:
            images = torch.nn.functional.interpolate(
                images, size=(self.params.size, self.params.size), mode="bilinear"
            )
        x = images.numpy()
        x_train, x_test, y_train, y_test = train_test_split(
            x, digits.target, test_size=self.params.test_fraction, stratify=digits.target,
            random_state=seed,
        )  # fmt: skip
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
            card=DatasetCard(
                source="sklearn.datasets.load_digits (UCI Optical Recognition of Handwritten "
                "Digits, test part)",
                licence="CC BY 4.0 (UCI Machine Learning Repository)",
                citation="Alpaydin & Kaynak, 'Optical Recognition of Handwritten Digits', "
                "UCI Machine Learning Repository, 1998",
            ),
        )
