"""A measured powder pattern with explicit units, and the one error type the readers raise.

Units of `MeasuredPattern.x`: 'two_theta' (deg, with a wavelength in Å), 'tof' (µs, with DIFC/DIFA/ZERO:
t = ZERO + DIFC d + DIFA d^2, GSAS's convention), 'd' (Å) or 'q' (1/Å, Q = 2 pi / d). Every pattern can say
where its points lie in d-spacing, which is how preprocessing maps it onto any instrument's grid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from powdersym.simulate.instruments import Instrument, _solve_d

UNITS = ("two_theta", "tof", "d", "q")

_MAX_MESSAGE = 400


class PatternFormatError(ValueError):
    """A pattern or instrument file that cannot be read as asked; the message is one line naming the file."""

    def __init__(self, problem: str, source: str | Path | None = None) -> None:
        text = f"{source}: {problem}" if source else problem
        text = re.sub(r"\s+", " ", text).strip()
        if len(text) > _MAX_MESSAGE:
            text = text[: _MAX_MESSAGE - 3] + "..."
        super().__init__(text)
        self.source = str(source) if source else None
        self.problem = problem


@dataclass
class MeasuredPattern:
    """One measured histogram: x strictly increasing in `unit`, intensities y, optional standard errors sigma.

    two_theta patterns carry the wavelength (and, for a K-alpha doublet, `wavelength2` and `ka2_ratio` =
    I(K-alpha2)/I(K-alpha1)); `zero` is the 2theta zero shift (deg, true 2theta = x - zero) or the ToF ZERO (µs).
    """

    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray | None
    unit: str
    wavelength: float | None = None
    wavelength2: float | None = None
    ka2_ratio: float | None = None
    difc: float | None = None
    difa: float | None = None
    zero: float | None = None
    source: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, dtype=np.float64)
        self.y = np.asarray(self.y, dtype=np.float64)
        if self.sigma is not None:
            self.sigma = np.asarray(self.sigma, dtype=np.float64)
        validate(self)

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        calibration = (
            f"wavelength={self.wavelength}" if self.unit == "two_theta" else
            f"difc={self.difc}, difa={self.difa}, zero={self.zero}" if self.unit == "tof" else ""
        )
        return (
            f"MeasuredPattern({len(self)} points, {self.unit} {self.x[0]:g}..{self.x[-1]:g}, {calibration}, "
            f"source={self.source!r})"
        )

    def d_spacing(self) -> np.ndarray:
        """d (Å) of every point; raises PatternFormatError when the unit's calibration is missing."""
        if self.unit == "d":
            return self.x.copy()
        if self.unit == "q":
            return 2 * math.pi / self.x
        if self.unit == "two_theta":
            if not self.wavelength:
                raise PatternFormatError(
                    "2theta pattern without a wavelength: pass wavelength= or an instrument parameter file",
                    self.source,
                )
            theta = np.radians(self.x - (self.zero or 0.0)) / 2
            with np.errstate(divide="ignore"):
                return np.where(theta > 0, self.wavelength / (2 * np.sin(np.clip(theta, 1e-12, None))), np.inf)
        if not self.difc:
            raise PatternFormatError(
                "time-of-flight pattern without DIFC: pass an instrument parameter file (.prm/.instprm) or difc=",
                self.source,
            )
        return tof_to_d(self.x, self.difc, self.difa or 0.0, self.zero or 0.0, self.source)

    def to_dict(self) -> dict:
        """Calibration and provenance (no arrays), for JSON reports."""
        keys = ("unit", "wavelength", "wavelength2", "ka2_ratio", "difc", "difa", "zero", "source")
        out = {key: getattr(self, key) for key in keys}
        out.update(n_points=len(self), x_min=float(self.x[0]), x_max=float(self.x[-1]))
        return out


def tof_to_d(t: np.ndarray, difc: float, difa: float, zero: float, source: str = "") -> np.ndarray:
    """d from t = ZERO + DIFC d + DIFA d^2, the root used by the simulator (`instruments._solve_d`)."""
    c = np.asarray(t, dtype=np.float64) - zero
    if np.any(difc**2 + 4 * difa * c < 0):
        raise PatternFormatError(
            f"DIFC={difc:g}, DIFA={difa:g}, ZERO={zero:g} give no d for times up to {float(np.max(t)):g} µs", source
        )
    bank = Instrument("measured", "neutron", "tof", 1.0, 2.0, 0.1, difc=difc, difa=difa, zero=zero)
    return _solve_d(torch.from_numpy(np.asarray(t, dtype=np.float64)), bank).numpy()


def validate(pattern: MeasuredPattern) -> None:
    """Raise PatternFormatError unless the arrays are finite, the same length and x strictly increasing."""
    src = pattern.source
    if pattern.unit not in UNITS:
        raise PatternFormatError(f"unknown unit {pattern.unit!r} (expected one of {', '.join(UNITS)})", src)
    x, y, sigma = pattern.x, pattern.y, pattern.sigma
    if x.ndim != 1 or y.shape != x.shape or (sigma is not None and sigma.shape != x.shape):
        raise PatternFormatError("x, y and sigma must be 1-D arrays of one length", src)
    if len(x) < 2:
        raise PatternFormatError(f"only {len(x)} data point(s); a pattern needs at least 2", src)
    for name, values in (("x", x), ("intensity", y), ("sigma", sigma)):
        if values is not None and not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise PatternFormatError(f"{name} is not finite (NaN or inf) at point {bad + 1}", src)
    steps = np.diff(x)
    if np.any(steps <= 0):
        bad = int(np.flatnonzero(steps <= 0)[0])
        raise PatternFormatError(
            f"x is not strictly increasing: point {bad + 2} ({x[bad + 1]:g}) follows {x[bad]:g}", src
        )
    if x[0] <= 0:
        raise PatternFormatError(f"x must be positive for unit {pattern.unit!r}, first value is {x[0]:g}", src)
    if pattern.unit == "two_theta" and x[-1] >= 180:
        raise PatternFormatError(f"2theta must lie below 180 deg, last value is {x[-1]:g}", src)
    if sigma is not None and np.any(sigma < 0):
        raise PatternFormatError("negative standard error (sigma)", src)
    for name in ("wavelength", "wavelength2", "difc"):
        value = getattr(pattern, name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise PatternFormatError(f"{name} must be a positive number, got {value!r}", src)
    for name in ("difa", "zero", "ka2_ratio"):
        value = getattr(pattern, name)
        if value is not None and not math.isfinite(value):
            raise PatternFormatError(f"{name} must be finite, got {value!r}", src)
