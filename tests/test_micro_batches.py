"""Issue 32: with ``micro_batches = true`` a training step on images is split into parts
with accumulated gradients and gives the weights one pass over the whole batch gives
(networks without batch statistics or dropout); other networks, and tables, keep one pass
per batch. Off by default: bundled suites' verdicts must not move (two of softcam_paper's
47 did, near their boundary, when it was on)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import harness.models.training as training
from harness.models.training import TrainingParams, micro_batch_rows, train_classifier


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip


def test_the_split_is_chosen_by_input_size_and_layers() -> None:
    assert micro_batch_rows(_cnn(), (1, 64, 64), 128) == 64  # 2**18 input numbers
    assert micro_batch_rows(_cnn(), (3, 224, 224), 128) == 8  # at least 8 rows
    assert micro_batch_rows(_cnn(), (1, 16, 16), 128) == 128  # fits: one pass
    with_norm = nn.Sequential(_cnn()[:2], nn.BatchNorm2d(4))
    assert micro_batch_rows(with_norm, (1, 64, 64), 128) == 128  # batch statistics
    assert micro_batch_rows(nn.Sequential(nn.Dropout(0.1)), (1, 64, 64), 128) == 128
    assert micro_batch_rows(nn.Linear(10, 2), (10,), 128) == 128  # tables: unchanged


def test_micro_batches_are_off_unless_asked_for() -> None:
    assert TrainingParams().micro_batches is False


@pytest.mark.parametrize("penalty", [None, lambda m: 0.01 * m[-1].weight.abs().sum()])
def test_accumulated_micro_batches_train_the_same_weights(monkeypatch, penalty) -> None:
    rng = np.random.default_rng(0)
    x = rng.random((300, 1, 64, 64)).astype(np.float32)
    y = (x[:, 0, :32].mean(axis=(1, 2)) > x[:, 0, 32:].mean(axis=(1, 2))).astype(np.int64)
    params = TrainingParams(epochs=2, batch_size=128, learning_rate=1e-2, micro_batches=True)
    trained = {}
    for name, budget in (("split", 2**18), ("whole", 2**30)):
        monkeypatch.setattr(training, "TRAIN_ELEMENTS", budget)
        network = _cnn()
        train_classifier(network, x, y, params, seed=0, device=torch.device("cpu"),
                         penalty=penalty)  # fmt: skip
        trained[name] = network.state_dict()
    for key, whole in trained["whole"].items():
        # the same gradients up to float32 summation order, through 6 Adam steps
        torch.testing.assert_close(trained["split"][key], whole, rtol=1e-4, atol=1e-5)
