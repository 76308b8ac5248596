"""Wyckoff positions (exported from pyxtal) against gemmi's operations and spglib's Wyckoff letters."""

import string

import numpy as np
import pytest
import spglib

from powdersym.symmetry import space_group, space_groups

# spglib 2.x warns on every call until its new error handling is switched on globally; not ours to switch
pytestmark = pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning")

LETTERS = string.ascii_lowercase + "A"  # Pmmm has 27 positions: a ... z, then A


def same_points_mod_1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """bool [len(a), len(b)]: which points coincide modulo lattice translations."""
    difference = a[:, None, :] - b[None, :, :]
    return (np.abs(difference - np.rint(difference)) < 1e-8).all(axis=-1)


def example_lattice(crystal_system: str) -> np.ndarray:
    a, b, c, beta = 5.1, 6.3, 7.7, np.radians(101.0)
    return {
        "triclinic": np.array([[a, 0, 0], [1.1, b, 0], [0.7, 1.3, c]]),
        "monoclinic": np.array([[a, 0, 0], [0, b, 0], [c * np.cos(beta), 0, c * np.sin(beta)]]),
        "orthorhombic": np.diag([a, b, c]),
        "tetragonal": np.diag([a, a, c]),
        "trigonal": np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]]),
        "hexagonal": np.array([[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, c]]),
        "cubic": np.eye(3) * a,
    }[crystal_system]


def test_total_number_of_wyckoff_positions():
    assert sum(len(sg.wyckoff_positions) for sg in space_groups()) == 1731  # ITA Vol. A, all 230 types


def test_letters_multiplicities_and_general_position():
    for sg in space_groups():
        positions = sg.wyckoff_positions
        assert [wp.letter for wp in positions] == list(LETTERS[: len(positions)])
        multiplicities = [wp.multiplicity for wp in positions]
        assert multiplicities == sorted(multiplicities), sg.number  # ITA letters go with rising multiplicity
        general = positions[-1]
        assert general.multiplicity == sg.n_ops and general.free_params == (True, True, True)
        assert general.site_symmetry == "1"
        for wp in positions:
            assert sg.n_ops % wp.multiplicity == 0  # multiplicity = n_ops / order of the site-symmetry group
            assert wp.orbit_rotations.shape == (wp.multiplicity, 3, 3)
            assert wp.orbit_translations.shape == (wp.multiplicity, 3)
            assert np.array_equal(wp.rotation, wp.orbit_rotations[0])
            assert wp.free_params == tuple(bool(c) for c in wp.rotation.any(axis=0))


def test_every_orbit_is_the_gemmi_orbit_of_its_representative(gemmi_ops):
    """For all 230 groups: the exported orbit of a random point of each position is exactly the set of images of
    its representative under gemmi's operations mod 1 (so pyxtal's setting is gemmi's, and no site is missing or
    doubled)."""
    rng = np.random.default_rng(7)
    for sg in space_groups():
        rotations, translations = gemmi_ops(sg.setting_symbol)
        for wp in sg.wyckoff_positions:
            orbit = wp.orbit(rng.random(3))
            images = rotations @ orbit[0] + translations
            assert same_points_mod_1(orbit, orbit).sum() == wp.multiplicity, (sg.number, wp.letter)  # distinct
            matches = same_points_mod_1(images, orbit)
            assert matches.any(axis=1).all() and matches.any(axis=0).all(), (sg.number, wp.letter)


@pytest.mark.parametrize("number", [2, 14, 62, 139, 166, 194, 227, 230])
def test_general_position_orbit_maps_are_the_space_group_operations(number, gemmi_ops, op_set):
    sg = space_group(number)
    general = sg.wyckoff_positions[-1]
    assert op_set(general.orbit_rotations, general.orbit_translations) == op_set(*gemmi_ops(sg.setting_symbol))


def test_letters_agree_with_spglib(hall_number):
    """A random general-position atom pins the group; spglib (told the Hall setting, so that it keeps the origin
    choice) must name the Wyckoff letter of a second atom placed on each special position."""
    rng = np.random.default_rng(11)
    for sg in space_groups():
        setting = hall_number(sg.hall_symbol)
        general = sg.wyckoff_positions[-1].orbit(rng.random(3))
        lattice = example_lattice(sg.crystal_system)
        for wp in sg.wyckoff_positions[:-1]:
            sites = wp.orbit(rng.random(3))
            cell = (lattice, np.vstack([general, sites]), [1] * len(general) + [2] * len(sites))
            dataset = spglib.get_symmetry_dataset(cell, symprec=1e-4, hall_number=setting)
            assert dataset.number == sg.number
            assert set(dataset.wyckoffs[len(general):]) == {wp.letter}, (sg.number, wp.letter)
            assert set(dataset.wyckoffs[: len(general)]) == {sg.wyckoff_positions[-1].letter}


def test_hand_known_positions():
    fm3m = space_group(225)
    assert [wp.label for wp in fm3m.wyckoff_positions[:5]] == ["4a", "4b", "8c", "24d", "24e"]
    assert fm3m.wyckoff("a").site_symmetry == "m-3m"
    assert np.allclose(fm3m.wyckoff("b").translation, [0.5, 0.5, 0.5])
    assert fm3m.wyckoff("e").free_params == (True, False, False)  # 24e: x, 0, 0
    p21c = space_group(14)
    assert [wp.label for wp in p21c.wyckoff_positions] == ["2a", "2b", "2c", "2d", "4e"]
    with pytest.raises(ValueError):
        p21c.wyckoff("f")
