"""Crystal structures: the Crystal record, batches of crystals, and readers (CIF, POSCAR, pymatgen, ASE)."""

from powdersym.structures.crystal import Crystal, CrystalBatch, StructureError, lattice_matrix
from powdersym.structures.readers import from_ase, from_pymatgen, read_structure, to_pymatgen, write_cif
from powdersym.structures.species import SPECIES, UnknownElementError, species_index

__all__ = [
    "Crystal", "CrystalBatch", "StructureError", "lattice_matrix", "SPECIES", "UnknownElementError", "species_index",
    "read_structure", "write_cif", "from_pymatgen", "to_pymatgen", "from_ase",
]  # fmt: skip

from powdersym.structures.random import (  # noqa: E402
    RandomCrystalConfig,
    RandomCrystals,
    pyxtal_crystals,
    random_crystals,
    sample_space_groups,
)

__all__ += ["RandomCrystalConfig", "RandomCrystals", "random_crystals", "sample_space_groups", "pyxtal_crystals"]
