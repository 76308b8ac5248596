"""Extinction groups: classes of space groups by their systematic absences, derived by computation from the
operations. Two partitions of the 230 groups:

- `extinction_partition` (99 classes): the label the package classifies into ('extinction_group'). It follows the
  convention of ITA Vol. A (whose tables list the extinction symbols per Laue class) and reproduces the 99 classes
  of Baggett et al. (NIST paper-ai-diffraction, FINAL_SPG_ExtG_CrysS_Table.csv) exactly.
- `powder_extinction_partition` (97 classes): groups whose patterns have the same extinct d-spacings. It is the 99
  merged in two pairs that a powder pattern cannot separate (see below); evaluation counts a confusion within a
  pair as indistinguishable (`ExtinctionGroup.powder_class`, `powder_extinction_classes`).

Powder partition:
1. Absences of every reflection with |h|, |k|, |l| <= 12, from the operations (`absences.absent_mask`). Reflection
   conditions repeat with a period of at most 6 along any axis (the 6_1 screw), so this box holds every residue
   twice; the partitions below are the same with 8 and 16.
2. A powder pattern shows d-spacings, not reflections: a d-spacing is extinct only if every reflection with that d
   is absent. Reflections that share d for every lattice of the lattice system share a key: triclinic h ~ -h;
   monoclinic (b unique) (h, k, l) ~ (-h, k, -l) ~ (h, -k, l); orthorhombic (|h|, |k|, |l|); tetragonal
   (h^2 + k^2, |l|); hexagonal and rhombohedral (hexagonal axes) (h^2 + hk + k^2, |l|); cubic h^2 + k^2 + l^2.
   Laue classes that share a metric therefore merge (4/m, 4/mmm; -3, -3m, 6/m, 6/mmm; m-3, m-3m), and so do
   accidental coincidences such as cubic 300/221.
3. Axis labels are a convention: an orthorhombic pattern is compared over the 6 permutations of a, b, c (so
   Amm2 = Cm2m joins C222), a monoclinic one over a <-> c; the canonical pattern is the smallest.
4. Groups with the same lattice system (R separate from hexagonal P) and canonical pattern form one powder class.

ITA partition (the label): the powder classes, split by one rule -- a class whose absences are all serial (every
absent reflection lies on a reciprocal axis row h00, 0k0 or 00l) is split by the order of the group's rotations
about those rows. ITA writes a serial-only condition as a screw axis whose order is that of the Laue class's axis
in that direction, so the same condition gets different symbols in Laue classes of one metric whose axis orders
differ; conditions that involve zonal or integral reflections are written with glides and centring letters, which
do not depend on the Laue class, and those classes stay merged (as do P3 with P6 and P23 with P432, where there is
no condition at all). The rule splits exactly two powder classes, whose groups have identical absences reflection
by reflection on lattices of the same metric:
- P 31 - - (144, 145, 151-154; Laue -3, -3m; 3-fold about c) and P 62 - - (171, 172, 180, 181; 6/m, 6/mmm;
  6-fold): both have only 000l: l = 3n (a 6_2 screw is a 3_1 screw plus a 2-fold axis).
- P 21 - - (198, P2_13; m-3; 2-fold about a) and P 42 - - (208, P4_232; m-3m; 4-fold): both have only
  00l: l = 2n.
Every other serial-only class (P 21 1 1, P - - 21, P 42 - -, P 41 - -, P 63 - -, ...) has one rotation order.

Extinction groups are numbered 0, 1, ... in order of their lowest space-group number, and so are powder classes.
Symbols are the reference's canonical ones (monoclinic ones in the unique-axis-b form).
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
    """An extinction group: index, symbol (ITA style, e.g. 'P 1 21/c 1', 'I 41/a - -'), lattice system and
    member space groups."""

    index: int
    symbol: str
    lattice_system: str
    space_groups: tuple[int, ...]
    powder_class: int  # index of its powder class (powder_extinction_classes): equal for the two merged pairs

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


def rotation_order(rotation: np.ndarray) -> int:
    """Order of an integer rotation matrix (1, 2, 3, 4 or 6)."""
    power = identity = np.eye(3, dtype=np.int64)
    for order in range(1, 7):
        power = power @ rotation
        if (power == identity).all():
            return order
    raise ValueError(f"not a crystallographic rotation: {rotation.tolist()}")


def serial_rotation_orders(rotations: np.ndarray, hkl: np.ndarray, absent: np.ndarray) -> tuple[int, ...]:
    """The ITA split key (module docstring): if the group has absences and all of them are serial (two of h, k, l
    zero), the orders of its largest proper rotations about the rows that hold them, sorted; else ()."""
    hkl, absent = np.asarray(hkl, dtype=np.int64), np.asarray(absent, dtype=bool)
    serial = (hkl[absent] == 0).sum(axis=1) >= 2
    if not absent.any() or not serial.all():
        return ()
    rotations = np.asarray(rotations, dtype=np.int64)
    proper = rotations[np.rint(np.linalg.det(rotations)) == 1]
    orders = []
    for row in np.eye(3, dtype=np.int64)[np.unique(np.argmax(hkl[absent] != 0, axis=1))]:
        about_row = proper[(row @ proper == row).all(axis=1)]  # h R = h: the rotation's axis is along the row
        orders.append(max(rotation_order(rotation) for rotation in about_row))
    return tuple(sorted(orders))


def extinction_keys(
    rotations: Sequence[np.ndarray],
    translations_24: Sequence[np.ndarray],
    lattice_systems: Sequence[str],
    box: int = COMPLETE_HKL_RANGE,
) -> list[tuple[tuple[str, bytes], tuple[int, ...]]]:
    """Per space group 1..len(rotations): (powder key, ITA split key), from each group's operations (integer
    rotations [n, 3, 3], translations in 24ths [n, 3]) and lattice system. The powder key is (lattice system,
    canonical extinct-d pattern); groups share a powder class iff they share it, and an extinction group iff they
    share both keys (module docstring)."""
    hkl = hkl_box(box)
    keys: dict[tuple[str, tuple[int, int, int]], tuple[np.ndarray, np.ndarray, int]] = {}
    out = []
    for group_rotations, group_translations, system in zip(rotations, translations_24, lattice_systems, strict=True):
        absent = absent_mask(group_rotations, group_translations, hkl)
        patterns = []
        for permutation in AXIS_PERMUTATIONS.get(system, ((0, 1, 2),)):
            if (system, permutation) not in keys:
                keys[system, permutation] = powder_keys(system, hkl[:, permutation], box)
            patterns.append(np.packbits(extinct_keys(absent, *keys[system, permutation])).tobytes())
        out.append(((system, min(patterns)), serial_rotation_orders(group_rotations, hkl, absent)))
    return out


def partition_by(keys: Sequence[object]) -> list[tuple[int, ...]]:
    """Space groups 1..len(keys) grouped by equal key, as tuples of numbers ordered by their lowest member."""
    classes: dict[object, list[int]] = {}
    for number, key in enumerate(keys, start=1):
        classes.setdefault(key, []).append(number)
    return sorted(tuple(members) for members in classes.values())


def extinction_partition(
    rotations: Sequence[np.ndarray],
    translations_24: Sequence[np.ndarray],
    lattice_systems: Sequence[str],
    box: int = COMPLETE_HKL_RANGE,
) -> list[tuple[int, ...]]:
    """The 99 extinction groups (ITA convention, the package's label) of space groups 1..len(rotations), from their
    operations and lattice systems (extinction_keys); classes as tuples of numbers ordered by their lowest member."""
    return partition_by(extinction_keys(rotations, translations_24, lattice_systems, box))


def powder_extinction_partition(
    rotations: Sequence[np.ndarray],
    translations_24: Sequence[np.ndarray],
    lattice_systems: Sequence[str],
    box: int = COMPLETE_HKL_RANGE,
) -> list[tuple[int, ...]]:
    """The 97 powder classes (same extinct d-spacings) of space groups 1..len(rotations): extinction_partition
    without the ITA split."""
    return partition_by([powder for powder, _ in extinction_keys(rotations, translations_24, lattice_systems, box)])


def _package_operations() -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    groups = space_groups()
    return ([sg.rotations for sg in groups], [sg.translations_24 for sg in groups],
            [sg.lattice_system for sg in groups])


def derive_extinction_partition(box: int = COMPLETE_HKL_RANGE) -> list[tuple[int, ...]]:
    """extinction_partition (99) for the 230 groups of the package tables (what the export script stored)."""
    return extinction_partition(*_package_operations(), box)


def derive_powder_extinction_partition(box: int = COMPLETE_HKL_RANGE) -> list[tuple[int, ...]]:
    """powder_extinction_partition (97) for the 230 groups of the package tables."""
    return powder_extinction_partition(*_package_operations(), box)


@cache
def extinction_groups() -> tuple[ExtinctionGroup, ...]:
    """All extinction groups, in index order (as exported to the package data)."""
    return tuple(
        ExtinctionGroup(index, group["symbol"], group["lattice_system"], tuple(group["space_groups"]),
                        group["powder_class"])
        for index, group in enumerate(load_metadata()["extinction_groups"])
    )


@cache
def powder_extinction_classes() -> tuple[tuple[int, ...], ...]:
    """The 97 powder classes as tuples of extinction-group indices, in powder-class order (lowest space-group
    number): every class is one extinction group except (P 31 - -, P 62 - -) and (P 21 - -, P 42 - -)."""
    classes: dict[int, list[int]] = {}
    for group in extinction_groups():
        classes.setdefault(group.powder_class, []).append(group.index)
    return tuple(tuple(classes[index]) for index in sorted(classes))


@cache
def powder_class_of_extinction_group() -> np.ndarray:
    """int64 [99] (read-only): the powder class of each extinction-group index; map predictions and targets
    through it to score the extinction group up to what a powder pattern can tell."""
    array = np.array([group.powder_class for group in extinction_groups()], dtype=np.int64)
    array.flags.writeable = False
    return array


def extinction_group(sg: int | str | SpaceGroup) -> ExtinctionGroup:
    """The extinction group of a space group (number, symbol or SpaceGroup)."""
    return extinction_groups()[tables.extinction_group_of_sg[space_group_number(sg)]]


def __getattr__(name: str):
    if name == "EXTINCTION_GROUP_SYMBOLS":
        return tuple(group.symbol for group in extinction_groups())
    if name == "extinction_group_of_sg":
        return tables.extinction_group_of_sg
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
