"""Systematic absences of indexed lines: the centring and screw/glide conditions of ITA Vol. A (Tables 2.2.13.1-2)
decide which groups an observed line rules out, and `predict` down-weights those groups."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import gemmi
import numpy as np
import pytest

from powdersym.evaluate.sets import load_evaluation_set
from powdersym.predict import Predictor, restrict_to_cells
from powdersym.refine import IndexedCell
from powdersym.refine.extinction import (MISSING, PENALTY, absence_weights, forbidden_lines, group_counted, line_evidence,
                                         line_reflections, reciprocal_metric, setting_lattice)
from powdersym.refine.index import SPACE_GROUP_RANGES, centring_allows, index_pattern, lattice_integers


def cell_with_lines(system: str, a: float, c: float, q: list[float], b: float | None = None) -> IndexedCell:
    q = np.asarray(q, dtype=np.float64)
    return IndexedCell(system, a, c, 0.0, 100.0, len(q), len(q), 2 * len(q), b=b, q_indexed=q, tol_indexed=1e-5 * np.ones(len(q)))


def test_cubic_centring_conditions() -> None:
    """Lines 100, 110, 111 of a 5 Å cubic cell: F (hkl all odd or all even) forbids 100 and 110, I (h+k+l even)
    forbids 100 and 111, P nothing; Pn-3n (222: 0kl k+l even, hhl l even) forbids 100 and 111."""
    count = forbidden_lines(cell_with_lines("cubic", 5.0, 5.0, [n / 25 for n in (1, 2, 3)]))
    assert (count[:194] == -1).all()  # outside the cubic lattice
    assert count[225 - 1] == 2 and count[229 - 1] == 2 and count[221 - 1] == 0 and count[195 - 1] == 0
    assert count[222 - 1] == 2


def test_hexagonal_screw_and_rhombohedral_conditions() -> None:
    """00l lines: 001 rules out 6_3 (00l: l = 2n) and R in hexagonal axes (00l: l = 3n); 002 only R."""
    a, c = 4.0, 10.0
    first = forbidden_lines(cell_with_lines("hexagonal", a, c, [1 / c**2]))
    second = forbidden_lines(cell_with_lines("hexagonal", a, c, [4 / c**2]))
    for number in (173, 194, 166, 148):  # P6_3, P6_3/mmc, R-3m, R-3
        assert first[number - 1] == 1
    assert second[194 - 1] == 0 and second[166 - 1] == 1 and second[191 - 1] == 0  # P6/mmm: no condition
    hkl, line = line_reflections(cell_with_lines("hexagonal", a, c, [4 / (3 * a**2)]))  # the 100 line: six reflections
    assert len(hkl) == 6 and (line == 0).all()


def _gemmi_forbidden(number: int, cell: IndexedCell, orders: list) -> int:
    """Lines of `cell` whose reflections gemmi (an independent implementation) calls absent in group `number`,
    fewest over the axis orders."""
    ops = gemmi.find_spacegroup_by_number(number).operations()
    hkl, line = line_reflections(cell)
    counts = []
    for order in orders:
        present = np.array([not ops.is_systematically_absent([int(v) for v in h[list(order)]]) for h in hkl])
        counts.append(len(cell.q_indexed) - len(np.unique(line[present])))
    return min(counts)


@pytest.mark.parametrize("system, a, b, c", [("cubic", 5.0, 5.0, 5.0), ("tetragonal", 4.0, 4.0, 9.0),
                                             ("hexagonal", 4.0, 4.0, 11.0), ("orthorhombic", 5.0, 7.0, 8.0)])
def test_forbidden_lines_agree_with_gemmi(system: str, a: float, b: float, c: float) -> None:
    """The first 12 distinct lines of a cell, every group of its lattice: the same count as gemmi's absences."""
    probe = IndexedCell(system, a, c, 0.0, 100.0, 1, 1, 1, b=b if system == "orthorhombic" else None)
    d = probe.line_d(1.2)[:12]
    cell = cell_with_lines(system, a, c, list(1 / d**2), b=probe.b)
    count = forbidden_lines(cell)
    orders = list(itertools.permutations(range(3))) if system == "orthorhombic" else [(0, 1, 2)]
    low, high = SPACE_GROUP_RANGES[system]
    expected = [_gemmi_forbidden(n, cell, orders) for n in range(low, high + 1)]
    assert list(count[low - 1 : high]) == expected
    assert max(expected) >= 3 and min(expected) == 0  # the probe lines do tell groups apart


