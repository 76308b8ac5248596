"""Powder CIF (pdCIF, IUCr): the measured profile loop of a Rietveld CIF, read with gemmi's CIF parser.

x comes from a loop column (_pd_proc_2theta_corrected, _pd_meas_2theta_scan, _pd_meas_time_of_flight,
_pd_proc_d_spacing, _pd_proc_recip_len_Q) or, failing that, from _pd_proc_/_pd_meas_2theta_range_min/max/inc;
intensities from the measured or processed columns, never from _pd_calc_* (the refined model). Blocks named
'*_simulated_*' (added to some shared files by a later study) are ignored.
"""

from __future__ import annotations

import math
import re

import gemmi
import numpy as np

from powdersym.io.pattern import PatternFormatError

X_TAGS = (
    ("_pd_proc_2theta_corrected", "two_theta"),
    ("_pd_meas_2theta_scan", "two_theta"),
    ("_pd_meas_angle_2theta", "two_theta"),  # pre-2000 name
    ("_pd_meas_time_of_flight", "tof"),
    ("_pd_proc_d_spacing", "d"),
    ("_pd_proc_recip_len_q", "q"),
)
Y_TAGS = (
    "_pd_meas_counts_total",
    "_pd_meas_intensity_total",
    "_pd_proc_intensity_total",
    "_pd_proc_intensity_net",
    "_pd_meas_counts_net",
)
_ESD = re.compile(r"^([-+]?)(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?\((\d+)\)$")


def is_pdcif(text: str) -> bool:
    return "_pd_" in text and re.search(r"^[ \t]*data_", text, re.MULTILINE) is not None


def read_pdcif(text: str, source: str, bank: int | None = None) -> dict:
    """x, y, sigma, unit, wavelength(s) and block name of the measured profile (the `bank`-th if several)."""
    try:
        document = gemmi.cif.read_string(text)
    except (RuntimeError, ValueError) as error:
        raise PatternFormatError(f"CIF syntax error: {str(error).splitlines()[0][:120]}", source) from None
    blocks = [b for b in document if "_simulated_" not in b.name.lower()]
    candidates = []
    for block in blocks:
        y_tag = next((tag for tag in Y_TAGS if _find_column(block, tag) is not None), None)
        if y_tag is not None:
            candidates.append((block, y_tag))
    if not candidates:
        raise PatternFormatError("CIF without a measured powder profile loop (_pd_meas_* / _pd_proc_intensity_*)",
                                 source)
    if len(candidates) > 1 and bank is None:
        names = ", ".join(b.name for b, _ in candidates)
        raise PatternFormatError(f"CIF holds {len(candidates)} profiles ({names}); choose one with bank=1..", source)
    index = 0 if bank is None else bank - 1
    if not 0 <= index < len(candidates):
        raise PatternFormatError(f"CIF has no profile {bank} (it holds {len(candidates)})", source)
    block, y_tag = candidates[index]
    y_column = _find_column(block, y_tag)
    n = len(y_column)
    y, sigma = _numbers(y_column, source, y_tag)
    if np.all(np.isnan(sigma)):
        sigma = np.sqrt(np.clip(y, 0, None)) if "counts" in y_tag else None
    elif np.any(np.isnan(sigma)):
        sigma = None
    x, unit = None, None
    for tag, tag_unit in X_TAGS:
        column = _find_column(block, tag)
        if column is not None:
            if len(column) != n:
                raise PatternFormatError(f"{tag} has {len(column)} values but {y_tag} has {n}", source)
            x, _ = _numbers(column, source, tag)
            unit = tag_unit
            break
    if x is None:
        x, unit = _x_from_range(block, blocks, n, source), "two_theta"
    lam = _wavelengths(block, blocks)
    return {"x": x, "y": y, "sigma": sigma, "unit": unit, "block": block.name, "y_tag": y_tag, **lam}


def _find_column(block: gemmi.cif.Block, tag: str) -> gemmi.cif.Column | None:
    for item in block:
        if item.loop is not None:
            for name in item.loop.tags:
                if name.lower() == tag:
                    column = block.find_values(name)
                    return column if len(column) else None
    return None


def _numbers(column: gemmi.cif.Column, source: str, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """Values and standard uncertainties ('323(18)' -> 323, 18; NaN where none is given)."""
    values = np.empty(len(column))
    esds = np.full(len(column), np.nan)
    for k, raw in enumerate(column):
        text = raw.strip()
        match = _ESD.match(text)
        try:
            if match:
                sign, whole, frac, exponent, esd = match.groups()
                values[k] = float(f"{sign}{whole or '0'}.{frac or '0'}e{exponent or '0'}")
                esds[k] = int(esd) * 10.0 ** (-(len(frac or "")) + int(exponent or 0))
            else:
                if text in ("?", "."):
                    raise ValueError
                values[k] = float(text)
        except ValueError:
            raise PatternFormatError(f"{tag} value {k + 1} is {text[:30]!r}, not a number", source) from None
    return values, esds


def _value(blocks: list[gemmi.cif.Block], tag: str) -> float | None:
    for block in blocks:
        raw = block.find_value(tag)
        if raw is not None and raw not in ("?", "."):
            try:
                return gemmi.cif.as_number(raw) if math.isfinite(gemmi.cif.as_number(raw)) else None
            except (RuntimeError, ValueError):
                return None
    return None


def _x_from_range(block: gemmi.cif.Block, blocks: list[gemmi.cif.Block], n: int, source: str) -> np.ndarray:
    ordered = [block] + [b for b in blocks if b is not block]
    tried = []
    for prefix in ("_pd_proc_2theta_range_", "_pd_meas_2theta_range_"):
        lo, hi, step = (_value(ordered, prefix + k) for k in ("min", "max", "inc"))
        if None in (lo, hi, step) or step <= 0:
            continue
        count = int(round((hi - lo) / step)) + 1
        tried.append(f"{prefix}* give {count}")
        if count == n:
            return lo + step * np.arange(n)
    detail = "; ".join(tried) if tried else "no 2theta column and no _pd_*_2theta_range_min/max/inc"
    raise PatternFormatError(f"cannot place the {n} profile points in 2theta ({detail})", source)


def _wavelengths(block: gemmi.cif.Block, blocks: list[gemmi.cif.Block]) -> dict:
    """Wavelength(s) from _diffrn_radiation_wavelength (item or loop), else _pd_proc_wavelength."""
    for candidate in [block] + [b for b in blocks if b is not block]:
        for tag in ("_diffrn_radiation_wavelength", "_pd_proc_wavelength"):
            values = [v for v in candidate.find_values(tag) if v not in ("?", ".")]
            numbers = []
            for v in values:
                try:
                    numbers.append(gemmi.cif.as_number(v))
                except (RuntimeError, ValueError):
                    continue
            numbers = [v for v in numbers if math.isfinite(v) and v > 0]
            if numbers:
                out = {"wavelength": numbers[0], "wavelength2": None, "ka2_ratio": None}
                if len(numbers) > 1:
                    weights = [gemmi.cif.as_number(w) for w in candidate.find_values(tag + "_wt")]
                    ratio = weights[1] / weights[0] if len(weights) > 1 and weights[0] > 0 else 0.5
                    out.update(wavelength2=numbers[1], ka2_ratio=ratio)
                return out
    return {"wavelength": None, "wavelength2": None, "ka2_ratio": None}
