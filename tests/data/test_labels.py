"""Labels stored with every pattern: the space-group chain (SG -> Bravais -> crystal system, SG -> extinction group)
against gemmi, and the stored columns of a real data set against the known structures."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest

from powdersym.data import class_labels, read_labels, reduced_formula
from powdersym.data.labels import anonymous_formula
from powdersym.symmetry import BRAVAIS_LABELS, CRYSTAL_SYSTEMS, EXTINCTION_GROUP_SYMBOLS, SG144

ALL = np.arange(1, 231)


def test_space_group_chain_agrees_with_gemmi():
    labels = class_labels(ALL)
    for i, number in enumerate(ALL):
        group = gemmi.find_spacegroup_by_number(int(number))
        system = group.crystal_system_str()
        assert CRYSTAL_SYSTEMS[labels["crystal_system"][i]] == system
        # the Bravais label names the lattice system and centring: A-centred counts as C, R is 'rhombohedral (P)'
        lattice_system = ("rhombohedral" if group.hm[0] == "R" else "hexagonal") if system == "trigonal" else system
        letter = {"A": "C", "R": "P"}.get(group.hm[0], group.hm[0])
        assert BRAVAIS_LABELS[labels["bravais"][i]] == f"{lattice_system} ({letter})"
        assert labels["sg144"][i] == (SG144.index(number) if number in SG144 else -1)


def test_extinction_group_determines_the_bravais_lattice():
    labels = class_labels(ALL)
    assert sorted(set(labels["extinction_group"])) == list(range(len(EXTINCTION_GROUP_SYMBOLS)))
    bravais_of = {}
    for extinction, bravais, number in zip(labels["extinction_group"], labels["bravais"], ALL):
        assert bravais_of.setdefault(extinction, bravais) == bravais, f"space group {number}"
        # the extinction symbol's lattice letter is the centring (A-centred groups are listed in their C setting)
        letter = EXTINCTION_GROUP_SYMBOLS[extinction].split()[0]
        assert {"A": "C"}.get(gemmi.find_spacegroup_by_number(int(number)).hm[0], None) in (None, letter)


def test_out_of_range_space_group_is_refused():
    with pytest.raises(ValueError, match="1-230"):
        class_labels([0, 12])


@pytest.mark.parametrize(
    "amounts, formula, anonymous",
    [
        ({"Na": 4, "Cl": 4}, "ClNa", "AB"),
        ({"Ca": 4, "F": 8}, "CaF2", "AB2"),
        ({"La": 3.14, "Ca": 0.86, "Mn": 4, "O": 12}, "Ca0.215La0.785MnO3", "A0.215B0.785CD3"),
        ({"Fe": 2.0}, "Fe", "A"),
    ],
)
def test_reduced_and_anonymous_formula(amounts, formula, anonymous):
    assert reduced_formula(amounts) == formula
    assert anonymous_formula(amounts) == anonymous


def test_stored_labels_match_the_structures(pattern_file: Path, known, formulas):
    labels = read_labels(pattern_file)
    names = [source.split(":", 1)[1].removesuffix(".cif") for source in labels["source"]]
    assert sorted(names) == sorted(known)
    for i, name in enumerate(names):
        number, crystal = known[name]
        assert labels["space_group"][i] == number
        assert labels["formula"][i] == formulas[name]
        derived = class_labels([number])
        for key, value in derived.items():
            assert labels[key][i] == value[0], (name, key)
        # the conventional cell has the metric of its crystal system
        a, b, c, alpha, beta, gamma = labels["lattice"][i].astype(float)
        system = CRYSTAL_SYSTEMS[labels["crystal_system"][i]]
        if system == "cubic":
            assert np.allclose([a, a], [b, c], rtol=1e-5) and np.allclose([alpha, beta, gamma], 90, atol=1e-3)
        elif system in ("hexagonal", "trigonal"):
            assert np.isclose(a, b, rtol=1e-5) and np.isclose(gamma, 120, atol=1e-3)
        elif system in ("tetragonal", "orthorhombic"):
            assert np.allclose([alpha, beta, gamma], 90, atol=1e-3)
            assert np.isclose(a, b, rtol=1e-5) == (system == "tetragonal")
        elif system == "monoclinic":
            assert np.allclose([alpha, gamma], 90, atol=1e-3) and not np.isclose(beta, 90)
        # the cell of the file, whose lengths standardisation keeps for these structures
        assert np.allclose(sorted(labels["lattice"][i][:3]), sorted(crystal.lattice[:3]), rtol=1e-5)
    assert labels["n_atoms"][names.index("CaF2")] == 12 and labels["n_atoms"][names.index("SrTiO3")] == 5
    assert labels["prototype"][names.index("NaCl")] == labels["prototype"][names.index("KCl")] == "AB_225_ab"
