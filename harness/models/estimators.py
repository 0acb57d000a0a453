"""Classifiers that are not torch networks: fitted scikit-learn estimators and XGBoost or
LightGBM boosters, kept and read back in their libraries' own formats — never pickle.

- scikit-learn: skops (``.skops``), loaded only when every type the file would construct
  is trusted: skops's defaults, the scikit-learn tree types in :data:`SKLEARN_TRUSTED`
  and the ones a suite lists explicitly; anything else is refused before it is built.
- XGBoost: the booster's JSON (or UBJSON) model file.
- LightGBM: the booster's text model file.

A :class:`FittedEstimator` gives class probabilities (rows × classes) for rows like the
dataset's. For the torch-facing parts of the harness (captum's perturbation methods) it
is wrapped in :class:`EstimatorForward`, a parameter-free module whose *logits* are the
log-probabilities — logits are defined up to a constant per row, and these are the ones
whose log-sum-exp is 0, so their softmax is the estimator's probabilities.
"""

from __future__ import annotations

import json
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from harness.errors import optional_import

#: scikit-learn types that skops asks to trust and that the harness trusts: the tree
#: structures of forests and histogram gradient boosting (arrays and numbers only).
SKLEARN_TRUSTED = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)

#: Probabilities are floored here before the log (log 1e-12 ≈ −27.6), so a class an
#: estimator rules out has a finite logit.
PROBABILITY_FLOOR = 1e-12

Output = Literal["probability", "raw"]


