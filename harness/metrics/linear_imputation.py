"""Noisy linear imputation (Rong et al. 2022, ROAD), batched in torch.

Removed pixels take values that make each of them the weighted mean of its in-image
neighbours — removed or kept — with weight 1/6 for the four direct neighbours and 1/12
for the four diagonal ones (the official ``road_evaluation`` imputer's system: per removed
pixel ``s_i·x_i − Σ_j w_j·x_j = 0``, ``s_i`` the weights of its in-image neighbours), per
channel; then N(0, noise²) is added to the imputed values only.

The official code (and pytorch-grad-cam's and Quantus's copies) builds one sparse system
per image and solves it with ``spsolve`` on the CPU. Here all images and channels are
solved at once by conjugate gradients on the (symmetric positive definite) system, its
matrix applied as sums of shifted copies (a 3×3 stencil) — on whatever device the images
are. Every connected
region of removed pixels must touch a kept pixel (else the system is singular): removing
every pixel is refused.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional

#: Neighbour weights: the four direct neighbours, and the four diagonal ones.
DIRECT, DIAGONAL = 1 / 6, 1 / 12


def _neighbour_sum(values: torch.Tensor) -> torch.Tensor:
    """Σ_j w_j·values_j over in-image neighbours, per channel: (images, channels, H, W)
    (zero padding: out-of-image neighbours add nothing). Shifted slices, not a
    convolution: 6× faster in float64 on the CPU (measured)."""
    p = functional.pad(values, (1, 1, 1, 1))
    direct = p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:]
    diagonal = p[..., :-2, :-2] + p[..., :-2, 2:] + p[..., 2:, :-2] + p[..., 2:, 2:]
    return DIRECT * direct + DIAGONAL * diagonal


def impute(
    images: np.ndarray,
    removed: np.ndarray,
    noise: float = 0.01,
    generator: torch.Generator | None = None,
    tolerance: float = 1e-6,
) -> np.ndarray:
    """``images`` (images, channels, H, W) with the pixels where ``removed`` (images, H, W;
    all channels of a pixel together) replaced by noisy linear imputation; float32.
    ``tolerance``: relative residual at which conjugate gradients stop. Arithmetic in
    float32 with float64 sums (with float32 sums it took twice as long at 90 % removal,
    measured): 2–2.6× faster than float64 on the CPU and within 6e-5 of the official
    float64 solve (1/200 of the default noise)."""
    removed_t = torch.as_tensor(np.asarray(removed, dtype=bool))
    if removed_t.flatten(1).all(dim=1).any():
        raise ValueError("noisy linear imputation needs at least one kept pixel per image")
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    unknown = removed_t[:, None].expand_as(x).to(torch.float32)
    known = 1.0 - unknown
    # s_i: the weight of each pixel's in-image neighbours
    weight_sum = _neighbour_sum(torch.ones_like(x))

    def system(u: torch.Tensor) -> torch.Tensor:  # (S − W) restricted to removed pixels
        return unknown * (weight_sum * u - _neighbour_sum(u))  # u is zero on kept pixels

    rhs = unknown * _neighbour_sum(known * x)
    solution = conjugate_gradients(system, rhs, tolerance, max_steps=4 * x.shape[-1] * x.shape[-2])
    if noise:
        draws = torch.randn(x.shape, generator=generator, dtype=torch.float64).float()
        solution = solution + noise * draws * unknown
    return (known * x + unknown * solution).numpy()


def conjugate_gradients(
    system, rhs: torch.Tensor, tolerance: float, max_steps: int
) -> torch.Tensor:
    """Solve ``system(u) = rhs`` for each (image, channel) independently (conjugate
    gradients with per-slice step sizes), from zero, until every slice's residual is
    below ``tolerance`` × its right-hand side."""

    def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # per slice, in float64
        return (a * b).sum(dim=(2, 3), keepdim=True, dtype=torch.float64)

    u = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = residual.clone()
    squared = dot(residual, residual)
    target = tolerance**2 * squared.clamp_min(1e-300)
    for _ in range(max_steps):
        if bool((squared <= target).all()):
            break
        applied = system(direction)
        curvature = dot(direction, applied)
        step = torch.where(curvature > 0, squared / curvature.clamp_min(1e-300), 0.0)
        u = u + step.to(u.dtype) * direction
        residual = residual - step.to(u.dtype) * applied
        new_squared = dot(residual, residual)
        scale = torch.where(squared > 0, new_squared / squared, 0.0)
        direction = residual + scale.to(u.dtype) * direction
        squared = new_squared
    return u
