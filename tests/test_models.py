"""The mlp recipe: learns, is deterministic per seed, early stopping restores the best epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from harness.datasets import dataset_registry
from harness.models import model_registry
from harness.models.mlp import Standardize

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def dataset():
    source = dataset_registry.get("synthetic_tabular")(
        n_samples=800, n_features=8, n_informative=3, class_sep=2.0
    )
    return source.load(seed=0)


def test_synthetic_tabular_layout(dataset) -> None:
    assert dataset.x_train.shape == (600, 8) and dataset.x_test.shape == (200, 8)
    assert dataset.x_train.dtype == np.float32 and dataset.y_train.dtype == np.int64
    assert dataset.ground_truth.importance.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert dataset.feature_names[:4] == ["relevant_0", "relevant_1", "relevant_2", "noise_3"]
    # stratified split: class shares agree within one row
    assert abs(dataset.y_train.mean() - dataset.y_test.mean()) < 0.01


def test_synthetic_tabular_is_deterministic_per_seed() -> None:
    source = dataset_registry.get("synthetic_tabular")(n_samples=100, n_features=4, n_informative=2)
    a, b, c = source.load(1), source.load(1), source.load(2)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)


def test_mlp_learns_well_above_chance(dataset) -> None:
    model = model_registry.get("mlp")(hidden=[32], epochs=20).fit(dataset, seed=0, device=CPU)
    accuracy = np.mean(model.predict(dataset.x_test) == dataset.y_test)
    assert accuracy > 0.85
    assert model.epochs_trained == 20 and model.train_seconds > 0
    probabilities = model.predict_proba(dataset.x_test)
    assert probabilities.shape == (200, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)


def test_mlp_training_is_deterministic_per_seed(dataset) -> None:
    recipe = model_registry.get("mlp")(hidden=[16], epochs=3)
    first, again, other = (recipe.fit(dataset, seed=s, device=CPU) for s in (7, 7, 8))
    for a, b in zip(
        first.module.state_dict().values(), again.module.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b)
    assert not torch.equal(first.module[1].weight, other.module[1].weight)


def test_early_stopping_stops_and_keeps_the_best_weights(dataset) -> None:
    recipe = model_registry.get("mlp")(
        hidden=[64], epochs=200, early_stopping_patience=3, learning_rate=0.01
    )
    model = recipe.fit(dataset, seed=0, device=CPU)
    assert model.epochs_trained < 200
    assert np.mean(model.predict(dataset.x_test) == dataset.y_test) > 0.85


def test_early_stopping_reports_the_restored_epoch_and_trims_the_trajectory(dataset) -> None:
    """Regression: epochs_trained was the last epoch run and the score trajectory kept
    the epochs after the restored best one."""
    from harness.explainers import explainer_registry
    from harness.explainers.scores_activation import ScoresActivation
    from harness.models.training import train_classifier

    recipe = model_registry.get("mlp")(
        hidden=[64], epochs=200, early_stopping_patience=3, learning_rate=0.01
    )
    seen: list[int] = []
    torch.manual_seed(0)
    module = recipe.build(dataset)
    best = train_classifier(
        module, dataset.x_train, dataset.y_train, recipe.params, seed=0, device=CPU,
        observer=lambda m, epoch: seen.append(epoch),
    ).epoch  # fmt: skip
    assert seen[-1] == best + 3  # stopped 3 stale epochs after the best one
    trained = explainer_registry.get("scores_activation")().fit_model(recipe, dataset, 0, CPU)
    trajectory = trained.history["score_trajectory"]
    assert trajectory.shape[0] == trained.epochs_trained + 1 < 200
    gate = next(m for m in trained.module.modules() if isinstance(m, ScoresActivation))
    np.testing.assert_allclose(trajectory[-1], gate.weights().detach().numpy(), rtol=1e-6)


def test_early_stopping_on_validation_accuracy(dataset) -> None:
    """The restored epoch is the first one with the best validation accuracy."""
    from harness.models.training import train_classifier

    recipe = model_registry.get("mlp")(
        hidden=[32], epochs=60, early_stopping_patience=4, learning_rate=0.01,
        early_stopping_metric="accuracy",
    )  # fmt: skip
    accuracies: list[float] = []
    from sklearn.model_selection import train_test_split

    _, x_val, _, y_val = train_test_split(
        dataset.x_train, dataset.y_train, test_size=0.1, stratify=dataset.y_train,
        random_state=0,
    )  # fmt: skip

    def observe(module: torch.nn.Module, epoch: int) -> None:
        with torch.no_grad():
            predicted = module.eval()(torch.as_tensor(x_val)).argmax(dim=1).numpy()
        module.train()
        accuracies.append(float(np.mean(predicted == y_val)))

    torch.manual_seed(0)
    module = recipe.build(dataset)
    best = train_classifier(module, dataset.x_train, dataset.y_train, recipe.params, seed=0,
                            device=CPU, observer=observe).epoch  # fmt: skip
    trained = accuracies[1:]  # after each epoch (index 0: before training)
    assert best == 1 + int(np.argmax(trained))
    assert len(trained) == best + 4


def test_standardize_uses_training_statistics_and_guards_constant_columns() -> None:
    layer = Standardize(np.array([1.0, 5.0]), np.array([2.0, 0.0]))
    out = layer(torch.tensor([[3.0, 5.0]]))
    assert out.tolist() == [[1.0, 0.0]]


def test_ft_transformer_learns_and_takes_a_gate(dataset) -> None:
    from harness.explainers.scores_activation import ScoresActivation

    recipe = model_registry.get("ft_transformer")(d_token=16, n_heads=2, epochs=8)
    model = recipe.fit(dataset, seed=0, device=CPU)
    assert np.mean(model.predict(dataset.x_test) == dataset.y_test) > 0.8
    gate = ScoresActivation(dataset.n_features)
    gated = recipe.fit(
        dataset, seed=0, device=CPU, architecture=lambda data: recipe.build(data, gate=gate)
    )
    assert gated.module.gate is gate
    assert not torch.allclose(gate.scores, torch.zeros(dataset.n_features))  # it trained


def test_gates_are_refused_by_recipes_without_one(dataset) -> None:
    from harness.explainers import explainer_registry

    scores_activation = explainer_registry.get("scores_activation")()
    with pytest.raises(ValueError, match="does not take an input gate"):
        scores_activation.architecture(model_registry.get("small_cnn")(), dataset, 0)


def test_ft_transformer_rejects_heads_that_do_not_divide_the_token() -> None:
    source = dataset_registry.get("synthetic_tabular")(n_samples=100, n_features=4, n_informative=2)
    with pytest.raises(ValueError, match=r"d_token \(10\) must be divisible by n_heads \(4\)"):
        model_registry.get("ft_transformer")(d_token=10).build(source.load(0))
