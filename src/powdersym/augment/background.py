"""Chebyshev-polynomial background, the background model of Rietveld programs (GSAS-II 'chebyschev-1',
FullProf, TOPAS) and the one Garcia-Cardona et al. subtract from measured ToF data."""

from __future__ import annotations

import torch

from powdersym.augment import sampling


def chebyshev_basis(u: torch.Tensor, degree: int) -> torch.Tensor:
    """[n, degree + 1] Chebyshev polynomials of the first kind T_0 ... T_degree at u in [-1, 1]."""
    columns = [torch.ones_like(u), u]
    for _ in range(2, degree + 1):
        columns.append(2 * u * columns[-1] - columns[-2])
    return torch.stack(columns[: degree + 1], -1)


def chebyshev_shape(coefficients: torch.Tensor, relative_x: torch.Tensor) -> torch.Tensor:
    """sum_j c_j T_j(u) [B, n] for coefficients [B, J] at u = 2 relative_x - 1 (relative_x [n] in [0, 1] across
    the grid), rescaled to run from 0 (its minimum) to 1 (its maximum); 0 where it is constant."""
    u = 2 * relative_x.to(coefficients.dtype) - 1
    polynomial = coefficients @ chebyshev_basis(u, coefficients.shape[1] - 1).T
    low, high = polynomial.amin(-1, keepdim=True), polynomial.amax(-1, keepdim=True)
    span = high - low
    flat = span <= 1e-6 * (high.abs() + low.abs()).clamp(min=torch.finfo(polynomial.dtype).tiny)
    return torch.where(flat, 0.0, (polynomial - low) / torch.where(flat, 1.0, span))


def sample_chebyshev_coefficients(
    batch_size: int, order_range: tuple[int, int], generator=None, device=None, dtype=torch.float32
) -> torch.Tensor:
    """[B, max order + 1] coefficients: the order k uniform on order_range (both ends included), c_j ~ U(-1, 1) / j
    for 1 <= j <= k (decaying, so that higher orders add detail on a smooth curve) and 0 above k; c_0 = 0, since
    the level is set separately."""
    low, high = order_range
    if not 0 <= low <= high:
        raise ValueError(f"Chebyshev orders must satisfy 0 <= low <= high, got {order_range}")
    order = sampling.integers(low, high, (batch_size,), generator, device)
    j = torch.arange(high + 1, device=order.device)
    c = sampling.uniform(-1.0, 1.0, (batch_size, high + 1), generator, device, dtype) / j.clamp(min=1).to(dtype)
    return torch.where((j >= 1) & (j <= order[:, None]), c, torch.zeros_like(c))


def chebyshev_background(
    patterns: torch.Tensor,
    x=None,
    generator: torch.Generator | None = None,
    order: tuple[int, int] = (0, 6),
    amplitude: sampling.Range = (0.0, 0.2),
    level: sampling.Range = (0.0, 0.1),
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """patterns [B, n] + scale * (level + amplitude * shape), a fresh draw per pattern.

    shape: a Chebyshev polynomial of order drawn from `order` (both ends included) over the grid x (None =
    uniform), running from 0 to 1; level and amplitude ~ U(range), relative to scale [B] (default: each
    pattern's maximum). The background is >= 0 everywhere, its minimum is level and its maximum
    level + amplitude (times scale); order 0 is a flat background at level.
    """
    b, device, dtype = patterns.shape[0], patterns.device, patterns.dtype
    coefficients = sample_chebyshev_coefficients(b, order, generator, device, dtype)
    level_b = sampling.uniform(*level, (b, 1), generator, device, dtype)
    amplitude_b = sampling.uniform(*amplitude, (b, 1), generator, device, dtype)
    background = level_b + amplitude_b * chebyshev_shape(coefficients, sampling.relative_coordinate(x, patterns))
    return patterns + sampling.per_pattern_scale(patterns, scale) * background
