"""Every pattern file listed in the shared measured-data sets loads, or is refused for a stated reason.

Datasets: ../shared/data/measured/{gsas2_tutorials, easydiffraction, iucr_pdcif_cdvae_xrd}/metadata.csv. Each
row's calibration (wavelength, ToF DIFC/DIFA/ZERO) comes from the row's instrument parameter file when it lists
one, otherwise from the row's own columns. Values are cross-checked against an independent reading: numpy's
loadtxt of the same columns, the BANK line's start/step, the first records copied by hand from the files, and
the point counts and wavelengths of metadata.csv.
"""

from __future__ import annotations

import csv
import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from powdersym.io import PatternFormatError, read_pattern

DATASETS = ("gsas2_tutorials", "easydiffraction", "iucr_pdcif_cdvae_xrd")
INSTRUMENT_SUFFIXES = (".prm", ".instprm", ".inst")

# Rows that are not one loadable pattern file, and why (the test checks the refusal names the reason).
REFUSED = {
    "jadarite_cif": "without a measured powder profile",  # structure-only row (no pattern)
    "stainless_VULCAN_series": "extract it first",  # a .tar.gz of 61 patterns: see test_vulcan_series_loads
    "SF6_GEM_190K": "choose one with bank=",  # three banks in one file: see test_multibank_gsas_loads_each_bank
}
# The first data records of some GSAS files, copied from the files (value, sigma; sigma None: counting).
FIRST_RECORDS = {
    "garnet_D1A": [(162, np.sqrt(162)), (178, np.sqrt(178))],
    "PbSO4_lab": [(179, np.sqrt(179)), (147, np.sqrt(147))],
    "LaMnO3_BT1_50K": [(523, 48), (442, 44)],
    "Er2Ge2O7_HB2A_2K": [(927.65, 29.15), (866.33, 28.27)],
    "aminoquinoline_X3": [(345.2, 18.3), (350.7, 18.5)],
    "GaPO4_I15": [(772, np.sqrt(772)), (770, np.sqrt(770))],  # after 54 leading zero (unmeasured) points
}
# A bank's DIFC where metadata.csv quotes another bank: PG3_17541.gsa is BANK 2, so PGHR_60-2015A.prm bank 2.
DIFC = {"LaB6_POWGEN": 22581.63, "NAC_POWGEN_22048": 22600.2479192, "Mn3O4_POWGEN_20254-2_10K": 22586.9009385}


def _rows(shared_data: Path, dataset: str) -> list[dict]:
    table = shared_data / "measured" / dataset / "metadata.csv"
    if not table.exists():
        pytest.skip(f"{table} not found")
    with open(table, newline="") as handle:
        return list(csv.DictReader(handle))


def _first_number(text: str) -> float | None:
    match = re.search(r"[0-9]+\.[0-9]+", text or "")
    return float(match.group()) if match else None


def _arguments(folder: Path, row: dict) -> tuple[Path, dict]:
    files = [f.split(" (")[0] for f in row["files"].split(";")]
    kwargs: dict = {}
    instrument = next((f for f in files[1:] if f.lower().endswith(INSTRUMENT_SUFFIXES)), None)
    if instrument:
        kwargs["instrument_file"] = folder / instrument
    elif row["radiation"] == "neutron_tof":
        tof = re.search(r"TOF = ([-0-9.]+) \+ ([0-9.]+)\*d - ([0-9.]+)\*d\^2", row["tof_calibration"])
        kwargs.update(zero=float(tof.group(1)), difc=float(tof.group(2)), difa=-float(tof.group(3)))
    elif _first_number(row["wavelength_A"]) and not files[0].endswith(".cif"):  # a pdCIF states its own
        kwargs["wavelength"] = _first_number(row["wavelength_A"])
    return folder / files[0], kwargs


@pytest.mark.parametrize("dataset", DATASETS)
def test_listed_patterns_load_or_are_refused(shared_data: Path, dataset: str) -> None:
    """Each metadata.csv row: its pattern loads and agrees with an independent reading, or it is one of
    REFUSED and the one-line refusal names the file and the reason."""
    failures = []
    for row in _rows(shared_data, dataset):
        try:
            _check_row(shared_data / "measured" / dataset, row)
        except Exception as error:  # collect every row's failure, not only the first
            failures.append(f"{row['id']}: {type(error).__name__}: {str(error)[:300]}")
    assert not failures, "\n".join(failures)


def _check_row(folder: Path, row: dict) -> None:
    path, kwargs = _arguments(folder, row)
    if row["id"] in REFUSED:
        with pytest.raises(PatternFormatError) as refusal:
            read_pattern(path, **kwargs)
        message = str(refusal.value)
        assert REFUSED[row["id"]] in message and "\n" not in message and path.name in message
        return
    pattern = read_pattern(path, **kwargs)
    assert len(pattern) > 100 and np.all(np.diff(pattern.x) > 0) and np.all(np.isfinite(pattern.y))
    d = pattern.d_spacing()
    assert np.all(np.isfinite(d)) and 0.05 < d.min() and d.max() < 200
    assert pattern.unit == ("tof" if row["radiation"] == "neutron_tof" else "two_theta")
    if pattern.unit == "two_theta":
        assert pattern.wavelength == pytest.approx(_first_number(row["wavelength_A"]), abs=2e-4)
        if "/" in row["wavelength_A"]:  # a K-alpha doublet
            assert pattern.wavelength2 == pytest.approx(float(row["wavelength_A"].split("/")[1].split()[0]), abs=2e-4)
    else:
        assert pattern.difc > 0 and pattern.difc == pytest.approx(DIFC.get(row["id"], pattern.difc))
    _cross_check(pattern, path, row)


