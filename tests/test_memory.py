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
    assert rows_per_forward((3, 224, 224)) == 6  # 2**20 input numbers (FORWARD_ELEMENTS)
    assert rows_per_forward((3, 64, 64)) == 85
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


def test_explaining_in_batches_gives_the_same_maps(tmp_path):
    """``explain_batch`` explains the rows a few at a time (bounded memory on large
    images); a deterministic explainer gives the same maps and scores."""
    from harness import load_results, run_suite
    from harness.suite import load_suite
    from tests.suite_builder import suite

    scores = []
    for batch in (None, 3):
        execution = {"explain_rows": 10} | ({} if batch is None else {"explain_batch": batch})
        text = suite(
            f"batched_{batch}", datasets=[("synthetic_lesions", {"n_images": 60, "size": 32})],
            models=[("small_cnn", {"channels": [4, 8], "epochs": 1})],
            explainers=["grad_cam", ("integrated_gradients", {"n_steps": 8})],
            metrics=["pointing_game", "deletion_auc"], execution=execution,
        )  # fmt: skip
        (tmp_path / f"{batch}.toml").write_text(text)
        out = tmp_path / f"out_{batch}"
        summary = run_suite(load_suite(tmp_path / f"{batch}.toml"), out)
        assert summary.counts["ok"] == 2, summary.failures
        scores.append(load_results(out).sort_values(["explainer", "metric"]).value.to_numpy())
    np.testing.assert_array_equal(*scores)


@pytest.mark.parametrize(
    ("device", "message"),
    [("cuda:1", "execution.device = 'cuda:1' but torch sees 0 CUDA devices"),
     ("gpu", "execution.device")],
)  # fmt: skip
def test_a_device_that_is_not_there_is_one_line(device, message, tmp_path):
    from harness.errors import HarnessError
    from harness.runner.cell import resolve_device
    from harness.suite import SuiteError, parse_suite
    from tests.suite_builder import suite

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the message names its devices instead")
    text = suite("devices", datasets=["synthetic_tabular"], models=["mlp"],
                 explainers=["random"], execution={"device": device})  # fmt: skip
    if device == "gpu":  # not a device name: refused when the suite is read
        with pytest.raises(SuiteError, match=message):
            parse_suite(text, path=tmp_path / "suite.toml")
        return
    options = parse_suite(text, path=tmp_path / "suite.toml").spec.execution
    with pytest.raises(HarnessError, match=message):
        resolve_device(options.device)
