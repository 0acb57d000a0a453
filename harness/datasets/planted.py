"""``planted``: ground truth on real features — a known label function of chosen columns.

Real tables have no ground-truth importance; synthetic Gaussians have no realistic
correlations. ``planted`` keeps the feature matrix (and split) of any registered tabular
dataset, draws a *new* binary label from a known function of a few of its columns, and
exposes those columns (and their weights) as ground-truth importance. Features correlated
with the planted ones carry real but indirect signal — which is the point.

Features are standardised with training statistics first (z). With ``s`` the function
below and ``s̃`` its standardised value, the label is drawn as
``y ~ Bernoulli(sigmoid(sharpness · s̃))``, thresholded at the median of s so the classes
are balanced:

- ``sparse_logistic``: s = Σ_j w_j z_j, w_j = ±U(0.5, 1.5); importance |w_j|;
- ``interaction``: s = z_1 z_2 + z_3 z_4 + … (an odd last column enters linearly);
  importance 1 each;
- ``threshold``: s = Σ_j ±1[z_j > 0] (a vote of median splits); importance 1 each.

``function_seed`` fixes the columns and weights (the same ground truth for every seed);
the cell seed fixes the source's split and the label draw. A column that is one-hot
encoded in the source enters through its first encoded feature.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, model_validator

from harness.component import Params
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
)
from harness.datasets.tables import DatasetError
from harness.errors import HarnessError, did_you_mean


class PlantedParams(Params):
    source: str = Field("breast_cancer", description="a registered tabular dataset")
    source_params: dict[str, Any] = Field(
        default_factory=dict, description="parameters of the source dataset"
    )
    function: Literal["sparse_logistic", "interaction", "threshold"] = Field(
        "sparse_logistic", description="the label function of the planted columns"
    )
    n_relevant: int = Field(
        3, ge=1, le=100_000, description="planted columns (when `columns` is unset)"
    )
    columns: list[str] | None = Field(
        None, min_length=1, description="planted columns by name (default: drawn)"
    )
    sharpness: float = Field(
        4.0, gt=0, le=1e6, description="logit scale: larger means less label noise"
    )
    function_seed: int = Field(0, ge=0, lt=2**32, description="fixes the drawn columns and weights")
    #: the source's parameters as validated here — with the suite's folder, so a source's
    #: relative paths (``table_file``'s ``path``) resolve beside the suite, not the cwd
    _source: Params | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _source_and_columns(self, info: ValidationInfo) -> PlantedParams:
        """The source is a registered tabular dataset with valid parameters, and the
        planted columns are among its columns when it knows them before loading."""
        try:
            source_cls = dataset_registry.get(self.source)
        except HarnessError as exc:
            raise ValueError(f"source: {exc}") from None
        if source_cls.modality != "tabular":
            raise ValueError(f"source: '{self.source}' is {source_cls.modality}, not tabular")
        try:
            params = source_cls.Params.model_validate(self.source_params, context=info.context)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "(top level)"
            raise ValueError(f"source_params.{where}: {first['msg']}") from None
        assert isinstance(params, Params)
        self._source = params
        names = source_cls(params).known_columns()
        if names is not None:
            unknown = [c for c in self.columns or [] if c not in names]
            if unknown:
                raise ValueError(
                    f"columns: '{self.source}' has no column '{unknown[0]}'"
                    f"{did_you_mean(unknown[0], names)} Columns: {', '.join(names)}"
                )
            if self.columns is None and self.n_relevant > len(names):
                raise ValueError(
                    f"n_relevant = {self.n_relevant} but '{self.source}' has {len(names)} "
                    f"columns; valid range: 1 ≤ n_relevant ≤ {len(names)}"
                )
        return self


@dataset_registry.register("planted")
class Planted(DatasetSource):
    """Real features, planted label: a known function of chosen columns is the ground truth."""

    modality: ClassVar[Modality] = "tabular"
    card = DatasetCard(
        source="the source dataset's features, with a label drawn by xai-harness",
        licence="that of the source dataset",
    )
    size = "the source dataset's rows and features, 2 classes"
    ground_truth = "importance (the planted columns and their weights)"
    params: PlantedParams

    def ground_truth_kinds(self) -> frozenset[str]:
        return frozenset({"importance"})

    def load(self, seed: int) -> Dataset:
        p = self.params
        label = f"dataset 'planted' (source '{p.source}')"
        source_cls = dataset_registry.get(p.source)
        if source_cls.modality != "tabular":
            raise DatasetError(f"{label}: the source must be tabular, not {source_cls.modality}")
        params = p._source or source_cls.Params.model_validate(p.source_params)
        base = source_cls(params).load(seed)
        names = base.column_names
        rng = np.random.default_rng(p.function_seed)
        if p.columns is not None:
            unknown = [c for c in p.columns if c not in names]
            if unknown:
                raise DatasetError(
                    f"{label}: no column '{unknown[0]}'{did_you_mean(unknown[0], names)} "
                    f"Columns: {', '.join(names)}"
                )
            chosen = [names.index(c) for c in p.columns]
        else:
            if p.n_relevant > len(names):
                raise DatasetError(f"{label}: n_relevant {p.n_relevant} > {len(names)} columns")
            chosen = sorted(rng.choice(len(names), size=p.n_relevant, replace=False).tolist())
        features = [self._first_feature(base, column) for column in chosen]
        x_train, x_test = np.asarray(base.x_train), np.asarray(base.x_test)  # a table
        mean = x_train.mean(axis=0)[features]
        std = x_train.std(axis=0)[features]
        std[std == 0] = 1.0

        def standardised(x: np.ndarray) -> np.ndarray:
            return (x[:, features] - mean) / std

        weights = rng.choice([-1.0, 1.0], size=len(features)) * rng.uniform(
            0.5, 1.5, size=len(features)
        )
        s_train = self._signal(standardised(x_train), weights)
        s_test = self._signal(standardised(x_test), weights)
        centre, scale = np.median(s_train), s_train.std() or 1.0
        draw = np.random.default_rng(seed)

        def labels(s: np.ndarray) -> np.ndarray:
            probability = 1.0 / (1.0 + np.exp(-p.sharpness * (s - centre) / scale))
            return (draw.random(len(s)) < probability).astype(np.int64)

        y_train, y_test = labels(s_train), labels(s_test)
        for split, y in (("training", y_train), ("test", y_test)):
            if len(np.unique(y)) < 2:
                raise DatasetError(
                    f"{label}: the planted label has a single class in the {split} split; "
                    "lower `sharpness` or choose other columns"
                )
        importance = np.zeros(base.n_features)
        importance[features] = np.abs(weights) if p.function == "sparse_logistic" else 1.0
        planted = ", ".join(names[c] for c in chosen)
        return Dataset(
            name=f"planted:{p.source}",
            modality="tabular",
            x_train=base.x_train,
            y_train=y_train,
            x_test=base.x_test,
            y_test=y_test,
            feature_names=base.feature_names,
            class_names=["0", "1"],
            card=DatasetCard(
                source=f"{p.function} label planted on [{planted}] of '{p.source}' "
                f"({base.card.source})",
                licence=base.card.licence,
                citation=base.card.citation,
                notes=base.card.notes,
            ),
            ground_truth=GroundTruth(importance=importance),
            columns=base.columns,
            column_of_feature=base.column_of_feature,
        )

    @staticmethod
    def _first_feature(base: Dataset, column: int) -> int:
        if base.column_of_feature is None:
            return column
        return int(np.flatnonzero(base.column_of_feature == column)[0])

    def _signal(self, z: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The planted function s of the standardised planted features (rows,)."""
        if self.params.function == "sparse_logistic":
            return z @ weights
        if self.params.function == "threshold":
            return (np.sign(weights) * (z > 0)).sum(axis=1)
        pairs = z.shape[1] // 2
        s = (z[:, 0 : 2 * pairs : 2] * z[:, 1 : 2 * pairs : 2]).sum(axis=1)
        return s + (z[:, -1] if z.shape[1] % 2 else 0.0)
