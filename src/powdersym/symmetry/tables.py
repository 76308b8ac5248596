"""The 230 space groups: symbols, operations, Wyckoff positions and class labels, loaded from package data.

The data files in `data/` are written once by scripts/export_symmetry_tables.py (gemmi for operations and symbols,
pyxtal for Wyckoff positions and maximal subgroups); nothing here needs pyxtal. Every group is in the ITA standard
setting used by pyxtal and the Bilbao server: monoclinic unique axis b (cell choice 1), R groups on hexagonal axes,
origin choice 2 for the 24 groups that have two origins. Lookups are cached, so calling `space_group` inside a
training loop costs a dictionary access.

The per-space-group index arrays (`bravais_index_of_sg`, ...) are built on first access (PEP 562), so importing the
package does not read the data files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import gemmi
import numpy as np

from . import labels

DATA_DIR = Path(__file__).with_name("data")
TRANSLATION_DENOMINATOR = 24  # every crystallographic translation is a multiple of 1/24 (gemmi's Op.DEN)
N_SPACE_GROUPS = 230
MAX_OPERATIONS = 192  # Fm-3m and the other F-centred m-3m groups


@dataclass(frozen=True, eq=False)
class WyckoffPosition:
    """One Wyckoff position: the orbit of the representative point rotation @ (x, y, z) + translation.

    `orbit_rotations[i] @ xyz + orbit_translations[i]` (mod 1) is the i-th of the `multiplicity` sites in the
    conventional cell; only the coordinates flagged in `free_params` matter (the others multiply zero columns).
    """

    letter: str
    multiplicity: int
    site_symmetry: str
    free_params: tuple[bool, bool, bool]
    rotation: np.ndarray = field(repr=False)  # [3, 3] int
    translation: np.ndarray = field(repr=False)  # [3] fractions
    orbit_rotations: np.ndarray = field(repr=False)  # [multiplicity, 3, 3] int
    orbit_translations: np.ndarray = field(repr=False)  # [multiplicity, 3] fractions

    @property
    def label(self) -> str:
        """ITA label, e.g. '4a'."""
        return f"{self.multiplicity}{self.letter}"

    @property
    def degrees_of_freedom(self) -> int:
        return sum(self.free_params)

    def orbit(self, xyz: np.ndarray) -> np.ndarray:
        """Fractional coordinates [multiplicity, 3] in [0, 1) of the sites for free parameters xyz [3]."""
        xyz = np.asarray(xyz, dtype=float)
        return (self.orbit_rotations @ xyz + self.orbit_translations) % 1.0


@dataclass(frozen=True, eq=False)
class SpaceGroup:
    """A space-group type in its standard setting, with the labels powdersym classifies into.

    `rotations` [n_ops, 3, 3] and `translations` [n_ops, 3] are all operations of the conventional cell (coset
    representatives times centring vectors), acting on fractional coordinates as x' = R x + t.
    """

    number: int
    hm_symbol: str  # short Hermann-Mauguin symbol, e.g. 'P 21/c', 'F m -3 m'
    hm_full: str  # full symbol, e.g. 'P 1 21/c 1'
    setting_symbol: str  # gemmi's extended symbol naming the setting, e.g. 'F d -3 m:2', 'R 3:H'
    hall_symbol: str
    schoenflies: str
    centring: str  # P, A, C, I, F or R
    point_group: str
    laue_class: str
    crystal_system: str
    lattice_system: str
    bravais: str
    bravais_index: int
    extinction_group: int
    extinction_symbol: str
    sg144_index: int  # -1 if not among Lolla et al.'s 144 groups
    enantiomorph: int | None  # number of the enantiomorphic partner, None for the other 208 groups
    rotations: np.ndarray = field(repr=False)
    translations: np.ndarray = field(repr=False)
    wyckoff_positions: tuple[WyckoffPosition, ...] = field(repr=False)  # letter order: a, b, ..., general last

    @property
    def n_ops(self) -> int:
        return len(self.rotations)

    @property
    def translations_24(self) -> np.ndarray:
        """Translations as exact integer numerators over 24 [n_ops, 3], for phase tests without rounding."""
        return np.rint(self.translations * TRANSLATION_DENOMINATOR).astype(np.int64)

    @property
    def hm_compact(self) -> str:
        """Short symbol without spaces, e.g. 'P21/c'."""
        return self.hm_symbol.replace(" ", "")

    @property
    def is_centrosymmetric(self) -> bool:
        return bool((self.rotations == -np.eye(3, dtype=self.rotations.dtype)).all(axis=(1, 2)).any())

    @property
    def is_sohncke(self) -> bool:
        """True for the 65 groups without improper operations (the only ones chiral crystals can have)."""
        return bool((np.linalg.det(self.rotations) > 0).all())

    def wyckoff(self, letter: str) -> WyckoffPosition:
        for position in self.wyckoff_positions:
            if position.letter == letter:
                return position
        raise ValueError(f"space group {self.number} ({self.hm_symbol}) has no Wyckoff position {letter!r}")

    def as_dict(self) -> dict[str, Any]:
        """The scalar fields, JSON-ready (operations and Wyckoff orbits left out)."""
        skip = {"rotations", "translations", "wyckoff_positions"}
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name not in skip}


@cache
def load_metadata() -> dict[str, Any]:
    """The parsed space_groups.json (symbols, Wyckoff letters, subgroups, extinction groups, sources)."""
    path = DATA_DIR / "space_groups.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; run scripts/export_symmetry_tables.py")
    return json.loads(path.read_text())


@cache
def load_operation_arrays() -> dict[str, np.ndarray]:
    """The arrays of symmetry_operations.npz (int8 rotations, int8 translations in 24ths)."""
    with np.load(DATA_DIR / "symmetry_operations.npz") as npz:
        return {name: _read_only(npz[name]) for name in npz.files}


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _record(number: int) -> dict[str, Any]:
    return load_metadata()["space_groups"][number - 1]


@cache
def _symbol_index() -> dict[str, int]:
    index: dict[str, int] = {}
    for record in load_metadata()["space_groups"]:
        for symbol in [record["hm_symbol"], record["hm_full"], record["setting_symbol"], *record["aliases"]]:
            index.setdefault(_normalise_symbol(symbol), record["number"])
    return index


def _normalise_symbol(symbol: str) -> str:
    # 'P 21/c', 'P2_1/c' and 'P21/c' are the same symbol; case is meaningful (lattice letter vs glide letter)
    return "".join(symbol.split()).replace("_", "")


def space_group_number(key: int | str | SpaceGroup) -> int:
    """The ITA number (1-230) of a number, an H-M symbol in any common spelling ('Fm-3m', 'P 21/c', 'P2_1/c',
    'P 1 21/c 1', also non-standard settings such as 'Pbnm' via gemmi) or a SpaceGroup."""
    if isinstance(key, SpaceGroup):
        return key.number
    if isinstance(key, (bool, np.bool_)):
        raise TypeError(f"space group must be a number or a symbol, not {key!r}")
    if isinstance(key, (int, np.integer)):
        if 1 <= int(key) <= N_SPACE_GROUPS:
            return int(key)
        raise ValueError(f"unknown space group {key!r}: numbers run from 1 to {N_SPACE_GROUPS}")
    if not isinstance(key, str):
        raise TypeError(f"space group must be a number or a symbol, not {type(key).__name__}")
    text = key.strip()
    if text.isdigit():
        return space_group_number(int(text))
    number = _symbol_index().get(_normalise_symbol(text))
    if number is None:
        number = _number_from_gemmi(text)
    if number is None:
        raise ValueError(f"unknown space group {key!r}: not a Hermann-Mauguin symbol known to powdersym or gemmi")
    return number


def _number_from_gemmi(symbol: str) -> int | None:
    """Settings other than the standard one ('P 1 1 21/b', 'Pbnm', 'R -3 m:R') are in gemmi's table."""
    try:
        found = gemmi.find_spacegroup_by_name(symbol.replace("_", ""))
    except (ValueError, RuntimeError):
        return None
    return None if found is None else int(found.number)