class FittedEstimator(ABC):
    """A fitted non-torch classifier (``native``: the library's own object)."""

    library: ClassVar[str]
    #: the file suffix of its format
    suffix: ClassVar[str]

    def __init__(self, native: Any) -> None:
        self.native = native

    @property
    @abstractmethod
    def n_features(self) -> int:
        """Number of input columns the estimator was fitted on."""

    @property
    @abstractmethod
    def n_classes(self) -> int:
        """Number of classes it predicts (columns of :meth:`predict_proba`)."""

    @abstractmethod
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, rows × classes (float64)."""

    @abstractmethod
    def save(self, path: Path) -> None:
        """Write the estimator to ``path`` in its library's own format (``OSError`` when it
        cannot be written, as for any file)."""

    @classmethod
    @abstractmethod
    def load(cls, path: Path, trusted: Sequence[str] = ()) -> FittedEstimator:
        """Read an estimator written by :meth:`save` (or by the library itself); raises
        ``ValueError`` naming the file when it is not one."""


def _two_columns(positive: np.ndarray) -> np.ndarray:
    """P(class 1) per row → rows × [P(class 0), P(class 1)]."""
    positive = np.asarray(positive, dtype=np.float64)
    return np.column_stack([1.0 - positive, positive])


class SklearnEstimator(FittedEstimator):
    """A scikit-learn classifier with ``predict_proba`` (classes 0…K−1), stored by skops."""

    library = "scikit-learn"
    suffix = ".skops"

    @property
    def n_features(self) -> int:
        return int(self.native.n_features_in_)

    @property
    def n_classes(self) -> int:
        return len(self.native.classes_)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.native.predict_proba(x), dtype=np.float64)

    def save(self, path: Path) -> None:
        optional_import("skops.io", "scikit-learn models", "skops").dump(self.native, path)

    @classmethod
    def load(cls, path: Path, trusted: Sequence[str] = ()) -> SklearnEstimator:
        skops_io = optional_import("skops.io", "scikit-learn models", "skops")
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{path}: not a skops file (a pickle or joblib file is never loaded: it can "
                "run any code); save the estimator with skops.io.dump(estimator, path)"
            )
        try:
            asked = set(skops_io.get_untrusted_types(file=path))
        except Exception as error:  # skops raises several kinds for a damaged archive
            raise ValueError(f"{path}: cannot read the skops file ({error})") from error
        refused = sorted(asked - set(SKLEARN_TRUSTED) - set(trusted))
        if refused:
            raise ValueError(
                f"{path}: refused, the file would build types that are not trusted: "
                f"{', '.join(refused)}; if you know where the file comes from, list them "
                "in the model's trusted_types"
            )
        native = skops_io.load(path, trusted=sorted(asked))
        if not hasattr(native, "predict_proba") or not hasattr(native, "classes_"):
            raise ValueError(
                f"{path}: {type(native).__name__} is not a fitted classifier with predict_proba"
            )
        classes = np.asarray(native.classes_)
        if classes.dtype.kind not in "iu" or not np.array_equal(classes, np.arange(len(classes))):
            raise ValueError(
                f"{path}: the classifier's classes are {classes.tolist()}; the harness's "
                f"datasets label classes 0…K−1 — refit it on the dataset's integer labels"
            )
        return cls(native)


class _Booster(FittedEstimator):
    """Shared by the boosters: read from their library's own model file, with an
    objective that gives class probabilities (one column, P(class 1), for two classes)."""

    OBJECTIVES: ClassVar[tuple[str, ...]]

    @property
    @abstractmethod
    def objective(self) -> str:
        """The booster's training objective, as its library names it."""

    @abstractmethod
    def predicted(self, x: np.ndarray) -> np.ndarray:
        """The library's prediction: P(class 1) per row, or rows × classes."""

    @classmethod
    @abstractmethod
    def read(cls, path: Path) -> Any:
        """The library's booster read from ``path`` (raises on anything else)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        predicted = self.predicted(x)
        return _two_columns(predicted) if predicted.ndim == 1 else predicted.astype(np.float64)

    def save(self, path: Path) -> None:
        try:
            self.native.save_model(str(path))
        except Exception as error:  # the libraries raise their own errors on a full disk
            raise OSError(f"cannot write {path} ({error})") from error

    @classmethod
    def load(cls, path: Path, trusted: Sequence[str] = ()) -> _Booster:
        try:
            booster = cls(cls.read(path))
        except Exception as error:  # the library's own error, or a decoding error
            raise ValueError(
                f"{path}: not a {cls.library} model file ({str(error).splitlines()[0][-120:]}); "
                f"save it with booster.save_model('model{cls.suffix}')"
            ) from error
        if booster.objective not in cls.OBJECTIVES:
            raise ValueError(
                f"{path}: objective '{booster.objective}' gives no class probabilities; "
                f"the harness takes {' or '.join(cls.OBJECTIVES)}"
            )
        return booster


class XGBoostBooster(_Booster):
    """An XGBoost booster (objective ``binary:logistic`` or ``multi:softprob``), JSON."""

    library = "xgboost"
    suffix = ".json"
    OBJECTIVES = ("binary:logistic", "multi:softprob")

    @property
    def objective(self) -> str:
        return str(json.loads(self.native.save_config())["learner"]["objective"]["name"])

    @property
    def n_features(self) -> int:
        return int(self.native.num_features())

    @property
    def n_classes(self) -> int:
        config = json.loads(self.native.save_config())["learner"]["learner_model_param"]
        return max(2, int(config["num_class"]))

    def predicted(self, x: np.ndarray) -> np.ndarray:
        xgboost = optional_import("xgboost", "XGBoost models")
        return np.asarray(self.native.predict(xgboost.DMatrix(np.asarray(x, dtype=np.float32))))

    @classmethod
    def read(cls, path: Path) -> Any:
        return optional_import("xgboost", "XGBoost models").Booster(model_file=str(path))


class LightGBMBooster(_Booster):
    """A LightGBM booster (objective ``binary`` or ``multiclass``), text model file."""

    library = "lightgbm"
    suffix = ".txt"
    OBJECTIVES = ("binary", "multiclass")

    @property
    def objective(self) -> str:
        return str(self.native.params.get("objective", "")).split(" ")[0]

    @property
    def n_features(self) -> int:
        return int(self.native.num_feature())

    @property
    def n_classes(self) -> int:
        return max(2, int(self.native.num_model_per_iteration()))

    def predicted(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.native.predict(np.asarray(x, dtype=np.float64)))

    @classmethod
    def read(cls, path: Path) -> Any:
        return optional_import("lightgbm", "LightGBM models").Booster(model_file=str(path))


class EstimatorForward(nn.Module):
    """An estimator as a torch function: rows in, class logits (log-probabilities, floored
    at :data:`PROBABILITY_FLOOR`) out, on the input's device. Not differentiable."""

    def __init__(self, estimator: FittedEstimator) -> None:
        super().__init__()
        self.estimator = estimator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.detach().cpu().numpy().reshape(len(x), -1)
        probabilities = self.estimator.predict_proba(rows)
        logits = np.log(np.maximum(probabilities, PROBABILITY_FLOOR)).astype(np.float32)
        return torch.from_numpy(logits).to(x.device)
