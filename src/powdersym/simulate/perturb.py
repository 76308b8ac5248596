"""Per-crystal sample and instrument effects applied inside the simulator (augmentation's physical half).

Each field is a tensor [B] (or [B, 3]) or None (off). They act where the physics acts: on peak positions
(zero shift, sample displacement), on reflection intensities (March-Dollase preferred orientation) and on peak
widths (crystallite size, microstrain, resolution jitter: extra broadening convolved with the instrument
profile, per crystal, in Fourier space at each profile node of the renderer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from powdersym.simulate.instruments import Instrument

SCHERRER_K = 0.9
_FWHM2_TO_VAR = 1.0 / (8.0 * math.log(2.0))


@dataclass
class Perturbation:
    """Per-crystal effects; tensors [B] unless noted, None = off.

    zero_shift: added to peak positions (2theta degrees for CW, µs for ToF).
    displacement: sample displacement over goniometer radius s/R (CW Bragg-Brentano): d2theta = -2 (s/R) cos(theta).
    preferred_axis [B, 3], march_dollase: March-Dollase preferred orientation along the reciprocal-lattice
        direction preferred_axis (hkl) with parameter r (1 = random powder; < 1 platelets, > 1 needles):
        P(alpha) = (r^2 cos^2 alpha + sin^2 alpha / r)^(-3/2) (Dollase 1986).
    crystallite_size: Å; Scherrer Lorentzian FWHM K lambda / (D cos theta) (CW) or K d / D relative (ToF).
    microstrain: epsilon; Gaussian FWHM 4 epsilon tan(theta) (CW) or Delta d / d = 2 epsilon (ToF).
    resolution_jitter: >= 0; extra Gaussian variance as a fraction of the instrument's Gaussian variance.
    intensity_jitter: sigma >= 0 of ln(factor) per reflection, with jitter_frequency and jitter_phase [B, K]: the
        factor is exp(sigma sqrt(2/K) sum_k sin(2 pi f_k / d + phase_k)), a function of d alone, so
        symmetry-equivalent reflections (same d) share it and peaks further apart than ~1/f_max in 1/d do not.
    """

    zero_shift: torch.Tensor | None = None
    displacement: torch.Tensor | None = None
    preferred_axis: torch.Tensor | None = None
    march_dollase: torch.Tensor | None = None
    crystallite_size: torch.Tensor | None = None
    microstrain: torch.Tensor | None = None
    resolution_jitter: torch.Tensor | None = None
    intensity_jitter: torch.Tensor | None = None
    jitter_frequency: torch.Tensor | None = None
    jitter_phase: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> "Perturbation":
        """The perturbations of a sub-batch."""
        return Perturbation(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[index] for f in fields(self)})

    @property
    def broadens(self) -> bool:
        return any(v is not None for v in (self.crystallite_size, self.microstrain, self.resolution_jitter))


def shift_positions(positions: torch.Tensor, inst: Instrument, p: Perturbation) -> torch.Tensor:
    """Peak positions [B, R, L] moved by zero shift and sample displacement."""
    if p.zero_shift is not None:
        positions = positions + p.zero_shift[:, None, None]
    if p.displacement is not None and inst.geometry == "cw":
        theta = torch.deg2rad(positions - inst.zero) / 2
        positions = positions - torch.rad2deg(2 * p.displacement[:, None, None] * torch.cos(theta))
    return positions


def orientation_factors(hkl: torch.Tensor, d: torch.Tensor, metric: torch.Tensor, p: Perturbation) -> torch.Tensor | None:
    """March-Dollase factor per reflection [B, R] (hkl [B, R, 3], d [B, R], reciprocal metric G* [B, 3, 3]), or None."""
    if p.march_dollase is None or p.preferred_axis is None:
        return None
    axis = p.preferred_axis.to(hkl.dtype)
    metric_axis = (metric @ axis[:, :, None])[:, None, :, 0]  # G* a [B, 1, 3]
    # h.G*.a / (|h| |a|) with |h| = 1/d: three multiply-adds per reflection (batched matrix-vector products over
    # [B, R, 3] took a third of the GPU time of an augmented block)
    cos = (hkl * metric_axis).sum(-1) * d / (metric_axis[:, 0] * axis).sum(-1, keepdim=True).clamp(min=1e-12).sqrt()
    cos2 = cos.clamp(-1, 1) ** 2
    r = p.march_dollase[:, None]
    return (r**2 * cos2 + (1 - cos2) / r) ** -1.5


def intensity_factors(d: torch.Tensor, p: Perturbation) -> torch.Tensor | None:
    """Random intensity factor per reflection [B, R] from its d-spacing [B, R] (Å), or None when off."""
    if p.intensity_jitter is None or p.jitter_frequency is None or p.jitter_phase is None:
        return None
    inverse_d = (1.0 / d.clamp(min=1e-6))[..., None]  # [B, R, 1]
    waves = torch.sin(2 * math.pi * p.jitter_frequency[:, None, :].to(d.dtype) * inverse_d + p.jitter_phase[:, None, :].to(d.dtype))
    z = waves.sum(-1) * math.sqrt(2.0 / waves.shape[-1])  # mean 0, variance 1 over random phases
    return torch.exp(p.intensity_jitter[:, None].to(d.dtype) * z)


def node_broadening(inst: Instrument, nodes: torch.Tensor, p: Perturbation) -> tuple[torch.Tensor, torch.Tensor]:
    """Extra Gaussian variance and Lorentzian FWHM [B, M] in the render coordinate u at each profile node."""
    batch = next(v for v in (p.crystallite_size, p.microstrain, p.resolution_jitter) if v is not None).shape[0]
    zeros = torch.zeros(batch, len(nodes), dtype=nodes.dtype, device=nodes.device)
    variance, lorentz = zeros.clone(), zeros.clone()
    x = inst.from_u(nodes)  # [M]
    if inst.geometry == "cw":
        theta = torch.deg2rad(x - inst.zero) / 2
        lam = max(inst.wavelengths)
        if p.crystallite_size is not None:
            lorentz = lorentz + torch.rad2deg(SCHERRER_K * lam / (p.crystallite_size[:, None] * torch.cos(theta)))
        if p.microstrain is not None:
            variance = variance + _FWHM2_TO_VAR * torch.rad2deg(4 * p.microstrain[:, None] * torch.tan(theta)) ** 2
        instrument_variance = _FWHM2_TO_VAR * inst._cw_widths(x)[0] ** 2  # the TCH total, an upper bound
    else:
        d = (x - inst.zero) / inst.difc
        if p.crystallite_size is not None:
            lorentz = lorentz + SCHERRER_K * d / p.crystallite_size[:, None]
        if p.microstrain is not None:
            variance = variance + _FWHM2_TO_VAR * (2 * p.microstrain[:, None]) ** 2
        instrument_variance = inst._tof_parameters(x)[2] / x**2
    if p.resolution_jitter is not None:
        variance = variance + p.resolution_jitter[:, None] * instrument_variance
    return variance, lorentz
