"""``harness.evaluate``: a suite's cells, scores, conventions and controls, from a model
and data held in memory — what a notebook has.

:func:`evaluate` writes what it was given into a folder of inputs — the data as an array
file (:mod:`harness.datasets.array_file`), the model as a file the ``given`` recipe reads
(a torch module exported with ``torch.export``; a scikit-learn estimator as skops; an
XGBoost or LightGBM model in its own format) — and a suite naming them, then runs that
suite like any other. So a suite written by hand on the same files gives the same scores,
and with ``out=`` the run is stored like any other: ``xai-harness show``, ``report``,
``check`` and ``rescore`` work on it. The folder is ``<out>/inputs/<content>/`` (the
content: SHA-256 of the arrays and of the model's weights), so the same model and data
reuse one folder — and the cache's trained model and explanations. Without ``out`` the run
lives in a temporary folder kept as long as the returned :class:`~harness.results.Results`.

Every problem with what was given — shapes that do not match, a model that is not one,
NaN data, masks of another size, an unknown explainer or metric — raises
:class:`~harness.errors.HarnessError` with the one-line message the command line prints,
before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.errors import HarnessError, first_line

if TYPE_CHECKING:
    from harness.datasets.base import Modality
    from harness.results import Results

#: metrics scored when none are named, by modality and whether ground truth was given
DEFAULT_METRICS = {
    ("tabular", True): ["accuracy", "spearman_gt", "kendall_gt", "topk_precision_gt"],
    ("tabular", False): ["accuracy", "deletion_auc"],
    ("image", True): ["accuracy", "pointing_game", "relevance_mass_accuracy", "deletion_auc"],
    ("image", False): ["accuracy", "deletion_auc"],
}


@dataclass(frozen=True)
class ConfiguredExplainer:
    """An explainer by name with its parameters (a ``[[explainers]]`` entry), built by
    :func:`explainer`; ``id`` labels it in results (default: the name)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    id: str | None = None

    def entry(self) -> dict[str, Any]:
        """The suite entry."""
        return (
            {"name": self.name}
            | ({"id": self.id} if self.id else {})
            | ({"params": self.params} if self.params else {})
        )


def explainer(name: str, *, id: str | None = None, **params: Any) -> ConfiguredExplainer:
    """A configured explainer for :func:`evaluate`, e.g.
    ``harness.explainer("integrated_gradients", n_steps=64)``; its parameters are checked
    now (:class:`~harness.errors.HarnessError` naming a wrong one)."""
    from pydantic import ValidationError

    from harness.explainers import explainer_registry
    from harness.suite_messages import describe

    component = explainer_registry.get(name)
    try:
        component(**params)
    except ValidationError as exc:
        problem = describe(exc, component.Params, owner=(explainer_registry, component))[0]
        raise HarnessError(f"explainer '{name}': {problem}") from None
    return ConfiguredExplainer(name, dict(params), id)


