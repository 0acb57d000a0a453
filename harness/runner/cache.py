"""A content-addressed cache of trained models and explanations.

An entry's key is the SHA-256 of everything that determines it:

- a model: the harness's code (a hash of its source files, so any code change
  invalidates), the dataset's spec and data fingerprint (arrays and ground truth), the
  recipe and its parameters and the content of the files they name (weights, a given
  model), the by-design explainer and its parameters (if any), the seed
  and the device type;
- an explanation: its model's key, the explainer and its parameters, the number of
  explained rows, the target convention and the seed;
- a generated dataset (sources that declare ``cacheable``: synthetic and bundled data,
  never files the user may change): the source and its parameters, the seed and the
  versions of numpy, scikit-learn and scipy — so a cached re-run need not import them.

Models are stored as state dicts (read back with ``torch.load(weights_only=True)``) — or,
for estimators such as tree ensembles, in their library's own non-pickle format — next to
their class probabilities on the test (and validation) split, training seconds and history
(``.npz``, ``allow_pickle=False``);
explanations as ``.npz`` arrays with a JSON sidecar. Nothing is unpickled. Entries are
written to a temporary folder and renamed into place, so a crash or a concurrent writer
never leaves a half entry. An entry read back is checked like fresh output (shapes,
dtypes, finite values, metadata keys and ranges); a damaged one — truncated, foreign,
incomplete, wrong-shaped, non-finite — counts as a miss, is removed and is rewritten.
Each entry keeps the SHA-256 of its files (``digests.json``), checked before anything
is read back. A cache that cannot be written (full disk) is a :class:`CacheError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.datasets.base import Dataset, DatasetCard, GroundTruth
from harness.errors import HarnessError
from harness.explainers.base import Explanation
from harness.inputs import file_digest
from harness.models.base import TrainedModel
from harness.runner.plan import Cell

#: The file of an entry that lists its other files' SHA-256.
DIGESTS = "digests.json"


@cache
def code_fingerprint() -> str:
    """SHA-256 of the harness's source files (path and content), computed once."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``.npz`` of plain arrays (read back with ``allow_pickle=False``)."""
    np.savez(path, **arrays)  # type: ignore[arg-type]