def space_group(key: int | str | SpaceGroup) -> SpaceGroup:
    """The SpaceGroup for an ITA number (1-230) or a Hermann-Mauguin symbol; raises ValueError if unknown."""
    return _build_space_group(space_group_number(key))


def space_groups() -> tuple[SpaceGroup, ...]:
    """All 230 space groups, in number order."""
    return tuple(_build_space_group(number) for number in range(1, N_SPACE_GROUPS + 1))


@cache
def _extinction_index() -> dict[int, tuple[int, str]]:
    return {
        number: (index, group["symbol"])
        for index, group in enumerate(load_metadata()["extinction_groups"])
        for number in group["space_groups"]
    }


@lru_cache(maxsize=N_SPACE_GROUPS)
def _build_space_group(number: int) -> SpaceGroup:
    record = _record(number)
    arrays = load_operation_arrays()
    denominator = load_metadata()["translation_denominator"]
    start, stop = record["operations"]
    rotations = _read_only(arrays["rotations"][start:stop].astype(np.int64))
    translations = _read_only(arrays["translations_24"][start:stop] / denominator)
    wyckoff = tuple(_build_wyckoff(entry, arrays, denominator) for entry in record["wyckoff_positions"])
    crystal_system, centring = record["crystal_system"], record["centring"]
    bravais = labels.bravais_label(crystal_system, centring)
    extinction_group, extinction_symbol = _extinction_index()[number]
    return SpaceGroup(
        number=number,
        hm_symbol=record["hm_symbol"],
        hm_full=record["hm_full"],
        setting_symbol=record["setting_symbol"],
        hall_symbol=record["hall_symbol"],
        schoenflies=record["schoenflies"],
        centring=centring,
        point_group=record["point_group"],
        laue_class=record["laue_class"],
        crystal_system=crystal_system,
        lattice_system=labels.lattice_system_of(crystal_system, centring),
        bravais=bravais,
        bravais_index=labels.BRAVAIS_LABELS.index(bravais),
        extinction_group=extinction_group,
        extinction_symbol=extinction_symbol,
        sg144_index=labels.SG144.index(number) if number in labels.SG144 else -1,
        enantiomorph=record["enantiomorph"],
        rotations=rotations,
        translations=translations,
        wyckoff_positions=wyckoff,
    )