def evaluate(
    model: Any,
    x: Any,
    y: Any = None,
    *,
    x_train: Any = None,
    y_train: Any = None,
    importance: Any = None,
    masks: Any = None,
    boxes: Sequence[Iterable[Sequence[float]]] | None = None,
    explainers: Sequence[str | ConfiguredExplainer] = ("integrated_gradients",),
    metrics: Sequence[Any] | None = None,
    seeds: Sequence[int] = (0,),
    controls: bool = True,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    name: str = "notebook",
    model_name: str = "model",
    cam_layer: str | None = None,
    output: str = "logits",
    claims: Sequence[dict[str, Any]] = (),
    out: str | Path | None = None,
    cache: bool = True,
    progress: bool = True,
    **execution: Any,
) -> Results:
    """Explain and score ``model`` on ``x`` as a suite would; returns the run's
    :class:`~harness.results.Results`.

    - ``model``: a torch ``nn.Module`` returning one logit per class (or probabilities,
      ``output="probabilities"``), a scikit-learn classifier (``predict_proba``), an
      XGBoost or LightGBM classifier or booster. It is scored as it is (never trained:
      ``train_seconds`` 0).
    - ``x``, ``y``: the rows explained and scored (the test split) — arrays, tensors or a
      DataFrame (its columns name the features), tables (rows, features) or images
      (images, channels, height, width); ``y`` class indices (or labels, indexed in
      sorted order). A torch ``Dataset`` or ``DataLoader`` of (image, label) pairs may
      stand for ``x`` and ``y``.
    - ``x_train``, ``y_train``: the rows explainers and metrics draw backgrounds,
      baselines and noise scales from (default: ``x``, ``y``).
    - Ground truth, optional: ``importance`` (tables: one non-negative value per feature),
      ``masks`` (images: boolean (images, height, width)) or ``boxes`` (images: per image,
      boxes ``(x0, y0, x1, y1)`` in pixels, end exclusive).
    - ``explainers``: names or :func:`explainer` objects; ``controls`` adds the random
      control (and the oracle when there is ground truth) as a suite would list them.
    - ``metrics``: names, ``{"name": …, "params": {…}}`` or :func:`harness.metric`
      objects; default by modality (:data:`DEFAULT_METRICS`), with ``explain_seconds``.
    - ``seeds``: one cell per seed (the explainers' and metrics' randomness).
    - ``cam_layer``: a CNN's feature map for CAM explainers (default: the last top-level
      child holding a convolution, e.g. ``layer4`` of a ResNet).
    - ``claims``: ``[[claims]]`` tables as dicts, checked by ``Results.check()``.
    - ``out``: store the run under this folder (default: a temporary folder); ``cache``:
      keep models and explanations by content in ``<out>/cache`` (as the command line).
    - ``execution``: ``[execution]`` options (e.g. ``explain_rows``, default every row of
      ``x``; ``target``; ``threads``; ``device``).
    """
    from harness.datasets.array_file import dataset_of_arrays, save_arrays
    from harness.datasets.base import DatasetCard
    from harness.results import Results
    from harness.runner.progress import SilentProgress, default_progress
    from harness.runner.run import run_suite
    from harness.suite import SuiteError, load_suite

    data = _data(x, y, x_train, y_train, feature_names, class_names)
    modality: Modality = "tabular" if data["x_test"].ndim == 2 else "image"
    if masks is not None and boxes is not None:
        raise HarnessError("give masks or boxes, not both")
    if boxes is not None:
        masks = box_masks(boxes, data["x_test"])
    data["importance"] = None if importance is None else _array(importance, "importance")
    data["masks"] = None if masks is None else _array(masks, "masks")
    dataset_of_arrays(name, modality, dict(_present(data)), DatasetCard("memory", ""))
    truth = data["importance"] is not None or data["masks"] is not None
    classes = int(max(data["y_test"].max(), data["y_train"].max())) + 1
    if data["class_names"] is not None:
        classes = max(classes, len(data["class_names"]))
    model_file = ModelFile.of(model, data["x_test"], classes, output, cam_layer)
    keep = None
    if out is None:
        keep = tempfile.TemporaryDirectory(prefix="xai-harness-")
        out = keep.name
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_made(Path(out) / "inputs")))
    try:
        if model_file.kind != "torch":  # cheap to write, and its bytes are its content
            model_file.write(staging)
        folder = Path(out) / "inputs" / _content_key(data, model_file, staging)
        if not (folder / "suite.toml").is_file():
            if model_file.kind == "torch":  # exported once per content
                model_file.write(staging)
            save_arrays(staging / "data.npz", **dict(_present(data)))
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    suite_text = suite_toml(
        name=name,
        seeds=list(seeds),
        metrics=_metric_entries(metrics, modality, truth),
        dataset={"id": name, "name": f"array_{'table' if modality == 'tabular' else 'images'}"}
        | {"params": {"path": "data.npz"}},
        model={"id": model_name, "name": "given", "params": model_file.params},
        explainers=_explainer_entries(explainers, controls, truth),
        execution={"explain_rows": len(data["x_test"])} | execution,
        claims=list(claims),
    )
    (folder / "suite.toml").write_text(suite_text, encoding="utf-8")
    try:
        suite = load_suite(folder / "suite.toml")
    except SuiteError as exc:
        raise HarnessError(str(exc).replace(f"{folder / 'suite.toml'}: ", "")) from None
    summary = run_suite(
        suite,
        out,
        progress=default_progress() if progress else SilentProgress(),
        cache=cache,
    )
    return Results(out, summary.run_id, keep=keep)


