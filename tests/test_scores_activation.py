"""ScoresActivation: the layer does what it says, and the by-design cell pairs with its twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness import load_results, run_suite
from harness.datasets import Dataset, DatasetCard, GroundTruth, dataset_registry
from harness.explainers import ExplainContext, explainer_registry
from harness.explainers.scores_activation import ScoresActivation
from harness.models import model_registry
from harness.models.training import parameter_groups
from harness.suite import parse_suite

CPU = torch.device("cpu")


def test_forward_gates_each_feature_by_softmax_of_the_scores() -> None:
    layer = ScoresActivation(3)
    with torch.no_grad():
        layer.scores.copy_(torch.tensor([0.0, np.log(2.0), np.log(5.0)]))
    weights = layer.weights()
    np.testing.assert_allclose(weights.detach().numpy(), [1 / 8, 2 / 8, 5 / 8], rtol=1e-6)
    x = torch.tensor([[8.0, 8.0, 8.0], [1.0, -1.0, 0.0]])
    np.testing.assert_allclose(
        layer(x).detach().numpy(), [[1, 2, 5], [1 / 8, -2 / 8, 0]], rtol=1e-6
    )
    layer.rescale = True  # weights × d: mean weight 1
    np.testing.assert_allclose(layer(x)[0].detach().numpy(), [3, 6, 15], rtol=1e-6)
    layer.temperature = 2.0  # softmax(s / T) flattens the weights
    assert layer.weights()[2] < weights[2]


def test_gradients_reach_the_scores() -> None:
    layer = ScoresActivation(4)
    head = torch.nn.Linear(4, 2)
    loss = torch.nn.functional.cross_entropy(head(layer(torch.randn(8, 4))), torch.ones(8).long())
    loss.backward()
    assert layer.scores.grad is not None and torch.count_nonzero(layer.scores.grad) == 4


def test_scores_are_exempt_from_weight_decay_by_default() -> None:
    module = torch.nn.Sequential(ScoresActivation(4), torch.nn.Linear(4, 2))
    free, decayed = parameter_groups(module, weight_decay=0.1, learning_rate=1e-3)
    assert free["weight_decay"] == 0.0 and free["params"] == [module[0].scores]
    assert decayed["weight_decay"] == 0.1 and len(decayed["params"]) == 2
    assert free["lr"] == decayed["lr"] == 1e-3
    module[0].exempt_from_weight_decay = False
    assert len(parameter_groups(module, weight_decay=0.1, learning_rate=1e-3)) == 1


def test_the_scores_take_their_own_learning_rate_or_none() -> None:
    layer = ScoresActivation(4, learning_rate_multiplier=30.0)
    module = torch.nn.Sequential(layer, torch.nn.Linear(4, 2))
    scores, host = parameter_groups(module, weight_decay=0.0, learning_rate=1e-3)
    assert scores["params"] == [layer.scores] and scores["lr"] == pytest.approx(0.03)
    assert host["lr"] == 1e-3
    frozen = torch.nn.Sequential(ScoresActivation(4, learn=False), torch.nn.Linear(4, 2))
    (only,) = parameter_groups(frozen, weight_decay=0.0, learning_rate=1e-3)
    assert len(only["params"]) == 2  # the frozen scores are not optimised


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return dataset_registry.get("paper_10_5")(n_samples=600).load(seed=0)


def test_with_uniform_scores_the_model_is_its_twin_up_to_the_constant_scale(dataset) -> None:
    recipe = model_registry.get("mlp")(hidden=[16])
    torch.manual_seed(0)
    twin = recipe.build(dataset)
    torch.manual_seed(0)  # same seed: the gate draws nothing, so the host weights match
    gated = recipe.build(dataset, gate=ScoresActivation(dataset.n_features))
    assert torch.equal(gated[2].weight, twin[1].weight)
    x = torch.as_tensor(dataset.x_test[:20])
    # frozen uniform scores: w = 1/d, so the gated model is the twin on x / d …
    with torch.no_grad():
        gated[2].weight.mul_(dataset.n_features)  # … and equals it once W absorbs the d
        np.testing.assert_allclose(gated(x).numpy(), twin(x).numpy(), rtol=1e-5, atol=1e-6)
    # with rescale (w = 1 each at uniform scores) the gated model is the twin exactly
    torch.manual_seed(0)
    rescaled = recipe.build(dataset, gate=ScoresActivation(dataset.n_features, rescale=True))
    with torch.no_grad():
        np.testing.assert_allclose(rescaled(x).numpy(), twin(x).numpy(), rtol=1e-5, atol=1e-6)


def test_the_uniform_gate_control_trains_into_the_twin_with_rescale(dataset) -> None:
    """learn_scores = false, rescale = true: the gate multiplies by 1 and never moves, so
    the control and its twin (same seed, same batches) end with the same weights — its
    accuracy gain is 0; without rescale the gate scales the inputs by 1/d (see above),
    which changes training: that part of a gain is not learned scores."""
    recipe = model_registry.get("mlp")(hidden=[16], epochs=3)
    twin = recipe.fit(dataset, seed=0, device=CPU)
    control = explainer_registry.get("scores_activation")(learn_scores=False, rescale=True)
    model = control.fit_model(recipe, dataset, seed=0, device=CPU)
    gate = next(m for m in model.module.modules() if isinstance(m, ScoresActivation))
    assert torch.equal(gate.scores, torch.zeros(dataset.n_features))
    x = dataset.x_test[:50]
    np.testing.assert_allclose(model.logits(x), twin.logits(x), rtol=1e-5, atol=1e-6)
    trajectory = model.history["score_trajectory"]
    np.testing.assert_allclose(trajectory, 1 / dataset.n_features)  # uniform at every epoch


def _one_relevant_feature(seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1200, 6)).astype(np.float32)
    y = (x[:, 2] > 0).astype(np.int64)  # only feature 2 decides the label
    importance = np.eye(6)[2]
    return Dataset(
        name="one_relevant", modality="tabular", x_train=x[:900], y_train=y[:900],
        x_test=x[900:], y_test=y[900:], feature_names=[f"f{i}" for i in range(6)],
        class_names=["neg", "pos"], card=DatasetCard(source="test", licence="none"),
        ground_truth=GroundTruth(importance=importance),
    )  # fmt: skip


@pytest.mark.parametrize("learning_rate", [1e-3, 1e-2])
def test_training_concentrates_the_weight_on_the_only_relevant_feature(learning_rate) -> None:
    data = _one_relevant_feature(0)
    explainer = explainer_registry.get("scores_activation")()
    recipe = model_registry.get("mlp")(hidden=[16], epochs=30, learning_rate=learning_rate)
    model = explainer.fit_model(recipe, data, seed=0, device=CPU)
    context = ExplainContext(data, 0, np.arange(5))
    weights = explainer.explain(model, data.x_test[:5], np.zeros(5, int), context).global_scores
    others = np.arange(6) != 2
    assert np.argmax(weights) == 2 and weights.sum() == pytest.approx(1.0)
    assert weights[2] > 1.5 / 6 and (weights[others] < 1 / 6).all()  # from uniform 1/6
    if learning_rate == 1e-2:  # Adam moves each score ≤ ~lr per step: bigger steps, more
        assert weights[2] > 0.5
    trajectory = model.history["score_trajectory"]
    assert trajectory.shape == (31, 6)  # epoch 0 (initial) + 30 epochs
    np.testing.assert_allclose(trajectory[0], 1 / 6)  # zeros init: uniform
    np.testing.assert_allclose(trajectory[-1], weights, rtol=1e-6)
    assert trajectory[0, 2] < trajectory[10, 2] < trajectory[30, 2]


def test_normal_initialisation_is_seeded_and_leaves_the_host_init_alone(dataset) -> None:
    explainer = explainer_registry.get("scores_activation")(init="normal", init_std=0.5)
    first, again = explainer.layer(10, seed=3), explainer.layer(10, seed=3)
    assert torch.equal(first.scores, again.scores) and first.scores.std() > 0.1


SUITE = """
name = "sa"
seeds = [0, 1]
metrics = ["accuracy", "accuracy_gain_pp", "accuracy_gain_rel", "train_seconds",
           "train_overhead_seconds", "spearman_gt", "topk_precision_gt"]

