"""POSCAR/CONTCAR reading: format variants, and the 469 spglib test structures against spglib's own labels."""

import csv
import tarfile

import numpy as np
import pytest
import spglib

from powdersym.structures import StructureError, read_structure, species_index
from powdersym.structures.readers import read_poscar

# The index labels each count group with a placeholder element (H, He, Li...), as pymatgen does for VASP 4 files.
PLACEHOLDERS = ["H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne"]

ROCKSALT_VASP5 = """NaCl rock salt
1.0
5.64 0 0
0 5.64 0
0 0 5.64
Na Cl
4 4
Direct
0 0 0
0 0.5 0.5
0.5 0 0.5
0.5 0.5 0
0.5 0.5 0.5
0.5 0 0
0 0.5 0
0 0 0.5
"""


def _write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_vasp5_direct(tmp_path):
    crystal = read_structure(_write(tmp_path, "POSCAR", ROCKSALT_VASP5))
    assert crystal.n_atoms == 8
    assert crystal.species == ["Na"] * 4 + ["Cl"] * 4
    np.testing.assert_allclose(crystal.lattice, [5.64, 5.64, 5.64, 90, 90, 90])
    assert crystal.name == "NaCl rock salt" and crystal.metadata["species_from"] == "species line"
    assert crystal.space_group is None


def test_selective_dynamics_cartesian_and_scale(tmp_path):
    """Scale 2 on a 2.82 Å cell, Cartesian positions also scaled, T/F flags ignored, POTCAR-style species names."""
    text = """rock salt, Cartesian
2.0
2.82 0 0
0 2.82 0
0 0 2.82
Na_pv Cl
4 4
Selective dynamics
Cartesian
0 0 0 T T T
0 1.41 1.41 T T F
1.41 0 1.41 F F F
1.41 1.41 0 T T T
1.41 1.41 1.41 T T T
1.41 0 0 T T T
0 1.41 0 T T T
0 0 1.41 T T T
"""
    crystal = read_structure(_write(tmp_path, "structure.vasp", text))
    reference = read_structure(_write(tmp_path, "POSCAR", ROCKSALT_VASP5))
    np.testing.assert_allclose(crystal.lattice, reference.lattice)
    np.testing.assert_allclose(crystal.frac_coords, reference.frac_coords, atol=1e-12)
    assert crystal.species == reference.species


def test_negative_scale_is_volume_and_three_scales(tmp_path):
    volume = ROCKSALT_VASP5.replace("1.0\n5.64 0 0\n0 5.64 0\n0 0 5.64", f"-{5.64**3}\n1 0 0\n0 1 0\n0 0 1")
    crystal = read_structure(_write(tmp_path, "CONTCAR", volume))
    np.testing.assert_allclose(crystal.lattice, [5.64, 5.64, 5.64, 90, 90, 90])
    per_axis = ROCKSALT_VASP5.replace("1.0\n5.64 0 0\n0 5.64 0\n0 0 5.64", "5.64 5.64 6.0\n1 0 0\n0 1 0\n0 0 1")
    crystal = read_structure(_write(tmp_path, "POSCAR_axes", per_axis))
    np.testing.assert_allclose(crystal.lattice, [5.64, 5.64, 6.0, 90, 90, 90])


def test_vasp4_species_from_argument_comment_or_site_labels(tmp_path):
    vasp4 = ROCKSALT_VASP5.replace("Na Cl\n", "")
    path = _write(tmp_path, "POSCAR", vasp4.replace("NaCl rock salt", "rock salt"))
    with pytest.raises(StructureError, match="species=") as err:
        read_structure(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    assert read_structure(path, species=["K", "Br"]).species == ["K"] * 4 + ["Br"] * 4
    assert read_structure(_write(tmp_path, "POSCAR2", vasp4.replace("NaCl rock salt", "Na Cl"))).species[-1] == "Cl"
    assert read_structure(_write(tmp_path, "POSCAR3", vasp4.replace("NaCl rock salt", "Na4Cl4"))).species[0] == "Na"
    # amounts that disagree with the counts are not a species list
    with pytest.raises(StructureError, match="species="):
        read_structure(_write(tmp_path, "POSCAR4", vasp4.replace("NaCl rock salt", "Na2Cl2")))
    lines = vasp4.splitlines()
    labelled = "\n".join(lines[:7] + [f"{line} # {'Na' if i < 4 else 'Cl'}{i + 1}" for i, line in enumerate(lines[7:])])
    crystal = read_structure(_write(tmp_path, "POSCAR5", labelled))
    assert crystal.species == ["Na"] * 4 + ["Cl"] * 4 and crystal.metadata["species_from"] == "site comments"


def test_read_poscar_with_any_name(tmp_path):
    assert read_poscar(_write(tmp_path, "nacl.txt", ROCKSALT_VASP5)).n_atoms == 8
    assert read_structure(_write(tmp_path, "nacl.txt", ROCKSALT_VASP5)).n_atoms == 8  # recognised by content


@pytest.fixture(scope="module")
def spglib_poscars(shared_data, tmp_path_factory):
    folder = shared_data / "structures" / "spglib_testdata"
    archive, index = folder / "spglib_poscars.tar.gz", folder / "index.csv"
    if not (archive.is_file() and index.is_file()):
        pytest.skip(f"spglib test structures missing in {folder}")
    target = tmp_path_factory.mktemp("spglib")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    with open(index, newline="") as stream:
        rows = list(csv.DictReader(stream))
    return target, rows


@pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning")
def test_spglib_poscars_load_with_spglib_space_groups(spglib_poscars):
    """Every POSCAR loads (species from the file, or placeholders where the VASP 4 file names none); atom count and
    spglib's space group at symprec 1e-3 agree with index.csv (the 9 deliberately distorted files are skipped)."""
    root, rows = spglib_poscars
    assert len(rows) == 469
    needs_species = []
    for row in rows:
        path = root / row["file"]
        try:
            crystal = read_structure(path)
        except StructureError as err:
            assert "species=" in str(err), f"{row['file']}: {err}"
            n_groups = len(path.read_text().splitlines()[5].split())
            crystal = read_structure(path, species=PLACEHOLDERS[:n_groups])
            needs_species.append(row["file"])
        assert crystal.n_atoms == int(row["nsites"]), row["file"]
        if row["folder"] == "distorted":
            continue
        numbers = [species_index(symbol) for symbol in crystal.species]
        dataset = spglib.get_symmetry_dataset((crystal.matrix(), crystal.frac_coords, numbers), symprec=1e-3)
        assert dataset.number == int(row["sg_number_spglib"]), row["file"]
    # 383 files name their species (per-atom '# Na1' labels, or a formula comment); 86 are VASP 4 without names
    assert len(needs_species) == 86
