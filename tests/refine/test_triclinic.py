"""Triclinic indexing: simulated P1 / P-1 patterns give the Niggli cell gemmi reduces the simulated lattice to,
random lines and lattices of higher metric symmetry give no triclinic cell, and the zone and join steps recover a
known lattice's zones."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
import torch

from powdersym.evaluate.sets import load_evaluation_set
from powdersym.refine import index_pattern, triclinic
from powdersym.refine.index import PeakPositions, denoised, find_peaks
from powdersym.refine.triclinic import (
    MAX_LINES, acceptable, higher_first_lines, index_triclinic, lattice_symmetry, monoclinic_cell, reduce_metrics, to_metric,
    to_params, two_fold_axes, voted_zones,
)

from .test_index import simulated
from .test_monoclinic import niggli

# published-size cells: chalcanthite CuSO4.5H2O (P-1) and a small P1 cell
CASES = {
    "chalcanthite-like P-1": (2, [6.14, 10.74, 5.99, 82.4, 107.4, 102.6], 4),
    "small P1": (1, [5.5, 6.3, 7.4, 95.2, 101.3, 84.0], 4),
}


@pytest.mark.parametrize("name", CASES)
def test_simulated_triclinic_pattern_gives_the_niggli_cell(name: str, general_crystal) -> None:
    number, cell, sites = CASES[name]
    found = index_pattern(simulated(general_crystal(number, cell, n_sites=sites, seed=1)))
    assert found is not None and found.system == "triclinic", str(found)
    np.testing.assert_allclose(found.lattice()[:3], niggli(cell)[:3], rtol=3e-3)
    np.testing.assert_allclose(found.lattice()[3:], niggli(cell)[3:], atol=0.3)
    assert found.m20 >= 20


def lines_peaks(q: np.ndarray) -> PeakPositions:
    """Peak positions at Q values (d-spacing units, no zero shift), 0.05 % wide."""
    d = 1 / np.sqrt(np.sort(q))
    n = len(d)
    return PeakPositions(x=d, d=d, height=np.ones(n), tolerance=5e-4 * d, slope=np.abs(2 / d**3), max_zero=0.0)


def test_random_lines_give_no_triclinic_cell() -> None:
    rng = np.random.default_rng(5)
    for _ in range(3):
        q = np.sort(rng.uniform(0.01, 0.3, 30))
        assert index_triclinic(lines_peaks(q)) is None
    # degenerate input: no zone of edges 2.5-25 Å (lines beyond d 2.5 Å), and too few lines
    assert index_triclinic(lines_peaks(np.linspace(0.2, 0.3, 25))) is None
    assert index_triclinic(lines_peaks(np.linspace(0.01, 0.3, 19))) is None


def lattice_lines(lattice: list[float], n: int = 30) -> np.ndarray:
    """Q of the first n distinct lines of a lattice (gemmi), every reflection present."""
    cell = gemmi.UnitCell(*lattice)
    hkl = [(h, k, l) for h in range(-8, 9) for k in range(-8, 9) for l in range(-8, 9) if (h, k, l) != (0, 0, 0)]
    q = np.unique(np.round([cell.calculate_1_d2(list(v)) for v in hkl], 9))
    return q[:n]


def test_lines_of_triclinic_and_monoclinic_lattices_give_their_cells() -> None:
    triclinic = [5.5, 6.3, 7.4, 95.2, 101.3, 84.0]
    found = index_triclinic(lines_peaks(lattice_lines(triclinic)))
    assert found is not None
    np.testing.assert_allclose(found.lattice(), niggli(triclinic), rtol=1e-3, atol=0.05)
    # a monoclinic lattice also indexes with six parameters, but its metric has a two-fold axis: a monoclinic cell
    monoclinic = [5.5, 6.3, 7.4, 90, 101.3, 90]
    found = index_triclinic(lines_peaks(lattice_lines(monoclinic)))
    assert found is not None and found.system == "monoclinic"
    np.testing.assert_allclose(niggli(found.lattice()), niggli(monoclinic), rtol=1e-3, atol=0.05)
    # and an orthorhombic one (more than one two-fold axis) gives nothing: its own search accepts it
    assert index_triclinic(lines_peaks(lattice_lines([5.5, 6.3, 7.4, 90, 90, 90]))) is None


@pytest.mark.parametrize("lattice, centring, number", [
    ([5.5, 6.3, 7.4, 95.2, 101.3, 84.0], "P", 2),
    ([8.7, 11.2, 6.1, 90, 110.2, 90], "C", 12),  # C2/m lattice, given as its primitive cell
    ([5.64, 5.64, 5.64, 90, 90, 90], "F", 225),  # face-centred cubic, as its 60-degree rhombohedral cell
    ([3.25, 3.25, 5.21, 90, 90, 120], "P", 191),
])
def test_lattice_symmetry_of_primitive_cells(lattice, centring: str, number: int) -> None:
    assert lattice_symmetry(tuple(niggli(lattice, centring)))[0] == number


@pytest.mark.parametrize("lattice, centring, axes", [
    ([5.5, 6.3, 7.4, 95.2, 101.3, 84.0], "P", 0),
    ([8.7, 11.2, 6.1, 90, 110.2, 90], "C", 1),
    ([8.7, 11.2, 6.1, 90, 90, 90], "P", 3),
    ([3.25, 3.25, 5.21, 90, 90, 120], "P", 7),  # 6/mmm
    ([5.64, 5.64, 5.64, 90, 90, 90], "F", 9),  # m-3m
])
def test_two_fold_axes_of_lattices(lattice, centring: str, axes: int) -> None:
    assert two_fold_axes(tuple(niggli(lattice, centring))) == axes


def test_monoclinic_cell_of_a_primitive_c_centred_cell() -> None:
    conventional = [8.7, 11.2, 6.1, 90, 110.2, 90]
    found = monoclinic_cell(tuple(niggli(conventional, "C")))
    assert found is not None
    np.testing.assert_allclose(found, conventional, rtol=1e-6, atol=1e-4)


def test_zone_vote_and_reduction_keep_the_lattice() -> None:
    lattice = [5.5, 6.3, 7.4, 95.2, 101.3, 84.0]
    q = torch.as_tensor(lattice_lines(lattice))
    zones, votes = voted_zones(q)
    top = zones[torch.argsort(votes, descending=True)[:20]]
    reciprocal = gemmi.UnitCell(*lattice).reciprocal()
    # the a*-b* zone: P, R = b*^2, a*^2, |S| = 2 a* b* |cos gamma*| (reduced, as here: |S| <= P <= R)
    a_s, b_s = reciprocal.a, reciprocal.b
    s = abs(2 * a_s * b_s * np.cos(np.radians(reciprocal.gamma)))
    expected = torch.tensor([*sorted([a_s**2, b_s**2]), s], dtype=torch.float64)
    assert ((top - expected).abs() / expected.max() < 1e-3).all(1).any()
    # a scrambled basis of the same lattice reduces back to one with the same shortest vectors
    g = torch.as_tensor(np.linalg.inv(np.array(gemmi.UnitCell(*lattice).metric_tensor().as_mat33().tolist())))
    shear = torch.tensor([[1.0, 2, -1], [0, 1, 3], [0, 0, 1]], dtype=torch.float64)
    scrambled = shear.T @ g @ shear
    reduced = to_metric(to_params(reduce_metrics(scrambled[None])))[0]
    np.testing.assert_allclose(sorted(reduced.diagonal().tolist()), sorted(g.diagonal().tolist()), rtol=1e-9)


def test_first_lines_of_a_higher_lattice_veto_a_triclinic_cell(shared_data, monkeypatch) -> None:
    """Six parameters fit the regular lines of a large cubic cell: the pymatgen-simulated neutron pattern of
    POSCAR-208-2 (P4_232, a 9.54 Å) takes a triclinic cell of M20 39 indexing all 23 lines unless the cubic fit of
    its first 12 lines vetoes it; the lines of a triclinic lattice are not vetoed."""
    monkeypatch.setenv("POWDERSYM_SHARED_DATA", str(shared_data))
    data = load_evaluation_set("spglib-pymatgen-neutron")
    pattern = data.patterns[list(data.names).index("spglib:spglib_data/cubic/POSCAR-208-2")]
    peaks = find_peaks(denoised(pattern, 0.05) or pattern, max_peaks=MAX_LINES)
    assert higher_first_lines(peaks)
    assert index_triclinic(peaks) is None
    monkeypatch.setattr(triclinic, "higher_first_lines", lambda peaks, n=12: False)
    found = index_triclinic(peaks)
    assert found is not None and found.system == "triclinic"
    assert not higher_first_lines(lines_peaks(lattice_lines([5.5, 6.3, 7.4, 95.2, 101.3, 84.0])))


@pytest.mark.parametrize("m20, n_indexed, n_lines, accepted", [
    (21.0, 20, 20, True), (21.0, 19, 20, False),  # 20-24 lines: none unindexed
    (21.0, 24, 25, True), (21.0, 23, 25, False),  # 25-29: one
    (21.0, 28, 30, True), (21.0, 27, 30, False),  # 30: two
    (17.0, 30, 30, True), (17.0, 29, 30, False), (17.0, 26, 26, False),  # M20 15-20: every one of 30 lines
    (14.0, 30, 30, False),
])
def test_acceptance_limits(m20: float, n_indexed: int, n_lines: int, accepted: bool) -> None:
    assert bool(acceptable(torch.tensor([m20]), torch.tensor([float(n_indexed)]), n_lines)[0]) == accepted
