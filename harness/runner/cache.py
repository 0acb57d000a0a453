"""A content-addressed cache of trained models and explanations.

An entry's key is the SHA-256 of everything that determines it:

- a model: the harness's code (a hash of its source files, so any code change
  invalidates), the dataset's spec and data fingerprint (arrays and ground truth), the
  recipe and its parameters, the by-design explainer and its parameters (if any), the seed
  and the device type;
- an explanation: its model's key, the explainer and its parameters, the number of
  explained rows, the target convention and the seed.

Models are stored as state dicts (read back with ``torch.load(weights_only=True)``) next to
their test predictions, training seconds and history (``.npz``, ``allow_pickle=False``);
explanations as ``.npz`` arrays with a JSON sidecar. Nothing is unpickled. Entries are
written to a temporary folder and renamed into place, so a crash or a concurrent writer
never leaves a half entry; an unreadable entry counts as a miss and is rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.datasets.base import Dataset
from harness.explainers.base import Explanation
from harness.models.base import TrainedModel
from harness.runner.plan import Cell


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


def _key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class ResultCache:
    """Models and explanations under ``folder``; ``hits`` counts what was reused."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.hits = {"models": 0, "explanations": 0}

    def model_key(self, cell: Cell, dataset: Dataset, device: torch.device, by_design: bool) -> str:
        explainer = cell.explainer.component
        return _key({
            "code": code_fingerprint(),
            "dataset": [cell.dataset.component.name, cell.dataset.component.config()],
            "data": dataset.fingerprint,
            "recipe": [cell.model.component.name, cell.model.component.config()],
            "by_design": [explainer.name, explainer.config()] if by_design else None,
            "seed": cell.seed,
            "device": device.type,
        })  # fmt: skip

    def explanation_key(self, model_key: str, cell: Cell, rows: int, target: str) -> str:
        explainer = cell.explainer.component
        return _key({"model": model_key, "explainer": [explainer.name, explainer.config()],
                     "rows": rows, "target": target, "seed": cell.seed})  # fmt: skip

    def _entry(self, kind: str, key: str) -> Path:
        return self.folder / kind / key[:2] / key

    def _write(self, kind: str, key: str, files: dict[str, Any]) -> None:
        """Write ``files`` (name → bytes writer) into a temporary folder, then rename."""
        final = self._entry(kind, key)
        if final.exists():
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        try:
            for name, write in files.items():
                write(staging / name)
            os.replace(staging, final)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another writer won: fine

    def save_model(self, key: str, model: TrainedModel, predictions: np.ndarray) -> None:
        meta = {"train_seconds": model.train_seconds, "epochs": model.epochs_trained}
        outputs = {"test_predictions": predictions}
        outputs |= {f"history.{k}": v for k, v in model.history.items()}
        state = {k: v.detach().cpu().contiguous() for k, v in model.module.state_dict().items()}
        self._write("models", key, {
            "state.pt": lambda path: torch.save(state, path),
            "outputs.npz": lambda path: _save_arrays(path, outputs),
            "meta.json": lambda path: path.write_text(json.dumps(meta)),
        })  # fmt: skip

    def load_model(
        self, key: str, cell: Cell, dataset: Dataset, device: torch.device, by_design: bool
    ) -> tuple[TrainedModel, np.ndarray] | None:
        """The stored model rebuilt on ``device`` with its test predictions, or None."""
        folder = self._entry("models", key)
        recipe = cell.model.component
        try:
            meta = json.loads((folder / "meta.json").read_text())
            state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
            with np.load(folder / "outputs.npz", allow_pickle=False) as outputs:
                predictions = outputs["test_predictions"]
                history = {k.removeprefix("history."): outputs[k] for k in outputs.files
                           if k.startswith("history.")}  # fmt: skip
            torch.manual_seed(cell.seed)  # as in training; the weights are then replaced
            module = (
                cell.explainer.component.architecture(recipe, dataset, cell.seed)
                if by_design else recipe.build(dataset)
            )  # fmt: skip
            module.load_state_dict(state)
        except (OSError, ValueError, KeyError, RuntimeError, EOFError, pickle.UnpicklingError):
            shutil.rmtree(folder, ignore_errors=True)  # damaged or foreign: recompute, rewrite
            return None
        module = module.to(device).eval()
        if "convolutional" in recipe.traits:
            module = module.to(memory_format=torch.channels_last)
        self.hits["models"] += 1
        model = TrainedModel(
            module=module, device=device, train_seconds=float(meta["train_seconds"]),
            epochs_trained=int(meta["epochs"]), differentiable=recipe.differentiable,
            cam_layer=recipe.cam_layer, history=history,
        )  # fmt: skip
        return model, predictions

    def save_explanation(self, key: str, explanation: Explanation, seconds: float) -> None:
        arrays = {name: value for name, value in (("local", explanation.local),
                  ("global_scores", explanation.global_scores)) if value is not None}  # fmt: skip
        meta = {"signed": explanation.signed, "channel_pooling": explanation.channel_pooling,
                "seconds": seconds}  # fmt: skip
        self._write("explanations", key, {
            "arrays.npz": lambda path: _save_arrays(path, arrays),
            "meta.json": lambda path: path.write_text(json.dumps(meta)),
        })  # fmt: skip

    def load_explanation(self, key: str) -> tuple[Explanation, float] | None:
        folder = self._entry("explanations", key)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            with np.load(folder / "arrays.npz", allow_pickle=False) as arrays:
                explanation = Explanation(
                    local=arrays["local"] if "local" in arrays.files else None,
                    global_scores=arrays["global_scores"] if "global_scores" in arrays.files
                    else None,
                    signed=bool(meta["signed"]), channel_pooling=meta["channel_pooling"],
                )  # fmt: skip
        except (OSError, ValueError, KeyError, EOFError):
            shutil.rmtree(folder, ignore_errors=True)  # damaged: recompute, rewrite
            return None
        self.hits["explanations"] += 1
        return explanation, float(meta["seconds"])
