"""Importing real structures: standardised by spglib, duplicates (origin shift, supercell) removed, unreadable files
skipped with a warning and counted, provenance kept through a save/load round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from powdersym.data import DatasetFormatError, StructureCollection, import_structures, standardise


def test_import_removes_duplicates_and_skips_garbage(structure_folder: Path, known):
    warnings: list[str] = []
    collection, report = import_structures(structure_folder, warn=warnings.append)
    assert report.n_files == len(known) + 3  # README.md is not a structure file
    assert len(collection) == len(known)
    assert [file for file, _ in report.skipped] == ["broken/garbage.cif"]
    assert len(warnings) == 1 and "garbage.cif" in warnings[0] and "\n" not in warnings[0]
    removed = dict(report.duplicates)
    assert removed == {"real:zz_CsCl_supercell.cif": "real:CsCl.cif", "real:zz_NaCl_shifted.cif": "real:NaCl.cif"}
    # a 2 % larger NaCl cell is another structure, not a duplicate
    assert {r.file for r in collection.records} == {f"{name}.cif" for name in known}
    assert report.summary(len(collection)) == "18 files: 15 structures kept, 1 unreadable files skipped, 2 duplicates removed"


def test_records_are_standardised_with_provenance(structure_folder: Path, known):
    collection, _ = import_structures(structure_folder)
    for record in collection.records:
        number, crystal = known[record.file.removesuffix(".cif")]
        assert record.space_group == record.crystal.space_group == number
        assert record.declared_space_group == 1  # the files are P1 CIFs: spglib finds the real group
        assert record.source == f"real:{record.file}"
        assert record.crystal.n_atoms == crystal.n_atoms  # these files already hold the conventional cell


def test_standardise_primitive_cell_to_conventional(known):
    # the primitive rhombohedral cell of Cu (fcc): one atom, a = 3.61 / sqrt(2), angles 60 degrees
    from powdersym.structures import Crystal

    primitive = Crystal([3.61 / np.sqrt(2)] * 3 + [60.0] * 3, [[0, 0, 0]], ["Cu"])
    standard, number, prototype, n_sites = standardise(primitive)
    assert number == 225 and n_sites == 4 and prototype == "A_225_a"
    assert np.allclose(standard.lattice, [3.61] * 3 + [90] * 3, atol=1e-6)


def test_mixed_site_keeps_its_symmetry():
    from powdersym.structures import Crystal

    # rock salt with Na/K on one site: spglib must see one site type, not two atoms on one spot
    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    frac = np.concatenate([fcc, fcc, fcc + 0.5]) % 1.0
    species = ["Na"] * 4 + ["K"] * 4 + ["Cl"] * 4
    crystal = Crystal([6.0] * 3 + [90] * 3, frac, species, occupancy=[0.5] * 8 + [1.0] * 4)
    standard, number, _, n_sites = standardise(crystal)
    assert number == 225 and n_sites == 8 and standard.n_atoms == 12
    assert standard.formula() == crystal.formula()


def test_save_load_round_trip(structure_folder: Path, tmp_path: Path):
    collection, _ = import_structures(structure_folder)
    path = tmp_path / "structures.h5"
    collection.save(path)
    loaded = StructureCollection.load(path)
    assert len(loaded) == len(collection) and loaded.settings == collection.settings
    assert loaded.skipped == collection.skipped and loaded.duplicates == collection.duplicates
    for a, b in zip(collection.records, loaded.records):
        assert (a.file, a.formula, a.space_group, a.prototype, a.n_sites) == (b.file, b.formula, b.space_group, b.prototype, b.n_sites)
        assert np.array_equal(a.crystal.frac_coords, b.crystal.frac_coords) and a.crystal.species == b.crystal.species
        assert np.array_equal(a.lattice, b.lattice)
    assert not list(tmp_path.glob("*.tmp"))


def test_load_refuses_other_files(tmp_path: Path, pattern_file: Path):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    for path, message in ((garbage, "not a readable HDF5 file"), (pattern_file, "not a powdersym structure collection"),
                          (tmp_path / "missing.h5", "no such file")):  # fmt: skip
        with pytest.raises(DatasetFormatError, match=message):
            StructureCollection.load(path)


def test_import_of_shared_measured_cifs(shared_data: Path):
    """The CIFs beside the measured patterns: one modulated structure is skipped, the two descriptions of
    Na2Ca3Al2F14 (NAC.cif and Na2Ca3Al2F14.cif) are one structure."""
    warnings: list[str] = []
    collection, report = import_structures(shared_data / "measured", warn=warnings.append)
    assert len(collection) >= 25 and len(report.skipped) == len(warnings) >= 1
    assert any("NAC.cif" in removed and "Na2Ca3Al2F14.cif" in kept for removed, kept in report.duplicates)
    assert all(1 <= r.space_group <= 230 for r in collection.records)
