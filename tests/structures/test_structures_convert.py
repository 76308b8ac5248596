"""Conversions between Crystal and pymatgen / ASE structures."""

import warnings

import numpy as np
import pytest

from powdersym.structures import Crystal, StructureError, UnknownElementError, from_ase, from_pymatgen, to_pymatgen

pymatgen_core = pytest.importorskip("pymatgen.core")


def test_from_pymatgen_disordered_site_gives_one_atom_per_species():
    lattice = pymatgen_core.Lattice.cubic(3.88)
    structure = pymatgen_core.Structure(
        lattice, [{"La": 0.5, "Ba": 0.5}, "Co", pymatgen_core.Species("O", -2)], [[0, 0, 0], [0.5, 0.5, 0.5], [1.0, 0.5, 0.5]]
    )
    crystal = from_pymatgen(structure)
    assert crystal.species == ["La", "Ba", "Co", "O"]
    np.testing.assert_allclose(crystal.occupancy, [0.5, 0.5, 1, 1])
    np.testing.assert_allclose(crystal.frac_coords[3], [0, 0.5, 0.5])  # wrapped into [0, 1)
    np.testing.assert_allclose(crystal.lattice, [3.88, 3.88, 3.88, 90, 90, 90])


def test_pymatgen_round_trip_keeps_deuterium_occupancy_and_b():
    crystal = Crystal(
        [4.0, 5.0, 6.0, 90, 100, 90], [[0, 0, 0], [0, 0, 0], [0.3, 0.2, 0.1]], ["Fe", "Ni", "D"],
        occupancy=[0.7, 0.3, 1.0], b_iso=[0.5, 0.5, 2.0],
    )  # fmt: skip
    structure = to_pymatgen(crystal)
    assert len(structure) == 2  # Fe/Ni share one disordered site
    back = from_pymatgen(structure)
    assert back.species == ["Fe", "Ni", "D"]
    for name in ("lattice", "frac_coords", "occupancy", "b_iso"):
        np.testing.assert_allclose(getattr(back, name), getattr(crystal, name), atol=1e-9)


def test_from_pymatgen_rejects_dummy_species_and_molecules():
    from pymatgen.core.periodic_table import DummySpecies

    structure = pymatgen_core.Structure(pymatgen_core.Lattice.cubic(4), [DummySpecies("X")], [[0, 0, 0]])
    with pytest.raises(UnknownElementError):
        from_pymatgen(structure)
    with pytest.raises(StructureError):
        from_pymatgen(pymatgen_core.Molecule(["H", "H"], [[0, 0, 0], [0, 0, 0.74]]))


def test_from_ase_cell_and_mixed_sites(tmp_path):
    ase_build = pytest.importorskip("ase.build")
    import ase.io

    crystal = from_ase(ase_build.bulk("NaCl", "rocksalt", a=5.64, cubic=True))
    assert crystal.n_atoms == 8 and crystal.formula() == "Cl4Na4"
    np.testing.assert_allclose(crystal.lattice, [5.64, 5.64, 5.64, 90, 90, 90])
    path = tmp_path / "mixed.cif"
    path.write_text(
        "data_mixed\n_cell_length_a 3.88\n_cell_length_b 3.88\n_cell_length_c 3.88\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P m -3 m'\nloop_\n_atom_site_label\n"
        "_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n"
        "La La 0 0 0 0.5\nBa Ba 0 0 0 0.5\nCo Co 0.5 0.5 0.5 1\nO O 0 0.5 0.5 1\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ASE warns about the shared site
        atoms = ase.io.read(path)
    crystal = from_ase(atoms)  # ASE keeps one atom for the La/Ba site and lists both species in info['occupancy']
    assert sorted(crystal.species) == ["Ba", "Co", "La", "O", "O", "O"]
    assert crystal.formula() == "Ba0.5CoLa0.5O3"

