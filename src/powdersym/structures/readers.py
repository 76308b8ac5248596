"""Readers that turn structure files (CIF, POSCAR) and pymatgen / ASE objects into `Crystal` records.

Every failure while reading a file surfaces as `StructureError` or `UnknownElementError` (both ValueError) with a
one-line message that names the file, so a data-set build can log and skip bad inputs.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import gemmi
import numpy as np
import torch

from powdersym.structures.crystal import Crystal, StructureError, lattice_matrix
from powdersym.structures.species import SPECIES, UnknownElementError, species_index
from powdersym.files import atomic_write_text

# Images of one CIF site closer than this are one atom: rounded coordinates of a special position (0.333 for 1/3).
SAME_POSITION_A = 0.05
# Images closer than this (gemmi's special-position tolerance) are one atom when keeping them all would put more than
# OVERFILL atoms there; otherwise they are a split (disordered) site and each image keeps the site occupancy.
SPECIAL_POSITION_A = 0.4
OVERFILL = 1.1
EIGHT_PI2 = 8 * math.pi**2
MAX_CELL_A = 1e5  # longer cell edges are corrupt numbers, not crystals

_POSCAR_NAMES = re.compile(r"(POSCAR|CONTCAR)", re.IGNORECASE)
_POSCAR_SUFFIXES = {".vasp", ".poscar"}


# ---------------------------------------------------------------------------------------------------------------------
# Public entry points


def read_structure(
    path: str | os.PathLike, *, block: str | int | None = None, species: Sequence[str] | None = None
) -> Crystal:
    """Read a CIF or POSCAR/CONTCAR file into a Crystal (every atom of the cell, space group as a label).

    The format comes from the file name (.cif, POSCAR*, CONTCAR*, .vasp) or else from the content.
    block: CIF data-block name, or index among the phase blocks (default: the first block with atom sites).
    species: POSCAR only, one element per count group; needed for VASP 4 files that do not name their species.
    """
    source = _display(path)
    with _reading(source):
        text = _read_text(path)
        kind = _format_of(Path(path), text)
        if kind == "cif":
            if species is not None:
                raise StructureError("species= applies to POSCAR files only")
            return _crystal_from_cif(text, source, block)
        if block is not None:
            raise StructureError("block= applies to CIF files only")
        return _crystal_from_poscar(text, source, species)


def read_cif(path: str | os.PathLike, *, block: str | int | None = None) -> Crystal:
    """Read one phase of a CIF file (see read_structure); the file name need not end in .cif."""
    source = _display(path)
    with _reading(source):
        if Path(path).suffix.lower() == ".mcif":
            raise StructureError(_MCIF_MESSAGE)
        return _crystal_from_cif(_read_text(path), source, block)


def read_poscar(path: str | os.PathLike, *, species: Sequence[str] | None = None) -> Crystal:
    """Read a VASP POSCAR/CONTCAR file (see read_structure); the file name may be anything."""
    source = _display(path)
    with _reading(source):
        return _crystal_from_poscar(_read_text(path), source, species)


def write_cif(crystal: Crystal, path: str | os.PathLike) -> None:
    """Write the crystal as a P1 CIF (all atoms listed, B_iso kept); atomic: a half-written file never appears."""
    name = re.sub(r"[^\w.+-]", "_", crystal.name.strip()) or "powdersym"  # a data_ name has no blanks or quotes
    a, b, c, alpha, beta, gamma = crystal.lattice
    lines = [
        f"data_{name}",
        "_space_group_name_H-M_alt 'P 1'",
        "_space_group_IT_number 1",
        "loop_",
        "_space_group_symop_operation_xyz",
        "x,y,z",
        f"_cell_length_a {a:.8f}",
        f"_cell_length_b {b:.8f}",
        f"_cell_length_c {c:.8f}",
        f"_cell_angle_alpha {alpha:.8f}",
        f"_cell_angle_beta {beta:.8f}",
        f"_cell_angle_gamma {gamma:.8f}",
        "loop_",
        "_atom_site_label",
        "_atom_site_type_symbol",
        "_atom_site_fract_x",
        "_atom_site_fract_y",
        "_atom_site_fract_z",
        "_atom_site_occupancy",
        "_atom_site_B_iso_or_equiv",
    ]
    atoms = zip(crystal.species, crystal.frac_coords, crystal.occupancy, crystal.b_iso)
    for i, (symbol, (x, y, z), occ, b_iso) in enumerate(atoms):
        element = SPECIES[species_index(symbol)]
        lines.append(f"{element}{i + 1} {element} {x:.8f} {y:.8f} {z:.8f} {occ:.6f} {b_iso:.6f}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def from_pymatgen(structure) -> Crystal:
    """Crystal from a pymatgen Structure; a disordered site gives one atom per species with its occupancy.

    B factors come from a 'b_iso' site property when present (to_pymatgen writes it), else 0.
    """
    if not hasattr(structure, "lattice"):
        raise StructureError(f"{type(structure).__name__} is not a periodic pymatgen Structure")
    frac, symbols, occupancy, b_iso = [], [], [], []
    for site in structure:
        b = float(site.properties.get("b_iso", 0.0) or 0.0)
        for specie, occ in site.species.items():
            frac.append(site.frac_coords)
            symbols.append(_pymatgen_symbol(specie))
            occupancy.append(float(occ))
            b_iso.append(b)
    lattice = [*structure.lattice.abc, *structure.lattice.angles]
    return Crystal(
        lattice, _wrap(np.asarray(frac, dtype=np.float64).reshape(-1, 3)), symbols, np.asarray(occupancy),
        np.asarray(b_iso), name=structure.composition.reduced_formula, metadata={"source": "pymatgen"},
    )  # fmt: skip


def to_pymatgen(crystal: Crystal):
    """pymatgen Structure of a crystal; atoms sharing a position become one disordered site (B in 'b_iso')."""
    from pymatgen.core import Lattice, Structure

    groups: list[tuple[np.ndarray, dict[str, float], float]] = []
    for symbol, xyz, occ, b in zip(crystal.species, crystal.frac_coords, crystal.occupancy, crystal.b_iso):
        element = SPECIES[species_index(symbol)]
        for position, composition, _ in groups:
            delta = (xyz - position) - np.round(xyz - position)
            fits = sum(composition.values()) + occ <= 1 + 1e-6 and element not in composition
            if fits and np.all(np.abs(delta) < 1e-6):
                composition[element] = float(occ)
                break
        else:
            groups.append((xyz, {element: float(occ)}, float(b)))
    return Structure(
        Lattice.from_parameters(*crystal.lattice),
        [composition for _, composition, _ in groups],
        [position for position, _, _ in groups],
        site_properties={"b_iso": [b for _, _, b in groups]},
    )


def from_ase(atoms) -> Crystal:
    """Crystal from an ASE Atoms object with a full 3D cell.

    ASE's CIF reader keeps one atom per mixed site and the site's species in atoms.info['occupancy'] (keyed by
    'spacegroup_kinds'); such a site becomes one atom per species with its occupancy, as in from_pymatgen.
    """
    if atoms.cell.rank < 3:
        raise StructureError("ASE Atoms has no full 3D cell")
    symbols = atoms.get_chemical_symbols()
    table = atoms.info.get("occupancy") or {}
    kinds = atoms.arrays.get("spacegroup_kinds", atoms.get_tags())
    frac, species, occupancy = [], [], []
    for xyz, symbol, kind in zip(atoms.get_scaled_positions(wrap=False), symbols, kinds):
        for element, occ in (table.get(str(kind)) or {symbol: 1.0}).items():
            frac.append(xyz)
            species.append(element)
            occupancy.append(float(occ))
    return Crystal(
        atoms.cell.cellpar(), _wrap(np.asarray(frac, dtype=np.float64).reshape(-1, 3)), species, np.asarray(occupancy),
        name=atoms.get_chemical_formula(), metadata={"source": "ase"},
    )  # fmt: skip


def _pymatgen_symbol(specie) -> str:
    """Element symbol of a pymatgen Element / Species ('D' stays deuterium: pymatgen's Element('D').symbol is 'H')."""
    element = getattr(specie, "element", specie)
    name = getattr(element, "name", None)
    if not isinstance(name, str):
        raise UnknownElementError(f"pymatgen species {specie!s} is not an element")
    return _element(name)


# ---------------------------------------------------------------------------------------------------------------------
# Files: text, format, one-line errors

_MCIF_MESSAGE = "magnetic CIF (.mcif) is not supported: read the nuclear structure from a plain CIF"


def _display(path: str | os.PathLike) -> str:
    return " ".join(os.fspath(path).split()) if isinstance(path, (str, os.PathLike)) else repr(path)


def _one_line(message: str, limit: int = 300) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."


@contextmanager
def _reading(source: str) -> Iterator[None]:
    """Turn any failure while reading `source` into a one-line StructureError / UnknownElementError naming it."""
    try:
        yield
    except UnknownElementError as err:
        raise UnknownElementError(_one_line(f"{source}: {err}")) from err
    except StructureError as err:
        raise StructureError(_one_line(f"{source}: {err}")) from err
    except OSError as err:
        raise StructureError(_one_line(f"{source}: cannot read file ({err.strerror or err})")) from err
    except (RuntimeError, ValueError, IndexError, KeyError, OverflowError, EOFError, zlib.error) as err:
        raise StructureError(_one_line(f"{source}: cannot read structure ({type(err).__name__}: {err})")) from err


def _read_text(path: str | os.PathLike) -> str:
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise StructureError(f"corrupt gzip file ({err})") from err
    if not raw.strip():
        raise StructureError("empty file")
    controls = sum(raw.count(bytes([c])) for c in (*range(0, 9), 11, *range(14, 32), 127))
    if b"\x00" in raw or controls > 0.01 * len(raw):
        raise StructureError("binary file, not a text structure file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # old CIFs carry Latin-1 author names and Å signs


def _format_of(path: Path, text: str) -> str:
    suffix = path.suffix.lower()
    if suffix == ".mcif":
        raise StructureError(_MCIF_MESSAGE)
    if suffix == ".cif":
        return "cif"
    if suffix in _POSCAR_SUFFIXES or _POSCAR_NAMES.search(path.name):
        return "poscar"
    if re.search(r"^\s*data_", text, re.IGNORECASE | re.MULTILINE):
        return "cif"
    lines = text.splitlines()
    if len(lines) >= 5 and all(_floats(line, 3) is not None for line in lines[2:5]):
        return "poscar"
    raise StructureError("unrecognised format: neither a CIF (no data_ block) nor a POSCAR")


def _wrap(frac: np.ndarray) -> np.ndarray:
    """Fractional coordinates in [0, 1) (1 - 1e-9 rounds to 0 so that mates at x = 0 and x = 1 coincide)."""
    frac = np.mod(frac, 1.0)
    frac[frac > 1 - 1e-9] = 0.0
    return frac


def _matrix_to_parameters(matrix: np.ndarray) -> np.ndarray:
    lengths = np.linalg.norm(matrix, axis=1)
    if np.any(lengths <= 0):
        raise StructureError("zero-length lattice vector")
    a, b, c = matrix

    def angle(u: np.ndarray, v: np.ndarray) -> float:
        return math.degrees(math.acos(np.clip(np.dot(u, v) / (np.linalg.norm(u) * np.linalg.norm(v)), -1, 1)))

    return np.array([*lengths, angle(b, c), angle(a, c), angle(a, b)])


def _build(lattice, frac, symbols, occupancy, b_iso, **kwargs) -> Crystal:
    lattice = np.asarray(lattice, dtype=np.float64)
    lengths, angles = lattice[:3], lattice[3:]
    valid = np.all(np.isfinite(lattice)) and np.all((lengths > 0) & (lengths < MAX_CELL_A))
    if not (valid and np.all((angles > 0) & (angles < 180))):
        raise StructureError(f"invalid cell {lattice.tolist()}")
    cosines = np.cos(np.radians(angles))
    if 1 - np.sum(cosines**2) + 2 * np.prod(cosines) <= 1e-12:
        raise StructureError(f"zero-volume cell {np.round(lattice, 6).tolist()}")
    return Crystal(lattice, frac, symbols, occupancy, b_iso, **kwargs)


def _element(symbol: str, where: str = "") -> str:
    """Canonical element symbol of a type symbol or label ('Fe3+' -> 'Fe', 'Si1' -> 'Si', 'D' -> 'D')."""
    try:
        return SPECIES[species_index(symbol)]
    except UnknownElementError as err:
        raise UnknownElementError(f"unknown element {symbol!r}{where}") from err


# ---------------------------------------------------------------------------------------------------------------------
# CIF


def _tags(name: str) -> tuple[str, str]:
    """The DDL1 and DDLm spellings of a CIF tag given as 'category.item'."""
    return "_" + name.replace(".", "_"), "_" + name


def _value(block: gemmi.cif.Block, *names: str) -> str | None:
    for name in names:
        for tag in _tags(name):
            column = block.find_values(tag)
            if len(column) and not gemmi.cif.is_null(column[0]):
                return gemmi.cif.as_string(column[0]).strip()
    return None


def _column(block: gemmi.cif.Block, *names: str) -> list[str] | None:
    for name in names:
        for tag in _tags(name):
            column = block.find_values(tag)
            if len(column):
                return [gemmi.cif.as_string(v).strip() if not gemmi.cif.is_null(v) else "" for v in column]
    return None


def _number(text: str | None) -> float:
    """CIF number with its uncertainty dropped ('3.88(1)' -> 3.88); NaN when missing or not a number."""
    return math.nan if not text else gemmi.cif.as_number(text)


def _has_atom_sites(block: gemmi.cif.Block) -> bool:
    return _column(block, "atom_site.fract_x") is not None


_MAGNETIC = ("space_group_magn.name_BNS", "space_group_magn.number_BNS", "space_group_magn.name_OG",
             "space_group_symop_magn_operation.xyz", "space_group_symop.magn_operation_xyz")  # fmt: skip
_SUPERSPACE = ("space_group_ssg.name", "space_group_symop_ssg.operation_algebraic", "cell.wave_vector_x",
               "cell.modulation_dimension")  # fmt: skip


def _is_magnetic(block: gemmi.cif.Block) -> bool:
    return any(_column(block, name) is not None for name in _MAGNETIC)


def _choose_block(document: gemmi.cif.Document, block: str | int | None) -> tuple[gemmi.cif.Block, list[str]]:
    """The requested (or first) nuclear phase block and the names of all nuclear phase blocks."""
    phases = [b for b in document if _has_atom_sites(b)]
    nuclear = [b for b in phases if not _is_magnetic(b)]
    names = [b.name for b in nuclear]
    if isinstance(block, str):
        chosen = document.find_block(block)
        if chosen is None:
            raise StructureError(f"no data block {block!r} (blocks: {', '.join(b.name for b in document)})")
        if not _has_atom_sites(chosen):
            raise StructureError(f"data block {block!r} has no atom sites")
        if _is_magnetic(chosen):
            raise StructureError(f"data block {block!r} is a magnetic structure (magnetic space group); not supported")
        return chosen, names
    if not phases:
        raise StructureError("no atom sites (_atom_site_fract_x) in any data block")
    if not nuclear:
        raise StructureError(f"only magnetic structures (magnetic space group), block {phases[0].name!r}: not supported")
    index = 0 if block is None else int(block)
    if not -len(nuclear) <= index < len(nuclear):
        raise StructureError(f"phase index {index} out of range: the file has {len(nuclear)} phase block(s)")
    return nuclear[index], names


def _gemmi_message(err: Exception) -> str:
    return re.sub(r"^string:(\d+)", r"line \1", str(err))


def _crystal_from_cif(text: str, source: str, block: str | int | None) -> Crystal:
    notes = []
    try:
        document = gemmi.cif.read_string(text)
    except (RuntimeError, ValueError) as err:
        if "duplicate tag" not in str(err):
            raise StructureError(f"malformed CIF: {_gemmi_message(err)}") from err
        # AMCSD and other databases repeat harmless tags (_chemical_formula_sum); the first value counts.
        document = gemmi.cif.read_string(text, 0)
        notes.append(f"{_gemmi_message(err)}: first value used")
    if len(document) == 0:
        raise StructureError("no data block (data_...) in the CIF")
    chosen, phase_names = _choose_block(document, block)
    superspace = next((name for name in _SUPERSPACE if _column(chosen, name) is not None), None)
    if superspace is not None:
        group = _value(chosen, "space_group_ssg.name") or "?"
        raise StructureError(f"incommensurately modulated structure (superspace group {group!r}): no 3D space group")
    lattice = _cif_cell(chosen)
    symmetry = _cif_symmetry(chosen, lattice)
    sites, site_notes = _cif_sites(chosen, lattice)
    matrix = _matrix(lattice)
    frac, symbols, occupancy, b_iso, labels = [], [], [], [], []
    for site in sites:
        images = _site_images(site, symmetry, matrix)
        frac.append(images)
        symbols += [site.element] * len(images)
        occupancy += [site.occupancy] * len(images)
        b_iso += [site.b_iso] * len(images)
        labels += [site.label] * len(images)
    metadata = {
        "source": source,
        "format": "cif",
        "block": chosen.name,
        "n_phases": len(phase_names),
        "phase_blocks": phase_names,
        "space_group_symbol": symmetry.symbol,
        "symmetry_from": symmetry.origin,
        "site_labels": labels,
        "notes": notes + symmetry.notes + site_notes,
    }
    return _build(
        lattice, np.concatenate(frac), symbols, np.asarray(occupancy), np.asarray(b_iso),
        space_group=symmetry.number, name=chosen.name, metadata=metadata,
    )  # fmt: skip


def _cif_cell(block: gemmi.cif.Block) -> np.ndarray:
    lengths = [_number(_value(block, f"cell.length_{axis}")) for axis in "abc"]
    if not all(np.isfinite(lengths)):
        raise StructureError(f"no unit cell in block {block.name!r} (_cell_length_a/b/c missing)")
    # The core dictionary's default for a missing cell angle is 90 degrees.
    angles = [_number(_value(block, f"cell.angle_{name}")) for name in ("alpha", "beta", "gamma")]
    angles = [90.0 if not np.isfinite(angle) else angle for angle in angles]
    return np.array(lengths + angles, dtype=np.float64)


def _matrix(lattice: np.ndarray) -> np.ndarray:
    """Row-vector cell matrix of lattice parameters, as Crystal.matrix() gives it (before a Crystal exists)."""
    return lattice_matrix(torch.as_tensor(lattice[None], dtype=torch.float64))[0].numpy()


@dataclass
class _Symmetry:
    """Space-group operations of a CIF block (x' = R x + t) and the label read from them."""

    rotations: np.ndarray
    translations: np.ndarray
    number: int | None
    symbol: str
    origin: str
    notes: list[str] = field(default_factory=list)


def _symmetry_from_ops(ops: list[gemmi.Op], origin: str, declared: int | None, lattice: np.ndarray) -> _Symmetry:
    rotations = np.array([op.rot for op in ops], dtype=np.float64) / gemmi.Op.DEN
    translations = np.array([op.tran for op in ops], dtype=np.float64) / gemmi.Op.DEN
    group = gemmi.find_spacegroup_by_ops(gemmi.GroupOps(ops))
    number, symbol = (group.number, group.xhm()) if group is not None else (None, "")
    if number is None:  # a setting gemmi does not tabulate: let spglib name the group type
        number, symbol = _spglib_group_type(rotations, translations, lattice)
    notes = []
    if declared is not None and number is not None and declared != number:
        notes.append(f"space-group number in file ({declared}) differs from the operations ({number})")
    return _Symmetry(rotations, translations, number if number is not None else declared, symbol, origin, notes)


def _spglib_group_type(rotations: np.ndarray, translations: np.ndarray, lattice: np.ndarray) -> tuple[int | None, str]:
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+ warns about its old error handling
        try:
            found = spglib.get_spacegroup_type_from_symmetry(
                np.rint(rotations).astype(np.intc), translations, lattice=_matrix(lattice), symprec=1e-3
            )
        except spglib.SpglibError:
            found = None
    return (found.number, found.international_short) if found is not None else (None, "")


def _group_from_triplets(triplets: list[str]) -> list[gemmi.Op] | None:
    """Distinct operations of a symop list, or None when they do not form a group (modulo lattice translations)."""
    ops: dict[str, gemmi.Op] = {}
    for triplet in triplets:
        try:
            op = gemmi.Op(triplet.replace(" ", "")).wrap()
        except RuntimeError as err:
            raise StructureError(f"unreadable symmetry operation {triplet!r} ({err})") from err
        if op.det_rot() == 0:
            raise StructureError(f"singular symmetry operation {triplet!r}")
        ops.setdefault(op.triplet(), op)
    unique = list(ops.values())
    for first in unique:
        for second in unique:
            if (first * second).wrap().triplet() not in ops:
                return None
    return unique


def _lookup_hm(symbol: str, lattice: np.ndarray, setting: str | None) -> gemmi.SpaceGroup | None:
    prefer = setting if setting in {"1", "2", "H", "R"} else ""
    group = gemmi.find_spacegroup_by_name(symbol, lattice[3], lattice[5], prefer)
    if group is None:  # ICSD-style origin suffix: 'F d -3 m S' (origin 1), 'F d -3 m Z' (origin 2)
        match = re.match(r"^(.*?)[\s:]*([SZ])$", symbol)
        if match:
            origin = "1" if match.group(2) == "S" else "2"
            group = gemmi.find_spacegroup_by_name(match.group(1), lattice[3], lattice[5], origin)
    return group


def _cif_symmetry(block: gemmi.cif.Block, lattice: np.ndarray) -> _Symmetry:
    """Operations from the symop list (authoritative: they define the coordinate frame), else Hall, H-M, number."""
    triplets = _column(block, "space_group_symop.operation_xyz", "symmetry_equiv.pos_as_xyz")
    triplets = [t for t in triplets or [] if t]
    hall = _value(block, "space_group.name_Hall", "symmetry.space_group_name_Hall")
    hm = _value(block, "space_group.name_H-M_alt", "symmetry.space_group_name_H-M", "space_group.name_H-M_full")
    number_text = _value(block, "space_group.IT_number", "symmetry.Int_Tables_number")
    setting = (_value(block, "space_group.IT_coordinate_system_code") or "").upper() or None
    declared = None
    if number_text is not None:
        number = _number(number_text)
        if not (np.isfinite(number) and number == int(number) and 1 <= number <= 230):
            raise StructureError(f"invalid space-group number {number_text!r}")
        declared = int(number)
    notes: list[str] = []
    if triplets:
        ops = _group_from_triplets(triplets)
        if ops is not None:
            return _symmetry_from_ops(ops, "symmetry operations", declared, lattice)
        if not (hall or hm or declared):
            raise StructureError(f"the {len(triplets)} symmetry operations do not form a group")
        notes.append("symmetry operations do not form a group; used the space-group symbol")
    if hall:
        try:
            result = _symmetry_from_ops(list(gemmi.symops_from_hall(hall)), "Hall symbol", declared, lattice)
            result.notes = notes + result.notes
            return result
        except RuntimeError:
            notes.append(f"unreadable Hall symbol {hall!r}")
    if hm:
        group = _lookup_hm(hm, lattice, setting)
        if group is not None:
            result = _symmetry_from_ops(list(group.operations()), "H-M symbol", declared, lattice)
            result.notes = notes + result.notes
            return result
        if declared is None:
            raise StructureError(f"unknown space-group symbol {hm!r}")
        notes.append(f"unknown H-M symbol {hm!r}")
    if declared is not None:
        group = gemmi.find_spacegroup_by_number(declared)
        result = _symmetry_from_ops(list(group.operations()), "space-group number", declared, lattice)
        result.notes = notes + result.notes
        return result
    if hall:
        raise StructureError(f"unknown space-group symbol {hall!r}")
    # Atoms listed without any symmetry: expand with the identity only, but do not claim P1 as the label.
    result = _symmetry_from_ops([gemmi.Op("x,y,z")], "none given (P1 assumed)", None, lattice)
    result.number, result.symbol = None, ""
    return result


@dataclass
class _Site:
    """One atom site of a CIF asymmetric unit."""

    label: str
    element: str
    frac: np.ndarray
    occupancy: float
    b_iso: float
    multiplicity: int | None


def _cif_sites(block: gemmi.cif.Block, lattice: np.ndarray) -> tuple[list[_Site], list[str]]:
    """The atom sites of a block and notes on what was assumed (missing displacement parameters)."""
    xyz = [_column(block, f"atom_site.fract_{axis}") for axis in "xyz"]
    if any(column is None for column in xyz):
        raise StructureError(f"atom sites without fract_x/y/z in block {block.name!r}")
    n = len(xyz[0])
    labels = _column(block, "atom_site.label") or [""] * n
    types = _column(block, "atom_site.type_symbol") or [""] * n
    occupancies = _column(block, "atom_site.occupancy") or [""] * n
    b_values = _column(block, "atom_site.B_iso_or_equiv") or [""] * n
    u_values = _column(block, "atom_site.U_iso_or_equiv") or [""] * n
    multiplicities = _column(block, "atom_site.symmetry_multiplicity") or [""] * n
    flags = _column(block, "atom_site.calc_flag") or [""] * n
    aniso = _cif_aniso_b(block, lattice)
    sites, without_adp = [], []
    for i in range(n):
        label = labels[i] or f"site {i + 1}"
        if flags[i].lower() == "dum":  # dummy atoms mark positions, they do not scatter
            continue
        frac = np.array([_number(column[i]) for column in xyz])
        if not np.all(np.abs(frac) < 1e6):  # also rejects nan ('?') and inf
            raise StructureError(f"site {label!r} has no valid fractional coordinates")
        symbol = types[i] or labels[i]
        if not symbol:
            raise StructureError(f"site {i + 1} has neither a type symbol nor a label")
        element = _element(symbol, f" at site {label!r}")
        occupancy = _number(occupancies[i])
        occupancy = 1.0 if not np.isfinite(occupancy) else occupancy
        if occupancy < 0:
            raise StructureError(f"negative occupancy at site {label!r}")
        b_iso = _number(b_values[i])
        if not np.isfinite(b_iso):
            b_iso = EIGHT_PI2 * _number(u_values[i])
        if not np.isfinite(b_iso):
            b_iso = aniso.get(labels[i], math.nan)
        if not np.isfinite(b_iso):
            b_iso = 0.0
            without_adp.append(label)
        multiplicity = _number(multiplicities[i])
        multiplicity = int(multiplicity) if np.isfinite(multiplicity) and multiplicity >= 1 else None
        sites.append(_Site(label, element, frac, float(occupancy), float(b_iso), multiplicity))
    if not sites:
        raise StructureError(f"no atom sites in block {block.name!r}")
    notes = [f"no displacement parameters for {', '.join(without_adp)}: B = 0"] if without_adp else []
    return sites, notes


def _cif_aniso_b(block: gemmi.cif.Block, lattice: np.ndarray) -> dict[str, float]:
    """B = 8 pi^2 U_eq per label from the anisotropic loop (U_eq of Fischer & Tillmanns 1988, Acta C44, 775)."""
    labels = _column(block, "atom_site_aniso.label")
    if labels is None:
        return {}
    for kind, scale in (("U", EIGHT_PI2), ("B", 1.0)):
        columns = [_column(block, f"atom_site_aniso.{kind}_{ij}") for ij in ("11", "22", "33", "12", "13", "23")]
        if all(column is not None for column in columns):
            break
    else:
        return {}
    matrix = _matrix(lattice)
    metric = matrix @ matrix.T
    reciprocal_lengths = np.linalg.norm(np.linalg.inv(matrix), axis=0)
    weights = metric * np.outer(reciprocal_lengths, reciprocal_lengths)
    result = {}
    for i, label in enumerate(labels):
        u11, u22, u33, u12, u13, u23 = (_number(column[i]) for column in columns)
        u = np.array([[u11, u12, u13], [u12, u22, u23], [u13, u23, u33]])
        if np.all(np.isfinite(u)):
            result[label] = float(scale * np.sum(u * weights) / 3)
    return result


def _periodic_distances(frac: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Shortest Cartesian distances [K, K] between fractional positions under lattice translations."""
    delta = frac[:, None, :] - frac[None, :, :]
    delta -= np.round(delta)
    shifts = np.array([[i, j, k] for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)], dtype=np.float64)
    cartesian = (delta[:, :, None, :] + shifts) @ matrix
    return np.sqrt((cartesian**2).sum(-1)).min(-1)


def _greedy_distinct(distances: np.ndarray, tolerance: float) -> list[int]:
    keep: list[int] = []
    for i in range(len(distances)):
        if all(distances[i, j] >= tolerance for j in keep):
            keep.append(i)
    return keep


def _site_images(site: _Site, symmetry: _Symmetry, matrix: np.ndarray) -> np.ndarray:
    """Distinct images of one site in the cell.

    Images closer than SAME_POSITION_A are one atom. Images up to SPECIAL_POSITION_A apart are one atom too when the
    multiplicity given in the CIF says so, or when keeping them would put more than OVERFILL atoms on one spot;
    otherwise they are the parts of a split site near a symmetry element.
    """
    images = _wrap(symmetry.rotations @ site.frac + symmetry.translations)
    _, first = np.unique(np.round(images, 6) % 1.0, axis=0, return_index=True)
    images = images[np.sort(first)]
    distances = _periodic_distances(images, matrix)
    tight = _greedy_distinct(distances, SAME_POSITION_A)
    loose = _greedy_distinct(distances, SPECIAL_POSITION_A)
    if site.multiplicity in (len(tight), len(loose)):
        return images[tight if site.multiplicity == len(tight) else loose]
    mates = (distances[np.ix_(tight, tight)] < SPECIAL_POSITION_A).sum(1)
    return images[loose if site.occupancy * mates.max() > OVERFILL else tight]


# ---------------------------------------------------------------------------------------------------------------------
# POSCAR / CONTCAR


def _floats(line: str, count: int) -> list[float] | None:
    """The first `count` numbers of a line (comments after '#' or '!' ignored), or None."""
    tokens = re.split(r"[#!]", line, maxsplit=1)[0].split()
    if len(tokens) < count:
        return None
    try:
        values = [float(token) for token in tokens[:count]]
    except ValueError:
        return None
    return values if all(abs(v) < 1e12 for v in values) else None  # also rejects nan and inf


def _strict_element(token: str) -> str | None:
    """An exact element symbol ('Fe', 'D'), or None: POSCAR comments must not be guessed from loosely."""
    return token if re.fullmatch(r"[A-Z][a-z]?", token) and token in SPECIES[1:] else None


def _species_from_comment(comment: str, counts: list[int]) -> list[str] | None:
    """Species named by a POSCAR comment line: 'Na Co O' or a formula whose amounts equal the counts ('Na4Co4O32')."""
    tokens = comment.replace(",", " ").split()
    symbols = [_strict_element(t) for t in tokens]
    if tokens and len(tokens) == len(counts) and all(symbols):
        return symbols
    parts = re.findall(r"([A-Z][a-z]?)(\d+(?:\.\d+)?)", comment)
    if not parts or re.sub(r"[\s(),]", "", comment) != "".join(el + amount for el, amount in parts):
        return None
    merged: list[list] = []
    for symbol, amount in parts:  # '(Li24,Li48)La24...' lists one element on several sites
        if _strict_element(symbol) is None:
            return None
        if merged and merged[-1][0] == symbol:
            merged[-1][1] += float(amount)
        else:
            merged.append([symbol, float(amount)])
    if [amount for _, amount in merged] != [float(c) for c in counts]:
        return None
    return [symbol for symbol, _ in merged]


def _species_from_site_comments(site_lines: list[str], counts: list[int]) -> list[str] | None:
    """Species from per-atom labels after the coordinates ('0.5 0.5 0.5 # Na1'); one element per count group."""
    groups, start = [], 0
    for count in counts:
        found = set()
        for line in site_lines[start : start + count]:
            extra = re.split(r"[#!]", line, maxsplit=1)
            tail = extra[1] if len(extra) > 1 else " ".join(t for t in line.split()[3:] if t not in {"T", "F"})
            match = re.match(r"\s*([A-Z][a-z]?)(?![a-z])", tail)
            if match is None or _strict_element(match.group(1)) is None:
                return None
            found.add(match.group(1))
        if len(found) != 1:
            return None
        groups.append(found.pop())
        start += count
    return groups


def _crystal_from_poscar(text: str, source: str, species: Sequence[str] | None) -> Crystal:
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) < 8:
        raise StructureError(f"POSCAR too short ({len(lines)} lines): needs comment, scale, lattice, counts, mode, sites")
    comment = lines[0]
    scale_tokens = re.split(r"[#!]", lines[1], maxsplit=1)[0].split()
    scale = _floats(lines[1], len(scale_tokens)) if len(scale_tokens) in (1, 3) else None
    if scale is None:
        raise StructureError(f"POSCAR line 2 is not a scale factor: {lines[1]!r}")
    vectors = [_floats(line, 3) for line in lines[2:5]]
    if any(v is None for v in vectors):
        raise StructureError("POSCAR lines 3-5 are not three lattice vectors")
    matrix = np.array(vectors, dtype=np.float64)
    factor = 1.0  # the universal scale, which VASP also applies to Cartesian positions
    if len(scale) == 1 and scale[0] < 0:  # VASP: a negative scale is the cell volume
        volume = abs(np.linalg.det(matrix))
        if volume < 1e-12:
            raise StructureError("zero-volume cell")
        factor = (abs(scale[0]) / volume) ** (1 / 3)
        matrix *= factor
    elif all(s > 0 for s in scale):
        factor = scale[0] if len(scale) == 1 else 1.0
        matrix *= np.array(scale)[:, None] if len(scale) == 3 else scale[0]
    else:
        raise StructureError(f"invalid POSCAR scale factor {lines[1]!r}")
    if not np.all(np.abs(matrix) < MAX_CELL_A):
        raise StructureError("invalid POSCAR lattice vectors (too long or not finite)")
    if abs(np.linalg.det(matrix)) <= 1e-6 * np.prod(np.linalg.norm(matrix, axis=1)):
        raise StructureError("zero-volume cell")

    row = 5
    file_species = None
    if not _is_int_line(lines[row]):
        file_species = [re.split(r"[_/]", token)[0] for token in lines[row].split()]  # 'Fe_pv', 'Fe/7f6e' (VASP 6)
        row += 1
    if row >= len(lines) or not _is_int_line(lines[row]):
        found = lines[row] if row < len(lines) else ""
        raise StructureError(f"POSCAR line {row + 1} is not the atom counts: {found!r}")
    counts = [int(t) for t in re.split(r"[#!]", lines[row], maxsplit=1)[0].split()]
    if sum(counts) == 0:
        raise StructureError(f"invalid POSCAR atom counts {counts}")
    row += 1
    if row < len(lines) and lines[row][:1] in ("s", "S"):
        row += 1  # selective dynamics: the T/F flags after each coordinate are ignored
    if row >= len(lines):
        raise StructureError("POSCAR ends before the coordinate mode line")
    cartesian = lines[row][:1] in ("c", "C", "k", "K")
    row += 1
    n_atoms = sum(counts)
    site_lines = lines[row : row + n_atoms]
    if len(site_lines) < n_atoms:
        raise StructureError(f"POSCAR lists {len(site_lines)} of {n_atoms} atom positions")
    coords = [_floats(line, 3) for line in site_lines]
    bad = next((i for i, c in enumerate(coords) if c is None), None)
    if bad is not None:
        raise StructureError(f"POSCAR line {row + bad + 1} is not a position: {site_lines[bad]!r}")
    positions = np.array(coords, dtype=np.float64)
    if cartesian:
        positions = (positions * factor) @ np.linalg.inv(matrix)

    if species is not None:
        group_species, origin = [str(s) for s in species], "argument"
    elif file_species is not None:
        group_species, origin = file_species, "species line"
    elif (found := _species_from_comment(comment, counts)) is not None:
        group_species, origin = found, "comment line"
    elif (found := _species_from_site_comments(site_lines, counts)) is not None:
        group_species, origin = found, "site comments"
    else:
        raise StructureError(f"VASP 4 POSCAR without a species line: pass species=[...], one per count group {counts}")
    if len(group_species) != len(counts):
        raise StructureError(f"{len(group_species)} species {group_species} for {len(counts)} count groups {counts}")
    elements = [_element(symbol) for symbol in group_species]
    symbols = [element for element, count in zip(elements, counts) for _ in range(count)]
    metadata = {"source": source, "format": "poscar", "species_from": origin, "comment": comment}
    return _build(
        _matrix_to_parameters(matrix), _wrap(positions), symbols, None, None, name=comment, metadata=metadata
    )


def _is_int_line(line: str) -> bool:
    tokens = re.split(r"[#!]", line, maxsplit=1)[0].split()
    return bool(tokens) and all(re.fullmatch(r"\d+", t) for t in tokens)
