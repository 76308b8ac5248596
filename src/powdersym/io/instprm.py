"""Instrument parameter files: GSAS-II .instprm (key:value) and GSAS .prm/.inst (fixed-column 'INS' records).

Only what places a pattern in d-spacing is returned: wavelength(s) for constant wavelength, DIFC/DIFA/ZERO for
time of flight. Field positions follow the GSAS manual and GSAS-II's `GetPowderIparm`/`ReadPowderInstprm`:
CW ICONS = lambda1 [0:10], lambda2 [10:20], ZERO (centideg) [20:30], I(K-alpha2)/I(K-alpha1) [55:65];
ToF ICONS = DIFC, DIFA, ZERO (µs); BNKPAR = secondary flight path (m), 2theta (deg).
"""

from __future__ import annotations

import re
from pathlib import Path

from powdersym.io.pattern import PatternFormatError


def read_instrument_parameters(path: str | Path, bank: int | None = None) -> dict:
    """Calibration of one bank of a .prm/.inst/.instprm file.

    Returns a dict with 'geometry' ('cw' | 'tof'), 'radiation' ('neutron' | 'xray'), 'bank', 'banks' (all
    bank numbers in the file) and, where the file gives them, 'wavelength', 'wavelength2', 'ka2_ratio',
    'zero' (deg for CW, µs for ToF), 'difc', 'difa', 'difb', 'two_theta' (bank angle), 'flight_path'.
    A file with several banks needs `bank`; a file with one bank ignores it.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise PatternFormatError(f"cannot read instrument parameter file ({error.strerror})", path) from None
    if len(raw) > 10_000_000 or b"\x00" in raw:
        raise PatternFormatError("not an instrument parameter file (binary or larger than 10 MB)", path)
    return parse_instrument_parameters(raw.decode("latin-1"), str(path), bank)


def parse_instrument_parameters(text: str, source: str, bank: int | None = None) -> dict:
    """`read_instrument_parameters` on the text of a file."""
    # a substring test first: the MULTILINE regex scans the whole text, ~1 ms for a 8500-line data file
    is_prm = "INS " in text and re.search(r"^INS ", text, re.MULTILINE) is not None
    is_instprm = not is_prm and "Type" in text and re.search(r"^[ \t]*Type[ \t]*:", text, re.MULTILINE) is not None
    lines = [line for line in text.splitlines() if line.strip()] if is_prm or is_instprm else []
    if is_prm:
        params = _read_gsas_prm(lines, source, bank)
    elif is_instprm:
        params = _read_gsas2_instprm(lines, source, bank)
    else:
        raise PatternFormatError(
            "not an instrument parameter file (no GSAS 'INS' records and no GSAS-II 'Type:' line)", source
        )
    params["source"] = source
    if params["geometry"] == "cw" and not params.get("wavelength"):
        raise PatternFormatError(f"bank {params['bank']}: constant-wavelength parameters without a wavelength", source)
    if params["geometry"] == "tof" and not (params.get("difc") or 0) > 0:
        raise PatternFormatError(f"bank {params['bank']}: time-of-flight parameters without a positive DIFC", source)
    return params


def _type_fields(code: str, source: str) -> dict:
    """'PNC' / 'PXC' / 'PNT' (GSAS HTYPE, GSAS-II Type) -> geometry and radiation."""
    code = code.strip().upper()
    if len(code) < 3 or code[0] != "P" or code[1] not in "NXE" or code[2] not in "CT":
        raise PatternFormatError(f"instrument type {code!r} is not a powder CW or ToF type (PNC, PXC, PNT)", source)
    return {"geometry": "cw" if code[2] == "C" else "tof", "radiation": "xray" if code[1] == "X" else "neutron",
            "type": code[:3]}


def _number(text: str, source: str, what: str) -> float:
    try:
        return float(text.strip()) if text.strip() else 0.0
    except ValueError:
        raise PatternFormatError(f"{what}: {text.strip()[:30]!r} is not a number", source) from None


def _choose_bank(banks: list[int], bank: int | None, source: str) -> int:
    if len(banks) == 1:
        return banks[0]
    if bank is None:
        raise PatternFormatError(f"holds banks {', '.join(map(str, banks))}; choose one with bank=", source)
    if banks.count(bank) > 1:
        raise PatternFormatError(f"bank {bank} appears {banks.count(bank)} times; cannot tell which is meant", source)
    if bank not in banks:
        raise PatternFormatError(f"has no bank {bank} (banks: {', '.join(map(str, banks))})", source)
    return bank


def _read_gsas_prm(lines: list[str], source: str, bank: int | None) -> dict:
    records: dict[str, str] = {}
    for line in lines:
        if line.startswith("INS "):
            records[line[:12]] = line[12:]
    n_banks = int(_number(records.get("INS   BANK  ", "1"), source, "INS BANK"))
    chosen = _choose_bank(list(range(1, max(n_banks, 1) + 1)), bank, source)
    prefix = f"INS{chosen:3d}"
    if "INS   HTYPE " not in records:
        raise PatternFormatError("GSAS instrument file without an 'INS   HTYPE' record", source)
    params = _type_fields(records["INS   HTYPE "], source)
    params.update(bank=chosen, banks=list(range(1, n_banks + 1)))
    icons = records.get(f"{prefix} ICONS")
    if icons is None:
        raise PatternFormatError(f"bank {chosen} has no ICONS record", source)
    if params["geometry"] == "cw":
        lam1 = _number(icons[0:10], source, "ICONS lambda1")
        lam2 = _number(icons[10:20], source, "ICONS lambda2")
        params.update(wavelength=lam1, zero=_number(icons[20:30], source, "ICONS zero") / 100.0)
        if lam2 > 0:
            params.update(wavelength2=lam2, ka2_ratio=_number(icons[55:65], source, "ICONS ratio") or 0.5)
    else:
        values = icons.split()
        if len(values) < 3:
            raise PatternFormatError(f"bank {chosen}: ToF ICONS needs DIFC DIFA ZERO, got {icons.strip()!r}", source)
        params.update(difc=_number(values[0], source, "DIFC"), difa=_number(values[1], source, "DIFA"),
                      zero=_number(values[2], source, "ZERO"), difb=0.0)
        bnkpar = records.get(f"{prefix}BNKPAR", "").split()
        if len(bnkpar) >= 2:
            fpath1 = records.get("INS   FPATH1", "").split()
            primary = _number(fpath1[0], source, "FPATH1") if fpath1 else 0.0
            params.update(flight_path=primary + _number(bnkpar[0], source, "BNKPAR"),
                          two_theta=_number(bnkpar[1], source, "BNKPAR 2theta"))
    return params


def _read_gsas2_instprm(lines: list[str], source: str, bank: int | None) -> dict:
    sections: list[tuple[int | None, dict[str, str]]] = [(None, {})]
    for line in lines:
        header = re.match(r"#\s*bank\s+(\d+)", line, re.IGNORECASE)
        if header:
            sections.append((int(header.group(1)), {}))
            continue
        if line.startswith("#"):
            continue
        for item in line.split(";"):
            if ":" in item:
                key, value = item.split(":", 1)
                sections[-1][1][key.strip()] = value.strip()
    sections = [(number, values) for number, values in sections if values]
    if not sections:
        raise PatternFormatError("GSAS-II instrument file without parameters", source)
    if len(sections) == 1:
        number, values = sections[0]
    else:
        labels = [number if number is not None else 0 for number, _ in sections]
        number = _choose_bank(labels, bank, source)
        values = sections[labels.index(number)][1]
    if "Type" not in values:
        raise PatternFormatError(f"bank {number}: no 'Type:' line", source)
    params = _type_fields(values["Type"], source)
    if number is None and "Bank" in values:
        number = int(_number(values["Bank"], source, "Bank"))
    params.update(bank=number, banks=[n for n, _ in sections])

    def get(key: str) -> float | None:
        return _number(values[key], source, key) if key in values else None

    if params["geometry"] == "cw":
        lam = get("Lam") or get("Lam1")
        params.update(wavelength=lam, zero=get("Zero") or 0.0)
        if get("Lam2"):
            ratio = get("I(L2)/I(L1)")
            params.update(wavelength2=get("Lam2"), ka2_ratio=0.5 if ratio is None else ratio)
    else:
        params.update(difc=get("difC"), difa=get("difA") or 0.0, difb=get("difB") or 0.0, zero=get("Zero") or 0.0,
                      two_theta=get("2-theta"), flight_path=get("fltPath"))
    return params
