"""The unit cell as the crystal system allows it to vary, and the reflections a space group allows.

A refinement varies only the independent lattice parameters of the crystal system (cubic: a; tetragonal, trigonal
and hexagonal, on hexagonal axes: a, c; orthorhombic: a, b, c; monoclinic: a, b, c and the one non-90 angle;
triclinic: all six). Reflections whose d-spacings coincide for every cell of the system (hkl and its permutations
in a cubic cell, hk0 and kh0 in a tetragonal one) always overlap in a powder pattern, so they share one free
intensity; systematically absent reflections get none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import gemmi
import numpy as np
import torch

from powdersym.simulate.reflections import enumerate_reflections, reciprocal_metric
from powdersym.symmetry import absent_mask, space_group
from powdersym.symmetry.tables import TRANSLATION_DENOMINATOR

CELL_NAMES = ("a", "b", "c", "alpha", "beta", "gamma")


@dataclass(frozen=True)
class SpaceGroupSetting:
    """A space group in the setting of the cell being refined: its operations (for absences) and crystal system.

    An ITA number means the standard setting (monoclinic unique axis b, R groups on hexagonal axes); a
    Hermann-Mauguin symbol such as 'P 1 21/n 1' or 'P b n m' names any setting gemmi knows.
    """

    number: int
    symbol: str
    crystal_system: str
    rotations: np.ndarray  # [n, 3, 3] int, acting on fractional coordinates
    translations_24: np.ndarray  # [n, 3] int, in units of 1/24

    @classmethod
    def from_key(cls, key: int | str) -> "SpaceGroupSetting":
        if isinstance(key, (int, np.integer)):
            group = space_group(int(key))
            return cls(group.number, group.hm_symbol, group.crystal_system, group.rotations, group.translations_24)
        found = gemmi.find_spacegroup_by_name(str(key).strip().strip("'\""))
        if found is None:
            raise ValueError(f"unknown space-group symbol {key!r}")
        ops = list(found.operations())
        rotations = np.array([op.rot for op in ops], dtype=np.int64) // gemmi.Op.DEN
        translations = np.array([op.tran for op in ops], dtype=np.int64) * TRANSLATION_DENOMINATOR // gemmi.Op.DEN
        return cls(int(found.number), found.hm, found.crystal_system_str(), rotations, translations)

    def is_absent(self, hkl: np.ndarray) -> np.ndarray:
        """bool [N]: systematically absent reflections among hkl [N, 3]."""
        return absent_mask(self.rotations, self.translations_24, hkl)


@dataclass(frozen=True)
class CellModel:
    """Map between the free lattice parameters of a crystal system and the full (a, b, c, alpha, beta, gamma)."""

    crystal_system: str
    start: tuple[float, ...]  # the full starting cell (fixed angles and tied lengths are taken from it)
    free: tuple[int, ...]  # indices into CELL_NAMES of the refined parameters
    tied: tuple[int, ...]  # for each of the six parameters: index of the parameter it equals, or -1 if fixed

    @classmethod
    def for_system(cls, crystal_system: str, cell: Sequence[float]) -> "CellModel":
        cell = tuple(float(v) for v in cell)
        if len(cell) != 6 or min(cell[:3]) <= 0:
            raise ValueError(f"cell must be (a, b, c, alpha, beta, gamma) with positive lengths, got {cell}")
        system = crystal_system.lower()
        if system == "cubic":
            free, tied, fixed = (0,), (0, 0, 0, -1, -1, -1), (90.0, 90.0, 90.0)
        elif system == "tetragonal":
            free, tied, fixed = (0, 2), (0, 0, 2, -1, -1, -1), (90.0, 90.0, 90.0)
        elif system in ("trigonal", "hexagonal"):
            if abs(cell[5] - 120.0) > 1.0:
                raise ValueError(f"a {system} cell must be given on hexagonal axes (gamma = 120), got {cell}")
            free, tied, fixed = (0, 2), (0, 0, 2, -1, -1, -1), (90.0, 90.0, 120.0)
        elif system == "orthorhombic":
            free, tied, fixed = (0, 1, 2), (0, 1, 2, -1, -1, -1), (90.0, 90.0, 90.0)
        elif system == "monoclinic":
            # the unique axis is the one whose angle is not 90 (b in the standard setting)
            angle = 3 + int(np.argmax([abs(v - 90.0) for v in cell[3:]])) if max(abs(v - 90.0) for v in cell[3:]) > 1e-6 else 4
            free = (0, 1, 2, angle)
            tied = tuple(i if i < 3 or i == angle else -1 for i in range(6))
            fixed = tuple(cell[i] if i == angle else 90.0 for i in range(3, 6))
        elif system == "triclinic":
            free, tied, fixed = (0, 1, 2, 3, 4, 5), (0, 1, 2, 3, 4, 5), cell[3:]
        else:
            raise ValueError(f"unknown crystal system {crystal_system!r}")
        lengths = tuple(cell[tied[i]] for i in range(3))  # tied lengths start equal (cubic: b = c = a)
        return cls(system, lengths + tuple(fixed), free, tied)

    @property
    def n_free(self) -> int:
        return len(self.free)

    @property
    def free_names(self) -> tuple[str, ...]:
        return tuple(CELL_NAMES[i] for i in self.free)

    def initial(self) -> np.ndarray:
        """Starting values of the free parameters."""
        return np.array([self.start[i] for i in self.free])

    def full(self, free: torch.Tensor) -> torch.Tensor:
        """The six lattice parameters [6] from the free ones [n_free] (differentiable)."""
        position = {index: k for k, index in enumerate(self.free)}
        values = [free[position[t]] if t >= 0 else free.new_tensor(self.start[i]) for i, t in enumerate(self.tied)]
        return torch.stack(values)

    def full_sigma(self, sigma: np.ndarray) -> tuple[float, ...]:
        """Standard uncertainties of the six parameters from those of the free ones (0 for fixed ones)."""
        position = {index: k for k, index in enumerate(self.free)}
        return tuple(float(sigma[position[t]]) if t >= 0 else 0.0 for t in self.tied)

    def generic(self) -> torch.Tensor:
        """A cell of this system with no accidental metric coincidences (irrational ratios): reflections with equal
        d here have equal d in every cell of the system."""
        irrational = (1.0, math.sqrt(2.0), math.pi / 2, 0.0, 1.0 / math.e, math.sqrt(3.0) / 10)
        free = torch.tensor(
            [(1.0 + 0.1 * irrational[i]) * 5.0 if i < 3 else 90.0 + 7.0 * irrational[i] + 3.0 for i in self.free],
            dtype=torch.float64,
        )
        return self.full(free)


@dataclass
class ReflectionGroups:
    """Allowed reflections grouped into sets of always-coincident ones: one representative hkl [K, 3] (int) per
    group and the number of half-sphere reflections in it (multiplicity / 2)."""

    hkl: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.hkl)


def allowed_reflections(cell_model: CellModel, setting: SpaceGroupSetting, d_min: float, d_max: float) -> ReflectionGroups:
    """Reflections with d_min <= d <= d_max in the starting cell, not systematically absent, merged into groups
    of metrically equivalent reflections (sorted by decreasing d)."""
    lattice = torch.tensor([cell_model.start], dtype=torch.float64)
    refl = enumerate_reflections(lattice, d_min, d_max)
    hkl = refl.hkl[0][refl.mask[0]].round().long().numpy()
    hkl = hkl[~setting.is_absent(hkl)]
    if len(hkl) == 0:
        return ReflectionGroups(np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64))
    generic = reciprocal_metric(cell_model.generic()[None])[0].numpy()
    inv_d2 = np.einsum("ni,ij,nj->n", hkl.astype(float), generic, hkl.astype(float))
    key = np.round(inv_d2 / inv_d2.max() * 1e9).astype(np.int64)
    unique, first, count = np.unique(key, return_index=True, return_counts=True)
    order = np.argsort(unique)  # increasing 1/d^2: decreasing d in the generic cell
    representative = hkl[first[order]]
    # sort by d in the actual starting cell (the generic cell only decides which reflections coincide)
    start = reciprocal_metric(lattice)[0].numpy()
    d_start = 1.0 / np.sqrt(np.einsum("ni,ij,nj->n", representative.astype(float), start, representative.astype(float)))
    by_d = np.argsort(-d_start, kind="stable")
    return ReflectionGroups(representative[by_d], count[order][by_d])


def d_spacings(lattice: torch.Tensor, hkl: torch.Tensor) -> torch.Tensor:
    """d [K] of reflections hkl [K, 3] (float) for lattice parameters [6] (differentiable)."""
    metric = reciprocal_metric(lattice[None])[0]
    return 1.0 / torch.sqrt(((hkl @ metric) * hkl).sum(-1))
