"""Peak profiles against independent references.

- cryspy (MIT; PyPI `cryspy`, checked with 0.18.0): its ToF Jorgensen profile (back-to-back exponentials convolved
  with a Gaussian, `peak_shape="Gauss"`) and its Thompson-Cox-Hastings pseudo-Voigt for constant wavelength.
- Brute-force numerical convolution of the two-sided exponential with a Gaussian (Simpson's rule, numpy).
- The exact Voigt function (scipy.special.voigt_profile), which the TCH pseudo-Voigt approximates.
- Closed-form integrals and limits (unit area, sigma -> 0, alpha, beta -> infinity).

Parameter mapping to cryspy (cryspy/A_functions_base/powder_diffraction_tof.py, ..._const_wavelength.py):
ToF alpha = alpha0 + alpha1 / d, beta = beta0 + beta1 / d^4, sigma^2 = sigma0 + sigma1 d^2 + sigma2 d^4, so
powdersym's (GSAS-II's) alpha / d is cryspy's alpha1 with alpha0 = 0; cryspy has no beta-q or sig-q terms.
CW: cryspy's H_G^2 = U tan^2 + V tan + W (+ I_G / cos^2) is powdersym's, and its H_L = x tan + y / cos is
powdersym's X / cos + Y tan with the names swapped (FullProf's naming against GSAS-II's).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from powdersym.simulate import Instrument, preset, profiles

F64 = torch.float64
CRYSPY_TOL = 1e-6  # of the peak height: the same closed forms, so only round-off may differ (measured < 1e-13)
CONVOLUTION_TOL = 1e-7  # of the peak height: Simpson's rule with 50 points per smallest length (measured < 1e-9)

TOF_INSTRUMENTS = {
    # POWGEN_1066.instprm (the preset) without sig-q, which cryspy does not have
    "powgen-preset": preset("neutron-tof", sig_q=0.0),
    # PGHR_60-2015A.prm bank 2 with the DIFA of the NAC-2015A.EXP refinement (GSAS type-3 profile)
    "powgen-2015A": preset(
        "neutron-tof", difc=22581.63, difa=-1.21, zero=4.41, alpha=0.25746, beta_0=0.091563, beta_1=0.017334,
        sig_0=0.0, sig_1=10.0, sig_2=203.581, sig_q=0.0,
    ),
    # a short backscattering bank (SEPD-like calibration) with exponential-dominated peaks
    "short-bank": preset(
        "neutron-tof", x_min=2000.0, x_max=30000.0, difc=7476.91, difa=-1.54, zero=0.0, alpha=0.6,
        beta_0=0.02, beta_1=0.005, sig_0=1.0, sig_1=30.0, sig_2=5.0, sig_q=0.0,
    ),
}

CW_INSTRUMENTS = {
    "neutron-cw": preset("neutron-cw"),
    "xray-cuka": preset("xray-cuka"),
    # X (1 / cos) and Y (tan) different and large, so that swapping them or the trigonometry shows
    "neutron-cw-lorentzian": preset("neutron-cw", X=0.05, Y=0.3),
    "lorentzian-dominated": preset("xray-cuka", U=0.0, V=0.0, W=0.001, X=0.3, Y=0.02),
}


def tof_profile(inst: Instrument, d: float, delta: np.ndarray) -> np.ndarray:
    """powdersym's profile of the reflection at d-spacing d, at offsets delta (µs) from t(d)."""
    t_hkl = inst.zero + inst.difc * d + inst.difa * d**2  # GSAS: t = ZERO + DIFC d + DIFA d^2
    centre = torch.tensor([t_hkl], dtype=F64)
    return inst.profile(centre, torch.as_tensor(delta, dtype=F64)[None])[0].numpy()


def tof_window(inst: Instrument, d: float, n: int = 3001) -> tuple[float, np.ndarray]:
    t_hkl = inst.zero + inst.difc * d + inst.difa * d**2
    fwhm = float(inst.fwhm(torch.tensor([t_hkl], dtype=F64))[0])
    return t_hkl, np.linspace(-10 * fwhm, 20 * fwhm, n)


def tof_parameters(inst: Instrument, d: float) -> tuple[float, float, float]:
    """alpha, beta, sigma^2 of the GSAS-II .instprm conventions (written out here, not taken from powdersym)."""
    alpha = inst.alpha / d
    beta = inst.beta_0 + inst.beta_1 / d**4 + inst.beta_q / d**2
    sigma2 = inst.sig_0 + inst.sig_1 * d**2 + inst.sig_2 * d**4 + inst.sig_q * d
    return alpha, beta, sigma2