def test_orthorhombic_groups_are_tested_in_every_axis_order() -> None:
    """One line, 100 of the shortest axis: P2_12_12_1 forbids h00, 0k0 and 00l with odd index and Pnma does too
    (its a-glide h00, its n-glide 0k0 and 00l), so every axis order rules the line out; P2_12_12 has no condition
    on 00l, so the order that puts the line along its c allows it; P222 has no condition at all."""
    cell = cell_with_lines("orthorhombic", 5.0, 8.0, [1 / 25], b=7.0)
    count = forbidden_lines(cell)
    assert count[62 - 1] == 1 and count[16 - 1] == 0
    assert count[18 - 1] == 0  # P2_12_12: 21 along a and b only; the order with the line along c allows it
    assert count[19 - 1] == 1  # P2_12_12_1: h00, 0k0, 00l all even


def test_predict_down_weights_groups_that_forbid_lines() -> None:
    probs = np.full((2, 230), 1 / 230)
    cell = cell_with_lines("cubic", 5.0, 5.0, [n / 25 for n in (1, 2, 3)])
    out = restrict_to_cells(probs, [cell, None])
    assert np.allclose(out.sum(1), 1) and np.array_equal(out[1], probs[1]) and (out[0, :194] == 0).all()
    assert np.isclose(out[0, 225 - 1] / out[0, 221 - 1], PENALTY**2)  # Fm-3m forbids two lines, Pm-3m none
    assert np.array_equal(restrict_to_cells(probs, [cell, None], penalty=1.0)[0, 194:], np.full(36, 1 / 36))
    assert np.array_equal(absence_weights(None), np.ones(230))


@pytest.mark.parametrize("centring, number", [("P", 221), ("I", 229), ("F", 225)])
def test_cubic_centring_lines_agree_with_gemmi(centring: str, number: int) -> None:
    """M = h^2+k^2+l^2 <= 200 is a line of a centred cubic lattice iff gemmi keeps some reflection with that M in
    the symmorphic group of the centring (Pm-3m, Im-3m, Fm-3m: no condition but the centring's)."""
    ops = gemmi.find_spacegroup_by_number(number).operations()
    values = lattice_integers("cubic", 15)
    values = values[values <= 200]
    expected = [any(not ops.is_systematically_absent([h, k, l]) for h in range(15) for k in range(15) for l in range(15)
                    if h * h + k * k + l * l == m) for m in values]  # fmt: skip
    assert list(centring_allows(centring, values)) == expected


def _gemmi_evidence(number: int, cell: IndexedCell, orders: list) -> tuple[int, int]:
    """(indexed lines forbidden, allowed lines up to the last indexed one that no indexed line explains) from gemmi's
    absences, in the axis order with the most weight (PENALTY ** forbidden * MISSING ** unseen)."""
    ops = gemmi.find_spacegroup_by_number(number).operations()
    q_lines = np.asarray(cell.q_indexed)
    g = reciprocal_metric(cell)
    n = [int(np.ceil(length * np.sqrt(q_lines.max()))) + 1 for length in cell.lattice()[:3]]
    hkl = np.array([h for h in itertools.product(*[range(-m, m + 1) for m in n]) if any(h)])
    q = np.einsum("ni,ij,nj->n", hkl, g, hkl)
    hkl, q = hkl[q <= q_lines.max() * (1 + 1e-9)], q[q <= q_lines.max() * (1 + 1e-9)]
    best = None
    for order in orders:
        present = np.array([not ops.is_systematically_absent([int(v) for v in h[list(order)]]) for h in hkl])
        explained = np.abs(q[:, None] - q_lines[None, :]) <= 1e-9
        forbidden = int((~(explained & present[:, None]).any(0)).sum())
        lines = np.unique(np.round(q[present & ~explained.any(1)], 9))  # positions allowed, no indexed line there
        score = forbidden * np.log(PENALTY) + len(lines) * np.log(MISSING)
        if best is None or score > best[0]:
            best = (score, forbidden, len(lines))
    return best[1], best[2]


