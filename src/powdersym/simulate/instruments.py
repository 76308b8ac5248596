"""Instruments: the measurement grid, the geometry (Lorentz factor, peak positions) and the peak profile.

Constant-wavelength (CW) instruments measure on a uniform 2theta grid (degrees); time-of-flight (ToF) banks
measure on a logarithmic time grid (µs, constant Delta t / t, GSAS 'SLOG' binning) with
t = ZERO + DIFC d + DIFA d^2. Profiles are rendered in the coordinate u in which the grid is uniform:
u = 2theta for CW, u = ln t for ToF.
CW profile (Caglioti/TCH, FullProf's and cryspy's convention): the Gaussian FWHM^2 = U tan^2 theta + V tan theta
+ W in deg^2, Lorentzian FWHM = X / cos theta + Y tan theta in deg. (GSAS-II's .instprm U, V, W are Gaussian
variances in centideg^2 and X, Y are in centideg: U_here = 8 ln 2 U_GSAS-II / 10^4, X_here = X_GSAS-II / 100.)
ToF profile: GSAS-II's names and units (alpha, beta-0, beta-1, beta-q, sig-0, sig-1, sig-2 in µs^2, sig-q).
ToF calibration: t = ZERO + DIFC d + DIFA d^2; GSAS-II's DIFB / d term is not modelled.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from powdersym.simulate import profiles


class UnknownInstrumentError(ValueError):
    """An instrument preset name that does not exist, or an override for a field that does not exist."""


@dataclass(frozen=True)
class Instrument:
    """A diffractometer: radiation, geometry, grid and resolution. Use `preset(name, **overrides)`."""

    name: str
    radiation: str  # "xray" | "neutron"
    geometry: str  # "cw" | "tof"
    x_min: float  # CW: 2theta (deg); ToF: time-of-flight (µs)
    x_max: float
    x_step: float  # CW: 2theta step (deg); ToF: relative step Delta t / t
    # constant wavelength
    wavelengths: tuple[float, ...] = (1.5403,)  # Å; several for a doublet (Cu K-alpha1, K-alpha2)
    wavelength_weights: tuple[float, ...] = (1.0,)
    monochromator_two_theta: float = 0.0  # deg; X-ray polarisation by a monochromator crystal (0: none)
    U: float = 0.0
    V: float = 0.0
    W: float = 0.01
    X: float = 0.0
    Y: float = 0.0
    zero: float = 0.0  # CW: 2theta zero shift (deg); ToF: ZERO (µs)
    # time of flight
    difc: float = 0.0  # µs/Å
    difa: float = 0.0  # µs/Å^2
    bank_two_theta: float = 90.0  # deg
    alpha: float = 1.0
    beta_0: float = 0.05
    beta_1: float = 0.0
    beta_q: float = 0.0
    sig_0: float = 0.0
    sig_1: float = 0.0
    sig_2: float = 100.0
    sig_q: float = 0.0
    # how far profiles reach, in FWHM (GSAS-II cuts pseudo-Voigts at a similar fraction of the peak)
    profile_cutoff: float = 12.0

    def __post_init__(self) -> None:
        if self.radiation not in ("xray", "neutron"):
            raise ValueError(f"unknown radiation {self.radiation!r} (expected 'xray' or 'neutron')")
        if self.geometry not in ("cw", "tof"):
            raise ValueError(f"unknown geometry {self.geometry!r} (expected 'cw' or 'tof')")
        if not (self.x_max > self.x_min and self.x_step > 0):
            raise ValueError(f"empty grid: x from {self.x_min} to {self.x_max} in steps of {self.x_step}")
        if self.geometry == "cw":
            if not (0 < self.x_min and self.x_max < 180):
                raise ValueError("a 2theta grid must lie inside (0, 180) degrees")
            if len(self.wavelengths) != len(self.wavelength_weights) or min(self.wavelengths) <= 0:
                raise ValueError("wavelengths must be positive and have one weight each")
        elif self.difc <= 0 or self.x_min <= 0:
            raise ValueError("a time-of-flight bank needs DIFC > 0 and positive times")

    @classmethod
    def from_dict(cls, fields: dict) -> "Instrument":
        """An instrument from `dataclasses.asdict` output read back from JSON (lists become tuples again)."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})

    # ---- grid ---------------------------------------------------------------------------------------------
    @property
    def n_points(self) -> int:
        if self.geometry == "cw":
            return int(round((self.x_max - self.x_min) / self.x_step)) + 1
        return int(math.floor(math.log(self.x_max / self.x_min) / math.log1p(self.x_step))) + 1

    @property
    def u_min(self) -> float:
        return self.x_min if self.geometry == "cw" else math.log(self.x_min)

    @property
    def u_step(self) -> float:
        return self.x_step if self.geometry == "cw" else math.log1p(self.x_step)

    def grid(self) -> np.ndarray:
        """The x values of the pattern: 2theta (deg) or time-of-flight (µs)."""
        u = self.u_min + self.u_step * np.arange(self.n_points)
        return u if self.geometry == "cw" else np.exp(u)

    @property
    def x_label(self) -> str:
        return "2theta (deg)" if self.geometry == "cw" else "time of flight (µs)"

    def to_u(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.geometry == "cw" else torch.log(x)

    def from_u(self, u: torch.Tensor) -> torch.Tensor:
        return u if self.geometry == "cw" else torch.exp(u)

    # ---- geometry -----------------------------------------------------------------------------------------
    def d_spacing_range(self, margin_u: float) -> tuple[float, float]:
        """(d_min, d_max) of reflections whose peaks fall within the grid extended by margin_u."""
        u_lo, u_hi = self.u_min - margin_u, self.u_min + self.u_step * (self.n_points - 1) + margin_u
        if self.geometry == "cw":
            theta_hi = math.radians(min(u_hi - self.zero, 179.9) / 2)
            theta_lo = math.radians(max(u_lo - self.zero, 1e-3) / 2)
            return min(self.wavelengths) / (2 * math.sin(theta_hi)), max(self.wavelengths) / (2 * math.sin(theta_lo))
        return self.d_from_tof(math.exp(u_lo)), self.d_from_tof(math.exp(u_hi))

    def d_from_tof(self, t: float) -> float:
        """Inverse of t = ZERO + DIFC d + DIFA d^2 (the root that tends to (t - ZERO)/DIFC)."""
        c = t - self.zero
        if abs(self.difa) < 1e-12:
            return max(c / self.difc, 1e-3)
        disc = self.difc**2 + 4 * self.difa * c
        return max(2 * c / (self.difc + math.sqrt(max(disc, 0.0))), 1e-3)

    def peak_positions(self, d: torch.Tensor) -> torch.Tensor:
        """Peak positions in x for d-spacings [...]: [..., n_wavelengths] for CW, [..., 1] for ToF.

        Reflections a wavelength cannot reach (lambda > 2d) get NaN.
        """
        if self.geometry == "tof":
            return (self.zero + self.difc * d + self.difa * d**2)[..., None]
        lam = torch.as_tensor(self.wavelengths, dtype=d.dtype, device=d.device)
        sin_theta = lam / (2 * d[..., None])
        two_theta = 2 * torch.rad2deg(torch.asin(sin_theta.clamp(max=1.0)))
        return torch.where(sin_theta <= 1.0, two_theta + self.zero, torch.nan)

    def line_weights(self, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """Relative intensity of each wavelength line [n_lines]."""
        if self.geometry == "tof":
            return torch.ones(1, dtype=dtype, device=device)
        return torch.as_tensor(self.wavelength_weights, dtype=dtype, device=device)

    def lorentz_polarisation(self, d: torch.Tensor, position: torch.Tensor, polarised: bool) -> torch.Tensor:
        """Lorentz(-polarisation) factor at each peak.

        CW: 1 / (sin^2 theta cos theta) (Debye-Scherrer/Bragg-Brentano powder Lorentz factor), times
        (1 + cos^2 2theta cos^2 2theta_M) / (1 + cos^2 2theta_M) for X-rays. ToF: d^4 (GSAS), for a
        vanadium-normalised spectrum; the bank's constant sin theta is dropped.
        """
        if self.geometry == "tof":
            return (d**4)[..., None].expand_as(position)
        theta = torch.deg2rad(position - self.zero) / 2
        factor = 1.0 / (torch.sin(theta) ** 2 * torch.cos(theta))
        if polarised:
            cos2m = math.cos(math.radians(self.monochromator_two_theta)) ** 2
            factor = factor * (1 + torch.cos(2 * theta) ** 2 * cos2m) / (1 + cos2m)
        return factor

    # ---- profile ------------------------------------------------------------------------------------------
    def _cw_widths(self, two_theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = torch.deg2rad(two_theta - self.zero) / 2
        tan, cos = torch.tan(theta), torch.cos(theta)
        gauss = torch.sqrt((self.U * tan**2 + self.V * tan + self.W).clamp(min=1e-8))
        lorentz = (self.X / cos + self.Y * tan).clamp(min=0.0)
        return profiles.tch_fwhm_eta(gauss, lorentz)

    def _tof_parameters(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = (t - self.zero) / self.difc if abs(self.difa) < 1e-12 else _solve_d(t, self)
        alpha = self.alpha / d
        beta = self.beta_0 + self.beta_1 / d**4 + self.beta_q / d**2
        sigma2 = (self.sig_0 + self.sig_1 * d**2 + self.sig_2 * d**4 + self.sig_q * d).clamp(min=1e-4)
        return alpha, beta, sigma2

    def fwhm(self, x: torch.Tensor) -> torch.Tensor:
        """Full width at half maximum of a peak centred at x (in x units)."""
        if self.geometry == "cw":
            return self._cw_widths(x)[0]
        return profiles.back_to_back_fwhm(*self._tof_parameters(x))

    def reach(self, x: torch.Tensor) -> torch.Tensor:
        """How far (x units) a peak at x extends: profile_cutoff FWHMs, further for Lorentzian tails so that
        at most 1e-3 of a peak's area is cut off (eta (1 - 2/pi atan(2c)) <= 1e-3)."""
        if self.geometry == "tof":
            return self.profile_cutoff * self.fwhm(x)
        fwhm, eta = self._cw_widths(x)
        lorentz_reach = torch.tan(torch.pi / 2 * (1 - 1e-3 / eta.clamp(min=1e-3))) / 2
        return torch.maximum(lorentz_reach.clamp(max=200.0), torch.full_like(eta, self.profile_cutoff)) * fwhm

    def shape_parameters(self, x: torch.Tensor) -> torch.Tensor:
        """[..., k] quantities whose change along the grid changes the peak shape (for render node spacing)."""
        if self.geometry == "cw":
            fwhm, eta = self._cw_widths(x)
            return torch.stack([torch.log(fwhm), eta], -1)
        alpha, beta, sigma2 = self._tof_parameters(x)
        return torch.stack([torch.log(alpha * x), torch.log(beta * x), 0.5 * torch.log(sigma2) - torch.log(x)], -1)

    def profile(self, center: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Peak density at offsets delta [M, K] (x units) from centres [M]; unit area in x."""
        if self.geometry == "cw":
            fwhm, eta = self._cw_widths(center)
            return profiles.pseudo_voigt(delta, fwhm[:, None], eta[:, None])
        alpha, beta, sigma2 = self._tof_parameters(center)
        return profiles.back_to_back_exponential_gauss(delta, alpha[:, None], beta[:, None], sigma2[:, None])


def _solve_d(t: torch.Tensor, inst: Instrument) -> torch.Tensor:
    c = t - inst.zero
    return 2 * c / (inst.difc + torch.sqrt((inst.difc**2 + 4 * inst.difa * c).clamp(min=0.0)))


# Cu K-alpha1 / K-alpha2 (Hölzer et al. 1997), intensity ratio 1 : 0.5.
CU_KA = ((1.540593, 1.544414), (1.0, 0.5))

PRESETS: dict[str, Instrument] = {
    # The main paper's grid (3041 points). FWHM 0.25 deg at low angle rising to 1.5 deg at 150 deg, as in the
    # paper's sample patterns; Gaussian, as for neutron CW diffractometers (BT-1, D1A, HRPT).
    "neutron-cw": Instrument(
        "neutron-cw", "neutron", "cw", 3.0, 155.0, 0.05, wavelengths=(1.5403,), U=0.17, V=-0.05, W=0.06
    ),
    # Laboratory Bragg-Brentano Cu K-alpha1/2, 5-90 deg step 0.01 (the grid of Vecsei et al. and the RRUFF set);
    # Gaussian widths as in the shared pymatgen-simulated set plus a small Lorentzian (size) term.
    "xray-cuka": Instrument(
        "xray-cuka", "xray", "cw", 5.0, 90.0, 0.01, wavelengths=CU_KA[0], wavelength_weights=CU_KA[1],
        U=0.01, V=-0.005, W=0.004, X=0.02, Y=0.0,
    ),
    # A 90-degree bank of POWGEN (SNS): calibration and profile from POWGEN_1066.instprm of the GSAS-II
    # 'TOF-CW Joint Refinement' tutorial (its DIFB = 2.62 is dropped: 5 µs at d = 0.5 Å, 2.6 µs at 1 Å);
    # d = 0.5-4 Å on Delta t / t = 4e-4 log binning.
    "neutron-tof": Instrument(
        "neutron-tof", "neutron", "tof", 22600.2479 * 0.5, 22600.2479 * 4.0, 4e-4,
        difc=22600.2479, difa=-0.9009, zero=-8.5176, bank_two_theta=90.0,
        alpha=0.13250, beta_0=0.11160, beta_1=0.0027273, sig_0=56.032, sig_1=-167.42, sig_2=281.39, sig_q=-3.7297,
    ),
}


def preset(name: str | Instrument, **overrides: object) -> Instrument:
    """A named instrument with any field overridden, e.g. preset('neutron-cw', wavelengths=(2.4,))."""
    if isinstance(name, Instrument):
        base = name
    elif name in PRESETS:
        base = PRESETS[name]
    else:
        raise UnknownInstrumentError(f"unknown instrument preset {name!r} (known: {', '.join(PRESETS)})")
    fields = {f.name for f in dataclasses.fields(Instrument)}
    unknown = set(overrides) - fields
    if unknown:
        raise UnknownInstrumentError(f"unknown instrument parameter(s) {', '.join(sorted(unknown))}")
    return dataclasses.replace(base, **overrides) if overrides else base
