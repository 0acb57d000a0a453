"""Explainer wrappers against direct library calls, and the controls."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from harness.datasets import dataset_registry
from harness.explainers import ExplainContext, Explanation, explainer_registry
from harness.models import model_registry

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setting():
    dataset = dataset_registry.get("synthetic_tabular")(
        n_samples=400, n_features=6, n_informative=2, class_sep=2.0
    ).load(seed=3)
    model = model_registry.get("mlp")(hidden=[16], epochs=5).fit(dataset, seed=3, device=CPU)
    rows = dataset.x_test[:20]
    targets = model.predict(rows)
    return dataset, model, rows, targets, ExplainContext(dataset=dataset, seed=3)


@pytest.mark.parametrize("baseline", ["zero", "train_mean"])
def test_integrated_gradients_equals_a_direct_captum_call(setting, baseline: str) -> None:
    dataset, model, rows, targets, context = setting
    explainer = explainer_registry.get("integrated_gradients")(n_steps=24, baseline=baseline)
    ours = explainer.explain(model, rows, targets, context).local
    reference = 0.0 if baseline == "zero" else torch.tensor(dataset.x_train.mean(0, keepdims=True))
    direct = (
        IntegratedGradients(model.module)
        .attribute(
            torch.tensor(rows), baselines=reference, target=torch.tensor(targets), n_steps=24
        )
        .detach()
        .numpy()
    )
    np.testing.assert_array_equal(ours, direct)


def test_integrated_gradients_is_complete(setting) -> None:
    # attributions sum to logit(x) − logit(baseline) for the explained class
    _, model, rows, targets, context = setting
    attributions = (
        explainer_registry.get("integrated_gradients")(n_steps=200)
        .explain(model, rows, targets, context)
        .local
    )
    logits = model.logits(rows)[np.arange(len(rows)), targets]
    at_zero = model.logits(np.zeros_like(rows))[np.arange(len(rows)), targets]
    np.testing.assert_allclose(attributions.sum(axis=1), logits - at_zero, atol=1e-2)


def test_integrated_gradients_explains_the_requested_class(setting) -> None:
    _, model, rows, targets, context = setting
    explainer = explainer_registry.get("integrated_gradients")(n_steps=16)
    for_pred = explainer.explain(model, rows, targets, context).local
    for_other = explainer.explain(model, rows, 1 - targets, context).local
    # two-class logits: attributions of the two classes differ (not a copy)
    assert not np.allclose(for_pred, for_other)


def test_oracle_is_the_ground_truth(setting) -> None:
    dataset, model, rows, targets, context = setting
    explanation = explainer_registry.get("oracle")().explain(model, rows, targets, context)
    np.testing.assert_array_equal(explanation.global_importance, dataset.ground_truth.importance)
    assert explanation.local.shape == rows.shape


def test_random_is_seeded(setting) -> None:
    dataset, model, rows, targets, context = setting
    random = explainer_registry.get("random")()
    first = random.explain(model, rows, targets, context).local
    again = random.explain(model, rows, targets, context).local
    other = random.explain(model, rows, targets, ExplainContext(dataset, seed=4)).local
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_global_importance_of_local_attributions_is_mean_absolute_value() -> None:
    explanation = Explanation(local=np.array([[1.0, -2.0], [-3.0, 0.0]]))
    np.testing.assert_array_equal(explanation.global_importance, [2.0, 1.0])
    assert explanation.is_finite()
    assert not Explanation(global_scores=np.array([np.inf])).is_finite()
    with pytest.raises(ValueError, match="needs local attributions or global scores"):
        Explanation()
