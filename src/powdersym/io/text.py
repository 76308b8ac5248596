"""Plain column files: x, intensity and optionally sigma (xy, xye, dat, csv; Mantid's ToF xye).

Header and comment lines ('#', "'", '!', '%') are kept for the unit and the wavelength they state; the data
lines must all use one delimiter (whitespace, ',' or ';') and have the same 2 or 3 columns.
"""

from __future__ import annotations

import io
import re

import numpy as np

from powdersym.io.pattern import PatternFormatError

COMMENT_PREFIXES = ("#", "'", "!", "%")

# First word of a column header, or Mantid's "The X-axis unit is: ...", naming the x unit.
_UNIT_WORDS = {  # lower case, without '-' and '_'
    "two_theta": ("2theta", "twotheta", "2th", "tth", "2θ", "degrees", "angle"),
    "tof": ("tof", "timeofflight", "time"),
    "d": ("d", "dspacing"),
    "q": ("q", "momentumtransfer"),
}
_WAVELENGTH = re.compile(r"(?:wavelength|lambda)[^0-9\n]{0,20}?([0-9]*\.[0-9]+)", re.IGNORECASE)


def read_columns(text: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """(x, y, sigma or None, header lines) of a column file; raises PatternFormatError on anything malformed."""
    lines = text.splitlines()
    fast = _read_columns_fast(lines)
    if fast is not None:
        header, data = fast
        return (*_columns(data, source), header)
    return _read_columns_by_line(lines, source)


def _read_columns_by_line(lines: list[str], source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """The careful reader: line by line, naming the first line that breaks the format."""
    header: list[str] = []
    rows: list[list[float]] = []
    first_line = 0
    delimiter = " "
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(COMMENT_PREFIXES):
            header.append(line)
            continue
        if not rows:  # the data's delimiter, not that of a column-name line ('2theta intensity' above 'a,b' rows)
            delimiter = _delimiter(line)
        values = _parse_line(line, delimiter)
        if values is None:
            if not rows:
                header.append(line)  # a column-name line before the data
                continue
            if delimiter == " " and ("," in line or ";" in line) or delimiter == "," and ";" in line:
                raise PatternFormatError(f"line {number}: mixed delimiters ({line[:40]!r})", source)
            raise PatternFormatError(f"line {number} is not numeric: {line[:40]!r}", source)
        if rows and len(values) != len(rows[0]):
            raise PatternFormatError(
                f"line {number} has {len(values)} columns, line {first_line} has {len(rows[0])}", source
            )
        if not rows:
            first_line = number
        rows.append(values)
    if not rows:
        raise PatternFormatError("no numeric data lines", source)
    x, y, sigma = _columns(np.asarray(rows, dtype=np.float64), source)
    return x, y, sigma, header


# Characters a regular data block may hold; anything else (comments, nan, inf, hex, '_', ';', other line
# breaks) sends the file to the line-by-line reader.
_PLAIN_BYTES = {" ": b"0123456789.eE+- \t\n", ",": b"0123456789.eE+- \t\n,"}
_TRAILING_COMMA = re.compile(r"(?<=[0-9.])[ \t]*,[ \t]*$", re.MULTILINE)  # after a number: never empties a line


def _read_columns_fast(lines: list[str]) -> tuple[list[str], np.ndarray] | None:
    """The common case in one parse of the whole data block (numpy's C reader): header lines, then whitespace- or
    comma-separated numbers with the same count on every line. None whenever anything is unusual; the
    line-by-line reader then gives the same result or explains the problem."""
    header: list[str] = []
    for start, raw in enumerate(lines):
        line = raw.strip()
        if line and not line.startswith(COMMENT_PREFIXES):
            delimiter = _delimiter(line)
            if _parse_line(line, delimiter) is not None:
                break
        if line:
            header.append(line)
    else:
        return None
    if delimiter == ";":
        return None
    body = "\n".join(lines[start:])
    if body.encode("latin-1", errors="replace").translate(None, _PLAIN_BYTES[delimiter]):
        return None
    if delimiter == "," and line.endswith(","):  # one trailing delimiter per line, as _parse_line allows
        body = _TRAILING_COMMA.sub("", body)
    try:
        # Same conversion as float() (PyOS_string_to_double); ragged rows and bad numbers raise ValueError.
        data = np.loadtxt(io.StringIO(body), dtype=np.float64, delimiter=None if delimiter == " " else ",",
                          comments=None, ndmin=2)
    except ValueError:
        return None
    return header, data


def _delimiter(line: str) -> str:
    return "," if "," in line else ";" if ";" in line else " "


def _columns(data: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """x, intensity and sigma (or None) of a [rows, columns] numeric block, checked."""
    n_columns = data.shape[1]
    if n_columns == 1:
        raise PatternFormatError("only one column; expected x, intensity and optionally sigma", source)
    if n_columns > 3:
        raise PatternFormatError(
            f"{n_columns} columns; expected x, intensity and optionally sigma (which column is which is unclear)",
            source,
        )
    bad = ~np.isfinite(data)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        name = ("x", "intensity", "sigma")[column]
        raise PatternFormatError(f"{name} is not finite (NaN or inf) in data row {row + 1}", source)
    sigma = data[:, 2] if n_columns == 3 else None
    return data[:, 0], data[:, 1], sigma


def _parse_line(line: str, delimiter: str) -> list[float] | None:
    fields = line.split() if delimiter == " " else [f.strip() for f in line.split(delimiter)]
    if delimiter != " " and fields and fields[-1] == "":
        fields = fields[:-1]  # a trailing delimiter
    if not fields or any("_" in f for f in fields):  # Python's float() would accept '1_000'
        return None
    try:
        return [float(f) for f in fields]
    except ValueError:
        return None


def unit_from_header(header: list[str]) -> str | None:
    """The x unit a header states (Mantid's 'X-axis unit is:' line, or the first word of a column-name line)."""
    for line in header:
        match = re.search(r"x-axis unit is:?\s*(\S+)", line, re.IGNORECASE)
        if match:
            return _unit_word(match.group(1))
    if header:
        words = header[-1].lstrip("#'!% ").split()
        if len(words) >= 2:
            return _unit_word(words[0])
    return None


def _unit_word(word: str) -> str | None:
    key = re.split(r"[(\[,;:]", word.lower())[0].replace("-", "").replace("_", "")
    for unit, words in _UNIT_WORDS.items():
        if key in words:
            return unit
    return None


def wavelength_from_header(header: list[str]) -> float | None:
    """A wavelength (Å) a header line states ('wavelength = 1.54', '# Calibrated wavelength = 0.413909')."""
    for line in header:
        match = _WAVELENGTH.search(line)
        if match:
            value = float(match.group(1))
            if 0.01 < value < 20:
                return value
    return None


def infer_unit(x: np.ndarray, source: str) -> str:
    """The unit of x when nothing states it: ToF above 1000 (µs), 2theta for 15 < max < 180 (deg)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi > 1000:
        return "tof"
    if 15 < hi < 180:
        return "two_theta"
    raise PatternFormatError(
        f"cannot tell the x unit from values {lo:g}..{hi:g}; pass unit= ('two_theta', 'tof', 'd' or 'q')", source
    )
