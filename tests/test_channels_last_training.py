"""Issue 32: ``channels_last = true`` trains an image network in channels-last memory
format (faster convolution and pooling kernels on the CPU for small networks). The layout
changes the kernels, not the arithmetic: the weights equal those of contiguous training
up to float32 rounding; tables ignore the option; off by default."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from harness.models.training import TrainingParams, train_classifier


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(8, 2),
    )  # fmt: skip


def _images() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((200, 1, 32, 32)).astype(np.float32)
    y = (x[:, 0, :16].mean(axis=(1, 2)) > x[:, 0, 16:].mean(axis=(1, 2))).astype(np.int64)
    return x, y


def test_channels_last_is_off_unless_asked_for() -> None:
    assert TrainingParams().channels_last is False


def test_channels_last_training_gives_the_contiguous_weights_to_rounding() -> None:
    x, y = _images()
    trained, layouts = {}, {}
    for layout in (False, True):
        network = _cnn()
        params = TrainingParams(epochs=2, batch_size=64, learning_rate=1e-2, channels_last=layout)
        train_classifier(network, x, y, params, seed=0, device=torch.device("cpu"))
        trained[layout] = network.state_dict()
        layouts[layout] = network[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert layouts == {False: False, True: True}  # the option did change the layout
    for key, contiguous in trained[False].items():
        # 8 Adam steps: the same updates up to float32 summation order
        torch.testing.assert_close(trained[True][key], contiguous, rtol=1e-3, atol=1e-4)


def test_tables_ignore_channels_last() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((100, 5)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    weights = []
    for layout in (False, True):
        torch.manual_seed(0)
        network = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))
        params = TrainingParams(epochs=2, batch_size=32, channels_last=layout)
        train_classifier(network, x, y, params, seed=0, device=torch.device("cpu"))
        weights.append(network.state_dict())
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key])
