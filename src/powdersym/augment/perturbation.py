"""Per-crystal sample and instrument effects, drawn here and applied inside the simulator."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from powdersym.augment import sampling
from powdersym.augment.config import AugmentConfig

if TYPE_CHECKING:
    from powdersym.simulate.instruments import Instrument
    from powdersym.simulate.perturb import Perturbation

# The 13 distinct directions [hkl] with |h|, |k|, |l| <= 1 (up to sign, which March-Dollase ignores):
# the likely plate normals and needle axes of a preferred orientation.
LOW_INDEX_AXES = (
    (1, 0, 0), (0, 1, 0), (0, 0, 1),
    (1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1),
    (1, 1, 1), (-1, 1, 1), (1, -1, 1), (1, 1, -1),
)


def sample_perturbation(
    batch_size: int,
    instrument: "Instrument | str",
    config: AugmentConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> "Perturbation":
    """Per-crystal effects [B] drawn from config's ranges, for `simulate(..., perturbation=...)`.

    Uniform draws, except crystallite sizes (log-uniform: every decade equally likely) and the March-Dollase
    axis (uniform among LOW_INDEX_AXES). Fields whose range is None stay None (off); the displacement is left
    off for ToF instruments, where it has no effect.
    """
    from powdersym.simulate.perturb import Perturbation

    if isinstance(instrument, str):
        from powdersym.simulate.instruments import preset

        instrument = preset(instrument)
    b = (batch_size,)
    draw = dict(generator=generator, device=device, dtype=dtype)

    def uniform(value_range):
        return None if value_range is None else sampling.uniform(*value_range, b, **draw)

    axis = ratio = None
    if config.march_dollase is not None:
        axes = torch.tensor(LOW_INDEX_AXES, dtype=dtype, device=device)
        axis = axes[sampling.integers(0, len(LOW_INDEX_AXES) - 1, b, generator, device).to(axes.device)]
        ratio = uniform(config.march_dollase)
    size = None
    if config.crystallite_size is not None:
        size = sampling.log_uniform(*config.crystallite_size, b, **draw)
    displacement = uniform(config.displacement) if instrument.geometry == "cw" else None
    return Perturbation(
        zero_shift=uniform(config.zero_shift),
        displacement=displacement,
        preferred_axis=axis,
        march_dollase=ratio,
        crystallite_size=size,
        microstrain=uniform(config.microstrain),
        resolution_jitter=uniform(config.resolution_jitter),
    )
