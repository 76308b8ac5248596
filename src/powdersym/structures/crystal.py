"""Crystals as the simulator sees them: a cell and every atom in it (space group P1 after expansion)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from powdersym.structures.species import SPECIES, species_index


class StructureError(ValueError):
    """A structure that cannot be simulated (zero-volume cell, no atoms, bad occupancy...)."""


@dataclass
class Crystal:
    """One crystal: conventional cell and all atoms of the unit cell.

    lattice: a, b, c (Å), alpha, beta, gamma (degrees).
    frac_coords: [N, 3] fractional coordinates of every atom in the cell (symmetry already applied).
    species: N element symbols ('Fe', 'O', 'D'...).
    occupancy: [N] site occupancies (1 for a full site).
    b_iso: [N] isotropic displacement parameters B = 8 pi^2 <u^2> (Å^2).
    space_group: the ITA number when known (a label; the simulator never uses it).
    """

    lattice: np.ndarray
    frac_coords: np.ndarray
    species: list[str]
    occupancy: np.ndarray | None = None
    b_iso: np.ndarray | None = None
    space_group: int | None = None
    name: str = ""
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lattice = np.asarray(self.lattice, dtype=np.float64).reshape(6)
        self.frac_coords = np.asarray(self.frac_coords, dtype=np.float64).reshape(-1, 3)
        n = len(self.frac_coords)
        self.species = list(self.species)
        self.occupancy = np.ones(n) if self.occupancy is None else np.asarray(self.occupancy, dtype=np.float64)
        self.b_iso = np.zeros(n) if self.b_iso is None else np.asarray(self.b_iso, dtype=np.float64)
        if not (len(self.species) == n == len(self.occupancy) == len(self.b_iso)):
            raise StructureError("species, coordinates, occupancies and B factors differ in length")
        if n == 0:
            raise StructureError("the structure has no atoms")
        if not np.all(np.isfinite(self.lattice)) or not np.all(np.isfinite(self.frac_coords)):
            raise StructureError("cell or coordinates contain NaN or infinity")
        if self.volume() <= 1e-6 * float(np.prod(self.lattice[:3])) or np.any(self.lattice[:3] <= 0):
            raise StructureError(f"zero-volume or invalid cell {self.lattice.tolist()}")
        for symbol in self.species:
            species_index(symbol)  # raises UnknownElementError for an unknown element

    @property
    def n_atoms(self) -> int:
        return len(self.frac_coords)

    def matrix(self) -> np.ndarray:
        """Row-vector cell matrix [3, 3] (a along x, b in the xy plane), Å."""
        return lattice_matrix(torch.as_tensor(self.lattice[None], dtype=torch.float64))[0].numpy()

    def volume(self) -> float:
        a, b, c = self.lattice[:3]
        cosines = np.cos(np.radians(self.lattice[3:]))
        root = 1 - np.sum(cosines**2) + 2 * np.prod(cosines)
        return float(a * b * c * np.sqrt(max(root, 0.0)))

    def formula(self) -> str:
        counts: dict[str, float] = {}
        for symbol, occ in zip(self.species, self.occupancy):
            element = SPECIES[species_index(symbol)]
            counts[element] = counts.get(element, 0.0) + float(occ)
        return "".join(f"{el}{_number(n)}" for el, n in sorted(counts.items()))


def _number(n: float) -> str:
    return "" if abs(n - 1) < 1e-6 else (f"{n:.0f}" if abs(n - round(n)) < 1e-6 else f"{n:.3g}")


def lattice_matrix(lattice: torch.Tensor) -> torch.Tensor:
    """Row-vector cell matrices [B, 3, 3] from lattice parameters [B, 6] (Å, degrees); differentiable."""
    a, b, c = lattice[:, 0], lattice[:, 1], lattice[:, 2]
    alpha, beta, gamma = torch.deg2rad(lattice[:, 3]), torch.deg2rad(lattice[:, 4]), torch.deg2rad(lattice[:, 5])
    cos_a, cos_b, cos_g, sin_g = torch.cos(alpha), torch.cos(beta), torch.cos(gamma), torch.sin(gamma)
    zero = torch.zeros_like(a)
    cx = c * cos_b
    cy = c * (cos_a - cos_b * cos_g) / sin_g
    cz = torch.sqrt(torch.clamp(c**2 - cx**2 - cy**2, min=1e-12))
    rows = [torch.stack([a, zero, zero], -1), torch.stack([b * cos_g, b * sin_g, zero], -1), torch.stack([cx, cy, cz], -1)]
    return torch.stack(rows, dim=-2)


@dataclass
class CrystalBatch:
    """Crystals of different sizes padded to one tensor batch (padding atoms have species 0 and mask False).

    lattice [B, 6]; frac_coords [B, N, 3]; species [B, N] long (index into SPECIES); occupancy [B, N];
    b_iso [B, N]; mask [B, N] bool.
    """

    lattice: torch.Tensor
    frac_coords: torch.Tensor
    species: torch.Tensor
    occupancy: torch.Tensor
    b_iso: torch.Tensor
    mask: torch.Tensor

    def __len__(self) -> int:
        return self.lattice.shape[0]

    def __getitem__(self, index: slice | torch.Tensor) -> "CrystalBatch":
        """A sub-batch (slice or index tensor), trimmed of padding columns no crystal in it needs."""
        mask = self.mask[index]
        last = torch.nonzero(mask.any(0))
        n = int(last.max()) + 1 if len(last) else 1
        atoms = (self.frac_coords, self.species, self.occupancy, self.b_iso, self.mask)
        return CrystalBatch(self.lattice[index], *(t[index][:, :n] for t in atoms))

    @property
    def device(self) -> torch.device:
        return self.lattice.device

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "CrystalBatch":
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype) if (dtype is not None and t.is_floating_point()) else t.to(device)

        return CrystalBatch(*(move(t) for t in (self.lattice, self.frac_coords, self.species, self.occupancy, self.b_iso, self.mask)))

    @classmethod
    def from_crystals(
        cls, crystals: Sequence[Crystal], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> "CrystalBatch":
        n_max = max(c.n_atoms for c in crystals)
        b = len(crystals)
        frac = np.zeros((b, n_max, 3))
        species = np.zeros((b, n_max), dtype=np.int64)
        occupancy = np.zeros((b, n_max))
        b_iso = np.zeros((b, n_max))
        for i, c in enumerate(crystals):
            n = c.n_atoms
            frac[i, :n] = c.frac_coords
            species[i, :n] = [species_index(s) for s in c.species]
            occupancy[i, :n] = c.occupancy
            b_iso[i, :n] = c.b_iso
        lattice = np.stack([c.lattice for c in crystals])

        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(x, dtype=dtype, device=device)

        species_t = torch.as_tensor(species, device=device)
        return cls(tensor(lattice), tensor(frac), species_t, tensor(occupancy), tensor(b_iso), species_t > 0)
