"""Per-crystal sample and instrument effects, drawn here and applied inside the simulator."""

from __future__ import annotations

import math
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
# The intensity jitter's random function of 1/d: JITTER_WAVES sines with frequencies (Å) log-uniform in this range;
# at 200-2000 Å, reflections 0.005 Å^-1 apart in 1/d (0.5° 2theta at 60°, Cu K-alpha) get nearly independent factors.
JITTER_WAVES = 6
JITTER_FREQUENCIES = (200.0, 2000.0)


def sample_perturbation(
    batch_size: int,
    instrument: "Instrument | str",
    config: AugmentConfig,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> "Perturbation":
    """Per-crystal effects [B] drawn from config's ranges, for `simulate(..., perturbation=...)`.

    Uniform draws, except crystallite sizes (log-uniform: every decade equally likely), the March-Dollase
    axis (uniform among LOW_INDEX_AXES) and the intensity jitter's JITTER_WAVES frequencies (log-uniform in
    JITTER_FREQUENCIES, Å) and phases (drawn last, so streams without it are unchanged). Fields whose range is
    None stay None (off); the displacement is left off for ToF instruments, where it has no effect.
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
    zero_shift, microstrain, resolution = uniform(config.zero_shift), uniform(config.microstrain), uniform(config.resolution_jitter)
    jitter = frequency = phase = None
    if config.intensity_jitter is not None:  # after every other draw: streams without it replay unchanged
        jitter = uniform(config.intensity_jitter)
        frequency = sampling.log_uniform(*JITTER_FREQUENCIES, (batch_size, JITTER_WAVES), **draw)
        phase = sampling.uniform(0.0, 2 * math.pi, (batch_size, JITTER_WAVES), **draw)
    return Perturbation(
        zero_shift=zero_shift,
        displacement=displacement,
        preferred_axis=axis,
        march_dollase=ratio,
        crystallite_size=size,
        microstrain=microstrain,
        resolution_jitter=resolution,
        intensity_jitter=jitter,
        jitter_frequency=frequency,
        jitter_phase=phase,
    )