def _data(
    x: Any,
    y: Any,
    x_train: Any,
    y_train: Any,
    feature_names: Sequence[str] | None,
    class_names: Sequence[str] | None,
) -> dict[str, Any]:
    """The split's arrays, names and labels as an array file holds them."""
    if feature_names is None and hasattr(x, "columns"):
        feature_names = [str(c) for c in x.columns]
    if _is_torch_data(x):
        if y is not None:
            raise HarnessError(
                "x is a torch Dataset/DataLoader of (input, label) pairs; leave y out"
            )
        x, y = _from_torch_data(x, "x")
    if _is_torch_data(x_train):
        x_train, y_train = _from_torch_data(x_train, "x_train")
    if y is None:
        raise HarnessError("y (the labels of x) is required")
    x_test, y_test = _array(x, "x"), _array(y, "y")
    if x_train is None:
        x_train, y_train = x_test, y_test
    elif y_train is None:
        raise HarnessError("x_train needs y_train (its labels)")
    x_train, y_train = _array(x_train, "x_train"), _array(y_train, "y_train")
    for rows, labels, what in ((x_test, y_test, "x"), (x_train, y_train, "x_train")):
        if len(rows) != len(labels):
            raise HarnessError(
                f"{what} has {len(rows)} rows but its labels have {len(labels)}; give one "
                "label per row"
            )
    if x_test.ndim not in (2, 4):
        raise HarnessError(
            f"x has shape {x_test.shape}; give a table (rows, features) or images "
            "(images, channels, height, width)"
        )
    y_test, y_train, class_names = _class_indices(y_test, y_train, class_names)
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "feature_names": None if feature_names is None else np.asarray(list(feature_names), str),
        "class_names": None if class_names is None else np.asarray(list(class_names), str),
    }


def _class_indices(
    y_test: np.ndarray, y_train: np.ndarray, class_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, Sequence[str] | None]:
    """Labels as class indices: integer labels as they are; other labels (strings,
    booleans) indexed in sorted order, which then names the classes."""
    if np.issubdtype(y_test.dtype, np.integer) and np.issubdtype(y_train.dtype, np.integer):
        return y_test, y_train, class_names
    if np.issubdtype(y_test.dtype, np.floating) and np.array_equal(y_test, np.round(y_test)):
        return y_test.astype(np.int64), y_train.astype(np.int64), class_names
    labels = np.unique(np.concatenate([y_test, y_train]))
    names = class_names if class_names is not None else [str(v) for v in labels]
    return np.searchsorted(labels, y_test), np.searchsorted(labels, y_train), names


def _array(value: Any, what: str) -> np.ndarray:
    """``value`` (array, tensor, DataFrame, list) as a numpy array."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    elif hasattr(value, "to_numpy"):  # pandas
        value = value.to_numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise HarnessError(f"{what} cannot be read as an array ({exc})") from None


def _is_torch_data(value: Any) -> bool:
    try:
        from torch.utils.data import DataLoader, Dataset
    except ImportError:  # pragma: no cover - torch is a dependency
        return False
    return isinstance(value, DataLoader | Dataset)


def _from_torch_data(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The inputs and labels of a torch Dataset or DataLoader of (input, label) pairs."""
    import torch
    from torch.utils.data import DataLoader

    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=256)
    inputs, labels = [], []
    for batch in loader:
        if not isinstance(batch, list | tuple) or len(batch) != 2:
            raise HarnessError(f"{what}: each item must be an (input, label) pair")
        inputs.append(torch.as_tensor(batch[0]).detach().cpu().numpy())
        labels.append(torch.as_tensor(batch[1]).detach().cpu().numpy().reshape(-1))
    if not inputs:
        raise HarnessError(f"{what} is empty")
    return np.concatenate(inputs), np.concatenate(labels)


def box_masks(boxes: Sequence[Iterable[Sequence[float]]], images: np.ndarray) -> np.ndarray:
    """Boolean (images, height, width) masks from boxes ``(x0, y0, x1, y1)`` in pixels
    (end exclusive; fractions widen to whole pixels), per image."""
    if len(boxes) != len(images):
        raise HarnessError(
            f"boxes has {len(boxes)} entries for {len(images)} images; give each image its "
            "list of boxes (empty when it has none)"
        )
    height, width = images.shape[2:]
    masks = np.zeros((len(images), height, width), dtype=bool)
    for i, image_boxes in enumerate(boxes):
        for box in image_boxes:
            if len(box) != 4 or not all(math.isfinite(v) for v in box):
                raise HarnessError(f"boxes[{i}]: {list(box)} is not a box (x0, y0, x1, y1)")
            x0, y0, x1, y1 = box
            if x1 <= x0 or y1 <= y0:
                raise HarnessError(f"boxes[{i}]: {list(box)} has no area (x1 > x0, y1 > y0)")
            rows = slice(max(int(np.floor(y0)), 0), max(int(np.ceil(y1)), 0))
            cols = slice(max(int(np.floor(x0)), 0), max(int(np.ceil(x1)), 0))
            masks[i, rows, cols] = True
    return masks


