"""Seeded, batched draws shared by the augmentations.

Every draw is made on the generator's device (CPU when no generator is given and the target is the CPU) and
then moved to the target device, so that one CPU `torch.Generator` gives the same augmentations on CPU and
CUDA; pass a CUDA generator for speed on large CUDA batches. generator=None draws from torch's global RNG.
"""

from __future__ import annotations

import math

import torch

Range = tuple[float, float]


def _draw_device(generator: torch.Generator | None, device: torch.device | str | None) -> torch.device:
    if generator is not None:
        return generator.device
    return torch.device(device) if device is not None else torch.device("cpu")


def uniform(
    low: float | torch.Tensor,
    high: float | torch.Tensor,
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """U(low, high) of the given shape (low, high broadcast against it)."""
    u = torch.rand(shape, generator=generator, device=_draw_device(generator, device), dtype=dtype)
    u = u.to(device) if device is not None else u
    return low + (high - low) * u


def log_uniform(
    low: float, high: float, shape: tuple[int, ...], generator=None, device=None, dtype=torch.float32
) -> torch.Tensor:
    """exp(U(ln low, ln high)): every decade between low and high is equally likely."""
    if not 0 < low <= high:
        raise ValueError(f"a log-uniform range needs 0 < low <= high, got ({low}, {high})")
    return torch.exp(uniform(math.log(low), math.log(high), shape, generator, device, dtype))


def integers(low: int, high: int, shape: tuple[int, ...], generator=None, device=None) -> torch.Tensor:
    """Integers uniform on {low, ..., high} (both ends included)."""
    drawn = torch.randint(low, high + 1, shape, generator=generator, device=_draw_device(generator, device))
    return drawn.to(device) if device is not None else drawn


def bernoulli(probability: float, shape: tuple[int, ...], generator=None, device=None) -> torch.Tensor:
    """Booleans, True with the given probability."""
    return uniform(0.0, 1.0, shape, generator, device, torch.float64) < probability


def truncated_normal(
    mean: float, std: float, low: float, high: float, shape: tuple[int, ...], generator=None, device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Normal(mean, std) truncated to [low, high], by inverting the CDF (exact, one uniform per value)."""
    alpha = torch.special.ndtr(torch.tensor((low - mean) / std, dtype=torch.float64))
    beta = torch.special.ndtr(torch.tensor((high - mean) / std, dtype=torch.float64))
    u = uniform(0.0, 1.0, shape, generator, device, torch.float64)
    x = mean + std * torch.special.ndtri(alpha.to(u.device) + (beta - alpha).to(u.device) * u)
    return x.clamp(low, high).to(dtype)


def poisson(rate: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Poisson counts with the given (non-negative) rates, drawn on the generator's device."""
    if generator is None or generator.device == rate.device:
        return torch.poisson(rate, generator=generator)
    return torch.poisson(rate.to(generator.device), generator=generator).to(rate.device)


def per_pattern_scale(patterns: torch.Tensor, scale: torch.Tensor | None) -> torch.Tensor:
    """[B, 1] intensity scale that relative amplitudes refer to: `scale` if given, else each pattern's maximum."""
    if scale is None:
        return patterns.amax(-1, keepdim=True)
    return torch.as_tensor(scale, dtype=patterns.dtype, device=patterns.device).reshape(-1, 1)


def relative_coordinate(x, like: torch.Tensor) -> torch.Tensor:
    """(x - x_min) / (x_max - x_min) in [0, 1] for a grid x [n] (2theta or ToF), on like's device and dtype.

    x=None: a uniform grid (the point index), as for any CW pattern.
    """
    n = like.shape[-1]
    x = torch.arange(n, dtype=torch.float64) if x is None else torch.as_tensor(x, dtype=torch.float64).cpu()
    if x.ndim != 1 or len(x) != n:
        raise ValueError(f"grid of shape {tuple(x.shape)} does not match patterns with {n} points")
    span = x[-1] - x[0]
    rel = (x - x[0]) / span if span != 0 else torch.zeros_like(x)
    return rel.to(dtype=like.dtype, device=like.device)