def _build_wyckoff(entry: dict[str, Any], arrays: dict[str, np.ndarray], denominator: int) -> WyckoffPosition:
    start, stop = entry["orbit"]
    orbit_rotations = _read_only(arrays["wyckoff_rotations"][start:stop].astype(np.int64))
    orbit_translations = _read_only(arrays["wyckoff_translations_24"][start:stop] / denominator)
    free = orbit_rotations[0].any(axis=0)  # a parameter is free if some coordinate depends on it
    return WyckoffPosition(
        letter=entry["letter"],
        multiplicity=entry["multiplicity"],
        site_symmetry=entry["site_symmetry"],
        free_params=(bool(free[0]), bool(free[1]), bool(free[2])),
        rotation=orbit_rotations[0],
        translation=orbit_translations[0],
        orbit_rotations=orbit_rotations,
        orbit_translations=orbit_translations,
    )


def enantiomorphic_partner(key: int | str | SpaceGroup) -> int | None:
    """Number of the enantiomorphic partner (e.g. 76 -> 78, P41 -> P43), None if the group has none.

    Derived at export time: the mirror image of the group's operations, (R, t) -> (R, -t), was identified by spglib.
    """
    return space_group(key).enantiomorph


# per-space-group label indices, exposed as module attributes `<name>` [231] with -1 at the unused index 0
_INDEX_COLUMNS = {
    "bravais_index_of_sg": lambda sg: sg.bravais_index,
    "crystal_system_index_of_sg": lambda sg: labels.CRYSTAL_SYSTEMS.index(sg.crystal_system),
    "lattice_system_index_of_sg": lambda sg: labels.LATTICE_SYSTEMS.index(sg.lattice_system),
    "laue_class_index_of_sg": lambda sg: labels.LAUE_CLASSES.index(sg.laue_class),
    "point_group_index_of_sg": lambda sg: labels.POINT_GROUPS.index(sg.point_group),
    "extinction_group_of_sg": lambda sg: sg.extinction_group,
    "sg144_index_of_sg": lambda sg: sg.sg144_index,
}
INDEX_ARRAYS = tuple(_INDEX_COLUMNS)


@cache
def _index_array(name: str) -> np.ndarray:
    column = _INDEX_COLUMNS[name]
    return _read_only(np.array([-1] + [column(sg) for sg in space_groups()], dtype=np.int64))


def __getattr__(name: str) -> np.ndarray:
    if name in INDEX_ARRAYS:
        return _index_array(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
