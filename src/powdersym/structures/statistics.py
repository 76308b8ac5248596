"""How often real crystals take each space group and Wyckoff site combination: the Materials Project statistics
shipped with pyxtal (database/spg_num_wps_mp.csv, 88,678 structures), exported as package data by
scripts/export_site_statistics.py so that no pyxtal is needed at run time. Random crystals draw real site
combinations from it, and `predict` turns a model trained on balanced classes into one for samples of real materials
with it."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path

import numpy as np

N_SPACE_GROUPS = 230
SITES_FILE = Path(__file__).with_name("data") / "materials_project_sites.npz"


@cache
def _sites_table() -> dict[str, np.ndarray]:
    with np.load(SITES_FILE, allow_pickle=False) as table:
        return {name: table[name] for name in table.files}


def materials_project_rows() -> Iterator[tuple[int, int, list[int], int]]:
    """(space-group number, atoms in the conventional cell, pyxtal's Wyckoff indices (0 = general position),
    number of structures) for each site combination in the table."""
    t = _sites_table()
    for i in range(len(t["space_group"])):
        sites = t["sites"][t["offsets"][i] : t["offsets"][i + 1]]
        yield int(t["space_group"][i]), int(t["n_atoms"][i]), [int(v) for v in sites], int(t["count"][i])


@cache
def known_space_group_frequencies() -> np.ndarray:
    """Share of known crystals in each space group [230] (index = number - 1). Five groups have no entry: P1
    (pyxtal leaves it out of the table, although real P1 crystals exist) and the rare P6, P6cc, P432 and Pn-3n;
    each is counted as rare as the rarest groups the table has (one structure), not as impossible."""
    counts = np.zeros(N_SPACE_GROUPS)
    for number, _, _, count in materials_project_rows():
        counts[number - 1] += count
    counts[counts == 0] = counts[counts > 0].min()
    out = counts / counts.sum()
    out.setflags(write=False)
    return out


def tempered_space_group_distribution(balanced: np.ndarray, known_exponent: float) -> np.ndarray:
    """Space-group probabilities [230] between a balanced draw [230] (exponent 0) and known crystals' frequencies
    (exponent 1): balanced^(1-e) × known^e, normalised. Training towards known crystals spends a network's capacity
    where real samples are (P2_1/c, P-1, Pnma ...) while every group is still drawn."""
    if not 0 <= known_exponent <= 1:
        raise ValueError(f"known exponent {known_exponent} outside [0, 1]")
    weights = np.where(balanced > 0, balanced ** (1 - known_exponent) * known_space_group_frequencies() ** known_exponent, 0.0)
    return weights / weights.sum()
