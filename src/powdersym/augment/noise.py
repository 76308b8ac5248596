"""Counting statistics: Poisson noise at a chosen count level."""

from __future__ import annotations

import torch

from powdersym.augment import sampling


def poisson_noise(
    patterns: torch.Tensor, counts: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Counting noise: each pattern [B, n] is scaled so that its maximum is `counts` expected counts (a number or
    one per pattern [B]), every point is replaced by a Poisson draw, and the result is scaled back.

    So the output keeps the input's units, its mean is the input and its variance is input * max / counts
    (= input / counts for max-normalised patterns). Negative values (none in a simulated pattern) count as 0;
    an all-zero pattern stays zero.
    """
    counts = torch.as_tensor(counts, dtype=patterns.dtype, device=patterns.device).reshape(-1, 1)
    if bool((counts <= 0).any()):
        raise ValueError("counts at the maximum must be positive")
    peak = patterns.amax(-1, keepdim=True)
    peak = torch.where(peak > 0, peak, 0.0)
    relative = patterns.clamp(min=0) / torch.where(peak > 0, peak, 1.0)
    return sampling.poisson(relative * counts, generator) / counts * peak


def sample_counts(
    batch_size: int, count_range: sampling.Range, generator=None, device=None, dtype=torch.float32
) -> torch.Tensor:
    """Counts at the maximum [B], log-uniform in count_range (each decade of exposure equally likely)."""
    return sampling.log_uniform(*count_range, (batch_size,), generator, device, dtype)
