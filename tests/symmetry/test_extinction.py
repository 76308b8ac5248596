"""Powder extinction groups (computed from the absences) against the NIST reference tables (Baggett et al.)."""

import csv
import itertools
import json

import gemmi
import pytest

from powdersym import symmetry
from powdersym.symmetry import derive_extinction_partition, extinction_group, extinction_groups, space_group

# Where the computed partition departs from the reference: each computed class joins reference classes whose
# groups have identical absences, reflection by reflection, on lattices of the same metric. The reference keeps
# them apart only because ITA lists extinction symbols per Laue class; elsewhere it does merge Laue classes of one
# metric (P3 with P6/mmm, P23 with Pm-3m), as powder data require.
REFERENCE_MERGES = [
    # P 31 - - (Laue -3, -3m) and P 62 - - (6/m, 6/mmm): only 000l: l = 3n in both (6_2 = 3_1 plus a 2-fold axis)
    (frozenset({144, 145, 151, 152, 153, 154}), frozenset({171, 172, 180, 181})),
    # P 21 - - (P2_13, m-3) and P 42 - - (P4_232, m-3m): only 00l: l = 2n in both
    (frozenset({198}), frozenset({208})),
]


def reference_classes(reference_dir) -> set[frozenset[int]]:
    with open(reference_dir / "canonical_extinction_to_space_group.csv", newline="") as handle:
        return {frozenset(json.loads(row["Space Group Numbers"])) for row in csv.DictReader(handle)}


def test_the_two_reference_tables_agree(reference_dir):
    by_index: dict[int, set[int]] = {}
    with open(reference_dir / "FINAL_SPG_ExtG_CrysS_Table.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            by_index.setdefault(int(row["Extinction Group"]), set()).add(int(row["Space Group"]))
    assert {frozenset(members) for members in by_index.values()} == reference_classes(reference_dir)
    assert len(by_index) == 99


def test_partition_matches_reference_except_documented_merges(reference_dir):
    expected = reference_classes(reference_dir)
    for parts in REFERENCE_MERGES:
        assert all(part in expected for part in parts)
        expected = (expected - set(parts)) | {frozenset().union(*parts)}
    computed = {frozenset(group.space_groups) for group in extinction_groups()}
    assert computed == expected
    assert len(computed) == 99 - sum(len(parts) - 1 for parts in REFERENCE_MERGES) == 97


def gemmi_absent_set(number: int, box: int = 12) -> frozenset[tuple[int, ...]]:
    ops = gemmi.find_spacegroup_by_number(number).operations()
    return frozenset(h for h in itertools.product(range(-box, box + 1), repeat=3) if ops.is_systematically_absent(h))


@pytest.mark.parametrize("parts", REFERENCE_MERGES)
def test_documented_merges_have_identical_absences_and_metric(parts):
    members = sorted(set().union(*parts))
    assert len({gemmi_absent_set(n) for n in members}) == 1  # same absences, reflection by reflection
    lattice_systems = {gemmi.find_spacegroup_by_number(n).crystal_system_str() for n in members}
    assert lattice_systems in ({"trigonal", "hexagonal"}, {"cubic"})
    assert all(gemmi.find_spacegroup_by_number(n).centring_type() == "P" for n in members)
    laue_classes = {gemmi.find_spacegroup_by_number(n).laue_str() for n in members}
    assert len(laue_classes) > 1  # the reference split follows the Laue class, which powder data cannot see


def test_stored_partition_is_the_computed_one():
    stored = [group.space_groups for group in extinction_groups()]
    assert derive_extinction_partition() == stored
    assert derive_extinction_partition(box=8) == stored  # the hkl box is large enough to be complete


def test_extinction_group_records():
    groups = extinction_groups()
    assert len(groups) == 97 == len(symmetry.EXTINCTION_GROUP_SYMBOLS)
    assert sorted(n for group in groups for n in group.space_groups) == list(range(1, 231))
    assert len({group.label for group in groups}) == len(groups)
    for group in groups:
        assert {space_group(n).lattice_system for n in group.space_groups} == {group.lattice_system}
        for number in group.space_groups:
            assert symmetry.extinction_group_of_sg[number] == group.index == space_group(number).extinction_group
            assert space_group(number).extinction_symbol == group.symbol
    assert symmetry.extinction_group_of_sg[0] == -1


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [(225, 196, True), (227, 203, True), (221, 195, True), (123, 75, True), (191, 143, True), (38, 21, True),
     (39, 67, True), (14, 4, False), (166, 191, False), (198, 212, False), (62, 33, True), (62, 61, False)],
)
def test_hand_known_classes(a, b, same):
    assert (extinction_group(a) == extinction_group(b)) == same


def test_symbols():
    assert extinction_group("P 21/c").symbol == "P 1 21/c 1"
    assert extinction_group("Fd-3m").symbol == "F d - -"
    assert extinction_group("I41/a").symbol == "I 41/a - -"
    assert extinction_group("Fddd").symbol == "F d d d"
    assert extinction_group("R-3c").symbol == "R - - c"
    assert extinction_group(1).label == "triclinic P -"
