"""Readers on small files written here: each format's layout and units, overrides, and one-line refusals."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import numpy as np
import pytest

import powdersym.io.readers as readers
from powdersym.io import PatternFormatError, read_instrument_parameters, read_pattern, write_xye


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refused(path: Path, match: str, **kwargs) -> str:
    with pytest.raises(PatternFormatError, match=match) as error:
        read_pattern(path, **kwargs)
    message = str(error.value)
    assert "\n" not in message and Path(path).name in message
    return message


# ---- column files ------------------------------------------------------------------------------------------


def test_xye_round_trip(tmp_path: Path) -> None:
    x = np.linspace(10, 100, 50)
    y, sigma = 100 + x, np.sqrt(100 + x)
    write_xye(tmp_path / "p.xye", x, y, sigma, header="2theta intensity sigma")
    pattern = read_pattern(tmp_path / "p.xye", wavelength=1.54)
    np.testing.assert_allclose(pattern.x, x, atol=1e-6)
    np.testing.assert_allclose(pattern.y, y, rtol=1e-8)
    assert pattern.unit == "two_theta" and pattern.metadata["unit_source"] == "file header"


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "  "])
def test_delimiters_and_header_line(tmp_path: Path, delimiter: str) -> None:
    text = f"2theta{delimiter}counts\n" + "".join(f"{10 + k}{delimiter}{5 + k}\n" for k in range(20))
    pattern = read_pattern(write(tmp_path, "p.csv", text), wavelength=1.0)
    assert pattern.x[0] == 10 and pattern.y[-1] == 24 and pattern.sigma is None


def test_decreasing_x_is_reversed_and_d_unit_from_header(tmp_path: Path) -> None:
    text = "# d-spacing intensity\n" + "".join(f"{4 - 0.1 * k:.1f} {k + 1}\n" for k in range(30))
    pattern = read_pattern(write(tmp_path, "p.dat", text))
    assert pattern.unit == "d" and pattern.metadata["reversed"] and pattern.x[0] == pytest.approx(1.1)
    np.testing.assert_allclose(pattern.d_spacing(), pattern.x)


def test_q_unit_and_header_wavelength(tmp_path: Path) -> None:
    q = read_pattern(write(tmp_path, "q.xy", "".join(f"{1 + k * 0.1} 5\n" for k in range(20))), unit="q")
    np.testing.assert_allclose(q.d_spacing(), 2 * np.pi / q.x)
    text = "# wavelength = 1.2345 A\n" + "".join(f"{20 + k} {k + 3}\n" for k in range(20))
    cw = read_pattern(write(tmp_path, "w.xy", text))
    assert cw.wavelength == 1.2345 and cw.metadata["calibration_source"]["wavelength"] == "file header"
    assert read_pattern(tmp_path / "w.xy", wavelength=2.0).wavelength == 2.0  # arguments win


def test_unit_inference_and_its_limit(tmp_path: Path) -> None:
    tof = read_pattern(write(tmp_path, "t.xy", "".join(f"{2000 + 10 * k} 5\n" for k in range(20))), difc=5000.0)
    assert tof.unit == "tof" and tof.metadata["unit_source"] == "inferred from the x range"
    np.testing.assert_allclose(tof.d_spacing(), tof.x / 5000.0)
    refused(write(tmp_path, "amb.xy", "".join(f"{1 + 0.1 * k} 5\n" for k in range(20))), "cannot tell the x unit")


def test_leading_and_trailing_zero_points_are_dropped(tmp_path: Path) -> None:
    text = "".join(f"{10 + k} {0 if k < 3 or k > 15 else k}\n" for k in range(20))
    pattern = read_pattern(write(tmp_path, "z.xy", text), wavelength=1.0)
    assert pattern.x[0] == 13 and pattern.x[-1] == 25 and pattern.metadata["trimmed_zero_points"] == (3, 4)


# ---- malformed input ---------------------------------------------------------------------------------------

MALFORMED = {
    "empty": ("", "empty file"),
    "blank": ("\n  \n", "empty file"),
    "one_column": ("1\n2\n3\n", "only one column"),
    "four_columns": ("10 1 1 1\n11 1 1 1\n", "4 columns"),
    "nan": ("10 1\n11 nan\n12 3\n", "not finite"),
    "inf": ("10 1\ninf 2\n", "not finite"),
    "negative_x": ("-1 5\n0.5 6\n20 7\n", "must be positive"),
    "non_monotonic": ("20 1\n21 2\n20.5 3\n22 4\n", "not strictly increasing"),
    "duplicate_x": ("20 1\n20 2\n21 3\n", "not strictly increasing"),
    "mixed_delimiters": ("20 1\n21,2\n", "mixed delimiters"),
    "ragged": ("20 1 1\n21 2\n", "columns"),
    "text_in_data": ("20 1\n21 2\nhello world\n", "not numeric"),
    "negative_sigma": ("20 1 -1\n21 2 1\n", "negative standard error"),
    "all_zero": ("20 0\n21 0\n", "all intensities are zero"),
    "single_point": ("20 5\n", "at least 2"),
    "underscore_number": ("20 1\n21 1_000\n22 2\n", "not numeric"),
    "above_180": ("100 1\n190 2\n", "cannot tell the x unit"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_column_file(tmp_path: Path, case: str) -> None:
    text, reason = MALFORMED[case]
    refused(write(tmp_path, f"{case}.xye", text), reason, wavelength=1.5)


def test_binary_and_archives_and_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused(write(tmp_path, "garbage.xy", b"10 1\n\x00\x01\x02\xff\n"), "binary data")
    refused(write(tmp_path, "p.xy.gz", gzip.compress(b"10 1\n11 2\n")), "extract it first")
    refused(write(tmp_path, "p.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 20), "HDF5")
    refused(tmp_path / "missing.xye", "no such file")
    refused(tmp_path, "is a directory")
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 10)
    refused(write(tmp_path, "big.xy", "10 1\n11 2\n12 3\n"), "above the")


def test_zip_with_one_pattern_opens_and_others_are_refused(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:
        archive.writestr("p.xye", "".join(f"{10 + k} {k + 1} 1\n" for k in range(20)))
    pattern = read_pattern(tmp_path / "one.zip", wavelength=1.0)
    assert len(pattern) == 20 and pattern.metadata["file_name"] == "p.xye"
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:
        archive.writestr("a.xy", "10 1\n11 2\n")
        archive.writestr("b.xy", "10 1\n11 2\n")
    refused(tmp_path / "two.zip", "holds 2 files")
    refused(write(tmp_path, "bad.zip", b"PK\x03\x04garbage"), "damaged zip")


def test_bad_arguments(tmp_path: Path) -> None:
    path = write(tmp_path, "p.xy", "".join(f"{20 + k} {k + 1}\n" for k in range(20)))
    refused(path, "unknown unit", unit="energy")
    refused(path, "wavelength given", unit="tof", wavelength=1.0)
    refused(path, "DIFC given", difc=1000.0)
    refused(path, "wavelength must be a positive number", wavelength=-1.0)
    with pytest.raises(PatternFormatError, match="without a wavelength") as error:
        read_pattern(path).d_spacing()
    assert "p.xy" in str(error.value)


# ---- GSAS --------------------------------------------------------------------------------------------------


def _std_records(counts: list[int], counters: int | None = None) -> str:
    fields = [(f"{counters:2d}" if counters else "  ") + f"{c:6d}" for c in counts]
    return "".join("".join(fields[k:k + 10]) + "\n" for k in range(0, len(fields), 10))


def test_gsas_std_with_counters_and_padding(tmp_path: Path) -> None:
    counts = list(range(100, 125))
    text = "title line\nBANK 1 25 3 CONST 1000 5 0 0\n" + _std_records(counts + [0] * 5, counters=4)
    pattern = read_pattern(write(tmp_path, "p.raw", text), wavelength=1.5)
    assert len(pattern) == 25 and pattern.x[0] == 10.0 and pattern.x[-1] == pytest.approx(11.2)
    np.testing.assert_allclose(pattern.sigma, np.sqrt(np.array(counts) / 4))  # GSAS: variance = counts / NCTR


def test_gsas_esd_fxye_and_instrument_file(tmp_path: Path) -> None:
    esd = "".join(f"{100 + k:8.1f}{10 + k:8.2f}" for k in range(10))
    text = "t\nBANK 1 10 2 CONST 2000 10 0 0 ESD\n" + esd[:80] + "\n" + esd[80:] + "\n"
    prm = write(tmp_path, "inst.prm", "INS   BANK      1\nINS   HTYPE   PXCR\n"
                "INS  1 ICONS  1.540500  1.544300      10.0         0       0.7    0       0.5\n")
    pattern = read_pattern(write(tmp_path, "p.gsas", text), instrument_file=prm)
    assert (pattern.wavelength, pattern.wavelength2, pattern.ka2_ratio, pattern.zero) == (1.5405, 1.5443, 0.5, 0.1)
    assert pattern.y[3] == 103 and pattern.sigma[3] == 13 and pattern.x[1] == pytest.approx(20.1)
    two_theta = 2 * np.degrees(np.arcsin(1.5405 / (2 * pattern.d_spacing())))
    np.testing.assert_allclose(two_theta, pattern.x - 0.1)  # the zero shift is taken off
    fxye = "t\n# Calibrated wavelength = 0.4139\nBANK 1 3 3 CONS 500 1 0 0 FXYE\n500 1 1\n501 2 1\n502 3 1\n"
    pattern = read_pattern(write(tmp_path, "p.fxye", fxye))
    assert pattern.wavelength == 0.4139 and pattern.x[-1] == 5.02


def test_gsas_tof_slog_and_alt(tmp_path: Path) -> None:
    slog = "t\n# DIFC 20000.5\nBANK 2 3 3 SLOG 5000 6000 0.001 0 FXYE\n5000 1 1\n5005 2 1\n5010 3 1\n"
    pattern = read_pattern(write(tmp_path, "p.gsa", slog))
    assert pattern.unit == "tof" and pattern.difc == 20000.5 and pattern.metadata["bank"] == 2
    alt = "t\nBANK 1 2 1 RALF 3200 32 3200 0.001 ALT\n" + "    3200   1500   40    3232   1600   41\n"
    pattern = read_pattern(write(tmp_path, "p.alt", alt), difc=1000.0)
    np.testing.assert_allclose(pattern.x, [100.0, 101.0])  # ALT x is 32 x µs
    assert list(pattern.y) == [1500, 1600] and list(pattern.sigma) == [40, 41]


def test_gsas_bank_selection(tmp_path: Path) -> None:
    text = "t\n" + "".join(f"BANK {b} 3 3 CONS 1000 10 0 0 FXYE\n1000 1 1\n1010 2 1\n1020 {b} 1\n" for b in (1, 3))
    path = write(tmp_path, "multi.gsa", text)
    refused(path, "holds banks 1, 3", wavelength=1.0)
    refused(path, "no bank 2", bank=2, wavelength=1.0)
    assert read_pattern(path, bank=3, wavelength=1.0).y[-1] == 3


@pytest.mark.parametrize(
    "text,reason",
    [
        ("t\nBANK 1 10 1 TIME_MAP 1 2 0 0\n", "not supported"),
        ("t\nBANK 1 x 1 CONST 1 2 0 0\n", "not a point count"),
        ("t\nBANK 1 10 1 CONST 1000 5 0 0\n  ab  cd\n", "not a number"),
        ("t\nBANK 1 3 3 SLOG 1 2 0.1 0 FXYE\n1 2\n", "fewer than 3"),
        ("t\nBANK 1 3 3 CONST 1000 5 0 0\n", "promises 3 points, found 0"),
    ],
)
def test_gsas_malformed(tmp_path: Path, text: str, reason: str) -> None:
    refused(write(tmp_path, "bad.gsa", text), reason)


# ---- instrument parameter files ----------------------------------------------------------------------------


def test_instprm_banks_and_types(tmp_path: Path) -> None:
    text = ("#Bank 1: GSAS-II instrument parameter file\nType:PNT\ndifC:1000.5\ndifA:-1.5\nZero:2.0\n2-theta:90\n"
            "#Bank 2: GSAS-II instrument parameter file\nType:PNT\ndifC:2000.0\ndifA:0.0\nZero:0.0\n")
    path = write(tmp_path, "multi.instprm", text)
    with pytest.raises(PatternFormatError, match="choose one with bank="):
        read_instrument_parameters(path)
    bank1 = read_instrument_parameters(path, bank=1)
    assert (bank1["geometry"], bank1["difc"], bank1["difa"], bank1["zero"]) == ("tof", 1000.5, -1.5, 2.0)
    assert read_instrument_parameters(path, bank=2)["difc"] == 2000.0
    cw = write(tmp_path, "cw.instprm", "#GSAS-II instrument parameter file\nType:PXC\nLam1:1.5405\nLam2:1.5443\n"
               "I(L2)/I(L1):0.5\nZero:0.0\n")
    assert read_instrument_parameters(cw)["wavelength2"] == 1.5443
    for bad, reason in (("Type:PNC\nZero:0\n", "without a wavelength"), ("Type:SXC\nLam:1\n", "not a powder"),
                        ("hello\n", "not an instrument parameter file"), ("Type:PNT\ndifC:abc\n", "not a number")):
        with pytest.raises(PatternFormatError, match=reason):
            read_instrument_parameters(write(tmp_path, "bad.instprm", bad))


def test_instrument_file_given_as_pattern_or_of_the_wrong_geometry(tmp_path: Path) -> None:
    prm = write(tmp_path, "i.instprm", "#GSAS-II instrument parameter file\nType:PNT\ndifC:1000\n")
    refused(prm, "instrument parameter file; pass it as instrument_file=")
    data = write(tmp_path, "p.xy", "".join(f"{20 + k} {k + 1}\n" for k in range(20)))
    refused(data, "is for time of flight but the pattern's x is two_theta", unit="two_theta", instrument_file=prm)
    pattern = read_pattern(data, instrument_file=prm)  # no unit stated: the instrument file's geometry decides
    assert pattern.unit == "tof" and pattern.metadata["unit_source"] == "instrument file"


# ---- pdCIF -------------------------------------------------------------------------------------------------


def test_pdcif_range_only_profile_with_esds(tmp_path: Path) -> None:
    text = ("data_profile\n_pd_meas_2theta_range_min 10.0\n_pd_meas_2theta_range_max 10.4\n"
            "_pd_meas_2theta_range_inc 0.1\n_diffrn_radiation_wavelength 1.5406\nloop_\n_pd_meas_counts_total\n"
            "_pd_calc_intensity_total\n100(10) 5\n121(11) 5\n144(12) 5\n169(13) 5\n196(14) 5\n"
            "data_phase_simulated_1.5\nloop_\n_pd_meas_counts_total\n1\n2\n")
    pattern = read_pattern(write(tmp_path, "p.cif", text))
    np.testing.assert_allclose(pattern.x, [10.0, 10.1, 10.2, 10.3, 10.4])
    assert list(pattern.y) == [100, 121, 144, 169, 196] and list(pattern.sigma) == [10, 11, 12, 13, 14]
    assert pattern.wavelength == 1.5406 and pattern.metadata["block"] == "profile"
    bad = text.replace("10.4\n", "10.9\n")
    refused(write(tmp_path, "bad.cif", bad), "cannot place the 5 profile points")
    refused(write(tmp_path, "syntax.cif", "data_x\nloop_\n_pd_meas_counts_total\n'unclosed\n"), "CIF syntax")
    refused(write(tmp_path, "nodata.cif", "data_x\n_cell_length_a 5\n"), "without a measured powder profile")
