"""Crystal structures: the Crystal record, batches of crystals, and readers (CIF, POSCAR, pymatgen, ASE)."""

from powdersym.structures.crystal import Crystal, CrystalBatch, StructureError, lattice_matrix
from powdersym.structures.species import SPECIES, UnknownElementError, species_index

__all__ = ["Crystal", "CrystalBatch", "StructureError", "lattice_matrix", "SPECIES", "UnknownElementError", "species_index"]
