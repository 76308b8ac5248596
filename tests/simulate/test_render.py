"""Rendering and instrument presets: the fast FFT path against exact profile evaluation, and the preset grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from powdersym.simulate import preset, render, render_direct
from powdersym.simulate.instruments import UnknownInstrumentError


@pytest.mark.parametrize("name, tolerance", [("neutron-cw", 5e-3), ("xray-cuka", 5e-3), ("neutron-tof", 1e-2)])
def test_fft_render_matches_exact_profiles(name, tolerance):
    """One peak per pattern, 60 places across the grid: error relative to that peak's own height."""
    inst = preset(name)
    grid = inst.grid()
    rng = np.random.default_rng(0)
    positions = torch.as_tensor(rng.uniform(grid[0], grid[-1], (60, 1)))
    intensities = torch.ones(60, 1, dtype=torch.float64)
    fast = render(positions, intensities, inst)
    exact = render_direct(positions, intensities, inst)
    height = inst.profile(positions[:, 0], torch.zeros(60, 1, dtype=torch.float64))[:, 0]
    assert float(((fast - exact).abs().amax(1) / height).max()) < tolerance
    # integrated intensity is conserved for peaks well inside the grid
    inside = (positions[:, 0] > grid[0] + 0.1 * (grid[-1] - grid[0])) & (positions[:, 0] < grid[-1] - 0.1 * (grid[-1] - grid[0]))
    assert torch.allclose(fast[inside].sum(1), exact[inside].sum(1), rtol=5e-3)


def test_neutron_cw_preset_is_the_main_papers_grid_and_resolution():
    inst = preset("neutron-cw")
    grid = inst.grid()
    assert len(grid) == 3041 and grid[0] == pytest.approx(3.0) and grid[-1] == pytest.approx(155.0)
    fwhm = inst.fwhm(torch.tensor([10.0, 150.0], dtype=torch.float64)).numpy()
    assert fwhm[0] == pytest.approx(0.25, abs=0.03) and fwhm[1] == pytest.approx(1.5, abs=0.15)


def test_xray_preset_is_cu_doublet_on_the_rruff_grid():
    inst = preset("xray-cuka")
    grid = inst.grid()
    assert len(grid) == 8501 and grid[0] == pytest.approx(5.0) and grid[-1] == pytest.approx(90.0)
    d = torch.tensor([2.0], dtype=torch.float64)
    two_theta = inst.peak_positions(d)[0].numpy()
    # Bragg's law by hand for Cu K-alpha1 / K-alpha2
    assert two_theta == pytest.approx(2 * np.degrees(np.arcsin(np.array([1.540593, 1.544414]) / 4.0)), abs=1e-9)


def test_tof_preset_covers_backscattering_d_range():
    inst = preset("neutron-tof")
    d_min, d_max = inst.d_spacing_range(0.0)
    assert d_min == pytest.approx(0.5, rel=2e-3) and d_max == pytest.approx(4.0, rel=2e-3)
    steps = np.diff(np.log(inst.grid()))
    assert np.allclose(steps, np.log1p(4e-4))  # GSAS SLOG binning, constant Delta t / t


def test_unknown_preset_and_parameter_are_refused():
    with pytest.raises(UnknownInstrumentError, match="unknown instrument preset"):
        preset("neutron-xyz")
    with pytest.raises(UnknownInstrumentError, match="unknown instrument parameter"):
        preset("neutron-cw", wavelenght=1.0)
    with pytest.raises(ValueError, match="empty grid"):
        preset("neutron-cw", x_max=1.0)


def test_tof_profile_is_the_convolution_of_two_exponentials_with_a_gaussian():
    """The closed form (erfcx-stable) against a brute-force numerical convolution."""
    from powdersym.simulate.profiles import back_to_back_exponential_gauss

    alpha, beta, sigma2 = 0.05, 0.02, 400.0
    t = np.linspace(-600, 600, 24001)
    dt = t[1] - t[0]
    norm = alpha * beta / (alpha + beta)
    exponentials = norm * np.where(t < 0, np.exp(alpha * t), np.exp(-beta * t))
    gauss = np.exp(-(t**2) / (2 * sigma2)) / np.sqrt(2 * np.pi * sigma2)
    numeric = np.convolve(exponentials, gauss, mode="same") * dt
    closed = back_to_back_exponential_gauss(torch.as_tensor(t), torch.tensor(alpha), torch.tensor(beta), torch.tensor(sigma2)).numpy()
    inner = np.abs(t) < 300
    assert np.abs(closed - numeric)[inner].max() < 1e-4 * closed.max()
    assert closed.sum() * dt == pytest.approx(1.0, abs=1e-3)


def test_pseudo_voigt_fwhm_is_the_tch_fwhm():
    from powdersym.simulate.profiles import pseudo_voigt, tch_fwhm_eta

    fwhm, eta = tch_fwhm_eta(torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64))
    x = torch.linspace(-30, 30, 600001, dtype=torch.float64)
    y = pseudo_voigt(x, fwhm, eta).numpy()
    above = x.numpy()[y >= y.max() / 2]
    assert above[-1] - above[0] == pytest.approx(float(fwhm), rel=1e-3)
    assert y.sum() * float(x[1] - x[0]) == pytest.approx(1.0, abs=3e-3)  # Lorentzian tails beyond +-30 cut off
