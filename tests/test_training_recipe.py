"""The Soft-CAM paper's training recipe as options: SGD with Nesterov momentum, a cosine
schedule with a floor, seeded augmentation and the best-validation checkpoint."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from harness.datasets import dataset_registry
from harness.models import model_registry
from harness.models.training import (
    AugmentationParams,
    TrainingParams,
    augmented,
    augmenter,
    make_optimiser,
    train_classifier,
)

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def table():
    return dataset_registry.get("synthetic_tabular")(n_samples=600).load(seed=0)


@pytest.fixture(scope="module")
def lesions():
    return dataset_registry.get("synthetic_lesions")(n_images=60, size=32).load(seed=0)


def test_the_cosine_schedule_follows_the_formula_down_to_its_floor(table):
    """η_e = η_min + (η₀ − η_min)(1 + cos(π e / E)) / 2, e = 0…E−1 (the paper: 1e-3 → 1e-4)."""
    params = dict(optimizer="sgd", learning_rate=1e-3, min_learning_rate=1e-4,
                  schedule="cosine", epochs=7, weight_decay=5e-4)  # fmt: skip
    model = model_registry.get("mlp")(hidden=[8], **params).fit(table, 0, CPU)
    expected = [1e-4 + (1e-3 - 1e-4) * (1 + math.cos(math.pi * e / 7)) / 2 for e in range(7)]
    np.testing.assert_allclose(model.history["learning_rate"], expected, rtol=1e-12)
    constant = model_registry.get("mlp")(hidden=[8], epochs=3).fit(table, 0, CPU)
    np.testing.assert_array_equal(constant.history["learning_rate"], [1e-3] * 3)


def test_sgd_is_nesterov_momentum_with_weight_decay():
    params = TrainingParams(optimizer="sgd", weight_decay=5e-4)
    optimiser = make_optimiser(torch.nn.Linear(3, 2), params)
    assert isinstance(optimiser, torch.optim.SGD)
    group = optimiser.param_groups[0]
    assert (group["momentum"], group["nesterov"], group["weight_decay"]) == (0.9, True, 5e-4)
    assert isinstance(make_optimiser(torch.nn.Linear(3, 2), TrainingParams()), torch.optim.Adam)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"schedule": "cosine", "min_learning_rate": 1.0}, "must not exceed learning_rate"),
     ({"optimizer": "sgd", "momentum": 0.0}, "Nesterov momentum needs momentum > 0")],
)  # fmt: skip
def test_inconsistent_training_options_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        TrainingParams(**params)


def test_augmentation_is_seeded_and_changes_the_images(lesions):
    options = AugmentationParams(horizontal_flip=0.5, vertical_flip=0.5, rotation=15,
                                 color_jitter=0.2, resized_crop=0.7)  # fmt: skip
    transform = augmenter(options, lesions.x_train.shape[1])
    batch = torch.as_tensor(lesions.x_train[:8])
    state = torch.get_rng_state()
    first = augmented(batch, transform, seed=0, epoch=1, index=0)
    again = augmented(batch, transform, seed=0, epoch=1, index=0)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    other = augmented(batch, transform, seed=1, epoch=1, index=0)
    assert first.shape == batch.shape and not torch.equal(first, other)
    assert not torch.equal(first, batch)
    flipped = augmented(batch, augmenter(AugmentationParams(horizontal_flip=1.0), 1), 0, 1, 0)
    torch.testing.assert_close(flipped, batch.flip(-1))  # a flip with probability 1


def test_training_with_augmentation_is_reproducible(lesions):
    recipe = model_registry.get("small_cnn")(
        channels=[4, 8], epochs=2, batch_size=16,
        augmentation={"horizontal_flip": 0.5, "rotation": 10.0},
    )  # fmt: skip
    first = recipe.fit(lesions, 3, CPU).predict_proba(lesions.x_test)
    np.testing.assert_array_equal(first, recipe.fit(lesions, 3, CPU).predict_proba(lesions.x_test))
    with pytest.raises(ValueError, match="augmentation needs images"):
        model_registry.get("mlp")(augmentation={"rotation": 5.0}).fit(
            dataset_registry.get("synthetic_tabular")(n_samples=200).load(0), 0, CPU
        )


@pytest.mark.parametrize("metric", ["accuracy", "roc_auc"])
def test_the_best_validation_checkpoint_is_restored(table, metric):
    """checkpoint = "best" keeps the epoch with the best held-out score, computed here
    independently (sklearn) from the module seen after every epoch; training runs all
    epochs (no early stopping)."""
    from sklearn.metrics import roc_auc_score

    recipe = model_registry.get("mlp")(
        hidden=[32], epochs=15, learning_rate=0.02, checkpoint="best",
        early_stopping_metric=metric,
    )  # fmt: skip
    _, x_val, _, y_val = train_test_split(table.x_train, table.y_train, test_size=0.1,
                                          stratify=table.y_train, random_state=0)  # fmt: skip
    scores: list[float] = []
    states: list[dict] = []

    def observe(module: torch.nn.Module, epoch: int) -> None:
        with torch.no_grad():
            p = torch.softmax(module.eval()(torch.as_tensor(x_val)), dim=1).numpy()
        module.train()
        score = (
            (p.argmax(axis=1) == y_val).mean()
            if metric == "accuracy"
            else roc_auc_score(y_val, p[:, 1])
        )
        scores.append(float(score))
        states.append({k: v.clone() for k, v in module.state_dict().items()})

    torch.manual_seed(0)
    module = recipe.build(table)
    log = train_classifier(module, table.x_train, table.y_train, recipe.params, seed=0,
                           device=CPU, observer=observe)  # fmt: skip
    after = scores[1:]
    assert len(after) == 15  # every epoch ran
    assert log.epoch == 1 + int(np.argmax(after))
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, states[log.epoch][key])


def test_mixed_precision_trains_and_predicts_with_float32_weights(lesions):
    """amp = "bf16" (torch.autocast; on the CPU here): the weights stay float32, the
    prediction differs from a float32 forward of the same weights only by bfloat16
    rounding, and explainers call the module in float32."""
    recipe = model_registry.get("small_cnn")(channels=[4, 8], epochs=2, batch_size=16,
                                             amp="bf16")  # fmt: skip
    model = recipe.fit(lesions, 0, CPU)
    assert model.amp == "bf16"
    assert all(p.dtype == torch.float32 for p in model.module.parameters())
    mixed = model.logits(lesions.x_test)
    with torch.no_grad():
        full = model.module(torch.as_tensor(lesions.x_test)).numpy()
    assert mixed.dtype == np.float32 and not np.array_equal(mixed, full)
    np.testing.assert_allclose(mixed, full, atol=0.05 * np.abs(full).max())
    plain = model_registry.get("small_cnn")(channels=[4, 8], epochs=2, batch_size=16)
    assert not np.array_equal(plain.fit(lesions, 0, CPU).logits(lesions.x_test), mixed)