# ---- cryspy ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOF_INSTRUMENTS)
@pytest.mark.parametrize("d", [0.5, 1.0, 2.0, 4.0])
def test_tof_profile_matches_cryspy(name, d):
    cryspy_tof = pytest.importorskip("cryspy.A_functions_base.powder_diffraction_tof")
    inst = TOF_INSTRUMENTS[name]
    t_hkl, delta = tof_window(inst, d)
    reference = cryspy_tof.calc_peak_shape_function(
        [0.0, inst.alpha], [inst.beta_0, inst.beta_1], [inst.sig_0, inst.sig_1, inst.sig_2],
        np.array([d]), t_hkl + delta, np.array([t_hkl]), peak_shape="Gauss",
    )[:, 0]
    ours = tof_profile(inst, d, delta)
    error = np.abs(ours - reference).max() / reference.max()
    assert error < CRYSPY_TOL, f"{name} d={d}: differs from cryspy by {error:.2e} of the peak height"


def cryspy_tch_pseudo_voigt(cryspy_cw, inst: Instrument, two_theta: float, delta_deg: np.ndarray) -> np.ndarray:
    """cryspy's TCH pseudo-Voigt with its widths at the reflection (cryspy's calc_profile_pseudo_voight takes the
    widths at each grid point instead, ~1 % different for broad high-angle peaks; GSAS-II and FullProf use the
    reflection's widths, as powdersym does)."""
    ttheta = np.radians(np.array([two_theta]))
    h_g, _ = cryspy_cw.calc_h_g(inst.U, inst.V, inst.W, 0.0, ttheta)
    h_l, _ = cryspy_cw.calc_h_l(inst.Y, inst.X, ttheta)  # cryspy x tan + y / cos
    h_pv, _ = cryspy_cw.calc_h_pv(h_g, h_l)
    eta, _ = cryspy_cw.calc_eta(h_l, h_pv)
    z = np.radians(delta_deg)[None, :]
    lorentz, _ = cryspy_cw.func_lorentz_by_h_pv(z, h_pv)
    gauss, _ = cryspy_cw.func_gauss_by_h_pv(z, h_pv)
    return (eta[:, None] * lorentz + (1 - eta[:, None]) * gauss)[0]


@pytest.mark.parametrize("name", CW_INSTRUMENTS)
@pytest.mark.parametrize("two_theta", [10.0, 45.0, 90.0, 140.0])
def test_cw_profile_matches_cryspy(name, two_theta):
    cryspy_cw = pytest.importorskip("cryspy.A_functions_base.powder_diffraction_const_wavelength")
    inst = CW_INSTRUMENTS[name]
    centre = torch.tensor([two_theta], dtype=F64)
    fwhm = float(inst.fwhm(centre)[0])
    delta = np.linspace(-20 * fwhm, 20 * fwhm, 4001)
    reference = cryspy_tch_pseudo_voigt(cryspy_cw, inst, two_theta, delta)
    ours = inst.profile(centre, torch.as_tensor(delta, dtype=F64)[None])[0].numpy()
    error = np.abs(ours - reference).max() / reference.max()
    assert error < CRYSPY_TOL, f"{name} 2theta={two_theta}: differs from cryspy by {error:.2e} of the peak height"


# ---- time of flight: numerical convolution and limits ----------------------------------------------------------


