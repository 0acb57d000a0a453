"""A metric called as Quantus calls one: ``harness.metric(name)(model=…, x_batch=…, …)``.

A Quantus user switches one line::

    scores = quantus.PointingGame()(model=net, x_batch=x, y_batch=y, a_batch=a, s_batch=s)
    scores = harness.metric("pointing_game")(model=net, x_batch=x, y_batch=y, a_batch=a, s_batch=s)

and gets one score per sample (a numpy array; NaN where the metric is undefined for that
sample, e.g. an empty mask), computed by the harness's metric with its own conventions —
:attr:`MetricCall.conventions` lists them (they are the ones a suite stores with each
score). Arrays follow Quantus's layout: ``x_batch`` (samples, channels, height, width) or
(samples, features); ``a_batch`` and ``s_batch`` with one channel (or none) for images;
``y_batch`` the explained class per sample; ``model`` a torch module returning logits
(needed only by metrics that call the model). Metrics that run the explainer again (MPRT,
sensitivity, …) or read global importance or ground-truth importance are not per-sample
calls: they raise :class:`~harness.errors.HarnessError` saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from harness.errors import HarnessError

#: What a Quantus-style call can supply (:data:`harness.metrics.base.NEEDS` names).
SUPPLIED = frozenset({"attributions", "masks", "model", "predictions", "suppressors"})


class MetricCall:
    """A harness metric with Quantus's call signature (see the module)."""

    def __init__(self, name: str, **params: Any) -> None:
        from harness.metrics import metric_registry

        self.metric = metric_registry.get(name)(**params)
        unsupported = sorted(set(self.metric.needs) - SUPPLIED)
        if unsupported:
            raise HarnessError(
                f"metric '{name}' needs {', '.join(unsupported)}, which a per-sample call "
                "cannot give; score it in a suite"
            )

    @property
    def conventions(self) -> dict[str, Any]:
        """The metric's fixed conventions and parameters (as stored with suite scores)."""
        return self.metric.conventions()

    def __call__(
        self,
        model: Any = None,
        x_batch: np.ndarray | None = None,
        y_batch: np.ndarray | None = None,
        a_batch: np.ndarray | None = None,
        s_batch: np.ndarray | None = None,
        channel_first: bool = True,
        **_: Any,
    ) -> np.ndarray:
        """One score per sample (float64; NaN where undefined). Other Quantus keywords
        (``device``, ``explain_func`` …) are accepted and ignored."""
        from harness.metrics.base import Evidence

        if a_batch is None:
            raise HarnessError("a_batch (the explanations) is required")
        attributions = _one_channel(np.asarray(a_batch, dtype=np.float64), "a_batch", channel_first)
        count = len(attributions)
        inputs = None if x_batch is None else np.asarray(x_batch, dtype=np.float32)
        if inputs is not None and not channel_first and inputs.ndim == 4:
            inputs = np.moveaxis(inputs, -1, 1)
        masks = None
        if s_batch is not None:
            masks = _one_channel(np.asarray(s_batch), "s_batch", channel_first) > 0
            if masks.shape != attributions.shape:
                raise HarnessError(
                    f"s_batch has shape {masks.shape} per sample after its channel; a_batch "
                    f"has {attributions.shape}; give masks of the explanations' size"
                )
        targets = None if y_batch is None else np.asarray(y_batch).astype(np.int64)
        for label, array in (("x_batch", inputs), ("y_batch", targets)):
            if array is not None and len(array) != count:
                raise HarnessError(f"{label} has {len(array)} samples; a_batch has {count}")
        if not np.isfinite(attributions).all():
            raise HarnessError("a_batch holds NaN or infinite values")
        evidence = Evidence(
            attributions=attributions,
            masks=masks,
            inputs=inputs,
            targets=targets,
            explained_labels=targets,
            predict_proba=None if model is None else _probabilities(model),
        )
        needs_model = "model" in self.metric.needs
        if needs_model and (model is None or inputs is None or targets is None):
            raise HarnessError(
                f"metric '{self.metric.name}' calls the model: give model, x_batch and y_batch"
            )
        return self.metric.row_values(evidence.restricted_to(self.metric.needs))


def _one_channel(array: np.ndarray, name: str, channel_first: bool) -> np.ndarray:
    """(samples, 1, H, W) or (samples, H, W, 1) images → (samples, H, W); tables as
    they are. More than one channel is refused (pool them first)."""
    if array.ndim != 4:
        return array
    axis = 1 if channel_first else -1
    if array.shape[axis] != 1:
        raise HarnessError(
            f"{name} has {array.shape[axis]} channels; the harness scores one map per image: "
            f"pool them first (e.g. np.abs({name}).sum(axis={axis}, keepdims=True))"
        )
    return np.squeeze(array, axis=axis)


def _probabilities(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A torch module's class probabilities (softmax of its logits) as a function."""
    import torch

    from harness.models.batched import probabilities_of

    if not isinstance(model, torch.nn.Module):
        raise HarnessError(f"model is a {type(model).__name__}, not a torch module")
    return probabilities_of(model)


def metric(name: str, **params: Any) -> MetricCall:
    """The harness metric ``name`` (with ``params``) as a Quantus-style call returning
    per-sample scores; see :mod:`harness.metric_call`."""
    return MetricCall(name, **params)