def _version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def _key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ResultCache:
    """Models and explanations under ``folder``; ``hits`` counts what was reused."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.hits = {"models": 0, "explanations": 0}
        self.discarded = 0  #: damaged entries found and removed (then recomputed)

    def model_key(self, cell: Cell, dataset: Dataset, device: torch.device, by_design: bool) -> str:
        explainer = cell.explainer.component
        return _key(
            {
                "code": code_fingerprint(),
                "dataset": [cell.dataset.component.name, cell.dataset.component.config()],
                "data": dataset.fingerprint,
                "recipe": [cell.model.component.name, cell.model.component.config()],
                "files": cell.model.component.files_fingerprint(),
                "by_design": [explainer.name, explainer.config()] if by_design else None,
                "seed": cell.seed,
                "device": device.type,
            }
        )

    def dataset_key(self, cell: Cell, seed: int) -> str:
        """A generated dataset's key: the harness's code, the source and its parameters,
        the seed it is drawn with, and the versions of the libraries that generate it."""
        source = cell.dataset.component
        versions = {name: _version(name) for name in ("numpy", "scikit-learn", "scipy")}
        return _key(
            {
                "code": code_fingerprint(),
                "seed": seed,
                "versions": versions,
                "dataset": [source.name, source.config()],
            }
        )

    def save_dataset(self, key: str, dataset: Dataset) -> None:
        truth = dataset.ground_truth
        arrays = {
            "x_train": np.asarray(dataset.x_train),
            "y_train": dataset.y_train,
            "x_test": np.asarray(dataset.x_test),
            "y_test": dataset.y_test,
        }
        optional = {
            "importance": truth.importance,
            "masks": truth.masks,
            "suppressors": truth.suppressors,
            "column_of_feature": dataset.column_of_feature,
        }
        arrays |= {name: value for name, value in optional.items() if value is not None}
        card = dataset.card
        meta = {
            "name": dataset.name,
            "modality": dataset.modality,
            "feature_names": dataset.feature_names,
            "class_names": dataset.class_names,
            "card": [card.source, card.licence, card.citation, card.notes],
            "columns": dataset.columns,
            "fingerprint": dataset.fingerprint,
        }
        self._write(
            "datasets",
            key,
            {
                "arrays.npz": lambda path: _save_arrays(path, arrays),
                "meta.json": lambda path: path.write_text(json.dumps(meta)),
            },
        )

    def load_dataset(self, key: str) -> Dataset | None:
        """The stored dataset, or None when there is none — or when it is damaged in any
        way (its arrays no longer hash to the fingerprint stored with them), which is then
        removed."""
        folder = self._entry("datasets", key)
        if not folder.is_dir():
            return None
        try:
            _check_digests(folder)
            meta = json.loads((folder / "meta.json").read_text())
            arrays = _read_arrays(folder / "arrays.npz")
            dataset = Dataset(
                name=str(meta["name"]),
                modality=meta["modality"],
                x_train=arrays["x_train"],
                y_train=arrays["y_train"],
                x_test=arrays["x_test"],
                y_test=arrays["y_test"],
                feature_names=[str(n) for n in meta["feature_names"]],
                class_names=[str(n) for n in meta["class_names"]],
                card=DatasetCard(*map(str, meta["card"])),
                ground_truth=GroundTruth(
                    arrays.get("importance"), arrays.get("masks"), arrays.get("suppressors")
                ),
                columns=None if meta["columns"] is None else [str(c) for c in meta["columns"]],
                column_of_feature=arrays.get("column_of_feature"),
            )
            if dataset.fingerprint != meta["fingerprint"]:
                raise ValueError("the arrays do not hash to their fingerprint")
        except Exception:  # any damage: regenerate and rewrite (nothing was unpickled)
            self._discard(folder)
            return None
        return dataset

    def explanation_key(
        self,
        model_key: str,
        cell: Cell,
        rows: np.ndarray,
        target: str,
        batch: int | None = None,
    ) -> str:
        """The key of ``cell``'s explanation of test ``rows`` (indices): the first N rows
        are keyed by N, any other choice by the SHA-256 of the indices."""
        explainer = cell.explainer.component
        first = bool(np.array_equal(rows, np.arange(len(rows))))
        chosen = np.ascontiguousarray(rows, dtype=np.int64).tobytes()
        return _key(
            {
                "model": model_key,
                "explainer": [explainer.name, explainer.config()],
                "rows": len(rows) if first else hashlib.sha256(chosen).hexdigest(),
                "target": target,
                "seed": cell.seed,
                "batch": batch,
            }
        )

    def _entry(self, kind: str, key: str) -> Path:
        return self.folder / kind / key[:2] / key

    def _write(self, kind: str, key: str, files: dict[str, Any]) -> None:
        """Write ``files`` (name → bytes writer) into a temporary folder, then rename.

        Losing a race to another writer of the same entry is fine; a full disk or an
        unwritable folder is a :class:`CacheError`.
        """
        final = self._entry(kind, key)
        if final.exists():
            return
        staging: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
            for name, write in files.items():
                write(staging / name)
            digests = {p.name: file_digest(p) for p in sorted(staging.iterdir())}
            (staging / DIGESTS).write_text(json.dumps(digests))
            os.replace(staging, final)
        except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            if final.is_dir():
                return  # another writer won: its entry is as good as ours
            raise CacheError(
                f"cannot write to the cache {self.folder} ({exc}); free some space (the "
                "cells stored so far are kept, continue with --resume), point --cache at "
                "another folder, or run with --no-cache"
            ) from exc

    def _discard(self, folder: Path) -> None:
        """Remove a damaged entry, so it is recomputed and rewritten."""
        shutil.rmtree(folder, ignore_errors=True)
        self.discarded += 1

    def save_model(
        self,
        key: str,
        model: TrainedModel,
        probabilities: np.ndarray,
        validation: np.ndarray | None = None,
    ) -> None:
        meta = {"train_seconds": model.train_seconds, "epochs": model.epochs_trained}
        outputs = {"test_probabilities": probabilities}
        if validation is not None:
            outputs["validation_probabilities"] = validation
        outputs |= {f"history.{k}": v for k, v in model.history.items()}
        files: dict[str, Any] = {
            "outputs.npz": lambda path: _save_arrays(path, outputs),
            "meta.json": lambda path: path.write_text(json.dumps(meta)),
        }
        estimator = model.estimator
        if estimator is not None:  # in its library's own format
            files[f"estimator{estimator.suffix}"] = estimator.save
        else:
            state = {k: v.detach().cpu().contiguous() for k, v in model.module.state_dict().items()}
            files["state.pt"] = lambda path: torch.save(state, path)
        self._write("models", key, files)

    def load_model(
        self,
        key: str,
        cell: Cell,
        dataset: Dataset,
        device: torch.device,
        untrained: Callable[[], torch.nn.Module],
    ) -> tuple[TrainedModel, np.ndarray, np.ndarray | None] | None:
        """The stored model on ``device`` — its weights loaded into the network
        ``untrained()`` builds (the cache stores and loads; building networks is the
        models' and explainers' business) — with its class probabilities (rows × classes)
        on the test and validation splits (None without one), or None when there is none
        — or when the entry is damaged in any way (unreadable or foreign files, missing
        keys, wrong shapes, non-finite weights), which is then removed."""
        folder = self._entry("models", key)
        if not folder.is_dir():
            return None
        recipe = cell.model.component
        try:
            _check_digests(folder)
            meta = _meta(folder, {"train_seconds": float, "epochs": int})
            outputs = _read_arrays(folder / "outputs.npz")
            probabilities = outputs["test_probabilities"]
            history = {
                k.removeprefix("history."): v
                for k, v in outputs.items()
                if k.startswith("history.")
            }
            _check_probabilities(probabilities, len(dataset.x_test), dataset.n_classes)
            validation = outputs.get("validation_probabilities")
            if dataset.x_val is not None:
                if validation is None:
                    raise ValueError("no validation probabilities")
                _check_probabilities(validation, len(dataset.x_val), dataset.n_classes)
            if recipe.has_gradients():
                module = untrained()
                module.load_state_dict(_stored_state(folder))
                model = TrainedModel(
                    module=module,
                    device=device,
                    train_seconds=meta["train_seconds"],
                    epochs_trained=meta["epochs"],
                    cam_layer=recipe.cam_layer_name(),
                    history=history,
                    amp=getattr(recipe.params, "amp", "none"),
                )
            else:
                (stored,) = folder.glob("estimator.*")
                estimator = recipe.load_fitted(stored)
                given = estimator.predict_proba(np.asarray(dataset.x_test))
                if not np.allclose(given, probabilities, atol=1e-5):
                    raise ValueError("the estimator no longer gives its stored probabilities")
                model = TrainedModel.of_estimator(estimator, meta["train_seconds"])
        except Exception:  # any damage: recompute and rewrite (nothing was unpickled)
            self._discard(folder)
            return None
        if model.estimator is None:
            module = model.module.to(device).eval()
            if "convolutional" in recipe.model_traits():
                module = module.to(memory_format=torch.channels_last)
            model.module = module
        self.hits["models"] += 1
        return model, probabilities, validation

    def save_explanation(self, key: str, explanation: Explanation, seconds: float) -> None:
        arrays = {
            name: value
            for name, value in (
                ("local", explanation.local),
                ("global_scores", explanation.global_scores),
            )
            if value is not None
        }
        meta = {
            "signed": explanation.signed,
            "channel_pooling": explanation.channel_pooling,
            "seconds": seconds,
        }
        self._write(
            "explanations",
            key,
            {
                "arrays.npz": lambda path: _save_arrays(path, arrays),
                "meta.json": lambda path: path.write_text(json.dumps(meta)),
            },
        )

    def load_explanation(
        self, key: str, rows: int, attribution_shape: tuple[int, ...]
    ) -> tuple[Explanation, float] | None:
        """The stored explanation of ``rows`` inputs and its seconds, or None when there is
        none — or when it is damaged or would fail the checks a fresh explanation must pass
        (shape, real numbers, finite: :meth:`Explanation.problem`); such an entry is
        removed, so it is recomputed and rewritten."""
        folder = self._entry("explanations", key)
        if not folder.is_dir():
            return None
        try:
            _check_digests(folder)
            meta = _meta(folder, {"signed": bool, "seconds": float})
            pooling = json.loads((folder / "meta.json").read_text()).get("channel_pooling")
            if pooling is not None and not isinstance(pooling, str):
                raise ValueError("channel_pooling is not text")
            arrays = _read_arrays(folder / "arrays.npz")
            explanation = Explanation(
                local=arrays.get("local"),
                global_scores=arrays.get("global_scores"),
                signed=meta["signed"],
                channel_pooling=pooling,
            )
            if explanation.problem(rows, attribution_shape) is not None:
                raise ValueError("the cached explanation fails the explanation checks")
        except Exception:  # any damage: recompute and rewrite (nothing was unpickled)
            self._discard(folder)
            return None
        self.hits["explanations"] += 1
        return explanation, meta["seconds"]


def _stored_state(folder: Path) -> dict[str, torch.Tensor]:
    """The entry's weights (``state.pt``, read with ``weights_only``); raises on weights
    that are not a state dict of finite tensors."""
    state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(
        isinstance(v, torch.Tensor) and (not v.is_floating_point() or v.isfinite().all())
        for v in state.values()
    ):
        raise ValueError("state.pt is not a state dict of finite tensors")
    return state


def _check_digests(folder: Path) -> None:
    """Raise ``ValueError`` unless the entry's files are exactly those its digests list,
    each with the SHA-256 written with it (a flipped bit, not only a wrong size)."""
    digests = json.loads((folder / DIGESTS).read_text())
    present = {p.name for p in folder.iterdir() if p.name != DIGESTS}
    if not isinstance(digests, dict) or set(digests) != present:
        raise ValueError("the entry's files are not those it was written with")
    for name, expected in digests.items():
        if file_digest(folder / name) != expected:
            raise ValueError(f"{name} does not hash to its digest")


class CacheError(HarnessError):
    """The cache folder cannot be written (full disk, read-only, not a folder)."""


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, read now (``allow_pickle=False``); the file is
    closed even when it is not a valid archive."""
    with path.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _meta(folder: Path, types: dict[str, type]) -> dict[str, Any]:
    """``meta.json`` of an entry with the keys of ``types``, each checked (numbers finite
    and non-negative); raises ``ValueError`` on anything else."""
    meta = json.loads((folder / "meta.json").read_text())
    if not isinstance(meta, dict):
        raise ValueError("meta.json is not an object")
    checked: dict[str, Any] = {}
    for name, kind in types.items():
        value = meta[name]
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"meta.json: {name} is not true/false")
        if kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"meta.json: {name} is not a number")
            if not math.isfinite(value) or value < 0 or (kind is int and value != int(value)):
                raise ValueError(f"meta.json: {name} = {value!r} is out of range")
        checked[name] = kind(value)
    return checked


def _check_probabilities(probabilities: np.ndarray, rows: int, classes: int) -> None:
    """Raise ``ValueError`` unless these are class probabilities, one row per test row."""
    if probabilities.shape != (rows, classes) or probabilities.dtype.kind != "f":
        raise ValueError(
            f"test probabilities of shape {probabilities.shape}; expected ({rows}, {classes})"
        )
    if (
        not np.isfinite(probabilities).all()
        or (probabilities < 0).any()
        or (probabilities > 1).any()
    ):
        raise ValueError("test probabilities outside [0, 1]")
