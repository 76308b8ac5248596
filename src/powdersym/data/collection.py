"""Real structures for data sets: read a folder of CIF/POSCAR files, standardise with spglib, de-duplicate, and keep
the result with its provenance in one HDF5 structure collection (`powdersym dataset import`).

Standardisation: atoms sharing a position form one site whose type is its composition (element, occupancy, B), so
mixed and partially occupied sites keep their symmetry; spglib finds the space group and gives the conventional
standard cell (ITA setting: unique axis b, hexagonal axes for R groups), idealised. That cell is what is simulated
and what the lattice-parameter labels describe.

Duplicates: same reduced formula, same space group and conventional cell within a tolerance (lengths relative,
angles absolute), as in Friedman et al.'s clean-up of ICSD/COD exports. A shifted origin or a supercell of a
structure standardises to the same cell and is caught; the first file in path order is kept.
"""

from __future__ import annotations

import datetime
import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import spglib
import torch

import powdersym
from powdersym.data.labels import prototype, reduced_formula
from powdersym.data.store import DatasetFormatError, open_h5, require
from powdersym.structures import Crystal, CrystalBatch, StructureError, UnknownElementError, read_structure
from powdersym.structures.readers import _matrix_to_parameters
from powdersym.structures.species import SPECIES, species_index

COLLECTION_FORMAT = "powdersym-structures"
FORMAT_VERSION = 1
STRUCTURE_SUFFIXES = (".cif", ".cif.gz", ".mcif", ".vasp", ".poscar")
STRUCTURE_PREFIXES = ("POSCAR", "CONTCAR")
SYMPREC = 0.01  # Å, spglib's distance tolerance (pymatgen's SpacegroupAnalyzer default)
ANGLE_TOLERANCE = 5.0  # degrees, spglib's angle tolerance
LENGTH_TOLERANCE = 0.01  # relative difference of conventional cell lengths for duplicates
CELL_ANGLE_TOLERANCE = 1.0  # degrees, for duplicates


@dataclass
class StructureRecord:
    """One standardised structure and where it came from.

    crystal: the conventional standard cell (spglib), every atom; crystal.space_group is `space_group`.
    declared_space_group: the number the file's symmetry gave (0 when it gave none).
    prototype: anonymous formula, space group and sorted Wyckoff letters of the sites, e.g. 'AB_225_ab'.
    n_sites: occupied positions in the conventional cell (a mixed site counts once).
    """

    crystal: Crystal
    file: str
    block: str
    formula: str
    space_group: int
    declared_space_group: int
    prototype: str
    n_sites: int

    @property
    def lattice(self) -> np.ndarray:
        return self.crystal.lattice

    @property
    def source(self) -> str:
        return f"real:{self.file}" + (f"#{self.block}" if self.block else "")


@dataclass
class ImportReport:
    """What `import_structures` did: files read, skipped (with the reason) and duplicates removed."""

    n_files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (removed, kept)
    relabelled: list[tuple[str, int, int]] = field(default_factory=list)  # (file, declared, found by spglib)

    def summary(self, n_kept: int) -> str:
        return (
            f"{self.n_files} files: {n_kept} structures kept, {len(self.skipped)} unreadable files skipped, "
            f"{len(self.duplicates)} duplicates removed"
            + (f", {len(self.relabelled)} with a space group other than the file's" if self.relabelled else "")
        )


