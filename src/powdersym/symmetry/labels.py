"""Label vocabularies used as classification targets: crystal systems, lattice systems, Laue classes, the 14 Bravais
lattices and the 144 space groups of Lolla et al. (2022).

Pure definitions (no data files): the per-space-group index arrays built from them live in `tables`.

SG144 is Table 1 of Lolla et al., J. Appl. Cryst. 2022 ("the 144 space groups with more than 50 ICSD patterns"),
transcribed range by range. The published list does contain exactly 144 groups (2 triclinic, 12 monoclinic,
40 orthorhombic, 31 tetragonal, 20 trigonal, 15 hexagonal, 24 cubic); it is kept as published.
"""

from __future__ import annotations

CRYSTAL_SYSTEMS: tuple[str, ...] = (
    "triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic",
)

# The 7 lattice systems: trigonal groups split into hexagonal (P) and rhombohedral (R) lattices.
LATTICE_SYSTEMS: tuple[str, ...] = (
    "triclinic", "monoclinic", "orthorhombic", "tetragonal", "rhombohedral", "hexagonal", "cubic",
)

# The 11 Laue classes, in ITA order (gemmi's spelling: -3m covers -3m1 and -31m).
LAUE_CLASSES: tuple[str, ...] = ("-1", "2/m", "mmm", "4/m", "4/mmm", "-3", "-3m", "6/m", "6/mmm", "m-3", "m-3m")

# The 32 crystallographic point groups, in ITA order (gemmi's spelling).
POINT_GROUPS: tuple[str, ...] = (
    "1", "-1", "2", "m", "2/m", "222", "mm2", "mmm", "4", "-4", "4/m", "422", "4mm", "-42m", "4/mmm",
    "3", "-3", "32", "3m", "-3m", "6", "-6", "6/m", "622", "6mm", "-62m", "6/mmm", "23", "m-3", "432", "-43m", "m-3m",
)

# Lolla et al. (2022), Fig. 8 confusion matrix order (alphabetical).
BRAVAIS_LABELS: tuple[str, ...] = (
    "cubic (F)", "cubic (I)", "cubic (P)", "hexagonal (P)", "monoclinic (C)", "monoclinic (P)", "orthorhombic (C)",
    "orthorhombic (F)", "orthorhombic (I)", "orthorhombic (P)", "rhombohedral (P)", "tetragonal (I)",
    "tetragonal (P)", "triclinic (P)",
)


def _expand(ranges: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for part in ranges.split(","):
        first, _, last = part.strip().partition("-")
        numbers.extend(range(int(first), int(last or first) + 1))
    return tuple(numbers)


# Lolla et al. (2022), Table 1, one string per crystal system as printed.
SG144: tuple[int, ...] = _expand(
    "1, 2,"
    "4-15,"
    "18-20, 26, 29, 31, 33, 34, 36, 38, 40-47, 51-53, 55-67, 69-74,"
    "82, 85-88, 92, 96, 99, 100, 107, 109, 113, 114, 119, 121, 122, 123, 125-131, 135-137, 139-142,"
    "143, 144, 146-148, 150, 152, 154-157, 159-167,"
    "173-176, 180, 182, 185-187, 189-194,"
    "197-201, 203-206, 212, 213, 215-218, 220, 221, 223-227, 229, 230"
)


def lattice_system_of(crystal_system: str, centring: str) -> str:
    """Lattice system of a space group: trigonal groups go to 'rhombohedral' (R) or 'hexagonal' (P)."""
    if crystal_system == "trigonal":
        return "rhombohedral" if centring == "R" else "hexagonal"
    return crystal_system


def bravais_label(crystal_system: str, centring: str) -> str:
    """One of BRAVAIS_LABELS. A-centred orthorhombic groups (Amm2 ... Aea2, Nos. 38-41) are base-centred like C,
    and the R lattice is called 'rhombohedral (P)' (primitive rhombohedral cell) as in Lolla et al."""
    lattice_system = lattice_system_of(crystal_system, centring)
    letter = {"A": "C", "B": "C", "R": "P"}.get(centring, centring)
    label = f"{lattice_system} ({letter})"
    if label not in BRAVAIS_LABELS:
        raise ValueError(f"no Bravais lattice {label!r} (crystal system {crystal_system!r}, centring {centring!r})")
    return label
