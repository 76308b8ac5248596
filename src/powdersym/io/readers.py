"""`read_pattern`: one entry point for every supported pattern file, by content first and extension second.

Formats: GSAS (any file with a 'BANK n' line), pdCIF ('data_' block with '_pd_' items), plain columns
(xy/xye/dat/csv, Mantid xye). A zip archive holding one file is opened. Calibration comes from, in
increasing priority: the file's own header, an instrument parameter file, the keyword arguments.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np

from powdersym.io import gsas, pdcif, text as columns
from powdersym.io.instprm import parse_instrument_parameters, read_instrument_parameters
from powdersym.io.pattern import UNITS, MeasuredPattern, PatternFormatError

MAX_FILE_BYTES = 256 * 2**20
_REFUSED_MAGIC = {
    b"\x1f\x8b": "gzip-compressed (a .tar.gz archive?); extract it first",
    b"BZh": "bzip2-compressed; extract it first",
    b"\xfd7zXZ": "xz-compressed; extract it first",
    b"\x89HDF": "an HDF5/NeXus file, which is not supported; export the reduced pattern as xye or GSAS",
    b"\x89PNG": "an image, not a pattern",
    b"%PDF": "a PDF document, not a pattern",
}


def read_pattern(
    path: str | Path,
    *,
    unit: str | None = None,
    wavelength: float | None = None,
    instrument_file: str | Path | None = None,
    bank: int | None = None,
    difc: float | None = None,
    difa: float | None = None,
    zero: float | None = None,
) -> MeasuredPattern:
    """Read a measured pattern; keyword arguments override what the file (or instrument file) says.

    `unit`: 'two_theta' | 'tof' | 'd' | 'q' for files that do not state it (plain columns are otherwise
    inferred from the x range: ToF above 1000, 2theta up to 180). `bank`: the histogram of a multi-bank GSAS
    file (the number on its BANK line), the profile of a multi-profile CIF (1-based), and the bank of a
    multi-bank instrument file (defaults to the data's bank). `difc`/`difa` (µs/Å, µs/Å^2) calibrate ToF;
    `zero` is ToF ZERO (µs) or the 2theta zero shift (deg). Errors: PatternFormatError, one line.
    """
    path = Path(path)
    source = str(path)
    if unit is not None and unit not in UNITS:
        raise PatternFormatError(f"unknown unit {unit!r} (expected one of {', '.join(UNITS)})", source)
    name, raw = _load(path)
    text = raw.decode("latin-1")
    first_line_end = text.find("\n") if "\n" in text else len(text)
    is_gsas = gsas.is_gsas(text)
    nul = text.find("\x00", first_line_end if is_gsas else 0)  # GSAS titles are free-form bytes
    if nul >= 0:
        raise PatternFormatError(f"binary data (NUL byte at offset {nul}); not a text pattern file", source)
    if not text.strip():
        raise PatternFormatError("empty file", source)

    metadata: dict = {"file_name": name}
    header: list[str] = []
    file_calibration: dict = {}
    if is_gsas:
        data = gsas.read_bank(text, source, bank)
        header = gsas.header_comments(text) + [line for line in text.splitlines() if line.startswith("#")]
        metadata.update(format=f"gsas-{data.record_type.lower()}", binning=data.binning, bank=data.number,
                        title=header[0].strip()[:80])
        if len(data.y) != data.n_promised:
            metadata["missing_points"] = data.n_promised - len(data.y)  # negative: more records than promised
        instrument = _instrument(instrument_file, data.number, header, path, source)
        file_unit = unit or _gsas_unit(data, instrument)
        x = data.x / 100.0 if file_unit == "two_theta" else data.x  # CW GSAS x is in centidegrees
        y, sigma = data.y, data.sigma
        file_calibration = _gsas_header_calibration(header, file_unit)
        unit_source = "argument" if unit else "instrument file" if instrument else "GSAS binning and x range"
    elif path.suffix.lower() == ".cif" or pdcif.is_pdcif(text):
        profile = pdcif.read_pdcif(text, source, bank)
        metadata.update(format="pdcif", block=profile["block"], intensity_tag=profile["y_tag"])
        x, y, sigma = profile["x"], profile["y"], profile["sigma"]
        file_calibration = {k: profile[k] for k in ("wavelength", "wavelength2", "ka2_ratio") if profile[k]}
        instrument = _instrument(instrument_file, bank, [], path, source)
        file_unit = unit or profile["unit"]
        unit_source = "argument" if unit else "CIF data names"
    else:
        try:
            x, y, sigma, header = columns.read_columns(text, source)
        except PatternFormatError:
            _refuse_instrument_file(text, source)
            raise
        # Instrument files are told by an 'INS ' or 'Type:' line; in a file that reads as columns such a line
        # can only be a header line, so the whole text is searched only when one might be there.
        if any(line.startswith(("INS", "Type")) for line in header):
            _refuse_instrument_file(text, source)
        metadata.update(format=f"columns-{2 if sigma is None else 3}")
        instrument = _instrument(instrument_file, bank, header, path, source)
        stated = columns.unit_from_header(header)
        geometry_unit = {"cw": "two_theta", "tof": "tof"}[instrument["geometry"]] if instrument else None
        file_unit = unit or stated or geometry_unit or columns.infer_unit(x, source)
        unit_source = ("argument" if unit else "file header" if stated else "instrument file" if geometry_unit
                       else "inferred from the x range")
        wavelength_in_header = columns.wavelength_from_header(header)
        if wavelength_in_header and file_unit == "two_theta":
            file_calibration = {"wavelength": wavelength_in_header}
    metadata["unit_source"] = unit_source
    metadata["header"] = [line[:200] for line in header[:40]]
    return _assemble(x, y, sigma, file_unit, source, metadata, file_calibration, instrument,
                     {"wavelength": wavelength, "difc": difc, "difa": difa, "zero": zero})


def _load(path: Path) -> tuple[str, bytes]:
    """(name of the pattern file, its bytes); opens a zip holding one file; refuses other archives."""
    source = str(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise PatternFormatError("is a directory, not a pattern file", source)
        if size > MAX_FILE_BYTES:
            raise PatternFormatError(f"file is {size / 2**20:.0f} MiB, above the {MAX_FILE_BYTES >> 20} MiB limit",
                                     source)
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PatternFormatError("no such file", source) from None
    except OSError as error:
        raise PatternFormatError(f"cannot read file ({error.strerror or error})", source) from None
    if raw.startswith(b"PK\x03\x04"):
        return _unzip(raw, source)
    for magic, reason in _REFUSED_MAGIC.items():
        if raw.startswith(magic):
            raise PatternFormatError(f"file is {reason}", source)
    return path.name, raw.removeprefix(b"\xef\xbb\xbf")


def _unzip(raw: bytes, source: str) -> tuple[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = [m for m in archive.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX")]
            if len(members) != 1:
                raise PatternFormatError(f"zip archive holds {len(members)} files; expected exactly one pattern",
                                         source)
            member = members[0]
            if member.file_size > MAX_FILE_BYTES:
                raise PatternFormatError(f"zipped file {member.filename} is {member.file_size >> 20} MiB, above "
                                         f"the {MAX_FILE_BYTES >> 20} MiB limit", source)
            return Path(member.filename).name, archive.read(member).removeprefix(b"\xef\xbb\xbf")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, ValueError) as error:
        if isinstance(error, PatternFormatError):
            raise
        raise PatternFormatError(f"damaged zip archive ({error})", source) from None
    except Exception as error:  # zlib.error and friends from a corrupt member
        raise PatternFormatError(f"damaged zip archive ({type(error).__name__})", source) from None


def _refuse_instrument_file(text: str, source: str) -> None:
    try:
        parse_instrument_parameters(text, source, bank=None)
    except PatternFormatError as error:
        if "not an instrument parameter file" in str(error):
            return
    raise PatternFormatError("this is an instrument parameter file; pass it as instrument_file=", source)


def _instrument(instrument_file: str | Path | None, bank: int | None, header: list[str], path: Path,
                source: str) -> dict | None:
    """Parameters of the instrument file given, or of the one a GSAS header names beside the data file."""
    if instrument_file is not None:
        return read_instrument_parameters(instrument_file, bank)
    for line in header[1:2]:  # GSAS line 2: 'Instrument parameter file:NAME'
        if line.lower().startswith("inst") and ":" in line:
            named = path.parent / line.split(":", 1)[1].strip().strip("[]")
            if named.is_file():
                return read_instrument_parameters(named, bank)
    return None


def _gsas_unit(data: gsas.GsasBank, instrument: dict | None) -> str:
    if instrument is not None:
        return "two_theta" if instrument["geometry"] == "cw" else "tof"
    if data.binning in ("SLOG", "RALF"):
        return "tof"
    return "two_theta" if np.max(data.x) / 100.0 < 180 else "tof"


def _gsas_header_calibration(header: list[str], unit: str) -> dict:
    """Wavelength of 11-BM style headers ('Calibrated wavelength = ...'); DIFC of Mantid-written headers."""
    if unit == "two_theta":
        wavelength = columns.wavelength_from_header(header)
        return {"wavelength": wavelength} if wavelength else {}
    if unit == "tof":
        for line in header:
            match = re.search(r"\bDIFC\s*[=:]?\s*([0-9]+\.?[0-9]*)", line)
            if match and float(match.group(1)) > 0:
                return {"difc": float(match.group(1))}
    return {}


def _assemble(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, unit: str, source: str, metadata: dict,
              from_file: dict, instrument: dict | None, from_arguments: dict) -> MeasuredPattern:
    """Order, trim and calibrate: file header < instrument file < arguments."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) >= 2 and np.all(np.isfinite(x)) and np.all(np.diff(x) < 0):
        x, y = x[::-1], y[::-1]
        sigma = None if sigma is None else sigma[::-1]
        metadata["reversed"] = True
    nonzero = np.flatnonzero(y != 0)
    if len(nonzero) == 0:
        raise PatternFormatError("all intensities are zero", source)
    first, last = int(nonzero[0]), int(nonzero[-1])
    if first or last < len(y) - 1:  # unmeasured ends written as zeros (e.g. a masked detector edge)
        metadata["trimmed_zero_points"] = (first, len(y) - 1 - last)
        x, y = x[first:last + 1], y[first:last + 1]
        sigma = None if sigma is None else sigma[first:last + 1]

    calibration: dict = {}
    sources: dict = {}
    for origin, values in (("file header", from_file), ("instrument file", instrument or {}),
                           ("argument", from_arguments)):
        for key in ("wavelength", "wavelength2", "ka2_ratio", "difc", "difa", "zero"):
            if values.get(key) is not None:
                calibration[key] = float(values[key])
                sources[key] = origin
    if instrument is not None:
        geometry = "cw" if unit == "two_theta" else "tof" if unit == "tof" else None
        if geometry is not None and instrument["geometry"] != geometry:
            raise PatternFormatError(f"instrument file {instrument['source']} is for "
                                     f"{'constant wavelength' if instrument['geometry'] == 'cw' else 'time of flight'}"
                                     f" but the pattern's x is {unit}", source)
        metadata["instrument"] = {k: v for k, v in instrument.items() if k != "banks"}
        metadata["radiation"] = instrument["radiation"]
    if unit != "two_theta" and sources.get("wavelength") == "argument":
        raise PatternFormatError(f"wavelength given for a pattern whose x is {unit}", source)
    if unit != "tof" and sources.get("difc") == "argument":
        raise PatternFormatError(f"DIFC given for a pattern whose x is {unit}", source)
    if unit == "two_theta":
        keep = ("wavelength", "wavelength2", "ka2_ratio", "zero")
    elif unit == "tof":
        keep = ("difc", "difa", "zero")
    else:
        keep = ()
    calibration = {k: v for k, v in calibration.items() if k in keep}
    if sources.get("wavelength") == "argument" and sources.get("wavelength2") != "argument":
        calibration.pop("wavelength2", None)  # a wavelength given by hand replaces the file's doublet
        calibration.pop("ka2_ratio", None)
    metadata["calibration_source"] = {k: sources[k] for k in calibration}
    return MeasuredPattern(x, y, sigma, unit, source=source, metadata=metadata, **calibration)