def standardise(
    crystal: Crystal, symprec: float = SYMPREC, angle_tolerance: float = ANGLE_TOLERANCE
) -> tuple[Crystal, int, str, int]:
    """(conventional standard crystal, space group, prototype, n_sites) by spglib; StructureError if it fails."""
    positions, site_types, compositions = _sites(crystal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+ warns about its old error handling
        try:
            found = spglib.get_symmetry_dataset(
                (crystal.matrix(), positions, site_types), symprec=symprec, angle_tolerance=angle_tolerance
            )
        except spglib.SpglibError:
            found = None
    if found is None:
        raise StructureError(f"spglib found no space group (symprec {symprec} Å): atoms too close or cell degenerate")
    frac, species, occupancy, b_iso = [], [], [], []
    for xyz, site_type in zip(found.std_positions, found.std_types):
        for element, occ, b in compositions[site_type]:
            frac.append(xyz)
            species.append(element)
            occupancy.append(occ)
            b_iso.append(b)
    number = int(found.number)
    frac = np.mod(np.asarray(frac, dtype=np.float64), 1.0)
    frac[frac > 1 - 1e-9] = 0.0
    standard = Crystal(
        _matrix_to_parameters(np.asarray(found.std_lattice)), frac, species, np.asarray(occupancy), np.asarray(b_iso),
        space_group=number, name=crystal.name, metadata=dict(crystal.metadata),
    )  # fmt: skip
    letters = [found.wyckoffs[i] for i in np.unique(found.equivalent_atoms)]
    return standard, number, prototype(_amounts(standard), number, letters), len(found.std_positions)


def _sites(crystal: Crystal) -> tuple[np.ndarray, np.ndarray, list[tuple[tuple[str, float, float], ...]]]:
    """Distinct positions [S, 3], a type per position and the composition of each type (atoms on one spot)."""
    frac = np.mod(crystal.frac_coords, 1.0)
    keys = np.round(frac, 4) % 1.0
    _, site_of_atom = np.unique(keys, axis=0, return_inverse=True)
    site_of_atom = site_of_atom.reshape(-1)
    n_sites = int(site_of_atom.max()) + 1
    contents: list[list[tuple[str, float, float]]] = [[] for _ in range(n_sites)]
    positions = np.zeros((n_sites, 3))
    for atom, site in enumerate(site_of_atom):
        element = SPECIES[species_index(crystal.species[atom])]
        contents[site].append((element, round(float(crystal.occupancy[atom]), 4), round(float(crystal.b_iso[atom]), 3)))
        positions[site] = frac[atom]
    compositions: list[tuple[tuple[str, float, float], ...]] = []
    site_types = np.zeros(n_sites, dtype=np.intc)
    for site, content in enumerate(contents):
        key = tuple(sorted(content))
        if key not in compositions:
            compositions.append(key)
        site_types[site] = compositions.index(key)
    return positions, site_types, compositions


def _amounts(crystal: Crystal) -> dict[str, float]:
    amounts: dict[str, float] = {}
    for element, occ in zip(crystal.species, crystal.occupancy):
        amounts[element] = amounts.get(element, 0.0) + float(occ)
    return amounts


def structure_files(folder: str | os.PathLike) -> list[Path]:
    """Structure files under a folder, recursively, in path order: *.cif(.gz), *.mcif, *.vasp, *.poscar,
    POSCAR*, CONTCAR* (other files are not structures and are not counted)."""
    root = Path(folder)
    found = []
    for path in root.rglob("*"):
        name = path.name
        if path.is_file() and (name.lower().endswith(STRUCTURE_SUFFIXES) or name.upper().startswith(STRUCTURE_PREFIXES)):
            found.append(path)
    return sorted(found)


def _phases(path: Path) -> Iterable[Crystal]:
    """Every nuclear phase of a file (a Rietveld CIF may hold several)."""
    first = read_structure(path)
    yield first
    for index in range(1, int(first.metadata.get("n_phases", 1))):
        yield read_structure(path, block=index)


def import_structures(
    folder: str | os.PathLike,
    *,
    symprec: float = SYMPREC,
    angle_tolerance: float = ANGLE_TOLERANCE,
    length_tolerance: float = LENGTH_TOLERANCE,
    cell_angle_tolerance: float = CELL_ANGLE_TOLERANCE,
    warn: Callable[[str], None] | None = None,
) -> tuple["StructureCollection", ImportReport]:
    """Read, standardise and de-duplicate every structure file under `folder`.

    Unreadable files are skipped: `warn` (if given) gets one line per file, and the report lists them.
    """
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    report = ImportReport()
    records: list[StructureRecord] = []
    for path in structure_files(root):
        report.n_files += 1
        relative = path.relative_to(root).as_posix()
        try:
            for crystal in _phases(path):
                standard, number, structure_type, n_sites = standardise(crystal, symprec, angle_tolerance)
                declared = int(crystal.space_group or 0)
                block = str(crystal.metadata.get("block", "")) if crystal.metadata.get("n_phases", 1) > 1 else ""
                records.append(
                    StructureRecord(standard, relative, block, reduced_formula(_amounts(standard)), number, declared,
                                    structure_type, n_sites)  # fmt: skip
                )
                if declared > 1 and declared != number:  # P1 files (symmetry expanded) are not relabelled
                    report.relabelled.append((relative, declared, number))
        except (StructureError, UnknownElementError) as err:
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            message = message if message.startswith(str(path)) else f"{relative}: {message}"
            report.skipped.append((relative, message))
            if warn is not None:
                warn(f"skipped {message}")
    kept, report.duplicates = deduplicate(records, length_tolerance, cell_angle_tolerance)
    settings = {
        "folder": str(root.resolve()), "symprec": symprec, "angle_tolerance": angle_tolerance,
        "length_tolerance": length_tolerance, "cell_angle_tolerance": cell_angle_tolerance,
        "n_files": report.n_files, "n_skipped": len(report.skipped), "n_duplicates": len(report.duplicates),
    }  # fmt: skip
    return StructureCollection(kept, settings=settings, skipped=report.skipped, duplicates=report.duplicates), report


def same_cell(first: np.ndarray, second: np.ndarray, length_tolerance: float, angle_tolerance: float) -> bool:
    lengths = np.abs(first[:3] - second[:3]) <= length_tolerance * np.maximum(first[:3], second[:3])
    return bool(lengths.all() and (np.abs(first[3:] - second[3:]) <= angle_tolerance).all())


def deduplicate(
    records: Sequence[StructureRecord],
    length_tolerance: float = LENGTH_TOLERANCE,
    angle_tolerance: float = CELL_ANGLE_TOLERANCE,
) -> tuple[list[StructureRecord], list[tuple[str, str]]]:
    """Records without duplicates (same reduced formula, space group and conventional cell within tolerance),
    first one kept; and (removed source, kept source) pairs."""
    kept: list[StructureRecord] = []
    by_key: dict[tuple[str, int], list[StructureRecord]] = {}
    removed: list[tuple[str, str]] = []
    for record in records:
        bucket = by_key.setdefault((record.formula, record.space_group), [])
        match = next((k for k in bucket if same_cell(k.lattice, record.lattice, length_tolerance, angle_tolerance)), None)
        if match is None:
            bucket.append(record)
            kept.append(record)
        else:
            removed.append((record.source, match.source))
    return kept, removed


class StructureCollection:
    """Standardised structures with provenance, saved as one HDF5 file (`save`, `load`)."""

    def __init__(
        self,
        records: Sequence[StructureRecord],
        settings: dict | None = None,
        skipped: Sequence[tuple[str, str]] = (),
        duplicates: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.records = list(records)
        self.settings = dict(settings or {})
        self.skipped = list(skipped)
        self.duplicates = list(duplicates)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> StructureRecord:
        return self.records[index]

    def __repr__(self) -> str:
        return f"StructureCollection({len(self)} structures, {len(set(r.space_group for r in self.records))} space groups)"

    def batch(self, indices: Sequence[int], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> CrystalBatch:
        return CrystalBatch.from_crystals([self.records[i].crystal for i in indices], device=device, dtype=dtype)

    # ---- storage ------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the collection atomically (a temporary file renamed when complete)."""
        target = Path(path)
        temporary = target.with_name(target.name + ".tmp")
        try:
            with h5py.File(temporary, "w") as f:
                self._write(f)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _write(self, f: h5py.File) -> None:
        text = h5py.string_dtype()
        counts = np.array([r.crystal.n_atoms for r in self.records], dtype=np.int64)
        f.attrs.update({
            "format": COLLECTION_FORMAT, "format_version": FORMAT_VERSION, "powdersym_version": powdersym.__version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "settings": json.dumps(self.settings),
        })  # fmt: skip
        f["lattice"] = np.array([r.lattice for r in self.records], dtype=np.float64).reshape(-1, 6)
        f["space_group"] = np.array([r.space_group for r in self.records], dtype=np.int16)
        f["declared_space_group"] = np.array([r.declared_space_group for r in self.records], dtype=np.int16)
        f["n_sites"] = np.array([r.n_sites for r in self.records], dtype=np.int32)
        f["atom_offset"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        atoms = [r.crystal for r in self.records]
        f["frac_coords"] = np.concatenate([c.frac_coords for c in atoms]) if atoms else np.zeros((0, 3))
        f["species"] = np.array([s for c in atoms for s in c.species], dtype="S3")
        f["occupancy"] = np.concatenate([c.occupancy for c in atoms]) if atoms else np.zeros(0)
        f["b_iso"] = np.concatenate([c.b_iso for c in atoms]) if atoms else np.zeros(0)
        for name in ("file", "block", "formula", "prototype"):
            f.create_dataset(name, data=[getattr(r, name) for r in self.records], dtype=text)
        f.create_dataset("skipped", data=[f"{file}\t{why}" for file, why in self.skipped], dtype=text)
        f.create_dataset("duplicates", data=[f"{gone}\t{kept}" for gone, kept in self.duplicates], dtype=text)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "StructureCollection":
        """Read a collection written by `save`; DatasetFormatError (one line) for anything else or a damaged file."""
        with open_h5(path) as f:
            if f.attrs.get("format") != COLLECTION_FORMAT:
                raise DatasetFormatError(f"{path}: not a powdersym structure collection (format attribute missing)")
            names = ("lattice", "space_group", "declared_space_group", "n_sites", "atom_offset", "frac_coords",
                     "species", "occupancy", "b_iso", "file", "block", "formula", "prototype")  # fmt: skip
            data = {name: require(f, name, path)[()] for name in names}
            settings = json.loads(f.attrs.get("settings", "{}"))
            skipped = [tuple(s.split("\t", 1)) for s in f["skipped"].asstr()[()]] if "skipped" in f else []
            duplicates = [tuple(s.split("\t", 1)) for s in f["duplicates"].asstr()[()]] if "duplicates" in f else []
        offsets = data["atom_offset"]
        if len(offsets) != len(data["lattice"]) + 1 or offsets[-1] != len(data["species"]):
            raise DatasetFormatError(f"{path}: atom offsets do not match the atom arrays (damaged collection)")
        text = {name: [v.decode() if isinstance(v, bytes) else v for v in data[name]] for name in ("file", "block", "formula", "prototype")}
        records = []
        for i in range(len(data["lattice"])):
            lo, hi = offsets[i], offsets[i + 1]
            number = int(data["space_group"][i])
            crystal = Crystal(
                data["lattice"][i], data["frac_coords"][lo:hi], [s.decode() for s in data["species"][lo:hi]],
                data["occupancy"][lo:hi], data["b_iso"][lo:hi], space_group=number, name=text["file"][i],
                metadata={"source": text["file"][i], "block": text["block"][i]},
            )  # fmt: skip
            records.append(
                StructureRecord(crystal, text["file"][i], text["block"][i], text["formula"][i], number,
                                int(data["declared_space_group"][i]), text["prototype"][i], int(data["n_sites"][i]))  # fmt: skip
            )
        return cls(records, settings=settings, skipped=skipped, duplicates=duplicates)

    def as_dict(self) -> dict:
        """Provenance of every structure, JSON-ready (no coordinates)."""
        return {
            "settings": self.settings,
            "structures": [
                {**{k: getattr(r, k) for k in ("file", "block", "formula", "space_group", "declared_space_group",
                                              "prototype", "n_sites")}, "lattice": r.lattice.tolist()}
                for r in self.records
            ],  # fmt: skip
            "skipped": self.skipped,
            "duplicates": self.duplicates,
        }


def is_collection(path: str | os.PathLike) -> bool:
    """True for an HDF5 file whose format attribute says it is a structure collection."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == COLLECTION_FORMAT
    except OSError:
        return False

