"""GSAS powder data files (.raw, .gsa, .gsas, .gda, .gss, .fxye, .xra, .cwn): one or more 'BANK' histograms.

GSAS manual (and GSAS-II's G2pwd_fxye reader) layout: line 1 is a title; '#' comment lines may precede a
bank; each bank starts with 'BANK ibank nchan nrec bintyp bcoef1..4 [type]'. Binning (bintyp): CONST/CONS
(x = bcoef1 + j bcoef2), SLOG (log binning, explicit x in FXY/FXYE records), RALF (explicit x in ALT
records). Record types: STD (10 x (I2 counters, I6 counts)), ESD (5 x (F8 y, F8 esd)), ALT (4 x (F8 x*32, F7 y,
F5 esd)), FXY/FXYE (free-format x y [esd]). Constant-wavelength x is in centidegrees, ToF x in µs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from powdersym.io.pattern import PatternFormatError

RECORD_TYPES = ("STD", "ESD", "ALT", "FXYE", "FXY")
BINNINGS = ("CONST", "CONS", "SLOG", "RALF")


@dataclass
class GsasBank:
    """One histogram as stored: x in file units (centidegrees or µs), y, sigma, and the BANK line's fields."""

    number: int
    binning: str
    record_type: str
    x: np.ndarray
    y: np.ndarray
    sigma: np.ndarray
    n_promised: int  # nchan of the BANK line; as GSAS-II, explicit-x records are all kept, whatever nchan says


def is_gsas(text: str) -> bool:
    """True when a line starts with 'BANK' followed by a number (the GSAS histogram header)."""
    return "BANK" in text and re.search(r"^BANK[ \t]+\d+", text, re.MULTILINE) is not None


def bank_numbers(text: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^BANK\s+(\d+)", text, re.MULTILINE)]


def header_comments(text: str) -> list[str]:
    """The title and the comment lines (before the first BANK line and '#' lines anywhere)."""
    lines = text.splitlines()
    out = lines[:1]
    for line in lines[1:]:
        if line.startswith("BANK"):
            break
        out.append(line)
    return out


def read_bank(text: str, source: str, bank: int | None) -> GsasBank:
    """The histogram `bank` (its number on the BANK line); a file with one bank ignores `bank`=None."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if i > 0 and re.match(r"BANK\s+\d+", line)]
    if not starts:
        raise PatternFormatError("GSAS file without a 'BANK' line", source)
    numbers = [int(lines[i].split()[1]) for i in starts]
    if bank is None:
        if len(starts) > 1:
            raise PatternFormatError(f"holds banks {', '.join(map(str, numbers))}; choose one with bank=", source)
        index = 0
    elif bank in numbers:
        index = numbers.index(bank)
    else:
        raise PatternFormatError(f"has no bank {bank} (banks: {', '.join(map(str, numbers))})", source)
    head = lines[starts[index]].split()
    if len(head) < 5:
        raise PatternFormatError(f"incomplete BANK line {lines[starts[index]].strip()!r}", source)
    try:
        n_points = int(head[2])
    except ValueError:
        raise PatternFormatError(f"BANK line: {head[2]!r} is not a point count", source) from None
    binning = head[4].upper()
    if binning not in BINNINGS:
        raise PatternFormatError(f"GSAS binning {binning!r} is not supported (CONST, SLOG, RALF)", source)
    record_type = next((t for t in RECORD_TYPES if head[-1].upper() == t), "STD")
    coefficients = [_float(v, source, "BANK coefficient") for v in head[5:9]]
    if n_points < 2 or n_points > 50_000_000:
        raise PatternFormatError(f"BANK line promises {n_points} points", source)
    body = []
    for line in lines[starts[index] + 1:]:
        if line.startswith(("BANK", "#", "TIME_MAP")):
            break
        body.append(line)

    if record_type in ("FXY", "FXYE"):
        x, y, sigma = _free_format(body, record_type, source)
    elif record_type == "ALT":
        x, y, sigma = _alt(body, source)
    else:
        if binning not in ("CONST", "CONS") or len(coefficients) < 2:
            raise PatternFormatError(f"{record_type} records need CONST binning with start and step", source)
        y, sigma = _std(body, n_points, source) if record_type == "STD" else _esd(body, n_points, source)
        x = coefficients[0] + coefficients[1] * np.arange(len(y))
    if len(y) < 2:
        raise PatternFormatError(f"bank {numbers[index]}: BANK line promises {n_points} points, found {len(y)}",
                                 source)
    if record_type in ("STD", "ESD"):  # positions come from the count: records past nchan are padding
        x, y, sigma = x[:n_points], y[:n_points], sigma[:n_points]
    return GsasBank(numbers[index], binning, record_type, x, y, sigma, n_points)


def _float(text: str, source: str, what: str) -> float:
    try:
        return float(text) if text.strip() else 0.0
    except ValueError:
        raise PatternFormatError(f"{what} {text.strip()[:30]!r} is not a number", source) from None


def _fields(body: list[str], width: int, per_line: int) -> list[str]:
    out = []
    for line in body:
        line = line.rstrip("\r\n").ljust(width * per_line)
        for k in range(per_line):
            field = line[k * width:(k + 1) * width]
            if not field.strip():
                break
            out.append(field)
    return out


def _std(body: list[str], n_points: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    fields = _fields(body, 8, 10)[:n_points]
    counters = np.array([max(int(_float(f[:2], source, "STD counter")), 1) for f in fields], dtype=np.float64)
    y = np.array([_float(f[2:], source, "STD count") for f in fields], dtype=np.float64)
    return y, np.sqrt(np.clip(y, 0, None) / counters)  # GSAS: variance = counts / number of counters


def _esd(body: list[str], n_points: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    fields = _fields(body, 16, 5)[:n_points]
    y = np.array([_float(f[:8], source, "ESD intensity") for f in fields], dtype=np.float64)
    sigma = np.array([_float(f[8:], source, "ESD sigma") for f in fields], dtype=np.float64)
    return y, sigma


def _alt(body: list[str], source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fields = [f for f in _fields(body, 20, 4) if f[:8].strip()]
    x = np.array([_float(f[:8], source, "ALT x") for f in fields], dtype=np.float64) / 32.0  # stored as 32 x µs
    y = np.array([_float(f[8:15], source, "ALT intensity") for f in fields], dtype=np.float64)
    sigma = np.array([_float(f[15:20], source, "ALT sigma") for f in fields], dtype=np.float64)
    keep = x > 0
    return x[keep], y[keep], sigma[keep]


def _free_format(body: list[str], record_type: str, source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n_columns = 3 if record_type == "FXYE" else 2
    rows = []
    for line in body:
        values = line.split()
        if not values:
            continue
        if len(values) < n_columns:
            raise PatternFormatError(f"{record_type} record {line.strip()[:40]!r} has fewer than {n_columns} values",
                                     source)
        rows.append([_float(v, source, f"{record_type} value") for v in values[:n_columns]])
    data = np.asarray(rows, dtype=np.float64).reshape(-1, n_columns)
    y = data[:, 1]
    sigma = data[:, 2] if n_columns == 3 else np.sqrt(np.clip(y, 0, None))
    return data[:, 0], y, sigma