[[datasets]]
name = "paper_16_5"
params = { n_samples = 800 }

[[models]]
name = "mlp"
params = { hidden = [32], epochs = 15 }

[[explainers]]
name = "scores_activation"
[[explainers]]
name = "integrated_gradients"
params = { n_steps = 8 }
"""


def test_by_design_cells_are_compared_with_their_twin(tmp_path: Path) -> None:
    summary = run_suite(parse_suite(SUITE), tmp_path)
    assert summary.counts == {"ok": 4, "failed": 0, "skipped": 0}
    results = load_results(tmp_path)
    table = results.pivot_table(index=["seed", "explainer"], columns="metric", values="value")
    for seed in (0, 1):
        sa, ig = table.loc[(seed, "scores_activation")], table.loc[(seed, "integrated_gradients")]
        # the gain is the difference between the two models' accuracies, in points and in %
        assert sa["accuracy_gain_pp"] == pytest.approx(100 * (sa["accuracy"] - ig["accuracy"]))
        assert sa["accuracy_gain_rel"] == pytest.approx(
            100 * (sa["accuracy"] - ig["accuracy"]) / ig["accuracy"]
        )
        assert sa["train_overhead_seconds"] == pytest.approx(
            sa["train_seconds"] - ig["train_seconds"]
        )
    notes = results.set_index(["seed", "explainer", "metric"])["note"]
    assert notes[(0, "integrated_gradients", "accuracy_gain_pp")] == (
        "skipped: metric 'accuracy_gain_pp' compares a by-design model with its black-box "
        "twin; post-hoc explainers explain the twin itself"
    )
    assert table.loc[(0, "scores_activation"), "topk_precision_gt"] >= 0.8


REFERENCE_SUITE = SUITE.replace(
    '"spearman_gt", "topk_precision_gt"]',
    '"spearman_gt", "topk_precision_gt", "stability",\n'
    '           { name = "spearman_ref", params = { reference = "integrated_gradients" } }]',
)


def test_reference_agreement_and_stability_match_the_stored_importances(tmp_path: Path) -> None:
    from scipy.stats import spearmanr

    from harness.runner import plan
    from harness.store import load_arrays

    suite = parse_suite(REFERENCE_SUITE)
    order = [c.explainer.id for c in plan(suite)][:2]
    assert order == ["integrated_gradients", "scores_activation"]  # the reference runs first
    summary = run_suite(suite, tmp_path)
    assert summary.counts["ok"] == 4
    results = load_results(tmp_path).set_index(["seed", "explainer", "metric"])
    importance = load_arrays(tmp_path, "global_importance")
    cell = "paper_16_5/mlp/{}/seed={}"
    for seed in (0, 1):
        sa = importance[cell.format("scores_activation", seed)]
        ig = importance[cell.format("integrated_gradients", seed)]
        expected = spearmanr(sa, ig).statistic
        assert results.loc[(seed, "scores_activation", "spearman_ref"), "value"] == (
            pytest.approx(expected, abs=1e-12)
        )
    assert results.loc[(0, "integrated_gradients", "spearman_ref"), "note"] == (
        "skipped: metric 'spearman_ref': this explainer is the reference"
    )
    for explainer in ("scores_activation", "integrated_gradients"):
        a, b = (importance[cell.format(explainer, s)] for s in (0, 1))
        stored = results.loc[[(0, explainer, "stability"), (1, explainer, "stability")], "value"]
        np.testing.assert_allclose(stored.to_numpy(), spearmanr(a, b).statistic, atol=1e-12)
    trajectories = load_arrays(tmp_path, "score_trajectory")
    assert set(trajectories) == {cell.format("scores_activation", s) for s in (0, 1)}
    assert trajectories[cell.format("scores_activation", 0)].shape == (16, 16)  # 15 epochs + 1


def test_an_unknown_reference_fails_validation_with_a_suggestion() -> None:
    from harness.suite import SuiteError

    text = REFERENCE_SUITE.replace(
        'reference = "integrated_gradients"', 'reference = "integrated_gradient"'
    )
    with pytest.raises(SuiteError, match=r"'integrated_gradient' is not an explainer id of this "
                       r"suite; did you mean 'integrated_gradients'\?"):  # fmt: skip
        parse_suite(text)
