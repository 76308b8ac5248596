"""One configuration for all augmentations: a switch (None = off) and the distribution of each effect."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from powdersym.augment import vecsei
from powdersym.augment.sampling import Range

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from powdersym.simulate.instruments import Instrument


@dataclass(frozen=True)
class AugmentConfig:
    """Switches and parameter ranges of every augmentation; a field set to None switches its effect off.

    Ranges (low, high) are sampled uniformly per pattern unless noted. Intensities are relative to the pattern's
    maximum (after impurity mixing).

    Per crystal, applied inside the simulator (`sample_perturbation` -> `simulate(..., perturbation=...)`):
      zero_shift: 2theta degrees (CW) or µs (ToF), added to every peak position.
      displacement: sample displacement over goniometer radius s/R (CW Bragg-Brentano), d2theta = -2 s/R cos theta.
      march_dollase: r (1 = random powder) about an axis drawn uniformly from the 13 low-index directions.
      crystallite_size: Å, log-uniform; Scherrer (Lorentzian) broadening.
      microstrain: epsilon; Gaussian broadening 4 epsilon tan theta.
      resolution_jitter: extra Gaussian variance as a fraction of the instrument's.
      intensity_jitter: sigma of ln(factor) multiplying each reflection's intensity, a random function of d (so
        symmetry-equivalent reflections share it): the intensities a real structure, texture or extinction changes
        and random crystals do not predict, so that a network reads the lattice and absences from peak positions.
    Per pattern, applied by `augment` in this order:
      impurity_fraction: share of the integrated intensity carried by an impurity phase; a pattern gets one with
        impurity_probability (else it stays single-phase); impurity patterns come from the caller.
      chebyshev_order: (lowest, highest) order of a Chebyshev background, with chebyshev_level (its minimum) and
        chebyshev_amplitude (its maximum minus its minimum).
      vecsei_background: the numerator of Vecsei's threshold T (0.1 in the paper) of their step, polynomial and
        low-angle bump background.
      poisson_counts: expected counts at the pattern's maximum, log-uniform; Poisson counting noise.
      vecsei_noise: Vecsei's uniform noise, an independent U(low, high) value at every point.
      normalise: divide each pattern by its maximum at the end (as both papers' inputs are).
    """

    zero_shift: Range | None = None
    displacement: Range | None = None
    march_dollase: Range | None = None
    crystallite_size: Range | None = None
    microstrain: Range | None = None
    resolution_jitter: Range | None = None
    intensity_jitter: Range | None = None
    impurity_fraction: Range | None = None
    impurity_probability: float = 1.0
    chebyshev_order: tuple[int, int] | None = None
    chebyshev_amplitude: Range = (0.0, 0.2)
    chebyshev_level: Range = (0.0, 0.1)
    vecsei_background: float | None = None
    poisson_counts: Range | None = None
    vecsei_noise: Range | None = None
    normalise: bool = True

    def __post_init__(self) -> None:
        for name in RANGES:
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or not value[0] <= value[1]):
                raise ValueError(f"{name} must be a range (low, high) with low <= high, got {value!r}")
        positive = ("march_dollase", "crystallite_size", "poisson_counts")
        non_negative = ("microstrain", "resolution_jitter", "intensity_jitter", "chebyshev_order", "chebyshev_amplitude",
                        "chebyshev_level", "vecsei_noise")
        for name in positive + non_negative:
            value = getattr(self, name)
            if value is not None and (value[0] <= 0 if name in positive else value[0] < 0):
                raise ValueError(f"{name} must be {'positive' if name in positive else '>= 0'}, got {value!r}")
        fraction = self.impurity_fraction
        if fraction is not None and not (0 <= fraction[0] and fraction[1] < 1):
            raise ValueError(f"impurity_fraction must lie in [0, 1), got {self.impurity_fraction!r}")
        if not 0 <= self.impurity_probability <= 1:
            raise ValueError(f"impurity_probability must lie in [0, 1], got {self.impurity_probability!r}")
        if self.vecsei_background is not None and self.vecsei_background < 0:
            raise ValueError(f"vecsei_background (the numerator of T) must be >= 0, got {self.vecsei_background!r}")

    @classmethod
    def none(cls) -> "AugmentConfig":
        """No augmentation (max-normalisation only, which leaves simulate()'s output as it is)."""
        return cls()

    @classmethod
    def vecsei(cls) -> "AugmentConfig":
        """Only Vecsei et al.'s noise and background, with the parameters of their appendix."""
        return cls(vecsei_background=vecsei.THRESHOLD, vecsei_noise=vecsei.NOISE_RANGE)

    @classmethod
    def realistic(cls, instrument: "Instrument | str") -> "AugmentConfig":
        """Defaults for training on measured data from this kind of instrument (see `realistic_defaults`)."""
        return cls(**realistic_defaults(instrument))

    def replace(self, **changes: object) -> "AugmentConfig":
        return dataclasses.replace(self, **changes)

    def with_ranges(self, ranges: "Mapping[str, Sequence[float] | None]") -> "AugmentConfig":
        """This configuration with some effects' ranges replaced, e.g. {"crystallite_size": (1000, 10000)} for an
        instrument with sharper peaks; None switches an effect off. ValueError names an unknown or invalid range."""
        changes: dict[str, object] = {}
        for name, value in ranges.items():
            if name not in RANGES:
                raise ValueError(f"unknown augmentation range {name!r} (known: {', '.join(RANGES)})")
            if value is not None:
                if len(value) != 2:
                    raise ValueError(f"{name} needs two numbers (low, high), got {value!r}")
                kind = int if name == "chebyshev_order" else float
                value = (kind(value[0]), kind(value[1]))
            elif name in ("chebyshev_amplitude", "chebyshev_level"):
                raise ValueError(f"{name} cannot be switched off (switch chebyshev_order off instead)")
            changes[name] = value
        return self.replace(**changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def perturbs(self) -> bool:
        """Whether any per-crystal effect (applied inside the simulator) is on."""
        return any(getattr(self, name) is not None for name in PER_CRYSTAL)


PER_CRYSTAL = ("zero_shift", "displacement", "march_dollase", "crystallite_size", "microstrain", "resolution_jitter",
               "intensity_jitter")  # fmt: skip
# the fields that are ranges (low, high)
RANGES = PER_CRYSTAL + ("impurity_fraction", "chebyshev_order", "chebyshev_amplitude", "chebyshev_level", "poisson_counts",
                        "vecsei_noise")  # fmt: skip


def parse_ranges(items: "Sequence[str]") -> dict[str, tuple[float, float] | None]:
    """Command-line ranges NAME=LOW:HIGH (or NAME=VALUE, or NAME=off) -> {name: (low, high) or None}, for
    `AugmentConfig.with_ranges` (which checks the names)."""
    out: dict[str, tuple[float, float] | None] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValueError(f"expected NAME=LOW:HIGH or NAME=off, got {item!r}")
        if value.strip().lower() == "off":
            out[name] = None
            continue
        low, colon, high = value.partition(":")
        try:
            out[name] = (float(low), float(high if colon else low))
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not LOW:HIGH") from None
    return out


def realistic_defaults(instrument: "Instrument | str") -> dict:
    """Parameter ranges typical of measured patterns, by kind of instrument.

    Shared by all: microstrain 0-2e-3 (annealed to cold-worked powders), resolution jitter 0-0.3 (instrument
    widths differ from the nominal ones by up to ~15 %), an impurity phase carrying 1-20 % of the intensity in
    half of the patterns, a Chebyshev background of order 0-6 (the number of terms Rietveld refinements
    typically use) with a level of 0-10 % and a variation of 0-20 % of the maximum.
    - Laboratory X-ray, CW (Bragg-Brentano): zero shift +-0.05 deg (a typical goniometer zero error);
      displacement s/R +-5e-4 (+-0.12 mm on a 240 mm goniometer, a shift of up to 0.057 deg); March-Dollase
      r 0.7-1.3 (flat pressed plates texture); crystallites 200-5000 Å (Scherrer widths from 0.4-0.6 deg down to
      0.02 deg, below the instrument's); Vecsei's background (its low-angle bump is the air scatter near the
      direct beam); 500-1e5 counts at the maximum.
    - Neutron CW (Debye-Scherrer, a vanadium can): zero shift +-0.05 deg; no displacement (the Bragg-Brentano
      formula does not apply; a small off-centring is a zero shift to first order); r 0.9-1.1 (loosely filled
      cylinders texture little); crystallites 500-1e4 Å (broader peaks are rare against the ~0.25 deg
      resolution); 500-5e4 counts.
    - Neutron ToF: zero shift +-5 µs (a residual calibration error, ~2e-4 of t at d = 1 Å on POWGEN);
      no displacement (no effect in ToF); r 0.9-1.1; crystallites 500-1e4 Å; 500-5e4 counts.
    """
    if isinstance(instrument, str):
        from powdersym.simulate.instruments import preset

        instrument = preset(instrument)
    common = dict(
        microstrain=(0.0, 2e-3), resolution_jitter=(0.0, 0.3), impurity_fraction=(0.01, 0.20),
        impurity_probability=0.5, chebyshev_order=(0, 6), chebyshev_level=(0.0, 0.1), chebyshev_amplitude=(0.0, 0.2),
    )
    if instrument.geometry == "tof":
        return common | dict(zero_shift=(-5.0, 5.0), march_dollase=(0.9, 1.1), crystallite_size=(500.0, 1e4),
                             poisson_counts=(500.0, 5e4))
    if instrument.radiation == "xray":
        return common | dict(zero_shift=(-0.05, 0.05), displacement=(-5e-4, 5e-4), march_dollase=(0.7, 1.3),
                             crystallite_size=(200.0, 5000.0), vecsei_background=vecsei.THRESHOLD,
                             poisson_counts=(500.0, 1e5))
    return common | dict(zero_shift=(-0.05, 0.05), march_dollase=(0.9, 1.1), crystallite_size=(500.0, 1e4),
                         poisson_counts=(500.0, 5e4))
