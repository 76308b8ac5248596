"""Peak shapes, each normalised to unit area in the pattern's x unit (2theta degrees or time-of-flight µs)."""

from __future__ import annotations

import math

import torch

_LN2 = math.log(2.0)


def tch_fwhm_eta(fwhm_gauss: torch.Tensor, fwhm_lorentz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Thompson-Cox-Hastings (1987) pseudo-Voigt: total FWHM and Lorentzian fraction eta from the two widths."""
    g, l = fwhm_gauss, fwhm_lorentz
    fwhm = (g**5 + 2.69269 * g**4 * l + 2.42843 * g**3 * l**2 + 4.47163 * g**2 * l**3 + 0.07842 * g * l**4 + l**5) ** 0.2
    q = l / fwhm
    eta = 1.36603 * q - 0.47719 * q**2 + 0.11116 * q**3
    return fwhm, eta


def pseudo_voigt(delta: torch.Tensor, fwhm: torch.Tensor, eta: torch.Tensor) -> torch.Tensor:
    """eta * Lorentzian + (1 - eta) * Gaussian of the same FWHM at offsets delta (unit area)."""
    x = delta / fwhm
    gauss = (2.0 * math.sqrt(_LN2 / math.pi)) * torch.exp(-4.0 * _LN2 * x**2)
    lorentz = (2.0 / math.pi) / (1.0 + 4.0 * x**2)
    return (eta * lorentz + (1.0 - eta) * gauss) / fwhm


def back_to_back_exponential_gauss(
    delta: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, sigma2: torch.Tensor
) -> torch.Tensor:
    """GSAS time-of-flight profile: rising exp(alpha t) and decaying exp(-beta t) convolved with a Gaussian.

    H(delta) = N [exp(u) erfc(y) + exp(v) erfc(z)], N = alpha beta / (2 (alpha + beta)), u = alpha (alpha
    sigma2 / 2 + delta), y = (alpha sigma2 + delta) / sqrt(2 sigma2), v = beta (beta sigma2 / 2 - delta),
    z = (beta sigma2 - delta) / sqrt(2 sigma2) (Von Dreele, Jorgensen & Windsor 1982). Evaluated as
    exp(-delta^2 / 2 sigma2) erfcx(y) where y >= 0, which cannot overflow.
    """
    root = torch.sqrt(2.0 * sigma2)
    gauss = torch.exp(-(delta**2) / (2.0 * sigma2))

    def term(rate: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        # exp(rate (rate sigma2 / 2 + offset)) erfc((rate sigma2 + offset) / sqrt(2 sigma2))
        arg = (rate * sigma2 + offset) / root
        positive = gauss * torch.special.erfcx(arg.clamp(min=0.0))
        negative = torch.exp((rate * (rate * sigma2 / 2.0 + offset)).clamp(max=0.0)) * torch.erfc(arg.clamp(max=0.0))
        return torch.where(arg >= 0, positive, negative)

    norm = alpha * beta / (2.0 * (alpha + beta))
    return norm * (term(alpha, delta) + term(beta, -delta))


def back_to_back_fwhm(alpha: torch.Tensor, beta: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """Approximate FWHM of the time-of-flight profile (Gaussian and exponential widths added; for node spacing)."""
    return torch.sqrt(8.0 * _LN2 * sigma2) + _LN2 * (1.0 / alpha + 1.0 / beta)
