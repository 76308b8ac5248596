"""Fixtures for the data tests: a folder of small known structures (CIFs written by powdersym), with two duplicates
and one unreadable file, its imported collection, and small pattern files built from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from powdersym.structures import Crystal, write_cif
from powdersym.symmetry import space_group


def make_crystal(number: int, lattice: list[float], sites: list[tuple[str, str, tuple]], name: str) -> Crystal:
    """A crystal from Wyckoff sites (element, letter, free x y z) of a group in its standard setting, as P1 atoms."""
    group = space_group(number)
    frac, species = [], []
    for element, letter, xyz in sites:
        orbit = group.wyckoff(letter).orbit(np.array(xyz, dtype=float))
        frac.extend(orbit)
        species += [element] * len(orbit)
    return Crystal(lattice, np.array(frac), species, name=name)


CUBIC, HEX = [90.0] * 3, [90.0, 90.0, 120.0]
# name: (space group the structure has, crystal); names are also the file names
KNOWN = {
    "NaCl": (225, make_crystal(225, [5.64] * 3 + CUBIC, [("Na", "a", (0, 0, 0)), ("Cl", "b", (0, 0, 0))], "NaCl")),
    "NaCl_hot": (225, make_crystal(225, [5.75] * 3 + CUBIC, [("Na", "a", (0, 0, 0)), ("Cl", "b", (0, 0, 0))], "NaCl_hot")),
    "KCl": (225, make_crystal(225, [6.29] * 3 + CUBIC, [("K", "a", (0, 0, 0)), ("Cl", "b", (0, 0, 0))], "KCl")),
    "CsCl": (221, make_crystal(221, [4.12] * 3 + CUBIC, [("Cs", "a", (0, 0, 0)), ("Cl", "b", (0, 0, 0))], "CsCl")),
    "CaF2": (225, make_crystal(225, [5.46] * 3 + CUBIC, [("Ca", "a", (0, 0, 0)), ("F", "c", (0, 0, 0))], "CaF2")),
    "Cu": (225, make_crystal(225, [3.61] * 3 + CUBIC, [("Cu", "a", (0, 0, 0))], "Cu")),
    "Fe": (229, make_crystal(229, [2.87] * 3 + CUBIC, [("Fe", "a", (0, 0, 0))], "Fe")),
    "Mg": (194, make_crystal(194, [3.21, 3.21, 5.21] + HEX, [("Mg", "c", (0, 0, 0))], "Mg")),
    "TiO2": (136, make_crystal(136, [4.59, 4.59, 2.96] + CUBIC, [("Ti", "a", (0, 0, 0)), ("O", "f", (0.305, 0, 0))], "TiO2")),
    "ZnO": (186, make_crystal(186, [3.25, 3.25, 5.21] + HEX, [("Zn", "b", (0, 0, 0)), ("O", "b", (0, 0, 0.382))], "ZnO")),
    "SrTiO3": (221, make_crystal(221, [3.905] * 3 + CUBIC, [("Sr", "a", (0,) * 3), ("Ti", "b", (0,) * 3), ("O", "c", (0,) * 3)], "SrTiO3")),
    "BaTiO3": (99, make_crystal(99, [3.99, 3.99, 4.03] + CUBIC, [("Ba", "a", (0, 0, 0)), ("Ti", "b", (0, 0, 0.515)),
                                                                   ("O", "b", (0, 0, 0.975)), ("O", "c", (0, 0, 0.485))], "BaTiO3")),
    "AuCu": (47, make_crystal(47, [3.9, 4.3, 4.7] + CUBIC, [("Au", "a", (0, 0, 0)), ("Cu", "h", (0, 0, 0))], "AuCu")),
    "AgI": (10, make_crystal(10, [4.1, 5.3, 6.2, 90.0, 101.0, 90.0], [("Ag", "a", (0, 0, 0)), ("I", "h", (0, 0, 0))], "AgI")),
    "SSn2": (2, make_crystal(2, [4.1, 5.2, 6.3, 80.0, 95.0, 105.0], [("S", "a", (0, 0, 0)), ("Sn", "i", (0.3, 0.2, 0.1))], "SSn2")),
}
FORMULAS = {"NaCl": "ClNa", "NaCl_hot": "ClNa", "KCl": "ClK", "CsCl": "ClCs", "CaF2": "CaF2", "Cu": "Cu", "Fe": "Fe",
            "Mg": "Mg", "TiO2": "O2Ti", "ZnO": "OZn", "SrTiO3": "O3SrTi", "BaTiO3": "BaO3Ti", "AuCu": "AuCu", "AgI": "AgI",
            "SSn2": "SSn2"}  # fmt: skip


def shifted(crystal: Crystal, shift: tuple[float, float, float], name: str) -> Crystal:
    return Crystal(crystal.lattice, (crystal.frac_coords + shift) % 1.0, crystal.species, name=name)


def supercell(crystal: Crystal, n: int, name: str) -> Crystal:
    """n x 1 x 1 supercell."""
    frac = np.concatenate([(crystal.frac_coords + [i, 0, 0]) / [n, 1, 1] for i in range(n)])
    lattice = crystal.lattice * [n, 1, 1, 1, 1, 1]
    return Crystal(lattice, frac, crystal.species * n, name=name)


@pytest.fixture(scope="session")
def known() -> dict[str, tuple[int, Crystal]]:
    """name -> (space group, crystal) of the structures in `structure_folder` (helpers are fixtures: the tests run
    with --import-mode=importlib)."""
    return KNOWN


@pytest.fixture(scope="session")
def formulas() -> dict[str, str]:
    return FORMULAS


@pytest.fixture(scope="session")
def structure_folder(tmp_path_factory) -> Path:
    """15 distinct structures in P1 CIFs, an origin-shifted NaCl and a 2x1x1 CsCl supercell (duplicates), a garbage
    CIF in a sub-folder and a README (not a structure file)."""
    folder = tmp_path_factory.mktemp("structures")
    for name, (_, crystal) in KNOWN.items():
        write_cif(crystal, folder / f"{name}.cif")
    write_cif(shifted(KNOWN["NaCl"][1], (0.13, 0.27, 0.41), "NaCl_shifted"), folder / "zz_NaCl_shifted.cif")
    write_cif(supercell(KNOWN["CsCl"][1], 2, "CsCl_super"), folder / "zz_CsCl_supercell.cif")
    (folder / "broken").mkdir()
    (folder / "broken" / "garbage.cif").write_text("this is not a CIF at all\n")
    (folder / "README.md").write_text("not a structure\n")
    return folder


@pytest.fixture(scope="session")
def collection_file(structure_folder: Path, tmp_path_factory) -> Path:
    from powdersym.data import import_structures

    collection, _ = import_structures(structure_folder)
    path = tmp_path_factory.mktemp("collection") / "structures.h5"
    collection.save(path)
    return path


@pytest.fixture(scope="session")
def pattern_file(collection_file: Path, tmp_path_factory) -> Path:
    """Clean neutron-cw patterns of the 15 structures, in blocks of 4 (chunks of 8 rows)."""
    from powdersym.data import build_dataset

    return build_dataset(tmp_path_factory.mktemp("patterns") / "real.h5", collection_file, "neutron-cw", block_size=4)
