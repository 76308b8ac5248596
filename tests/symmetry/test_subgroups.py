"""Maximal-subgroup graph sanity against gemmi's point groups, hand-known ITA subgroups and distances."""

import gemmi
import numpy as np
import pytest

from powdersym.symmetry import (
    maximal_subgroups,
    subgroup_adjacency,
    subgroup_distance,
    subgroup_distance_matrix,
)


def point_group_order(number: int) -> int:
    ops = gemmi.find_spacegroup_by_number(number).operations()
    return len({tuple(map(tuple, op.rot)) for op in ops})


def test_t_subgroups_lower_the_point_group_by_their_index():
    for number in range(1, 231):
        t_subgroups = maximal_subgroups(number, "t")
        assert t_subgroups or number == 1  # only P1 has no proper t-subgroup
        for subgroup in t_subgroups:
            assert subgroup.kind == "t"
            assert subgroup.index in (2, 3, 4)  # Hermann: maximal t-subgroups have index 2, 3 or 4
            assert point_group_order(number) == subgroup.index * point_group_order(subgroup.number)


def test_k_subgroups_keep_the_point_group():
    for number in range(1, 231):
        for subgroup in maximal_subgroups(number, "k"):
            assert subgroup.kind == "k" and subgroup.index >= 2
            parent = gemmi.find_spacegroup_by_number(number)
            child = gemmi.find_spacegroup_by_number(subgroup.number)
            assert parent.point_group_hm() == child.point_group_hm()  # same crystal class: same ops per primitive cell


def test_hand_known_subgroups():
    # ITA Vol. A1: Fm-3m has t-subgroups Fm-3 [2], F432 [2], F-43m [2], I4/mmm [3], R-3m [4]
    t = {(s.number, s.index) for s in maximal_subgroups("Fm-3m", "t")}
    assert t == {(202, 2), (209, 2), (216, 2), (139, 3), (166, 4)}
    assert (221, 4) in {(s.number, s.index) for s in maximal_subgroups(225, "k")}  # Pm-3m: lose the F centring
    assert {s.number for s in maximal_subgroups(2, "t")} == {1}
    assert {s.number for s in maximal_subgroups(14, "t")} == {2, 4, 7}  # P21/c > P-1, P21, Pc
    assert maximal_subgroups(14) == maximal_subgroups(14, "t") + maximal_subgroups(14, "k")
    with pytest.raises(ValueError):
        maximal_subgroups(14, "x")


def test_graph_and_distances():
    adjacency = subgroup_adjacency()
    assert (adjacency == adjacency.T).all() and not adjacency.diagonal().any()
    distance = subgroup_distance_matrix()
    assert distance.shape == (231, 231) and (distance[0] == -1).all()
    inner = distance[1:, 1:]
    assert (inner >= 0).all()  # connected: every group reaches P1 through t-subgroups
    assert (inner == inner.T).all() and (np.diag(inner) == 0).all()
    assert ((inner == 1) == adjacency[1:, 1:]).all()
    # triangle inequality through every intermediate group
    assert (inner[:, None, :] <= inner[:, :, None] + inner[None, :, :]).all()


def test_hand_known_distances():
    assert subgroup_distance(14, 14) == 0
    assert subgroup_distance(1, 2) == subgroup_distance(2, 1) == 1
    assert subgroup_distance("Fm-3m", "Pm-3m") == 1
    assert subgroup_distance(225, 139) == 1
    # m-3m (order 48) to 1: each step divides the order by at most 4, and index 4 only from cubic to trigonal,
    # so at least 4 steps; Pm-3m > R-3m > R-3 > R3 > P1 is one such path
    assert subgroup_distance(221, 1) == 4
    assert subgroup_distance(225, 229) == 2  # not sub/supergroups of each other; both contain Pm-3m
