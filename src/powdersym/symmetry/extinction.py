"""Powder extinction groups: the classes of space groups that a powder pattern's systematic absences cannot tell
apart, derived by computation from the operations.

1. Absences of every reflection with |h|, |k|, |l| <= 12, from the operations (`absences.absent_mask`). Reflection
   conditions repeat with a period of at most 6 along any axis (the 6_1 screw), so this box holds every residue
   twice; the partition below is the same with 8 and 16.
2. A powder pattern shows d-spacings, not reflections: a d-spacing is extinct only if every reflection with that d
   is absent. Reflections that share d for every lattice of the lattice system share a key: triclinic h ~ -h;
   monoclinic (b unique) (h, k, l) ~ (-h, k, -l) ~ (h, -k, l); orthorhombic (|h|, |k|, |l|); tetragonal
   (h^2 + k^2, |l|); hexagonal and rhombohedral (hexagonal axes) (h^2 + hk + k^2, |l|); cubic h^2 + k^2 + l^2.
   Laue classes that share a metric therefore merge (4/m, 4/mmm; -3, -3m, 6/m, 6/mmm; m-3, m-3m), and so do
   accidental coincidences such as cubic 300/221.
3. Axis labels are a convention: an orthorhombic pattern is compared over the 6 permutations of a, b, c (so
   Amm2 = Cm2m joins C222), a monoclinic one over a <-> c; the canonical pattern is the smallest.
4. Groups with the same lattice system (R separate from hexagonal P) and canonical pattern form one extinction
   group. Extinction groups are numbered 0, 1, ... in order of their lowest space-group number.

Outcome: 97 extinction groups. Against the 99 of Baggett et al. (NIST paper-ai-diffraction,
canonical_extinction_to_space_group.csv) the partition is identical except for two merges, where the reference
separates groups whose absences are identical reflection by reflection (not only per d-spacing) and whose lattices
have the same metric; the reference splits them only because ITA lists extinction symbols per Laue class, while
it merges other Laue classes of the same metric (P3 with P6, P23 with P432):
- P 31 - - (144, 145, 151-154; Laue -3, -3m) and P 62 - - (171, 172, 180, 181; 6/m, 6/mmm): both have only
  000l: l = 3n (a 6_2 screw is a 3_1 screw plus a 2-fold axis).
- P 21 - - (198, P2_13; m-3) and P 42 - - (208, P4_232; m-3m): both have only 00l: l = 2n.
Symbols are the reference's canonical ones (monoclinic ones in the unique-axis-b form); each merged class takes
the symbol of its lowest-numbered member.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from . import tables
from .absences import absent_mask
from .tables import SpaceGroup, load_metadata, space_group_number, space_groups

COMPLETE_HKL_RANGE = 12

# Relabellings of the axes that keep the lattice system's metric family (identity only where they are already
# symmetry of the lattice's point group).
AXIS_PERMUTATIONS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "monoclinic": ((0, 1, 2), (2, 1, 0)),
    "orthorhombic": tuple(itertools.permutations(range(3))),
}


@dataclass(frozen=True)
class ExtinctionGroup:
    """A powder extinction group: index, symbol (ITA style, e.g. 'P 1 21/c 1', 'I 41/a - -'), lattice system and
    member space groups."""

    index: int
    symbol: str
    lattice_system: str
    space_groups: tuple[int, ...]

    @property
    def label(self) -> str:
        """Unique name: the symbol alone repeats across lattice systems ('P - - -')."""
        return f"{self.lattice_system} {self.symbol}"


def hkl_box(box: int = COMPLETE_HKL_RANGE) -> np.ndarray:
    """All integer hkl [(2 box + 1)^3, 3] with |h|, |k|, |l| <= box."""
    axis = np.arange(-box, box + 1)
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def powder_keys(lattice_system: str, hkl: np.ndarray, box: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer key per reflection such that reflections share a key iff they share d for every lattice of the
    system; plus which keys have all their reflections inside the box, and the number of possible keys."""
    h, k, l = np.asarray(hkl, dtype=np.int64).T
    side = 2 * box + 1
    every = np.ones(len(h), dtype=bool)
    if lattice_system == "triclinic":
        first_nonzero = np.where(h != 0, h, np.where(k != 0, k, l))
        sign = np.where(first_nonzero < 0, -1, 1)  # Friedel mates h, -h
        return ((sign * h + box) * side + sign * k + box) * side + sign * l + box, every, side**3
    if lattice_system == "monoclinic":
        sign = np.where((h < 0) | ((h == 0) & (l < 0)), -1, 1)  # 2/m about b: (h,k,l) ~ (-h,k,-l) ~ (h,-k,l)
        return ((sign * h + box) * (box + 1) + np.abs(k)) * side + sign * l + box, every, side * (box + 1) * side
    if lattice_system == "orthorhombic":
        return (np.abs(h) * (box + 1) + np.abs(k)) * (box + 1) + np.abs(l), every, (box + 1) ** 3
    if lattice_system == "tetragonal":
        q, q_max = h * h + k * k, box * box
    elif lattice_system in ("hexagonal", "rhombohedral"):
        q, q_max = h * h + h * k + k * k, 3 * box * box // 4  # h^2+hk+k^2 >= 3 max(|h|,|k|)^2 / 4
    elif lattice_system == "cubic":
        q, q_max = h * h + k * k + l * l, box * box
        return np.minimum(q, q_max + 1), q <= q_max, q_max + 2
    else:
        raise ValueError(f"unknown lattice system {lattice_system!r}")
    # keys with q > q_max may have reflections outside the box, so they are left out
    return np.minimum(q, q_max + 1) * (box + 1) + np.abs(l), q <= q_max, (q_max + 2) * (box + 1)


