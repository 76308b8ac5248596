"""Maximal subgroups and the maximal-subgroup distance between space groups.

The maximal translationengleiche (t: same translations, smaller point group) and klassengleiche (k: same point
group, fewer translations) subgroups come from pyxtal's copy of the Bilbao Crystallographic Server tables, exported
by scripts/export_symmetry_tables.py. Conjugate subgroups are collapsed to one (number, index) entry; the infinite
series of isomorphic k-subgroups is present only with the lowest indices pyxtal lists.

Vecsei et al. (2019, Sect. III C) judge how wrong a predicted space group is by the shortest path between the two
groups in the graph whose edges join each group to its maximal subgroups, traversed in either direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

from .tables import N_SPACE_GROUPS, SpaceGroup, load_metadata, space_group_number

KINDS = ("t", "k")


@dataclass(frozen=True)
class MaximalSubgroup:
    """A maximal subgroup type of a space group: its number, its index, and 't' or 'k'."""

    number: int
    index: int
    kind: str


def maximal_subgroups(
    sg: int | str | SpaceGroup, kind: Literal["t", "k", "both"] = "both"
) -> tuple[MaximalSubgroup, ...]:
    """Maximal subgroup types of sg, t before k, each sorted by number."""
    if kind not in ("t", "k", "both"):
        raise ValueError(f"kind must be 't', 'k' or 'both', not {kind!r}")
    record = load_metadata()["space_groups"][space_group_number(sg) - 1]
    return tuple(
        MaximalSubgroup(number, index, which)
        for which in KINDS
        if kind in (which, "both")
        for number, index in record[f"maximal_{which}_subgroups"]
    )


@cache
def subgroup_adjacency() -> np.ndarray:
    """bool [231, 231]: True where one group is a maximal subgroup of the other (symmetric, no self-loops from
    isomorphic subgroups; row and column 0 unused)."""
    adjacency = np.zeros((N_SPACE_GROUPS + 1, N_SPACE_GROUPS + 1), dtype=bool)
    for number in range(1, N_SPACE_GROUPS + 1):
        for subgroup in maximal_subgroups(number):
            adjacency[number, subgroup.number] = adjacency[subgroup.number, number] = True
    np.fill_diagonal(adjacency, False)
    adjacency.flags.writeable = False
    return adjacency


@cache
def subgroup_distance_matrix() -> np.ndarray:
    """int [231, 231]: shortest-path lengths in the maximal-subgroup graph (0 on the diagonal; -1 in the unused row
    and column 0). Breadth-first search from all groups at once."""
    adjacency = subgroup_adjacency().astype(np.int64)
    distance = np.full(adjacency.shape, -1, dtype=np.int64)
    reached = np.eye(len(adjacency), dtype=bool)
    reached[0, 0] = False
    distance[reached] = 0
    frontier, step = reached, 0
    while frontier.any():
        step += 1
        frontier = ((frontier.astype(np.int64) @ adjacency) > 0) & ~reached
        distance[frontier] = step
        reached |= frontier
    distance.flags.writeable = False
    return distance


def subgroup_distance(a: int | str | SpaceGroup, b: int | str | SpaceGroup) -> int:
    """Number of maximal-subgroup steps between two space groups (0 for the same group), after Vecsei et al."""
    return int(subgroup_distance_matrix()[space_group_number(a), space_group_number(b)])