def simpson_weights(n_intervals: int, h: float) -> np.ndarray:
    w = np.full(n_intervals + 1, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return w * h / 3


def numerical_b2b_gauss(delta: np.ndarray, alpha: float, beta: float, sigma2: float) -> np.ndarray:
    """(E * G)(delta): E(s) = N exp(alpha s) for s < 0, N exp(-beta s) for s >= 0, N = alpha beta / (alpha + beta)
    (unit area; rising edge alpha, decay beta as in GSAS), G the unit Gaussian of variance sigma2.

    Simpson's rule on each side of the kink at s = 0, 50 points per smallest length, 20 decay lengths each way.
    """
    h = min(1 / alpha, 1 / beta, math.sqrt(sigma2)) / 50
    n_rise, n_decay = 2 * math.ceil(10 / (alpha * h)), 2 * math.ceil(10 / (beta * h))
    s = np.arange(-n_rise, n_decay + 1) * h
    weights = np.concatenate([simpson_weights(n_rise, h), np.zeros(n_decay)])
    weights[n_rise:] += simpson_weights(n_decay, h)
    norm = alpha * beta / (alpha + beta)
    e = norm * np.where(s < 0, np.exp(alpha * np.minimum(s, 0.0)), np.exp(-beta * np.maximum(s, 0.0)))
    gauss = np.exp(-((delta[:, None] - s[None, :]) ** 2) / (2 * sigma2)) / math.sqrt(2 * math.pi * sigma2)
    return gauss @ (e * weights)


def b2b(delta: np.ndarray, alpha: float, beta: float, sigma2: float) -> np.ndarray:
    alpha, beta, sigma2 = (torch.tensor(v, dtype=F64) for v in (alpha, beta, sigma2))
    return profiles.back_to_back_exponential_gauss(torch.as_tensor(delta, dtype=F64), alpha, beta, sigma2).numpy()


B2B_CASES = {
    "powgen d=1": (0.1325, 0.114, 166.0),
    "fast rise, slow decay": (2.0, 0.05, 4.0),
    "exponential-dominated": (0.01, 0.02, 1.0e4),
    # exp(alpha^2 sigma^2 / 2) = exp(1.25e5) overflows: only the erfcx form can evaluate this
    "gaussian-dominated": (5.0, 5.0, 1.0e4),
    "narrow gaussian": (0.3, 0.1, 1.0),
}


@pytest.mark.parametrize("case", B2B_CASES)
def test_tof_profile_equals_numerical_convolution(case):
    alpha, beta, sigma2 = B2B_CASES[case]
    sigma = math.sqrt(sigma2)
    delta = np.linspace(-(8 * sigma + 20 / alpha), 8 * sigma + 20 / beta, 401)
    reference = numerical_b2b_gauss(delta, alpha, beta, sigma2)
    error = np.abs(b2b(delta, alpha, beta, sigma2) - reference).max() / reference.max()
    assert error < CONVOLUTION_TOL, f"{case}: differs from the numerical convolution by {error:.2e} of the peak"


@pytest.mark.parametrize("case", B2B_CASES)
def test_tof_profile_has_unit_area_and_finite_tails(case):
    alpha, beta, sigma2 = B2B_CASES[case]
    sigma = math.sqrt(sigma2)
    delta = np.linspace(-(12 * sigma + 40 / alpha), 12 * sigma + 40 / beta, 200001)
    assert np.trapezoid(b2b(delta, alpha, beta, sigma2), delta) == pytest.approx(1.0, abs=1e-6)
    far = np.concatenate([-np.logspace(0, 4, 50), np.logspace(0, 4, 50)]) * (sigma + 1 / alpha + 1 / beta)
    tails = b2b(far, alpha, beta, sigma2)
    assert np.all(np.isfinite(tails)) and np.all(tails >= 0)


def test_tof_profile_limits():
    alpha, beta = 0.3, 0.1
    norm = alpha * beta / (alpha + beta)
    # sigma -> 0: the bare two-sided exponential (away from the cusp, where the Gaussian still rounds it)
    delta = np.concatenate([np.linspace(-60, -0.1, 300), np.linspace(0.1, 150, 300)])
    bare = norm * np.where(delta < 0, np.exp(alpha * np.minimum(delta, 0)), np.exp(-beta * np.maximum(delta, 0)))
    np.testing.assert_allclose(b2b(delta, alpha, beta, 1e-8), bare, rtol=1e-6, atol=0)
    # alpha, beta -> infinity: the Gaussian (the exponentials' mean 1/beta - 1/alpha -> 0)
    sigma2 = 4.0
    delta = np.linspace(-12, 12, 601)
    gauss = np.exp(-(delta**2) / (2 * sigma2)) / math.sqrt(2 * math.pi * sigma2)
    np.testing.assert_allclose(b2b(delta, 1e7, 1e7, sigma2), gauss, rtol=0, atol=1e-6 * gauss.max())


@pytest.mark.parametrize("name", TOF_INSTRUMENTS)
def test_tof_instrument_profile_uses_gsas_parameters(name):
    """inst.profile(t(d)) is the profile with GSAS-II's alpha / d, beta-0 + beta-1 / d^4, sig-0 + sig-1 d^2 + ..."""
    inst = TOF_INSTRUMENTS[name]
    for d in (0.6, 1.5, 3.5):
        _, delta = tof_window(inst, d, n=801)
        reference = numerical_b2b_gauss(delta, *tof_parameters(inst, d))
        error = np.abs(tof_profile(inst, d, delta) - reference).max() / reference.max()
        assert error < CONVOLUTION_TOL, f"{name} d={d}: {error:.2e}"


# ---- constant wavelength: pseudo-Voigt -------------------------------------------------------------------------


def numerical_fwhm(x: np.ndarray, y: np.ndarray) -> float:
    half = y.max() / 2
    above = np.nonzero(y >= half)[0]
    lo, hi = above[0], above[-1]
    left = np.interp(half, [y[lo - 1], y[lo]], [x[lo - 1], x[lo]])
    right = np.interp(half, [y[hi + 1], y[hi]], [x[hi + 1], x[hi]])
    return right - left


LORENTZ_OVER_GAUSS = [0.0, 0.05, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0, 10.0, 100.0]


@pytest.mark.parametrize("ratio", LORENTZ_OVER_GAUSS)
def test_pseudo_voigt_approximates_the_voigt_function(ratio):
    """TCH (1987): FWHM within 0.5 % of the exact Voigt's, shape within 1.5 % of its height (measured maxima over
    these ratios: 0.43 % at L/G = 0.5 and 1.25 % at L/G = 1, the known accuracy of the TCH approximation)."""
    voigt_profile = pytest.importorskip("scipy.special").voigt_profile
    gauss, lorentz = torch.tensor([1.0], dtype=F64), torch.tensor([ratio], dtype=F64)
    fwhm, eta = profiles.tch_fwhm_eta(gauss, lorentz)
    x = np.linspace(-5, 5, 200001) * float(fwhm)
    exact = voigt_profile(x, 1.0 / (2 * math.sqrt(2 * math.log(2))), ratio / 2)  # sigma, HWHM
    ours = profiles.pseudo_voigt(torch.as_tensor(x, dtype=F64)[None], fwhm[:, None], eta[:, None])[0].numpy()
    assert float(fwhm) == pytest.approx(numerical_fwhm(x, exact), rel=5e-3)
    assert numerical_fwhm(x, ours) == pytest.approx(float(fwhm), rel=1e-6)
    assert np.abs(ours - exact).max() < 0.015 * exact.max()
    if ratio == 0.0:
        assert float(eta) == 0.0 and float(fwhm) == pytest.approx(1.0, rel=1e-12)


@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
def test_pseudo_voigt_area(eta):
    """Area within +-R FWHM equals (1 - eta) erf(2 sqrt(ln 2) R) + eta (2 / pi) arctan(2 R)."""
    fwhm, reach = 0.7, 200.0
    x = np.linspace(-reach * fwhm, reach * fwhm, 2_000_001)
    y = profiles.pseudo_voigt(
        torch.as_tensor(x, dtype=F64), torch.tensor(fwhm, dtype=F64), torch.tensor(eta, dtype=F64)
    )
    expected = (1 - eta) * math.erf(2 * math.sqrt(math.log(2)) * reach) + eta * (2 / math.pi) * math.atan(2 * reach)
    assert np.trapezoid(y.numpy(), x) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("name", CW_INSTRUMENTS)
def test_cw_instrument_widths_follow_caglioti_and_tch(name):
    """inst.fwhm(2theta) is the TCH combination of sqrt(U tan^2 + V tan + W) and X / cos + Y tan (written out here)."""
    inst = CW_INSTRUMENTS[name]
    for two_theta in (8.0, 60.0, 120.0, 150.0):
        theta = math.radians(two_theta) / 2
        g = math.sqrt(inst.U * math.tan(theta) ** 2 + inst.V * math.tan(theta) + inst.W)
        l = inst.X / math.cos(theta) + inst.Y * math.tan(theta)
        # Thompson, Cox & Hastings (1987)
        fwhm = (
            g**5 + 2.69269 * g**4 * l + 2.42843 * g**3 * l**2 + 4.47163 * g**2 * l**3 + 0.07842 * g * l**4 + l**5
        ) ** 0.2
        centre = torch.tensor([two_theta], dtype=F64)
        assert float(inst.fwhm(centre)[0]) == pytest.approx(fwhm, rel=1e-12)
        x = np.linspace(-8, 8, 160001) * fwhm
        y = inst.profile(centre, torch.as_tensor(x, dtype=F64)[None])[0].numpy()
        assert numerical_fwhm(x, y) == pytest.approx(fwhm, rel=1e-6)