def extinct_keys(absent: np.ndarray, keys: np.ndarray, complete: np.ndarray, n_keys: int) -> np.ndarray:
    """bool [n_keys]: the d-spacings (keys) at which every reflection is absent."""
    exists = np.bincount(keys[complete], minlength=n_keys) > 0
    present = np.bincount(keys[complete & ~absent], minlength=n_keys) > 0
    return exists & ~present


def extinction_partition(
    rotations: Sequence[np.ndarray],
    translations_24: Sequence[np.ndarray],
    lattice_systems: Sequence[str],
    box: int = COMPLETE_HKL_RANGE,
) -> list[tuple[int, ...]]:
    """Partition space groups 1..len(rotations) into powder extinction groups (module docstring), from each
    group's operations (integer rotations [n, 3, 3], translations in 24ths [n, 3]) and lattice system. Returns the
    classes as tuples of space-group numbers, ordered by their lowest member."""
    hkl = hkl_box(box)
    keys: dict[tuple[str, tuple[int, int, int]], tuple[np.ndarray, np.ndarray, int]] = {}
    classes: dict[tuple[str, bytes], list[int]] = {}
    for number, (group_rotations, group_translations, system) in enumerate(
        zip(rotations, translations_24, lattice_systems, strict=True), start=1
    ):
        absent = absent_mask(group_rotations, group_translations, hkl)
        patterns = []
        for permutation in AXIS_PERMUTATIONS.get(system, ((0, 1, 2),)):
            if (system, permutation) not in keys:
                keys[system, permutation] = powder_keys(system, hkl[:, permutation], box)
            patterns.append(np.packbits(extinct_keys(absent, *keys[system, permutation])).tobytes())
        classes.setdefault((system, min(patterns)), []).append(number)
    return sorted(tuple(members) for members in classes.values())


def derive_extinction_partition(box: int = COMPLETE_HKL_RANGE) -> list[tuple[int, ...]]:
    """extinction_partition for the 230 groups of the package tables (what the export script stored)."""
    groups = space_groups()
    return extinction_partition(
        [sg.rotations for sg in groups],
        [sg.translations_24 for sg in groups],
        [sg.lattice_system for sg in groups],
        box,
    )


@cache
def extinction_groups() -> tuple[ExtinctionGroup, ...]:
    """All extinction groups, in index order (as exported to the package data)."""
    return tuple(
        ExtinctionGroup(index, group["symbol"], group["lattice_system"], tuple(group["space_groups"]))
        for index, group in enumerate(load_metadata()["extinction_groups"])
    )


def extinction_group(sg: int | str | SpaceGroup) -> ExtinctionGroup:
    """The extinction group of a space group (number, symbol or SpaceGroup)."""
    return extinction_groups()[tables.extinction_group_of_sg[space_group_number(sg)]]


def __getattr__(name: str):
    if name == "EXTINCTION_GROUP_SYMBOLS":
        return tuple(group.symbol for group in extinction_groups())
    if name == "extinction_group_of_sg":
        return tables.extinction_group_of_sg
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
