"""Memory bounded by the batch: forward passes sized by input, and batches split and
retried when a device runs out of memory (simulated by a module with a fake limit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from harness.datasets import dataset_registry
from harness.explainers import ExplainContext, explainer_registry
from harness.models import model_registry
from harness.models.base import TrainedModel
from harness.models.batched import MemorySplitWarning, forward_in_batches, rows_per_forward
from harness.runner.cell import explain_within_memory

CPU = torch.device("cpu")


class FakeDeviceLimit(nn.Module):
    """``inner``, but a batch of more than ``rows`` rows 'runs out of memory' (as CUDA's
    allocator reports it); the sizes it was called with are kept."""

    def __init__(self, inner: nn.Module, rows: int) -> None:
        super().__init__()
        self.inner, self.rows, self.calls = inner, rows, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        if len(x) > self.rows:
            raise torch.OutOfMemoryError(f"CUDA out of memory: {len(x)} rows (fake limit)")
        return self.inner(x)


def test_batches_are_sized_by_the_input_not_the_number_of_rows():
    assert rows_per_forward((3, 224, 224)) == 27  # 2**22 input numbers
    assert rows_per_forward((16,)) == 8192  # capped rows for small table rows
    assert rows_per_forward((3, 2048, 2048)) == 1  # never zero


def test_a_forward_pass_out_of_memory_is_split_and_gives_the_same_outputs():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
    expected = forward_in_batches(network, x, CPU)
    limited = FakeDeviceLimit(network, rows=7)
    with pytest.warns(MemorySplitWarning, match="out of cpu memory: batches were split"):
        got = forward_in_batches(limited, x, CPU)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert (
        max(size for size in limited.calls if size <= 7) <= 7
        and sum(size for size in limited.calls if size <= 7) == 50
    )  # every row evaluated once after the splits
    one_row = pytest.raises(torch.OutOfMemoryError)  # one row that does not fit: no retry
    with one_row, pytest.warns(MemorySplitWarning):
        forward_in_batches(FakeDeviceLimit(network, rows=0), x[:3], CPU)


def test_an_explainer_out_of_memory_explains_each_half():
    dataset = dataset_registry.get("synthetic_tabular")(n_samples=400).load(seed=0)
    model = model_registry.get("mlp")(hidden=[16], epochs=2).fit(dataset, 0, CPU)
    rows = np.arange(12)
    inputs, targets = dataset.x_test[rows], model.predict(dataset.x_test[rows])
    context = ExplainContext(dataset, 0, rows)
    explainer = explainer_registry.get("integrated_gradients")(n_steps=8)
    expected = explainer.explain(model, inputs, targets, context).local
    limited = TrainedModel(FakeDeviceLimit(model.module, rows=3 * 8), CPU, 0.0, 0)
    with pytest.warns(MemorySplitWarning):
        got = explain_within_memory(explainer, limited, inputs, targets, context).local
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
