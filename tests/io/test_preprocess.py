"""Preprocessing: placement through d-spacing, coverage mask, resampling, background, normalisation, plot."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import gemmi
import numpy as np
import pytest
import torch

from powdersym.io import MeasuredPattern, PatternFormatError, preprocess, preprocess_many, read_pattern
from powdersym.io.background import chebyshev_background, chebyshev_basis
from powdersym.io.preprocess import GridMapping, grid_mapping, resample_to_grid
from powdersym.simulate import preset


def bragg_two_theta(wavelength: float, d: float) -> float:
    return 2 * np.degrees(np.arcsin(wavelength / (2 * d)))


def gaussian(x: np.ndarray, centre: float, fwhm: float, height: float) -> np.ndarray:
    return height * np.exp(-4 * np.log(2) * ((x - centre) / fwhm) ** 2)


def test_cw_pattern_at_another_wavelength_lands_at_its_d() -> None:
    """λ = 1.1 Å, a peak at d = 2 Å (2θ = 31.92°) must sit at 2θ = 2 asin(1.5403/4) = 45.29° on neutron-cw."""
    x = np.arange(5.0, 120.0, 0.02)
    pattern = MeasuredPattern(x, 10 + gaussian(x, bragg_two_theta(1.1, 2.0), 0.2, 1000), None, "two_theta",
                              wavelength=1.1)
    instrument = preset("neutron-cw")
    prepared = preprocess(pattern, instrument)
    assert prepared.x[np.argmax(prepared.y)] == pytest.approx(bragg_two_theta(1.5403, 2.0), abs=instrument.x_step)
    # the same through the simulator's own peak position for d = 2 Å
    expected = instrument.peak_positions(torch.tensor([2.0], dtype=torch.float64))[0, 0].item()
    assert abs(prepared.x[np.argmax(prepared.y)] - expected) <= instrument.x_step


def test_cw_to_tof_and_tof_to_cw_go_through_d() -> None:
    tof = preset("neutron-tof")
    x = np.arange(10.0, 150.0, 0.05)
    cw = MeasuredPattern(x, 5 + gaussian(x, bragg_two_theta(1.5403, 1.5), 0.3, 500), None, "two_theta",
                         wavelength=1.5403)
    on_tof = preprocess(cw, tof)
    t_expected = tof.zero + tof.difc * 1.5 + tof.difa * 1.5**2
    assert on_tof.x[np.argmax(on_tof.y)] == pytest.approx(t_expected, rel=2 * tof.x_step)

    difc, difa, zero = 10000.0, -2.0, 5.0
    t = np.exp(np.arange(np.log(4000.0), np.log(40000.0), 5e-4))
    t_peak = zero + difc * 2.2 + difa * 2.2**2
    bank = MeasuredPattern(t, 20 + gaussian(t, t_peak, 3e-3 * t_peak, 800), None, "tof", difc=difc, difa=difa,
                           zero=zero)
    np.testing.assert_allclose(bank.d_spacing()[np.argmin(abs(t - t_peak))], 2.2, rtol=1e-3)
    on_cw = preprocess(bank, "neutron-cw")
    assert on_cw.x[np.argmax(on_cw.y)] == pytest.approx(bragg_two_theta(1.5403, 2.2), abs=0.05)


def test_mask_marks_the_uncovered_grid_and_gaps() -> None:
    x = np.concatenate([np.arange(20.0, 30.0, 0.01), np.arange(35.0, 60.0, 0.01)])  # an excluded 30-35° region
    pattern = MeasuredPattern(x, 100 + gaussian(x, 40, 0.3, 50), None, "two_theta", wavelength=1.5403)
    prepared = preprocess(pattern, "neutron-cw")
    grid = prepared.x
    inside = (grid >= 20) & (grid <= x[-1]) & ~((grid > x[x < 32].max()) & (grid < 35))
    np.testing.assert_array_equal(prepared.covered, inside)
    assert np.all(prepared.y[~prepared.covered] == 0) and np.all(prepared.raw_on_grid[~prepared.covered] == 0)
    assert prepared.y.dtype == np.float32 and prepared.y.max() == 1.0
    assert prepared.coverage == pytest.approx(inside.mean())


def test_resampling_averages_fine_data_and_interpolates_coarse_data() -> None:
    instrument = preset("neutron-cw")  # 0.05° steps
    for step in (0.001, 0.2):
        x = np.arange(10.0, 100.0, step)
        pattern = MeasuredPattern(x, 3.0 + 0.5 * x, None, "two_theta", wavelength=1.5403)
        values, covered = resample_to_grid(pattern, instrument)
        grid = instrument.grid()
        np.testing.assert_allclose(values[covered], 3.0 + 0.5 * grid[covered], rtol=1e-9)
    # a fine sawtooth averages to its mean instead of aliasing
    x = np.arange(10.0, 100.0, 0.001)
    pattern = MeasuredPattern(x, np.where(np.arange(len(x)) % 2 == 0, 0.0, 2.0) + 1.0, None, "two_theta",
                              wavelength=1.5403)
    values, covered = resample_to_grid(pattern, instrument)
    np.testing.assert_allclose(values[covered][1:-1], 2.0, atol=0.05)


@pytest.mark.parametrize("method", ["chebyshev", "snip"])
def test_background_methods_keep_an_isolated_peak_and_remove_a_smooth_background(method: str) -> None:
    instrument = preset("neutron-cw")
    grid = instrument.grid()
    smooth = 200 + 150 * np.exp(-grid / 25) + 0.3 * grid
    fwhm = instrument.fwhm(torch.tensor([60.0], dtype=torch.float64)).item()
    peak = gaussian(grid, 60.0, fwhm, 1000.0)
    noise = np.random.default_rng(0).normal(0, 2.0, len(grid))
    pattern = MeasuredPattern(grid, smooth + peak + noise, None, "two_theta", wavelength=1.5403)
    prepared = preprocess(pattern, instrument, background=method)
    top = np.argmax(prepared.y)
    assert grid[top] == pytest.approx(60.0, abs=instrument.x_step)
    assert prepared.raw_on_grid[top] - prepared.background[top] == pytest.approx(1000.0, rel=0.03)
    away = np.abs(grid - 60) > 5
    assert np.median(np.abs(prepared.background - smooth)[away]) < 0.02 * 1000  # within noise-level error
    assert np.percentile(prepared.y[away], 95) < 0.03


def test_default_background_follows_rietveld_refined_backgrounds(shared_data: Path) -> None:
    """The claim in `preprocess`'s docstring: on the pdCIF files with a refined background (_pd_proc_intensity_
    bkg_calc), the default keeps the median peak height above background within 3 % of the refined one."""
    folder = shared_data / "measured/iucr_pdcif_cdvae_xrd"
    instrument = preset("xray-cuka")
    for name in ("ks5409BTsup2", "wm2446Isup2", "av5088sup4"):
        path = folder / f"{name}.rtv.combined.cif"
        pattern = read_pattern(path)
        block = next(b for b in gemmi.cif.read(str(path)) if len(b.find_values("_pd_proc_intensity_bkg_calc")) > 100)
        refined = np.array([gemmi.cif.as_number(v) for v in block.find_values("_pd_proc_intensity_bkg_calc")])
        first, last = pattern.metadata.get("trimmed_zero_points", (0, 0))
        refined = refined[first:len(refined) - last]
        known = np.isfinite(refined)
        refined = np.interp(np.arange(len(refined)), np.flatnonzero(known), refined[known])
        refined_on_grid, _ = resample_to_grid(dataclasses.replace(pattern, y=refined, sigma=None), instrument)
        prepared = preprocess(pattern, instrument)
        net_refined = np.clip(prepared.raw_on_grid - refined_on_grid, 0, None)
        net = np.clip(prepared.raw_on_grid - prepared.background, 0, None)
        peaks = np.flatnonzero((net_refined[1:-1] >= net_refined[:-2]) & (net_refined[1:-1] > net_refined[2:])
                               & (net_refined[1:-1] > 0.05 * net_refined.max())) + 1
        error = np.median(np.abs(net[peaks] - net_refined[peaks]) / net_refined[peaks])
        assert error < 0.03, f"{name}: median peak height off by {error:.1%}"


def test_batch_plot_and_errors(tmp_path: Path) -> None:
    x = np.arange(10.0, 100.0, 0.05)
    patterns = [MeasuredPattern(x, 50 + gaussian(x, c, 0.3, 100), None, "two_theta", wavelength=1.54)
                for c in (30, 50)]
    batch = preprocess_many(patterns, "xray-cuka")
    assert batch.shape == (2, preset("xray-cuka").n_points) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], preprocess(patterns[1], "xray-cuka").y)
    png = preprocess(patterns[0], "neutron-cw", background="snip").plot(tmp_path / "fig" / "p.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(PatternFormatError, match="without a wavelength"):
        preprocess(dataclasses.replace(patterns[0], wavelength=None), "neutron-cw")
    far = MeasuredPattern(np.linspace(100.0, 170.0, 100), np.ones(100), None, "two_theta", wavelength=0.5)
    with pytest.raises(PatternFormatError, match="covers 0 points") as error:
        preprocess(far, "neutron-cw")  # d 0.25-0.33 Å: shorter than lambda/2 of the neutron-cw grid
    assert "\n" not in str(error.value)


def chebyshev_background_by_fresh_sums(y: np.ndarray, degree: int = 12, clip: float = 2.0) -> np.ndarray:
    """The clipped Chebyshev fit with its normal equations summed afresh over the kept points every iteration."""
    basis = np.polynomial.chebyshev.chebvander(np.linspace(-1.0, 1.0, len(y)), degree)
    keep = np.ones(len(y), dtype=bool)
    for _ in range(50):
        kept = basis[keep]
        fit = basis @ np.linalg.solve(kept.T @ kept, kept.T @ y[keep])
        residual = y - fit
        below = residual[keep & (residual <= 0)]
        new_keep = residual <= clip * max(np.sqrt(np.mean(below**2)), 1e-12 * np.max(np.abs(y)))
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return fit


@pytest.mark.parametrize("n_peaks", [0, 20, 400])
def test_chebyshev_background_with_cached_normal_equations_matches_fresh_sums(n_peaks: int) -> None:
    """The fit starts from the cached all-point normal equations and updates them by the points that change
    side (re-summing when many do: 400 peaks): the same background as summing afresh, to rounding."""
    rng = np.random.default_rng(n_peaks)
    u = np.linspace(0.0, 1.0, 8000)
    y = 100 + 80 * np.exp(-3 * u) + 20 * np.sin(5 * u) + rng.normal(0, 2, len(u))
    for centre in rng.uniform(0, 1, n_peaks):
        y += gaussian(u, centre, 0.002, rng.uniform(20, 2000))
    expected = chebyshev_background_by_fresh_sums(y)
    np.testing.assert_allclose(chebyshev_background(y), expected, rtol=1e-9, atol=1e-9 * np.abs(y).max())
    np.testing.assert_array_equal(chebyshev_basis(len(y), 12), np.polynomial.chebyshev.chebvander(
        np.linspace(-1.0, 1.0, len(y)), 12))
    assert not chebyshev_basis(len(y), 12).flags.writeable  # shared between calls


def test_grid_mapping_is_shared_by_patterns_with_one_x_axis_and_calibration() -> None:
    """Files from one diffractometer share an x axis: the cached GridMapping equals a fresh one, serves
    patterns with other intensities, and is not used for another wavelength, zero shift or x axis."""
    instrument = preset("xray-cuka")
    x = np.arange(8.0, 80.0, 0.013)
    rng = np.random.default_rng(0)
    patterns = [MeasuredPattern(x, 50 + rng.uniform(0, 100, len(x)), None, "two_theta", wavelength=1.5406)
                for _ in range(2)]
    cached, fresh = grid_mapping(patterns[0], instrument), grid_mapping(patterns[0], instrument, cache=False)
    for name in (f.name for f in dataclasses.fields(GridMapping)):
        np.testing.assert_array_equal(np.asarray(getattr(cached, name)), np.asarray(getattr(fresh, name)), err_msg=name)
    assert grid_mapping(patterns[1], instrument) is cached
    for other in (dataclasses.replace(patterns[0], wavelength=1.4), dataclasses.replace(patterns[0], zero=0.01),
                  MeasuredPattern(x + 0.001, patterns[0].y, None, "two_theta", wavelength=1.5406)):
        assert grid_mapping(other, instrument) is not cached
    assert grid_mapping(patterns[0], preset("neutron-cw")) is not cached
    values, covered = resample_to_grid(patterns[1], instrument)
    covered[:] = False  # the caller's copy: the cached mask stays
    np.testing.assert_array_equal(grid_mapping(patterns[1], instrument).covered, fresh.covered)
    assert fresh.covered.any()