@dataclass
class ModelFile:
    """A model in memory and the ``given`` recipe's file for it."""

    model: Any
    kind: str  # torch, sklearn, xgboost, lightgbm
    example: np.ndarray
    params: dict[str, Any]

    @classmethod
    def of(
        cls, model: Any, x: np.ndarray, classes: int, output: str, cam_layer: str | None
    ) -> ModelFile:
        """The model's kind and parameters, after two rows of ``x`` went through it and
        gave one output per class."""
        kind = _model_kind(model)
        example = x[:2].astype(np.float32)
        if kind == "torch":
            traits, layer = _torch_traits(model, cam_layer)
            params = {"path": "model.pt2", "output": output, "traits": traits}
            params |= {"cam_layer": layer} if layer else {}
            _check_outputs(_torch_outputs(model, example), classes)
            return cls(model, kind, example, params)
        if output != "logits" or cam_layer is not None:
            raise HarnessError("output and cam_layer are for torch modules")
        suffix = {"sklearn": "skops", "xgboost": "json", "lightgbm": "txt"}[kind]
        _check_outputs(_probabilities(model, kind, example), classes)
        return cls(model, kind, example, {"path": f"model.{suffix}"})

    def fingerprint(self, folder: Path) -> bytes:
        """What identifies the model's content: a torch module's architecture and
        weights; an estimator's file, already written to ``folder``."""
        digest = hashlib.sha256(type(self.model).__qualname__.encode())
        if self.kind == "torch":
            digest.update(repr(self.model).encode())
            for key, tensor in self.model.state_dict().items():
                digest.update(key.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        else:
            digest.update((folder / self.params["path"]).read_bytes())
        return digest.digest()

    def write(self, folder: Path) -> Path:
        """Write the model's file into ``folder``; returns its path."""
        path = folder / self.params["path"]
        if self.kind == "torch":
            _export(self.model, self.example, path)
        elif self.kind == "xgboost":
            booster = self.model.get_booster() if hasattr(self.model, "get_booster") else self.model
            booster.save_model(str(path))
        elif self.kind == "lightgbm":
            booster = getattr(self.model, "booster_", self.model)
            booster.save_model(str(path))
        else:
            import skops.io

            skops.io.dump(self.model, path)
            self.params["trusted_types"] = sorted(skops.io.get_untrusted_types(file=path))
        return path


def _model_kind(model: Any) -> str:
    module = type(model).__module__.split(".")[0]
    if module == "xgboost":
        return "xgboost"
    if module == "lightgbm":
        return "lightgbm"
    try:
        from torch import nn

        if isinstance(model, nn.Module):
            return "torch"
    except ImportError:  # pragma: no cover
        pass
    if hasattr(model, "predict_proba"):
        return "sklearn"
    raise HarnessError(
        f"model is a {type(model).__name__}, which evaluate cannot score; give a torch "
        "nn.Module, a scikit-learn classifier (predict_proba), or an XGBoost or LightGBM model"
    )


def _torch_traits(model: Any, cam_layer: str | None) -> tuple[list[str], str | None]:
    """A torch module's traits (``convolutional`` when it holds a 2-D convolution) and
    its CAM layer: the one named, else the last top-level child holding a convolution."""
    from torch import nn

    def convolutional(module: Any) -> bool:
        return any(isinstance(m, nn.Conv2d) for m in module.modules())

    if not convolutional(model):
        if cam_layer is not None:
            raise HarnessError("cam_layer is for convolutional networks; this model has none")
        return [], None
    names = dict(model.named_modules())
    if cam_layer is not None and cam_layer not in names:
        raise HarnessError(
            f"cam_layer '{cam_layer}' is not a module of the model; its top-level children: "
            f"{', '.join(n for n, _ in model.named_children())}"
        )
    holding = [n for n, child in model.named_children() if convolutional(child)]
    return ["convolutional"], cam_layer or (holding[-1] if holding else None)


def _torch_outputs(model: Any, example: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.as_tensor(example))
    except Exception as exc:
        raise HarnessError(
            f"the model does not take x's rows {example.shape[1:]}: {type(exc).__name__}: "
            f"{first_line(exc)}"
        ) from None
    if not isinstance(out, torch.Tensor):
        raise HarnessError(
            f"the model returns a {type(out).__name__}; give a model that returns a tensor "
            "with one logit per class, (rows, classes)"
        )
    return out.detach().cpu().numpy()


def _check_outputs(outputs: np.ndarray, classes: int) -> None:
    """Two rows in, (2, classes) out."""
    if outputs.shape != (2, classes):
        raise HarnessError(
            f"the model returns {tuple(outputs.shape)} for 2 rows; the labels have {classes} "
            f"classes: give a model with one output per class, (rows, {classes})"
        )


def _probabilities(model: Any, kind: str, example: np.ndarray) -> np.ndarray:
    try:
        if kind == "xgboost" and not hasattr(model, "predict_proba"):
            import xgboost

            return np.asarray(model.predict(xgboost.DMatrix(example)))
        if kind == "lightgbm" and not hasattr(model, "predict_proba"):
            return np.asarray(model.predict(example))
        return np.asarray(model.predict_proba(example))
    except Exception as exc:
        raise HarnessError(
            f"the model does not take x's rows {example.shape[1:]}: {type(exc).__name__}: "
            f"{first_line(exc)}"
        ) from None


def _export(model: Any, example: np.ndarray, path: Path) -> None:
    """``torch.export`` the module with a dynamic batch dimension."""
    import torch

    try:
        program = torch.export.export(
            model.eval(),
            (torch.as_tensor(example),),
            dynamic_shapes=({0: torch.export.Dim("batch")},),
        )
        torch.export.save(program, path)
    except Exception as exc:
        raise HarnessError(
            f"torch.export cannot export the model ({type(exc).__name__}: {first_line(exc)}); "
            "evaluate stores models as exported programs — make its forward exportable, or "
            "save it yourself and use the `given` model in a suite"
        ) from None


def _content_key(data: dict[str, Any], model: ModelFile, folder: Path) -> str:
    digest = hashlib.sha256(model.fingerprint(folder))
    for name, array in _present(data):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _present(data: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    return ((k, v) for k, v in data.items() if v is not None)


def _made(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HarnessError(
            f"cannot create {folder} ({exc.strerror or exc}); pass a writable out"
        ) from None
    return folder


def _metric_entries(metrics: Sequence[Any] | None, modality: str, truth: bool) -> list[Any]:
    from harness.metric_call import MetricCall

    if metrics is None:
        return [*DEFAULT_METRICS[(modality, truth)], "explain_seconds"]
    entries: list[Any] = []
    for metric in metrics:
        if isinstance(metric, MetricCall):
            params = metric.metric.params.model_dump(mode="json", exclude_defaults=True)
            entries.append({"name": metric.metric.name} | ({"params": params} if params else {}))
        elif isinstance(metric, str | dict):
            entries.append(metric)
        else:
            raise HarnessError(
                f"metrics: {metric!r} is not a metric; give a name, a {{'name': …, 'params': "
                "…}} table or harness.metric(name, …)"
            )
    return entries


def _explainer_entries(
    explainers: Sequence[str | ConfiguredExplainer], controls: bool, truth: bool
) -> list[dict[str, Any]]:
    if isinstance(explainers, str):
        explainers = [explainers]
    entries = []
    for item in explainers:
        if isinstance(item, ConfiguredExplainer):
            entries.append(item.entry())
        elif isinstance(item, str):
            entries.append({"name": item})
        else:
            raise HarnessError(
                f"explainers: {item!r} is not an explainer; give a name or "
                "harness.explainer(name, …)"
            )
    named = {e.get("id", e["name"]) for e in entries}
    wanted = (["oracle"] if truth else []) + ["random"] if controls else []
    return entries + [{"name": c} for c in wanted if c not in named]


def suite_toml(
    *,
    name: str,
    seeds: list[int],
    metrics: list[Any],
    dataset: dict[str, Any],
    model: dict[str, Any],
    explainers: list[dict[str, Any]],
    execution: dict[str, Any],
    claims: list[dict[str, Any]],
) -> str:
    """A suite's TOML text with these entries."""
    lines = [
        f"name = {_toml(name)}",
        'description = "Written by harness.evaluate for a model and data given in memory."',
        f"seeds = {_toml(seeds)}",
        f"metrics = {_toml(metrics)}",
        "",
        "[execution]",
        *(f"{key} = {_toml(value)}" for key, value in execution.items()),
    ]
    for section, entries in (
        ("datasets", [dataset]),
        ("models", [model]),
        ("explainers", explainers),
        ("claims", claims),
    ):
        for entry in entries:
            lines += ["", f"[[{section}]]", *(f"{k} = {_toml(v)}" for k, v in entry.items())]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    """A TOML value: strings (JSON's escapes are TOML's), numbers, booleans, arrays and
    inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise HarnessError(f"{value} is not a finite number")
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if value is None:
        raise HarnessError("None has no TOML form; leave the key out")
    raise HarnessError(f"{value!r} ({type(value).__name__}) cannot be written to a suite")
