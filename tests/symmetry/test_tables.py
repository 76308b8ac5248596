"""Space-group records against gemmi, spglib and hand-known ITA facts."""

from collections import Counter

import gemmi
import numpy as np
import pytest
import spglib

from powdersym import symmetry
from powdersym.symmetry import space_group, space_groups

# spglib 2.x warns on every call until its new error handling is switched on globally; not ours to switch
pytestmark = pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning")

# ITA: origin choice 2 is the setting of pyxtal / Bilbao for these 24 groups
TWO_ORIGIN_GROUPS = {48, 50, 59, 68, 70, 85, 86, 88, 125, 126, 129, 130, 133, 134, 137, 138, 141, 142, 201, 203, 222,
                     224, 227, 228}
R_GROUPS = {146, 148, 155, 160, 161, 166, 167}


def test_230_groups_and_crystal_system_counts():
    groups = space_groups()
    assert [sg.number for sg in groups] == list(range(1, 231))
    counts = Counter(sg.crystal_system for sg in groups)
    assert [counts[system] for system in symmetry.CRYSTAL_SYSTEMS] == [2, 13, 59, 68, 25, 27, 36]


def test_operations_match_gemmi_and_spglib(gemmi_ops, hall_number, op_set):
    for sg in space_groups():
        ours = op_set(sg.rotations, sg.translations)
        assert len(ours) == sg.n_ops, sg.number  # no duplicates
        assert ours == op_set(*gemmi_ops(sg.setting_symbol)), sg.number
        database = spglib.get_symmetry_from_database(hall_number(sg.hall_symbol))
        assert ours == op_set(database["rotations"], database["translations"]), sg.number
        assert np.array_equal(sg.rotations[0], np.eye(3)) and not sg.translations[0].any()


def test_setting_is_the_standard_one():
    for sg in space_groups():
        gemmi_sg = gemmi.find_spacegroup_by_name(sg.setting_symbol)
        assert gemmi_sg.number == sg.number and gemmi_sg.hall == sg.hall_symbol
        assert sg.setting_symbol.endswith(":2") == (sg.number in TWO_ORIGIN_GROUPS)
        assert sg.setting_symbol.endswith(":H") == (sg.number in R_GROUPS)
        if sg.crystal_system == "monoclinic":  # unique axis b: the 2-fold axis or mirror normal is along b
            assert sg.hm_full.split()[1] == "1" and sg.hm_full.split()[3] == "1"


def test_point_group_laue_class_centring_against_gemmi_and_spglib(hall_number):
    for sg in space_groups():
        gemmi_sg = gemmi.find_spacegroup_by_name(sg.setting_symbol)
        assert (sg.point_group, sg.laue_class, sg.crystal_system, sg.centring) == (
            gemmi_sg.point_group_hm(), gemmi_sg.laue_str(), gemmi_sg.crystal_system_str(), gemmi_sg.centring_type()
        )
        spglib_type = spglib.get_spacegroup_type(hall_number(sg.hall_symbol))
        assert spglib_type.number == sg.number
        spglib_point_group = {"-6m2": "-62m"}.get(spglib_type.pointgroup_international,
                                                  spglib_type.pointgroup_international)
        assert sg.point_group == spglib_point_group
        assert sg.hm_compact == spglib_type.international_short.replace("_", "")


@pytest.mark.parametrize(
    ("symbol", "number"),
    [("Fm-3m", 225), ("P 21/c", 14), ("P2_1/c", 14), ("P21/c", 14), ("P 1 21/c 1", 14), ("Pnma", 62),
     ("P 21/n 21/m 21/a", 62), ("Pbnm", 62), ("Cmce", 64), ("Cmca", 64), ("Aem2", 39), ("Abm2", 39), ("R-3m", 166),
     ("R -3 m:H", 166), ("P6_3/mmc", 194), ("Ia-3d", 230), ("I4_1/amd", 141), ("Fd-3m", 227), ("P1", 1),
     ("P-1", 2), ("  P 3 1 2 ", 149), ("P321", 150), ("225", 225)],
)
def test_symbol_lookup(symbol, number):
    assert space_group(symbol).number == number


def test_every_symbol_round_trips():
    for sg in space_groups():
        for symbol in (sg.hm_symbol, sg.hm_full, sg.hm_compact, sg.setting_symbol):
            assert space_group(symbol) is sg


def test_hand_known_symbols():
    assert space_group(14).hm_symbol == "P 21/c" and space_group(14).hm_full == "P 1 21/c 1"
    assert space_group(62).hm_full == "P 21/n 21/m 21/a"
    assert space_group(225).hm_symbol == "F m -3 m" and space_group(225).hall_symbol == "-F 4 2 3"
    assert space_group(166).setting_symbol == "R -3 m:H"


@pytest.mark.parametrize("key", [0, 231, -1, 1000, "X 1", "Q2/q", "", "P 7", "999"])
def test_unknown_space_group_raises(key):
    with pytest.raises(ValueError, match="unknown space group"):
        space_group(key)


def test_wrong_type_raises():
    with pytest.raises(TypeError):
        space_group(14.0)
    with pytest.raises(TypeError):
        space_group(True)


BRAVAIS_OF = {
    1: "triclinic (P)", 2: "triclinic (P)", 14: "monoclinic (P)", 15: "monoclinic (C)", 5: "monoclinic (C)",
    62: "orthorhombic (P)", 38: "orthorhombic (C)", 41: "orthorhombic (C)", 63: "orthorhombic (C)",
    22: "orthorhombic (F)", 70: "orthorhombic (F)", 71: "orthorhombic (I)", 123: "tetragonal (P)",
    139: "tetragonal (I)", 143: "hexagonal (P)", 164: "hexagonal (P)", 194: "hexagonal (P)",
    146: "rhombohedral (P)", 166: "rhombohedral (P)", 167: "rhombohedral (P)", 221: "cubic (P)", 229: "cubic (I)",
    225: "cubic (F)", 227: "cubic (F)",
}

