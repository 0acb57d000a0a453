"""Tree-ensemble recipes: ``random_forest`` and ``hist_gradient_boosting``
(scikit-learn), ``xgboost`` and ``lightgbm``.

Each is fitted on the training split with the cell's seed (the library's
``random_state``), using as many threads as torch has been given (one per worker when
cells run in parallel), and kept in its library's own format — never pickle (see
:mod:`harness.models.estimators`). The models have no gradients: the planner skips
gradient explainers on them, saying so; model-agnostic explainers and every metric work
through their class probabilities, captum's perturbation methods through
:class:`~harness.models.estimators.EstimatorForward`. Inputs are the dataset's own
features (trees need no standardisation).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field

from harness.component import Params
from harness.datasets.base import Dataset, Modality
from harness.errors import optional_import
from harness.models.base import ModelRecipe, TrainedModel, model_registry
from harness.models.estimators import (
    FittedEstimator,
    LightGBMBooster,
    SklearnEstimator,
    XGBoostBooster,
)


class _EnsembleParams(Params):
    n_estimators: int = Field(200, ge=1, le=100_000, description="number of trees (rounds)")
    max_depth: int | None = Field(None, ge=1, le=1_000, description="None: the library's default")


class _TreeEnsemble(ModelRecipe):
    """Shared fit: build the library's classifier with the seed, fit, wrap, time."""

    modalities: ClassVar[frozenset[Modality]] = frozenset({"tabular"})
    differentiable: ClassVar[bool] = False
    traits: ClassVar[frozenset[str]] = frozenset({"tree_ensemble"})
    #: how the fitted model is kept and read back
    stored_as: ClassVar[type[FittedEstimator]]
    params: _EnsembleParams

    def classifier(self, seed: int, threads: int) -> Any:
        """The library's unfitted classifier."""
        raise NotImplementedError

    def fitted(self, classifier: Any) -> FittedEstimator:
        """The fitted classifier in the form it is stored and explained in."""
        return self.stored_as(classifier)

    def fit(self, dataset: Dataset, seed: int, device: torch.device, **_: Any) -> TrainedModel:
        """Fit on the training split (wall seconds, perf_counter); ``device`` is unused:
        the libraries fit on the CPU here."""
        started = time.perf_counter()
        classifier = self.classifier(seed, torch.get_num_threads())
        classifier.fit(dataset.x_train, dataset.y_train)
        return TrainedModel.of_estimator(self.fitted(classifier), time.perf_counter() - started)

    def load_fitted(self, path: Path) -> FittedEstimator:
        return self.stored_as.load(path)


class RandomForestParams(_EnsembleParams):
    max_features: Literal["sqrt", "log2"] | float = Field(
        "sqrt", description="features tried per split: 'sqrt', 'log2' or a fraction (0, 1]"
    )
    min_samples_leaf: int = Field(1, ge=1, le=100_000, description="rows per leaf at least")


@model_registry.register("random_forest")
class RandomForest(_TreeEnsemble):
    """scikit-learn RandomForestClassifier (seeded), kept with skops."""

    stored_as = SklearnEstimator
    params: RandomForestParams

    def classifier(self, seed: int, threads: int) -> Any:
        from sklearn.ensemble import RandomForestClassifier

        p = self.params
        return RandomForestClassifier(
            n_estimators=p.n_estimators,
            max_depth=p.max_depth,
            max_features=p.max_features,
            min_samples_leaf=p.min_samples_leaf,
            random_state=seed,
            n_jobs=threads,
        )


class BoostingParams(_EnsembleParams):
    learning_rate: float = Field(0.1, gt=0, le=1, description="shrinkage per round")
    max_leaves: int = Field(31, ge=2, le=100_000, description="leaves per tree at most")


@model_registry.register("hist_gradient_boosting")
class HistGradientBoosting(_TreeEnsemble):
    """scikit-learn HistGradientBoostingClassifier (seeded, no early stopping), skops."""

    stored_as = SklearnEstimator
    params: BoostingParams

    def classifier(self, seed: int, threads: int) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier

        p = self.params
        return HistGradientBoostingClassifier(
            max_iter=p.n_estimators,
            max_depth=p.max_depth,
            learning_rate=p.learning_rate,
            max_leaf_nodes=p.max_leaves,
            early_stopping=False,
            random_state=seed,
        )


@model_registry.register("xgboost")
class XGBoost(_TreeEnsemble):
    """XGBoost gradient-boosted trees (``hist`` method, seeded), kept as the booster's JSON."""

    stored_as = XGBoostBooster
    params: BoostingParams

    def classifier(self, seed: int, threads: int) -> Any:
        xgboost = optional_import("xgboost", "model recipe 'xgboost'")
        p = self.params
        return xgboost.XGBClassifier(
            n_estimators=p.n_estimators,
            max_depth=p.max_depth or 6,
            max_leaves=p.max_leaves,
            learning_rate=p.learning_rate,
            tree_method="hist",
            random_state=seed,
            n_jobs=threads,
        )

    def fitted(self, classifier: Any) -> FittedEstimator:
        return XGBoostBooster(classifier.get_booster())


@model_registry.register("lightgbm")
class LightGBM(_TreeEnsemble):
    """LightGBM gradient-boosted trees (deterministic mode, seeded), kept as its text file."""

    stored_as = LightGBMBooster
    params: BoostingParams

    def classifier(self, seed: int, threads: int) -> Any:
        lightgbm = optional_import("lightgbm", "model recipe 'lightgbm'")
        p = self.params
        return lightgbm.LGBMClassifier(
            n_estimators=p.n_estimators,
            max_depth=p.max_depth or -1,
            num_leaves=p.max_leaves,
            learning_rate=p.learning_rate,
            random_state=seed,
            deterministic=True,
            force_row_wise=True,
            n_jobs=threads,
            verbose=-1,
        )

    def fitted(self, classifier: Any) -> FittedEstimator:
        return LightGBMBooster(classifier.booster_)
