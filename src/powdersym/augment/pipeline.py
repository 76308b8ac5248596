"""The pattern-level augmentations in one call, in the order in which a measurement produces them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from powdersym.augment import sampling
from powdersym.augment.background import chebyshev_background
from powdersym.augment.config import AugmentConfig
from powdersym.augment.mixing import mix_impurity, sample_fractions
from powdersym.augment.noise import poisson_noise, sample_counts
from powdersym.augment.vecsei import vecsei_background, vecsei_noise

if TYPE_CHECKING:
    from powdersym.simulate.instruments import Instrument


def max_normalise(patterns: torch.Tensor) -> torch.Tensor:
    """Each pattern [..., n] divided by its maximum (Lolla et al. section 2.2; Vecsei et al. section II).
    An all-zero pattern stays zero."""
    peak = patterns.amax(-1, keepdim=True)
    return patterns / torch.where(peak > 0, peak, 1.0)


def augment(
    patterns: torch.Tensor,
    instrument: "Instrument | str",
    config: AugmentConfig,
    generator: torch.Generator | None = None,
    impurity: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pattern-level augmentations of simulated patterns [B, n] on the instrument's grid, each pattern its own draw.

    Order (each step only when config switches it on):
      1. impurity: mix in the impurity patterns [B, n] (simulated by the caller from other crystals) at a sampled
         share of the integrated intensity (the sample is a mixture before it is measured);
      2. backgrounds, Chebyshev then Vecsei's, relative to the maximum of the (mixed) pattern;
      3. Poisson counting noise, on peaks and background together, at a sampled count level at the maximum;
      4. Vecsei's uniform noise, relative to the same maximum as the backgrounds (Vecsei eq. 18 adds it last);
      5. max-normalisation.
    The per-crystal effects of the config (shifts, preferred orientation, broadening) are not applied here: draw
    them with `sample_perturbation` and pass them to `simulate`. Every step keeps patterns >= 0.

    generator: a torch.Generator (CPU, or on the patterns' device); None uses torch's global RNG.
    """
    if patterns.ndim != 2:
        raise ValueError(f"patterns must be [batch, points], got shape {tuple(patterns.shape)}")
    if isinstance(instrument, str):
        from powdersym.simulate.instruments import preset

        instrument = preset(instrument)
    if patterns.shape[1] != instrument.n_points:
        raise ValueError(f"patterns have {patterns.shape[1]} points, {instrument.name} has {instrument.n_points}")
    x = instrument.grid()
    batch, device, dtype = patterns.shape[0], patterns.device, patterns.dtype

    if config.impurity_fraction is not None:
        if impurity is None:
            raise ValueError(
                "config.impurity_fraction is set: pass impurity patterns, or switch it off with "
                "config.replace(impurity_fraction=None)"
            )
        fraction = sample_fractions(batch, config.impurity_fraction, config.impurity_probability, generator, device,
                                    dtype)
        patterns = mix_impurity(patterns, impurity.to(device=device, dtype=dtype), fraction, x)

    scale = sampling.per_pattern_scale(patterns, None)
    if config.chebyshev_order is not None:
        patterns = chebyshev_background(patterns, x, generator, config.chebyshev_order, config.chebyshev_amplitude,
                                        config.chebyshev_level, scale)
    if config.vecsei_background is not None:
        patterns = vecsei_background(patterns, x, generator, config.vecsei_background, scale)
    if config.poisson_counts is not None:
        patterns = poisson_noise(patterns, sample_counts(batch, config.poisson_counts, generator, device, dtype),
                                 generator)
    if config.vecsei_noise is not None:
        patterns = vecsei_noise(patterns, generator, *config.vecsei_noise, scale=scale)
    return max_normalise(patterns) if config.normalise else patterns