@pytest.mark.parametrize("system, a, b, c, lines_of", [
    ("cubic", 5.64, 5.64, 5.64, 225), ("cubic", 8.0, 8.0, 8.0, 227), ("tetragonal", 4.0, 4.0, 9.0, 139),
    ("hexagonal", 4.0, 4.0, 11.0, 194), ("orthorhombic", 5.0, 7.0, 8.0, 62)])  # fmt: skip
def test_unseen_lines_agree_with_gemmi(system: str, a: float, b: float, c: float, lines_of: int) -> None:
    """The first 10 lines one group allows are the observed ones: every group of the lattice counts the same
    forbidden and unseen lines as gemmi's absences give (orthorhombic cells in their best axis order)."""
    probe = IndexedCell(system, a, c, 0.0, 100.0, 1, 1, 1, b=b if system == "orthorhombic" else None)
    every = cell_with_lines(system, a, c, list(1 / probe.line_d(0.9) ** 2), b=probe.b)
    hkl, line = line_reflections(every)
    ops = gemmi.find_spacegroup_by_number(lines_of).operations()
    kept = np.unique(line[[not ops.is_systematically_absent([int(v) for v in h]) for h in hkl]])[:10]
    cell = cell_with_lines(system, a, c, list(np.asarray(every.q_indexed)[kept]), b=probe.b)
    forbidden, unseen = line_evidence(cell)
    orders = list(itertools.permutations(range(3))) if system == "orthorhombic" else [(0, 1, 2)]
    low, high = SPACE_GROUP_RANGES[system]
    expected = [_gemmi_evidence(n, cell, orders) for n in range(low, high + 1)]
    assert list(zip(forbidden[low - 1 : high], unseen[low - 1 : high])) == expected
    assert unseen[lines_of - 1] == 0 and unseen[low - 1] > 0  # the group that made the lines sees them all; P1-like groups do not


def test_unseen_lines_favour_the_centred_group() -> None:
    """NaCl's six first lines (111 200 220 311 222 400): with flat network probabilities Fm-3m (every allowed line
    seen) outweighs Pm-3m (eight lines allowed and not seen: 100 110 210 211 300/221 310 320 321) by MISSING ** -8,
    and missing = 1 leaves the cubic groups that forbid no line equal, as before."""
    a = 5.64
    cell = cell_with_lines("cubic", a, a, [m / a**2 for m in (3, 4, 8, 11, 12, 16)])
    forbidden, unseen = line_evidence(cell)
    assert unseen[225 - 1] == 0 and unseen[221 - 1] == 8 and forbidden[221 - 1] == 0
    probs = np.full((1, 230), 1 / 230)
    out = restrict_to_cells(probs, [cell])[0]
    assert out[225 - 1] / out[221 - 1] == pytest.approx(MISSING**-8)
    flat = restrict_to_cells(probs, [cell], missing=1.0)[0]
    assert flat[225 - 1] == pytest.approx(flat[221 - 1])


def test_a_weak_line_counts_as_seen_and_against_the_groups_that_forbid_it() -> None:
    """The same NaCl lines with a weak line at (100), below the search threshold: Pm-3m no longer misses it (7
    unseen lines instead of 8), and Fm-3m, which forbids it, counts it as a forbidden line (PENALTY); a weak line
    between the lattice's lines (an impurity's: no reflection explains it) changes no count."""
    a = 5.64
    q = [m / a**2 for m in (3, 4, 8, 11, 12, 16)]
    plain = cell_with_lines("cubic", a, a, q)
    weak = dataclasses.replace(plain, q_weak=np.array([1 / a**2]))
    (f0, u0), (f1, u1) = line_evidence(plain), line_evidence(weak)
    assert u0[221 - 1] == 8 and u1[221 - 1] == 7 and u1[225 - 1] == 0
    assert f0[225 - 1] == 0 and f1[225 - 1] == 1 and f1[221 - 1] == 0 and forbidden_lines(weak)[225 - 1] == 1
    probs = np.full((1, 230), 1 / 230)
    out = restrict_to_cells(probs, [weak])[0]
    assert out[225 - 1] / out[221 - 1] == pytest.approx(PENALTY / MISSING**7)
    stray = dataclasses.replace(plain, q_weak=np.array([1.5 / a**2, *q]))  # and the indexed lines themselves
    assert [list(v) for v in line_evidence(stray)] == [list(v) for v in (f0, u0)]


