"""The scatterer alphabet shared by structures and the simulator.

Index 0 is padding; 1..98 are the elements by atomic number; deuterium gets its own index because its
neutron scattering length differs from hydrogen's (its X-ray form factor is hydrogen's).
"""

from __future__ import annotations

import re

import gemmi

N_ELEMENTS = 98
SPECIES: tuple[str, ...] = ("X",) + tuple(gemmi.Element(z).name for z in range(1, N_ELEMENTS + 1)) + ("D",)
DEUTERIUM = len(SPECIES) - 1
_INDEX = {name.lower(): i for i, name in enumerate(SPECIES)}
_LABEL = re.compile(r"^([A-Za-z]{1,2})")


class UnknownElementError(ValueError):
    """Raised for a species symbol that is not a known element."""


def species_index(symbol: str) -> int:
    """Index in SPECIES of an element symbol or an atom-site label ('Fe', 'Fe3+', 'O2-', 'D', 'Si1')."""
    match = _LABEL.match(symbol.strip())
    if match is None:
        raise UnknownElementError(f"unknown element {symbol!r}")
    letters = match.group(1)
    for candidate in (letters, letters[:1]):
        index = _INDEX.get(candidate.lower())
        if index:
            return index
    raise UnknownElementError(f"unknown element {symbol!r}")


def element_number(index: int) -> int:
    """Atomic number Z of a species index (deuterium is Z = 1)."""
    return 1 if index == DEUTERIUM else index
