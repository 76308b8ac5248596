"""Extinction groups (99, ITA convention) and powder classes (97), computed from the absences, against the NIST
reference tables (Baggett et al.)."""

import csv
import itertools
import json

import gemmi
import pytest

from powdersym import symmetry
from powdersym.symmetry import (
    derive_extinction_partition,
    derive_powder_extinction_partition,
    extinction_group,
    extinction_groups,
    powder_class_of_extinction_group,
    powder_extinction_classes,
    space_group,
)
from powdersym.symmetry.extinction import serial_rotation_orders

# Where the powder partition departs from the reference (and the extinction groups): each powder class joins
# reference classes whose groups have identical absences, reflection by reflection, on lattices of the same metric.
# The reference keeps them apart because ITA lists extinction symbols per Laue class and writes the serial
# condition with the Laue class's screw axis; elsewhere it does merge Laue classes of one metric (P3 with P6/mmm,
# P23 with Pm-3m), as powder data require.
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


def test_partition_is_the_reference_one(reference_dir):
    computed = {frozenset(group.space_groups) for group in extinction_groups()}
    assert computed == reference_classes(reference_dir)
    assert len(computed) == 99
    with open(reference_dir / "FINAL_SPG_ExtG_CrysS_Table.csv", newline="") as handle:
        reference_of = {int(row["Space Group"]): int(row["Extinction Group"]) for row in csv.DictReader(handle)}
    for a in range(1, 231):  # class-mates, group by group
        mates = {b for b in range(1, 231) if reference_of[b] == reference_of[a]}
        assert set(extinction_group(a).space_groups) == mates, a


def test_powder_partition_is_the_reference_with_documented_merges(reference_dir):
    expected = reference_classes(reference_dir)
    for parts in REFERENCE_MERGES:
        assert all(part in expected for part in parts)
        expected = (expected - set(parts)) | {frozenset().union(*parts)}
    powder = derive_powder_extinction_partition()
    assert {frozenset(members) for members in powder} == expected
    assert len(powder) == 99 - sum(len(parts) - 1 for parts in REFERENCE_MERGES) == 97


def test_powder_classes_merge_exactly_the_two_pairs():
    groups = extinction_groups()
    classes = powder_extinction_classes()
    assert len(classes) == 97
    assert sorted(index for members in classes for index in members) == list(range(99))
    merged = {frozenset(frozenset(groups[i].space_groups) for i in members) for members in classes if len(members) > 1}
    assert merged == {frozenset(parts) for parts in REFERENCE_MERGES}
    assert {groups[i].symbol for members in classes if len(members) > 1 for i in members} == {
        "P 31 - -", "P 62 - -", "P 21 - -", "P 42 - -"}
    # the stored powder classes are the computed ones, numbered by lowest space-group number
    as_space_groups = [tuple(sorted(n for i in members for n in groups[i].space_groups)) for members in classes]
    assert as_space_groups == derive_powder_extinction_partition()
    lookup = powder_class_of_extinction_group()
    assert lookup.shape == (99,) and not lookup.flags.writeable
    for index, members in enumerate(classes):
        assert all(lookup[i] == groups[i].powder_class == index for i in members)


def test_split_rule_is_the_serial_rotation_order():
    # the 99 are the 97 split by the rotation order about the serial rows, which differs only within the two pairs
    hkl = symmetry.extinction.hkl_box(6)

    def key(number):
        sg = space_group(number)
        return serial_rotation_orders(sg.rotations, hkl, symmetry.absent_mask(sg.rotations, sg.translations_24, hkl))

    assert {key(n) for n in (144, 145, 151, 152, 153, 154)} == {(3,)}
    assert {key(n) for n in (171, 172, 180, 181)} == {(6,)}
    assert key(198) == (2, 2, 2) and key(208) == (4, 4, 4)
    assert key(76) == key(93) == (4,) and key(173) == (6,)  # 4/m with 4/mmm, 6/m with 6/mmm: one order, merged
    assert key(159) == key(186) == ()  # P - - c: a glide condition (zonal), merged over -3m and 6/mmm
    assert key(143) == key(195) == key(214) == ()  # no condition; I-centring (integral) plus 00l: l = 4n


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
    assert derive_powder_extinction_partition(box=8) == derive_powder_extinction_partition()


def test_extinction_group_records():
    groups = extinction_groups()
    assert len(groups) == 99 == len(symmetry.EXTINCTION_GROUP_SYMBOLS)
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
     (39, 67, True), (14, 4, False), (166, 191, False), (198, 212, False), (62, 33, True), (62, 61, False),
     (144, 171, False), (198, 208, False), (144, 151, True), (171, 180, True), (158, 185, True), (159, 194, True)],
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
    assert extinction_group(144).symbol == "P 31 - -" and extinction_group(171).symbol == "P 62 - -"
    assert extinction_group(198).symbol == "P 21 - -" and extinction_group(208).symbol == "P 42 - -"