def test_measured_weak_lines_tell_pnma_from_its_centred_pseudo_cell(shared_data: Path, monkeypatch) -> None:
    """RRUFF 173 and 175 index to the orthorhombic cell of cerussite, PbCO3 (Pnma; a 5.18, b 6.14, c 8.50 Å as
    indexed): its strong lines all have h+l even, as a B-centred cell's would, and only weak lines (112 at 2.89 Å)
    show it primitive. With the weak lines counted against the groups that forbid them, predict ranks Pnma first;
    without them (q_weak emptied) a C-centred group (Cmcm or Cmc2_1, in another axis order) wins."""
    monkeypatch.setenv("POWDERSYM_SHARED_DATA", str(shared_data))
    data = load_evaluation_set("rruff")
    predictor = Predictor.for_instrument("xray-cuka")
    for n in (173, 175):
        pattern = data.patterns[data.names.index(f"rruff:{n}.npy")]
        cell = index_pattern(pattern, doublet=predictor.doublet_of(pattern))
        assert cell is not None and cell.system == "orthorhombic", str(cell)
        assert np.allclose(sorted(cell.lattice()[:3]), (5.18, 6.14, 8.50), rtol=5e-3), str(cell)
        x = predictor.prepare([pattern])[0].y[None]
        with_weak, without = (predictor.predict_arrays(x, cells=[c])[0].space_groups[0][0]
                              for c in (cell, dataclasses.replace(cell, q_weak=np.zeros(0))))
        assert with_weak == 62 and without in (36, 63), (with_weak, without)
        assert forbidden_lines(cell)[62 - 1] == 0 and forbidden_lines(cell)[63 - 1] > 0
        # refine starts Pnma from cerussite's cell in Pnma's setting (Pmcn a 5.18, b 8.49, c 6.14 -> Pnma c, a, b)
        assert np.allclose(setting_lattice(cell, 62)[:3], (6.14, 5.18, 8.50), rtol=5e-3), setting_lattice(cell, 62)


def _gemmi_lines(number: int, cell: IndexedCell) -> int:
    """Distinct Q up to the cell's last indexed line that gemmi keeps some reflection of in group `number`."""
    ops = gemmi.find_spacegroup_by_number(number).operations()
    q_max = np.max(cell.q_indexed) * (1 + 1e-9)
    n = int(np.ceil(cell.a * np.sqrt(q_max))) + 1
    kept = {round(float(np.dot(h, h)) / cell.a**2, 9) for h in itertools.product(range(-n, n + 1), repeat=3)
            if any(h) and np.dot(h, h) / cell.a**2 <= q_max and not ops.is_systematically_absent(list(h))}  # fmt: skip
    return len(kept)


def test_group_counted_m20_counts_the_lines_of_the_group() -> None:
    """A 12 Å cubic cell showing the first 12 lines Ia-3d (garnet) allows: no group of the lattice allows fewer lines
    without forbidding one (Ia-3d itself, or a group with its lines), and M20 rises by the ratio of the lattice's
    lines (P23) to that group's, both counted by gemmi; N20 falls by the same ratio."""
    a = 12.0
    every = cell_with_lines("cubic", a, a, list(1 / IndexedCell("cubic", a, a, 0.0, 1.0, 1, 1, 1).line_d(1.0) ** 2))
    hkl, line = line_reflections(every)
    ops = gemmi.find_spacegroup_by_number(230).operations()
    kept = np.unique(line[[not ops.is_systematically_absent([int(v) for v in h]) for h in hkl]])[:12]
    cell = dataclasses.replace(cell_with_lines("cubic", a, a, list(np.asarray(every.q_indexed)[kept])), m20=10.0, n_calculated=60)
    counted = group_counted(cell)
    assert counted.lines_of != 0 and forbidden_lines(cell)[counted.lines_of - 1] == 0
    assert _gemmi_lines(counted.lines_of, cell) == _gemmi_lines(230, cell) == 12
    factor = _gemmi_lines(195, cell) / 12
    assert counted.m20 == pytest.approx(10.0 * factor) and counted.n_calculated == round(60 / factor)
    assert group_counted(dataclasses.replace(cell, q_indexed=every.q_indexed[:12], tol_indexed=every.tol_indexed[:12])).lines_of == 0