# hand-counted from the ITA centring letters (A-centred orthorhombic 38-41 counted as base-centred C)
BRAVAIS_COUNTS = {
    "triclinic (P)": 2, "monoclinic (P)": 8, "monoclinic (C)": 5, "orthorhombic (P)": 30, "orthorhombic (C)": 15,
    "orthorhombic (F)": 5, "orthorhombic (I)": 9, "tetragonal (P)": 49, "tetragonal (I)": 19, "hexagonal (P)": 45,
    "rhombohedral (P)": 7, "cubic (P)": 15, "cubic (I)": 10, "cubic (F)": 11,
}


def test_bravais_labels_are_the_papers_order():
    assert symmetry.BRAVAIS_LABELS == (
        "cubic (F)", "cubic (I)", "cubic (P)", "hexagonal (P)", "monoclinic (C)", "monoclinic (P)",
        "orthorhombic (C)", "orthorhombic (F)", "orthorhombic (I)", "orthorhombic (P)", "rhombohedral (P)",
        "tetragonal (I)", "tetragonal (P)", "triclinic (P)",
    )


def test_bravais_assignments_and_counts():
    for number, label in BRAVAIS_OF.items():
        assert space_group(number).bravais == label
        assert symmetry.BRAVAIS_LABELS[symmetry.bravais_index_of_sg[number]] == label
    counts = Counter(sg.bravais for sg in space_groups())
    assert counts == BRAVAIS_COUNTS
    assert symmetry.bravais_index_of_sg.shape == (231,) and symmetry.bravais_index_of_sg[0] == -1


def test_index_arrays_agree_with_records():
    for name in symmetry.tables.INDEX_ARRAYS:
        array = getattr(symmetry, name)
        assert array.shape == (231,) and array[0] == -1 and not array.flags.writeable
    for sg in space_groups():
        assert symmetry.CRYSTAL_SYSTEMS[symmetry.crystal_system_index_of_sg[sg.number]] == sg.crystal_system
        assert symmetry.LAUE_CLASSES[symmetry.laue_class_index_of_sg[sg.number]] == sg.laue_class
        assert symmetry.POINT_GROUPS[symmetry.point_group_index_of_sg[sg.number]] == sg.point_group
    assert len(set(symmetry.laue_class_index_of_sg[1:])) == 11
    assert len(set(symmetry.point_group_index_of_sg[1:])) == 32


# Lolla et al. (2022) Table 1, as printed
SG144_BY_SYSTEM = {
    "triclinic": [1, 2],
    "monoclinic": list(range(4, 16)),
    "orthorhombic": [18, 19, 20, 26, 29, 31, 33, 34, 36, 38, *range(40, 48), 51, 52, 53, *range(55, 68),
                     *range(69, 75)],
    "tetragonal": [82, 85, 86, 87, 88, 92, 96, 99, 100, 107, 109, 113, 114, 119, 121, 122, 123, *range(125, 132),
                   135, 136, 137, 139, 140, 141, 142],
    "trigonal": [143, 144, 146, 147, 148, 150, 152, 154, 155, 156, 157, *range(159, 168)],
    "hexagonal": [173, 174, 175, 176, 180, 182, 185, 186, 187, *range(189, 195)],
    "cubic": [197, 198, 199, 200, 201, 203, 204, 205, 206, 212, 213, 215, 216, 217, 218, 220, 221,
              *range(223, 228), 229, 230],
}


def test_sg144_is_the_published_list():
    published = [n for numbers in SG144_BY_SYSTEM.values() for n in numbers]
    assert len(published) == 144  # the paper's count; the printed ranges do add up to it
    assert symmetry.SG144 == tuple(published)
    for system, numbers in SG144_BY_SYSTEM.items():
        assert all(space_group(n).crystal_system == system for n in numbers)
    for number in range(1, 231):
        index = symmetry.sg144_index_of_sg[number]
        assert space_group(number).sg144_index == index
        assert (index >= 0) == (number in published)
        if index >= 0:
            assert published[index] == number


ENANTIOMORPHIC_PAIRS = [(76, 78), (91, 95), (92, 96), (144, 145), (151, 153), (152, 154), (169, 170), (171, 172),
                        (178, 179), (180, 181), (212, 213)]


def test_enantiomorphic_pairs():
    partners = {a: b for pair in ENANTIOMORPHIC_PAIRS for a, b in (pair, pair[::-1])}
    for number in range(1, 231):
        assert symmetry.enantiomorphic_partner(number) == partners.get(number)
        # gemmi flags the 22 groups of the 11 pairs independently
        assert gemmi.find_spacegroup_by_number(number).is_enantiomorphic() == (number in partners)
    assert len(ENANTIOMORPHIC_PAIRS) == 11


def test_sohncke_and_centrosymmetric_counts():
    groups = space_groups()
    assert sum(sg.is_sohncke for sg in groups) == 65
    assert sum(sg.is_centrosymmetric for sg in groups) == 92
    assert all(sg.is_centrosymmetric == gemmi.find_spacegroup_by_number(sg.number).is_centrosymmetric()
               for sg in groups)


def test_records_are_cached_and_read_only():
    assert space_group(14) is space_group("P 21/c")
    with pytest.raises(ValueError):
        space_group(14).rotations[0, 0, 0] = 5
    assert space_group(225).as_dict()["bravais"] == "cubic (F)"
