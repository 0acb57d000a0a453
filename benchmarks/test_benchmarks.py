"""Runtime benchmarks (pytest-benchmark): `tox -e bench`, or
`pytest benchmarks --benchmark-only --benchmark-json=FILE`.

Three groups, each timed by pytest-benchmark's own repetition and statistics:

- ``explainer``: explaining 32 rows on the standard small models (the quick suite's MLP on
  16 features; ``small_cnn`` on 32×32 digits) — divide by 32 for the cost per row;
- ``metric``: localisation metrics on 256 maps of 64×64, Spearman on 10,000 pairs of
  vectors, deletion AUC on 32 rows through a small MLP;
- ``harness``: a whole run of a suite whose cells cost almost nothing (controls on a tiny
  table, one model): the time per cell is the harness's own overhead (planning, memo,
  store writes, timing).

Compare two versions with pytest-benchmark's compare:
`pytest-benchmark compare .benchmarks/old.json .benchmarks/new.json`.
These are measurements, never assertions: nothing here fails because a machine is slow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness import run_suite
from harness.datasets import dataset_registry
from harness.explainers import ExplainContext, explainer_registry
from harness.metrics import Evidence, metric_registry
from harness.models import model_registry
from harness.suite import parse_suite

CPU = torch.device("cpu")
ROWS = 32


@pytest.fixture(scope="module")
def table_model():
    data = dataset_registry.get("paper_16_5")(n_samples=1000).load(0)
    model = model_registry.get("mlp")(hidden=[64, 64], epochs=5).fit(data, 0, CPU)
    return data, model


@pytest.fixture(scope="module")
def image_model():
    data = dataset_registry.get("digits")(size=32).load(0)
    model = model_registry.get("small_cnn")(epochs=1).fit(data, 0, CPU)
    return data, model


TABLE_EXPLAINERS = {
    "saliency": {},
    "integrated_gradients": {"n_steps": 50},
    "deeplift": {},
    "shap_kernel": {"nsamples": 200, "background_size": 20},
    "lime_tabular": {"num_samples": 1000},
}
IMAGE_EXPLAINERS = {"grad_cam": {}, "integrated_gradients": {"n_steps": 50}, "saliency": {}}


def _explain(benchmark, data, model, name: str, params: dict) -> None:
    explainer = explainer_registry.get(name)(**params)
    rows = data.x_test[:ROWS]
    targets = model.predict(rows)
    context = ExplainContext(dataset=data, seed=0, rows=np.arange(ROWS))
    explainer.explain(model, rows[:1], targets[:1], context)  # warm-up, as the runner does
    benchmark.extra_info["rows"] = ROWS
    benchmark(explainer.explain, model, rows, targets, context)


@pytest.mark.benchmark(group="explainer: MLP, 16 features, 32 rows")
@pytest.mark.parametrize("name", list(TABLE_EXPLAINERS))
def test_table_explainer(benchmark, table_model, name: str) -> None:
    _explain(benchmark, *table_model, name, TABLE_EXPLAINERS[name])


@pytest.mark.benchmark(group="explainer: small_cnn, 32x32 digits, 32 images")
@pytest.mark.parametrize("name", list(IMAGE_EXPLAINERS))
def test_image_explainer(benchmark, image_model, name: str) -> None:
    _explain(benchmark, *image_model, name, IMAGE_EXPLAINERS[name])


@pytest.fixture(scope="module")
def maps_and_masks() -> Evidence:
    rng = np.random.default_rng(0)
    masks = np.zeros((256, 64, 64), dtype=bool)
    for i in range(256):
        r, c = rng.integers(0, 52, size=2)
        masks[i, r : r + 8, c : c + 8] = True
    return Evidence(attributions=rng.random((256, 64, 64)), masks=masks)


@pytest.mark.benchmark(group="metric: 256 maps of 64x64")
@pytest.mark.parametrize(
    "name",
    ["pointing_game", "energy_pointing_game", "relevance_rank_accuracy", "topk_iou",
     "mask_roc_auc", "activation_precision"],
)  # fmt: skip
def test_localisation_metric(benchmark, maps_and_masks: Evidence, name: str) -> None:
    benchmark(metric_registry.get(name)().compute, maps_and_masks)


@pytest.mark.benchmark(group="metric: agreement and faithfulness")
def test_spearman_gt(benchmark) -> None:
    rng = np.random.default_rng(0)
    evidence = Evidence(global_importance=rng.random(10_000), importance=rng.random(10_000))
    benchmark(metric_registry.get("spearman_gt")().compute, evidence)


@pytest.mark.benchmark(group="metric: agreement and faithfulness")
def test_deletion_auc(benchmark, table_model) -> None:
    data, model = table_model
    rows = data.x_test[:ROWS]
    evidence = Evidence(
        attributions=np.random.default_rng(0).random(rows.shape), inputs=rows,
        targets=model.predict(rows), predict_proba=model.predict_proba,
        train_mean=data.train_mean,
    )  # fmt: skip
    benchmark(metric_registry.get("deletion_auc")().compute, evidence)


OVERHEAD_SUITE = """
name = "overhead"
seeds = [0, 1, 2, 3]
metrics = ["accuracy", "spearman_gt", "explain_seconds"]
[execution]
explain_rows = 20
[[datasets]]
name = "synthetic_tabular"
params = { n_samples = 200, n_features = 6, n_informative = 2 }
[[models]]
name = "mlp"
params = { hidden = [4], epochs = 1 }
[[explainers]]
name = "oracle"
[[explainers]]
name = "random"
[[explainers]]
name = "constant"
[[explainers]]
name = "inverted"
"""


@pytest.mark.benchmark(group="harness: a 16-cell run of near-free cells")
def test_harness_overhead(benchmark, tmp_path: Path) -> None:
    suite = parse_suite(OVERHEAD_SUITE)
    counter = iter(range(10_000))

    def run() -> None:
        run_suite(suite, tmp_path / f"out{next(counter)}", cache=False)

    benchmark.extra_info["cells"] = 16
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


SWEEP_1000 = """
name = "sweep_1000"
seeds = [0, 1, 2, 3, 4]
metrics = ["accuracy", "accuracy_gain_pp", "spearman_gt"]
[[datasets]]
name = "synthetic_tabular"
[datasets.params]
n_samples = { sweep = [300, 500, 1000, 5000, 10000] }
n_features = { sweep = [10, 16, 30, 55, 80] }
[[models]]
name = "mlp"
[[explainers]]
name = "scores_activation"
params = { temperature = { sweep = [1.0, 0.1, 0.02, 0.01] }, rescale = { sweep = [true, false] } }
"""


@pytest.mark.benchmark(group="harness")
def test_sweep_expansion_and_validation_of_1000_cells(benchmark) -> None:
    """Parsing, expanding and validating a suite of 25 datasets × 8 explainers × 5 seeds
    (1,000 cells), then planning it: what `xai-harness validate` does before any cell."""
    from harness.runner.plan import plan
    from harness.suite import parse_suite

    cells = benchmark(lambda: plan(parse_suite(SWEEP_1000)))
    assert len(cells) == 1000
