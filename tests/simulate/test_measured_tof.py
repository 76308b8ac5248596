"""The ToF geometry against a measured pattern: NIST SRM 660b LaB6 on POWGEN (GSAS-II 'TOF Calibration'
tutorial, ../shared/data/measured/gsas2_tutorials: PG3_17541.gsa with the calibration of PGHR_60-2015A.prm,
ICONS DIFC = 22591.86, DIFA = 0, ZERO = 1.2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from powdersym.simulate import peak_list, preset, simulate
from powdersym.structures import Crystal

FOLDER = "measured/gsas2_tutorials/files/TOF Calibration/data"
LAB6_A = 4.15689  # Å, NIST SRM 660b certificate
# Pm-3m: La at 1a (0, 0, 0), B at 6f (x, 1/2, 1/2) with x = 0.1996
X_B = 0.1996
LAB6 = Crystal(
    [LAB6_A] * 3 + [90.0] * 3,
    [[0, 0, 0]] + [[X_B, 0.5, 0.5], [-X_B, 0.5, 0.5], [0.5, X_B, 0.5], [0.5, -X_B, 0.5], [0.5, 0.5, X_B], [0.5, 0.5, -X_B]],
    ["La"] + ["B"] * 6,
)


def read_fxye(path) -> tuple[np.ndarray, np.ndarray, float]:
    """x (µs), counts and the SLOG step of a one-bank GSAS FXYE file."""
    rows, step = [], None
    for line in path.read_text().splitlines():
        if line.startswith("BANK"):
            step = float(line.split()[7])  # BANK n nchan nrec SLOG t_min t_max step 0 FXYE
            continue
        parts = line.split()
        if step is not None and len(parts) == 3:
            rows.append([float(v) for v in parts])
    data = np.asarray(rows)
    return data[:, 0], data[:, 1], step


def read_icons(path) -> tuple[float, float, float]:
    """DIFC, DIFA, ZERO from the ICONS line of a GSAS instrument parameter file."""
    for line in path.read_text().splitlines():
        if "ICONS" in line:
            values = line.split("ICONS", 1)[1].split()
            return float(values[0]), float(values[1]), float(values[2])
    raise AssertionError("no ICONS line")


@pytest.fixture(scope="module")
def measured(shared_data):
    folder = shared_data / FOLDER
    x, y, step = read_fxye(folder / "PG3_17541.gsa")
    difc, difa, zero = read_icons(folder / "PGHR_60-2015A.prm")
    inst = preset("neutron-tof", difc=difc, difa=difa, zero=zero, x_min=float(x[0]), x_max=float(x[-1]) * (1 + 1e-9), x_step=step)
    return inst, x, y


def test_log_binned_grid_reproduces_the_files_time_channels(measured):
    inst, x, _ = measured
    grid = inst.grid()
    assert len(grid) == len(x)
    # every channel but the last, which the file truncates at t_max (a partial bin)
    assert np.abs(grid - x)[:-1].max() < 0.01 * np.diff(x).min()


def test_strong_isolated_reflections_peak_where_measured(measured):
    """Measured maxima against simulated maxima (same back-to-back-exponential asymmetry on both sides),
    for every strong reflection with no other reflection within 4 peak widths: within one grid step."""
    inst, x, y = measured
    simulated = simulate(LAB6, inst, dtype=torch.float64)[0].numpy()
    peaks = peak_list(LAB6, inst)
    fwhm = inst.fwhm(torch.as_tensor(peaks.position)).numpy()
    checked = 0
    for i, (t, strength) in enumerate(zip(peaks.position, peaks.intensity)):
        others = np.delete(peaks.position, i)
        if strength < 5 or np.min(np.abs(others - t)) < 4 * fwhm[i] or not (x[0] + 10 * fwhm[i] < t < x[-1] - 10 * fwhm[i]):
            continue
        window = np.abs(x - t) < 1.5 * fwhm[i]
        measured_max = np.flatnonzero(window)[np.argmax(y[window])]
        simulated_max = np.flatnonzero(window)[np.argmax(simulated[window])]
        assert abs(measured_max - simulated_max) <= 1, f"{peaks.hkl[i]} at {t:.0f} µs: {measured_max - simulated_max} steps"
        checked += 1
    assert checked >= 10


def test_simulated_pattern_correlates_with_measurement(measured):
    """Whole-pattern agreement, a sanity check: r = 0.79 measured (the profile is the preset's POWGEN one, not
    this run's; absorption by natural boron and the incident spectrum are not modelled)."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    inst, x, y = measured
    simulated = simulate(LAB6, inst, dtype=torch.float64)[0].numpy()
    background = uniform_filter1d(minimum_filter1d(y, 51), 51)
    r = np.corrcoef(y - background, simulated)[0, 1]
    assert r > 0.7, r
