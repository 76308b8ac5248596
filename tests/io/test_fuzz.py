"""Fuzz: random bytes and random pattern-like text never escape as anything but a one-line PatternFormatError,
and never come back as a pattern with NaN or a non-increasing x."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powdersym.io import PatternFormatError, read_pattern
from powdersym.io.text import _read_columns_by_line, read_columns

SUFFIXES = (".xye", ".xy", ".csv", ".dat", ".gsa", ".raw", ".fxye", ".cif", ".zip")
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

number = st.one_of(
    st.integers(-5, 100000).map(str),
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(lambda v: f"{v:.4g}"),
    st.sampled_from(["nan", "inf", "-0", "1e400", "1_0", "0x10", ".", "?", "(3)", "1(2)"]),
)
column_line = st.lists(number, min_size=0, max_size=4).flatmap(
    lambda fields: st.sampled_from([" ", ",", ";", "\t"]).map(lambda sep: sep.join(fields))
)
gsas_text = st.tuples(
    st.sampled_from(["CONST", "CONS", "SLOG", "RALF", "LPSD"]),
    st.sampled_from(["", "STD", "ESD", "ALT", "FXYE", "FXY"]),
    st.integers(-2, 40),
    st.lists(column_line, max_size=12),
).map(lambda t: f"title\nBANK 1 {t[2]} 3 {t[0]} 1000 5 0.001 0 {t[1]}\n" + "\n".join(t[3]) + "\n")
cif_text = st.lists(column_line, max_size=10).map(
    lambda lines: "data_x\n_diffrn_radiation_wavelength 1.54\n_pd_meas_2theta_range_min 10\n"
    "_pd_meas_2theta_range_max 20\n_pd_meas_2theta_range_inc 1\nloop_\n_pd_proc_2theta_corrected\n"
    "_pd_meas_counts_total\n" + "\n".join(lines) + "\n"
)
text = st.one_of(
    st.lists(column_line, max_size=30).map("\n".join),
    gsas_text,
    cif_text,
    st.text(alphabet=st.characters(codec="latin-1"), max_size=400),
)


def check(content: bytes, suffix: str, **kwargs) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(content)
        try:
            pattern = read_pattern(path, **kwargs)
        except PatternFormatError as error:
            assert "\n" not in str(error) and str(error)
            return
    assert np.all(np.isfinite(pattern.x)) and np.all(np.isfinite(pattern.y))
    assert np.all(np.diff(pattern.x) > 0) and pattern.x[0] > 0
    assert pattern.sigma is None or (np.all(np.isfinite(pattern.sigma)) and np.all(pattern.sigma >= 0))


@FUZZ
@given(content=st.binary(max_size=600), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(content: bytes, suffix: str) -> None:
    check(content, suffix)


@FUZZ
@given(content=text, suffix=st.sampled_from(SUFFIXES), unit=st.sampled_from([None, "two_theta", "tof", "d"]))
def test_random_pattern_like_text(content: str, suffix: str, unit: str | None) -> None:
    check(content.encode("latin-1", errors="replace"), suffix, unit=unit)


# Mostly regular column blocks, so that the one-parse reader takes most of them, with the irregularities it must
# hand to the line-by-line reader: bad numbers, ragged rows, blank lines, trailing commas, comments, CRLF.
plain_number = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda v: f"{v:.6e}"),
    st.integers(-10**6, 10**6).map(str),
    st.sampled_from(["1.", ".5", "+3", "-0", "00", "1e5", "1E-3", "1e400", "-1e-400"]),
)
odd_number = st.sampled_from(["1e", ".", "-", "+", "1-2", "1.2.3", "e5", "--1", "1_0", "nan", "inf", "", "0x1"])


@st.composite
def column_block(draw) -> str:
    n_columns = draw(st.integers(1, 4))
    separator = draw(st.sampled_from([" ", "  ", "\t", ",", ", ", " ,"]))
    trailing = draw(st.sampled_from(["", "", " ", ",", ", "]))
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["row"] * 8 + ["ragged", "odd", "blank", "comment"]))
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", "  ", "\t"])))
        elif kind == "comment":
            lines.append(draw(st.sampled_from(["# note", "! x", "% y"])))
        else:
            count = draw(st.integers(1, 5)) if kind == "ragged" else n_columns
            fields = draw(st.lists(odd_number if kind == "odd" else plain_number, min_size=count, max_size=count))
            lines.append(separator.join(fields) + trailing)
    header = draw(st.sampled_from(["", "# 2theta intensity\n", "x y e\n", "'title\n"]))
    return header + draw(st.sampled_from(["\n", "\r\n"])).join(lines)


def outcome(read) -> tuple:
    try:
        x, y, sigma, header = read()
    except PatternFormatError as error:
        return ("error", str(error))
    return ("data", x.tolist(), y.tolist(), None if sigma is None else sigma.tolist(), header)


@settings(max_examples=300, deadline=None)
@given(text=column_block())
def test_one_parse_of_the_data_block_agrees_with_the_line_by_line_reader(text: str) -> None:
    """read_columns parses a regular data block in one go: the same values, header and errors as the careful
    line-by-line reader, whatever the block holds."""
    assert outcome(lambda: read_columns(text, "f.xye")) == outcome(lambda: _read_columns_by_line(text.splitlines(), "f.xye"))
