"""Superstructure lines (refine.supercell): weak lines a sub-cell leaves unexplained enlarge it to the true cell,
on patterns simulated by pymatgen (another code) against the structures' own cells; stray weak lines do not."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from powdersym.evaluate.sets import load_evaluation_set
from powdersym.predict import Predictor
from powdersym.refine import IndexedCell, index, supercell
from powdersym.refine.supercell import coverage, superstructure


def cubic_cell(a: float, q: list[float], weak: list[float]) -> IndexedCell:
    q = np.asarray(q, dtype=np.float64)
    return IndexedCell("cubic", a, a, 0.0, 100.0, len(q), len(q), 2 * len(q), q_indexed=q,
                       tol_indexed=2e-5 * np.ones(len(q)), q_weak=np.asarray(weak, dtype=np.float64))


def test_weak_lines_of_a_doubled_cubic_cell() -> None:
    """Lines of a 4 Å primitive cubic cell with four weak lines of its 8 Å supercell (hkl all odd: 111, 311, 331,
    333 of 2a): the cell doubles, N20 counts the 8 Å cell's lines and M20 falls to match; the same number of weak lines at
    places no cell edge doubling explains (between the 8 Å cell's lines) leaves it as it is."""
    a = 4.0
    q = [m / a**2 for m in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12)]
    doubled = superstructure(cubic_cell(a, q, [m / (2 * a) ** 2 for m in (3, 11, 19, 27)]))
    assert doubled.a == pytest.approx(2 * a) and doubled.c == pytest.approx(2 * a)
    assert doubled.n_calculated == len(doubled.line_d(1 / math.sqrt(max(q) + 2e-5)))  # every line of the 8 Å cell
    assert doubled.m20 == pytest.approx(100.0 * 2 * len(q) / doubled.n_calculated) and doubled.centring == "P"
    stray = cubic_cell(a, q, [(m + 0.5) / (2 * a) ** 2 for m in (3, 11, 19, 27)])
    assert superstructure(stray) is stray


def test_coverage_is_the_merged_tolerance_windows() -> None:
    """Three lines (100, 110, 111 of a 1 Å cell: Q 1, 2, 3) with tolerance 0.1 up to Q 3.05: windows 0.2 + 0.2 +
    0.15 wide, over 3.05."""
    cell = dataclasses.replace(cubic_cell(1.0, [1.0, 2.0, 3.0], []), tol_indexed=np.full(3, 0.1))
    assert coverage(cell, 3.05) == pytest.approx(0.55 / 3.05)


@pytest.mark.parametrize("structure, factor", [("tetragonal/POSCAR-082", 4), ("trigonal/POSCAR-150-2", 3),
                                               ("orthorhombic/POSCAR-066", 2), ("hexagonal/POSCAR-181-2", 4)])
def test_superstructure_lines_give_the_true_cell(structure: str, factor: int, shared_data: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Structures whose strong lines all belong to a sub-cell (an I-4 cell of a / sqrt 2, c / 2; a P3 cell of
    a / sqrt 3; ...): the weak lines it leaves give the structure's cell (edges within 0.5 %, any axis order); without
    the check the sub-cell, `factor` times smaller, is what indexing reports. (These patterns show fewer than 20 lines
    above 5 %: indexing their lines down to 2 % finds the structure's cell too, checked first; the check is then
    tested with that search off.)"""
    monkeypatch.setenv("POWDERSYM_SHARED_DATA", str(shared_data))  # an installed package does not sit beside it
    data = load_evaluation_set("spglib-pymatgen-xray")
    i = next(k for k, name in enumerate(data.names) if name.endswith(structure))
    predictor = Predictor.for_instrument("xray-cuka")
    true = np.sort(np.asarray(data.lattice[i][:3], dtype=float))
    for retry in (True, False):
        monkeypatch.setattr(index, "RETRY_LINES", index.RETRY_LINES if retry else 0)
        found = predictor.index_patterns([data.patterns[i]])[0]
        assert found is not None and np.allclose(np.sort(found.lattice()[:3]), true, rtol=0.005), str(found)
    monkeypatch.setattr(supercell, "SIGNIFICANCE", 0.0)
    sub = predictor.index_patterns([data.patterns[i]])[0]
    volume = float(np.prod(sub.lattice()[:3]) / np.prod(found.lattice()[:3]))
    assert volume == pytest.approx(1 / factor, rel=0.01), str(sub)
