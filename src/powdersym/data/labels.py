"""The labels stored with every pattern, computed from one place so synthetic and real rows agree.

Class labels come from the space-group number through the symmetry tables (`powdersym.symmetry.label_tables`):
Bravais index in the seed paper's 14-class order (`BRAVAIS_LABELS`), crystal and lattice system, Laue class,
point group, extinction group (the 99 ITA extinction groups computed from the absences; powder data separate
only 97 classes, two pairs merged: `powdersym.symmetry.extinction`) and the 144-subset index (-1 outside it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import reduce
from math import gcd

import numpy as np
import torch

from powdersym.structures.species import SPECIES

# Class labels derived from the space group, as label_tables() names them.
DERIVED_LABELS: tuple[str, ...] = (
    "bravais", "crystal_system", "lattice_system", "laue_class", "point_group", "extinction_group", "sg144",
)  # fmt: skip
CLASS_LABELS: tuple[str, ...] = ("space_group", *DERIVED_LABELS)
# Every numeric column of a pattern file's labels group, with its stored dtype.
NUMERIC_LABELS: dict[str, np.dtype] = {
    **{name: np.dtype(np.int16) for name in CLASS_LABELS},
    "lattice": np.dtype(np.float32),  # [N, 6] conventional a, b, c (Å), alpha, beta, gamma (deg)
    "n_atoms": np.dtype(np.int32),  # occupied positions in the conventional cell (a mixed site counts once)
}
# Text columns: reduced formula, where the row comes from ('synthetic' or 'real:<file>'), and the structure
# prototype (anonymous formula, space group, Wyckoff letters; '' where unknown).
STRING_LABELS: tuple[str, ...] = ("formula", "source", "prototype")


def class_labels(space_group: torch.Tensor | np.ndarray | Sequence[int]) -> dict[str, np.ndarray]:
    """space_group and every label derived from it, as int16 arrays [B]; raises ValueError outside 1-230."""
    from powdersym.symmetry import label_tables

    numbers = torch.as_tensor(np.asarray(torch.as_tensor(space_group).cpu()), dtype=torch.long).reshape(-1)
    if len(numbers) and (int(numbers.min()) < 1 or int(numbers.max()) > 230):
        raise ValueError(f"space-group numbers must lie in 1-230, got {int(numbers.min())}..{int(numbers.max())}")
    tables = label_tables("cpu")
    out = {"space_group": numbers.numpy().astype(np.int16)}
    out.update({name: tables[name][numbers].numpy().astype(np.int16) for name in DERIVED_LABELS})
    return out


def label_columns(
    space_group: torch.Tensor | np.ndarray | Sequence[int],
    lattice: torch.Tensor | np.ndarray,
    n_atoms: torch.Tensor | np.ndarray | Sequence[int],
    formula: Sequence[str],
    source: Sequence[str],
    prototype: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """All label columns of B rows (numeric as numpy arrays in the stored dtypes, text as object arrays)."""
    columns: dict[str, np.ndarray] = class_labels(space_group)
    b = len(columns["space_group"])
    columns["lattice"] = np.asarray(torch.as_tensor(lattice).detach().cpu(), dtype=np.float32).reshape(b, 6)
    columns["n_atoms"] = np.asarray(torch.as_tensor(n_atoms).cpu(), dtype=np.int32).reshape(b)
    for name, values in (("formula", formula), ("source", source), ("prototype", prototype or [""] * b)):
        if len(values) != b:
            raise ValueError(f"{len(values)} values of {name!r} for {b} rows")
        columns[name] = np.asarray(list(values), dtype=object)
    return columns


def _reduced_amounts(amounts: Mapping[str, float]) -> dict[str, float]:
    """Amounts divided by the greatest common divisor of the integer ones (all of them for an ordered structure).

    With partial occupancies the fractional amounts are divided by the same factor: La 3.14, Ca 0.86, Mn 4, O 12
    (La/Ca mixed site, Z = 4) -> La 0.785, Ca 0.215, Mn 1, O 3.
    """
    kept = {element: round(float(amount), 3) for element, amount in amounts.items() if amount > 1e-3}
    integers = [int(round(v)) for v in kept.values() if abs(v - round(v)) < 1e-3]
    divisor = reduce(gcd, integers) if integers else 1
    return {element: value / divisor for element, value in kept.items()}


def _amount(value: float) -> str:
    return "" if abs(value - 1) < 1e-3 else (f"{round(value)}" if abs(value - round(value)) < 1e-3 else f"{value:.3g}")


def reduced_formula(amounts: Mapping[str, float]) -> str:
    """Reduced formula, elements in alphabetical order as `Crystal.formula` writes them: {'Na': 4, 'Cl': 4} -> 'ClNa',
    {'La': 3.14, 'Ca': 0.86, 'Mn': 4, 'O': 12} -> 'Ca0.215La0.785MnO3'."""
    return "".join(f"{element}{_amount(value)}" for element, value in sorted(_reduced_amounts(amounts).items()))


def anonymous_formula(amounts: Mapping[str, float]) -> str:
    """Stoichiometry with elements replaced by A, B, C... in order of increasing amount: CaF2 -> 'AB2'."""
    values = sorted(_reduced_amounts(amounts).values())
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return "".join(f"{letters[i % 26]}{_amount(value)}" for i, value in enumerate(values))


def prototype(amounts: Mapping[str, float], space_group: int, wyckoff_letters: Sequence[str]) -> str:
    """Structure prototype: anonymous formula, space group and sorted Wyckoff letters of the sites, e.g. 'AB_225_ab'
    (rock salt). Equivalent descriptions under the group's normaliser can have other letters (4a + 8c vs 4b + 8c in
    Fm-3m), so grouping by prototype can split one structure type in two; it never merges different ones."""
    return f"{anonymous_formula(amounts)}_{space_group}_{''.join(sorted(wyckoff_letters))}"


def batch_amounts(species: torch.Tensor, occupancy: torch.Tensor, mask: torch.Tensor) -> list[dict[str, float]]:
    """Element amounts of every crystal of a padded batch (species indices into SPECIES) [B, N] -> B dicts."""
    species_np = species.detach().cpu().numpy()
    weights = (occupancy * mask).detach().cpu().to(torch.float64).numpy()
    b = species_np.shape[0]
    amounts = np.zeros((b, len(SPECIES)))
    np.add.at(amounts, (np.repeat(np.arange(b), species_np.shape[1]), species_np.reshape(-1)), weights.reshape(-1))
    amounts[:, 0] = 0.0  # padding
    return [{SPECIES[i]: row[i] for i in np.flatnonzero(row)} for row in amounts]
