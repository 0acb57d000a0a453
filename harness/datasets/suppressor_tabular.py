"""``suppressor_tabular``: signal and *suppressor* features with exact ground truth
(XAI-TRIS, Clark, Wilming & Haufe 2024; Haufe et al. 2014).

Generating equations, per row (y ∈ {0, 1} balanced, s = 2y − 1), for each of the
``n_signal`` pairs j:

- distractor noise d_j ~ N(0, σ²), σ = ``noise_sd``;
- signal feature x_j = a·s + d_j, a = ``signal`` — it carries the label, buried in d_j;
- suppressor x_{k+j} = ρ·d_j + √(1 − ρ²)·σ·e_j, e_j ~ N(0, 1), ρ = ``correlation`` —
  independent of y, but correlated with the signal feature's noise;

then ``n_noise`` pure noise features N(0, 1). Ground truth: importance 1 on the signal
features and 0 elsewhere; the suppressors are marked (``GroundTruth.suppressors``). The
best linear classifier subtracts the noise the suppressor reveals: per pair its weights
are ∝ (1, −ρ) (Σ⁻¹μ with Σ = σ²[[1, ρ], [ρ, 1]], μ = (a, 0)), so a gradient — the
weights — puts a share ρ / (1 + ρ) of its |attribution| on a feature that carries no
signal at all. The seed fixes generation and the stratified split.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from harness.component import Params
from harness.datasets.base import (
    Dataset,
    DatasetCard,
    DatasetSource,
    GroundTruth,
    Modality,
    dataset_registry,
    stratified_split,
)


def suppressor(distractor: np.ndarray, independent: np.ndarray, rho: float) -> np.ndarray:
    """ρ·d + √(1 − ρ²)·e: correlated ρ with the distractor d, independent of the label
    (``independent`` e has d's scale)."""
    return rho * distractor + np.sqrt(1 - rho**2) * independent


class SuppressorTabularParams(Params):
    n_samples: int = Field(4000, ge=20, le=10_000_000, description="rows before the split")
    n_signal: int = Field(2, ge=1, le=10_000, description="signal features, each with a suppressor")
    n_noise: int = Field(2, ge=0, le=10_000, description="pure noise features")
    signal: float = Field(1.0, gt=0, le=100, description="a: the class mean's distance from 0")
    correlation: float = Field(
        0.8, ge=0, lt=1, description="ρ: the suppressor's correlation with the signal's noise"
    )
    noise_sd: float = Field(1.0, gt=0, le=100, description="σ: the distractor noise's SD")
    test_fraction: float = Field(0.25, gt=0, lt=1, description="stratified test share")


@dataset_registry.register("suppressor_tabular")
class SuppressorTabular(DatasetSource):
    """Signal features with suppressors (label-independent features a good model uses)."""

    modality: ClassVar[Modality] = "tabular"
    cacheable: ClassVar[bool] = True
    card = DatasetCard(
        source="generated (signal + suppressor, XAI-TRIS / Haufe et al. 2014)",
        licence="generated data, no licence restrictions",
        citation="Clark, Wilming & Haufe, 'XAI-TRIS', Machine Learning 2024; Haufe et al., "
        "NeuroImage 2014",
    )
    size = "4,000 rows × 6 features (2 signal, 2 suppressors, 2 noise), 2 classes (default)"
    ground_truth = "importance (signal features), suppressor flags"
    params: SuppressorTabularParams

    def ground_truth_kinds(self) -> frozenset[str]:
        return frozenset({"importance", "suppressors"})

    def load(self, seed: int) -> Dataset:
        p = self.params
        rng = np.random.default_rng(seed)
        n, k = p.n_samples, p.n_signal
        labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
        sign = (2 * labels - 1)[:, None].astype(float)
        distractor = rng.normal(0.0, p.noise_sd, (n, k))
        signal = p.signal * sign + distractor
        independent = rng.normal(0.0, 1.0, (n, k)) * p.noise_sd
        suppressors_x = suppressor(distractor, independent, p.correlation)
        noise = rng.normal(0.0, 1.0, (n, p.n_noise))
        x = np.concatenate([signal, suppressors_x, noise], axis=1).astype(np.float32)
        names = (
            [f"signal_{j}" for j in range(k)]
            + [f"suppressor_{j}" for j in range(k)]
            + [f"noise_{j}" for j in range(p.n_noise)]
        )
        importance = np.r_[np.ones(k), np.zeros(k + p.n_noise)]
        suppressors = np.r_[np.zeros(k, bool), np.ones(k, bool), np.zeros(p.n_noise, bool)]
        train, test = stratified_split(labels, p.test_fraction, seed)
        return Dataset(
            name=self.name,
            modality="tabular",
            x_train=x[train],
            y_train=labels[train],
            x_test=x[test],
            y_test=labels[test],
            feature_names=names,
            class_names=["0", "1"],
            card=self.card,
            ground_truth=GroundTruth(importance=importance, suppressors=suppressors),
        )