def _cross_check(pattern, path: Path, row: dict) -> None:
    """Compare with a reading that does not go through powdersym."""
    fmt = pattern.metadata["format"]
    if fmt.startswith("columns"):
        data = np.loadtxt(path, comments=("#", "'"))
        np.testing.assert_array_equal(pattern.x, data[:, 0])
        np.testing.assert_array_equal(pattern.y, data[:, 1])
    elif fmt == "gsas-fxye":
        lines = path.read_text().splitlines() if path.suffix != ".zip" else None
        if lines is not None:
            start = next(i for i, line in enumerate(lines) if line.startswith("BANK"))
            data = np.loadtxt(lines[start + 1:])
            scale = 100.0 if pattern.unit == "two_theta" else 1.0  # CW FXYE x is in centidegrees
            np.testing.assert_allclose(pattern.x, data[:, 0] / scale)
            np.testing.assert_array_equal(pattern.y, data[:, 1])
            np.testing.assert_array_equal(pattern.sigma, data[:, 2])
    elif fmt.startswith("gsas"):
        bank_line = next(line for line in path.read_text(encoding="latin-1").splitlines() if line.startswith("BANK"))
        start, step = (float(v) / 100 for v in bank_line.split()[5:7])
        skipped = pattern.metadata.get("trimmed_zero_points", (0, 0))[0]
        assert pattern.x[0] == pytest.approx(start + skipped * step)
        np.testing.assert_allclose(np.diff(pattern.x), step)
        for k, (value, sigma) in enumerate(FIRST_RECORDS.get(row["id"], [])):
            assert pattern.y[k] == pytest.approx(value) and pattern.sigma[k] == pytest.approx(sigma)
    elif fmt == "pdcif":
        points = re.search(r"(\d+) profile points", row["notes"])
        trimmed = sum(pattern.metadata.get("trimmed_zero_points", (0, 0)))
        assert len(pattern) + trimmed == int(points.group(1))


def test_vulcan_series_loads(shared_data: Path, tmp_path: Path) -> None:
    """The 61 VULCAN .gda files of the tarball: both banks of each, with Vulcan.prm's bank calibrations."""
    folder = shared_data / "measured/gsas2_tutorials/files/TOF Sequential Single Peak Fit"
    with tarfile.open(folder / "vulcan_steel_435-495_gda.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    files = sorted(tmp_path.rglob("*.gda"))
    assert len(files) == 61
    for path in files:
        for bank, difc in ((1, 16369.20), (2, 16385.10)):
            pattern = read_pattern(path, bank=bank, instrument_file=folder / "data/Vulcan.prm")
            assert pattern.unit == "tof" and pattern.difc == difc
            assert len(pattern) + sum(pattern.metadata.get("trimmed_zero_points", (0, 0))) == 2487
            assert pattern.x[0] > 5000 and pattern.x[-1] < 60000  # SLOG 5000-60000 µs, zero-count ends dropped


def test_multibank_gsas_loads_each_bank(shared_data: Path) -> None:
    """GEM SF6: three RALF/ALT banks; bank n takes bank n of GEM.instprm; ALT x is stored as 32 x µs."""
    folder = shared_data / "measured/gsas2_tutorials/files/fullrmc-SF6/data"
    expected = {1: (82585 / 32, 1496.55), 2: (78895 / 32, 4845.84), 3: (72095 / 32, 6663.06)}
    for bank, (first_tof, difc) in expected.items():
        pattern = read_pattern(folder / "sf6_190gsas.dat", bank=bank, instrument_file=folder / "GEM.instprm")
        assert pattern.x[0] == pytest.approx(first_tof) and pattern.difc == difc and len(pattern) == 2720
    first = read_pattern(folder / "sf6_190gsas.dat", bank=1, instrument_file=folder / "GEM.instprm")
    assert (first.y[0], first.sigma[0]) == (21297, 313)  # '   82585  21297  313'


def test_truncated_gsas_bank_is_kept_and_flagged(shared_data: Path) -> None:
    """PrSrMnO.gda promises 2415 points and holds 2395 (its last 2 records are missing): the positions are
    fixed by CONST binning, so the pattern loads and says what is missing."""
    folder = shared_data / "measured/gsas2_tutorials/files/Magnetic-IV/data"
    pattern = read_pattern(folder / "PrSrMnO.gda", instrument_file=folder / "Saclay 3T2.instprm")
    assert len(pattern) == 2395 and pattern.metadata["missing_points"] == 20
    assert pattern.x[0] == 6.0 and pattern.x[-1] == pytest.approx(6.0 + 2394 * 0.05)


def test_mantid_tof_header_states_the_unit(shared_data: Path) -> None:
    path = shared_data / "measured/gsas2_tutorials/files/Magnetic-V/data/PG3_20254-2_10K.xye"
    pattern = read_pattern(path)
    assert pattern.unit == "tof" and pattern.metadata["unit_source"] == "file header" and pattern.difc is None
    with pytest.raises(PatternFormatError, match="without DIFC"):
        pattern.d_spacing()
