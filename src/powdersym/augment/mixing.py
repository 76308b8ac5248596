"""Impurity phases: a second crystal's pattern mixed into the main one (the future work Lolla et al. name)."""

from __future__ import annotations

import torch

from powdersym.augment import sampling


def integrated_intensity(patterns: torch.Tensor, x=None) -> torch.Tensor:
    """Area under each pattern [B] over the grid x [n] (trapezoidal; None = unit spacing)."""
    if x is None:
        return torch.trapezoid(patterns, dim=-1)
    grid = torch.as_tensor(x, dtype=patterns.dtype).to(patterns.device)
    return torch.trapezoid(patterns, grid, dim=-1)


def mix_impurity(
    patterns: torch.Tensor, impurity: torch.Tensor, fraction: float | torch.Tensor, x=None
) -> torch.Tensor:
    """patterns [B, n] with impurity patterns [B, n] added so that the impurity carries `fraction` (a number or
    one per pattern [B], in [0, 1)) of the mixture's integrated intensity:

        mixed = main + w impurity,  w = fraction / (1 - fraction) * A_main / A_impurity,
        so that  w A_impurity / (A_main + w A_impurity) = fraction,

    with A the area under a pattern over the grid x (None = unit spacing). The main pattern is kept as it is.
    The fraction is one of integrated (not peak) intensities, the quantity a phase's scale factor sets in a
    Rietveld refinement; it equals the weight fraction only for phases of equal scattering power per unit mass
    and equal absorption (Hill & Howard 1987). Where the impurity's area is 0 nothing is added.
    """
    if impurity.shape != patterns.shape:
        raise ValueError(f"impurity patterns {tuple(impurity.shape)} must match the patterns {tuple(patterns.shape)}")
    fraction = torch.as_tensor(fraction, dtype=patterns.dtype, device=patterns.device).reshape(-1)
    if bool(((fraction < 0) | (fraction >= 1)).any()):
        raise ValueError("impurity fractions must lie in [0, 1)")
    area_main = integrated_intensity(patterns, x)
    area_impurity = integrated_intensity(impurity, x)
    # impurity / A_impurity first: stays finite however small the impurity's area
    unit_impurity = impurity / torch.where(area_impurity > 0, area_impurity, 1.0)[:, None]
    weight = torch.where(area_impurity > 0, fraction / (1 - fraction) * area_main, 0.0)
    return patterns + weight[:, None] * unit_impurity


def sample_fractions(
    batch_size: int, fraction_range: sampling.Range, probability: float = 1.0, generator=None, device=None,
    dtype=torch.float32,
) -> torch.Tensor:
    """Impurity fractions [B]: U(fraction_range) with the given probability, else 0 (a single-phase sample)."""
    fraction = sampling.uniform(*fraction_range, (batch_size,), generator, device, dtype)
    present = sampling.bernoulli(probability, (batch_size,), generator, device)
    return torch.where(present, fraction, torch.zeros_like(fraction))
