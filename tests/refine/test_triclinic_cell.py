"""A triclinic IndexedCell (the Niggli-reduced cell a triclinic indexer returns) works everywhere a cell is used: its
lines against pymatgen's d-spacings, printing, P1 / P-1 weights (no reflection condition), and refinement."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice
from typer.testing import CliRunner

from powdersym.cli import _indexed_start, app
from powdersym.predict import Prediction, restrict_to_cells
from powdersym.refine import CellModel, IndexedCell, SpaceGroupSetting, index_cells
from powdersym.refine.extinction import (MISSING, absence_weights, forbidden_lines, group_counted, line_evidence,
                                         line_reflections, setting_lattice)
from powdersym.refine.index import SPACE_GROUP_RANGES, SYSTEMS, PeakPositions, cell_edges

# a Niggli-reduced cell (all angles obtuse) and a strongly oblique, unreduced one (a long diagonal along c)
REDUCED = (5.1, 6.3, 7.7, 97.3, 101.7, 95.4)
OBLIQUE = (4.2, 4.9, 11.3, 62.0, 118.0, 124.0)


def reference_q(lattice: tuple[float, ...], q_max: float, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """hkl [M, 3] (000 left out, both Friedel mates) with Q = 1/d^2 <= q_max, and their Q from pymatgen's reciprocal
    lattice, over the box |h|, |k|, |l| <= n (far wider than any needs here)."""
    matrix = Lattice.from_parameters(*lattice).reciprocal_lattice_crystallographic.matrix  # rows: a*, b*, c*
    axis = np.arange(-n, n + 1)
    hkl = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    q = ((hkl @ matrix) ** 2).sum(1)
    keep = (q > 0) & (q <= q_max)
    return hkl[keep], q[keep]


def distinct(values: np.ndarray, tolerance: float = 1e-9) -> np.ndarray:
    """Sorted values with those within `tolerance` (relative) of the previous one merged."""
    values = np.sort(values)
    return values[np.concatenate([[True], np.diff(values) > tolerance * values[1:]])]


def triclinic(lattice: tuple[float, ...], q: np.ndarray | None = None, tol: float = 1e-5) -> IndexedCell:
    q = np.zeros(0) if q is None else np.asarray(q, dtype=np.float64)
    a, b, c, alpha, beta, gamma = lattice
    return IndexedCell("triclinic", a, c, 0.0, 40.0, len(q), len(q), 3 * len(q), b=b, alpha=alpha, beta=beta,
                       gamma=gamma, q_indexed=q, tol_indexed=tol * np.ones(len(q)))


def first_lines(lattice: tuple[float, ...], n: int) -> np.ndarray:
    """Q of the first n distinct lines (pymatgen)."""
    return distinct(reference_q(lattice, 0.5)[1])[:n]


@pytest.mark.parametrize("lattice", [REDUCED, OBLIQUE])
def test_line_d_matches_pymatgen(lattice: tuple[float, ...]) -> None:
    """Every distinct d down to 1.1 Å, one per Friedel pair: pymatgen's d_hkl over a wide box gives the same
    list, for a reduced and a strongly oblique cell."""
    d_min = 1.1
    hkl, q = reference_q(lattice, 1 / d_min**2)
    pmg = Lattice.from_parameters(*lattice)
    assert np.allclose(1 / np.sqrt(q[:50]), [pmg.d_hkl(h) for h in hkl[:50]])  # the box's Q are pymatgen's d_hkl
    expected = 1 / np.sqrt(distinct(q))  # decreasing d
    found = triclinic(lattice).line_d(d_min)
    assert len(found) == len(expected) and np.allclose(found, expected, rtol=1e-9)
    assert np.all(np.diff(found) < 0) and found[-1] >= d_min


def test_lattice_to_dict_and_printing() -> None:
    cell = IndexedCell("triclinic", 5.1234567, 7.7654321, 0.012345678, 40.04, 20, 21, 60, b=6.3456789,
                       alpha=97.34567, beta=101.71234, gamma=95.40049)
    assert cell.lattice() == (5.1234567, 6.3456789, 7.7654321, 97.34567, 101.71234, 95.40049)
    data = cell.to_dict()
    assert (data["a"], data["b"], data["c"]) == (5.12346, 6.34568, 7.76543)
    assert (data["alpha"], data["beta"], data["gamma"]) == (97.346, 101.712, 95.4)
    assert data["system"] == "triclinic" and data["zero"] == 0.01235 and json.loads(json.dumps(data)) == data
    edges = "a 5.1235 b 6.3457 c 7.7654 Å, alpha 97.35 beta 101.71 gamma 95.40 deg"
    assert cell_edges("triclinic", 5.1234567, 6.3456789, 7.7654321, 101.71234, 97.34567, 95.40049) == edges
    assert str(cell) == f"indexed triclinic: {edges}, M20 40, 20 of 21 lines"
    # the other systems print and convert as before; a hexagonal cell's dict says gamma 120
    monoclinic = "a 5.0000 b 6.0000 c 7.0000 Å, beta 104.50 deg"
    assert cell_edges("monoclinic", 5.0, 6.0, 7.0, 104.5, 80.0, 70.0) == monoclinic  # alpha, gamma fixed at 90
    hexagonal = IndexedCell("hexagonal", 3.25, 5.207, 0.0, 100.0, 10, 10, 20)
    assert hexagonal.lattice() == (3.25, 3.25, 5.207, 90.0, 90.0, 120.0)
    assert (hexagonal.to_dict()["alpha"], hexagonal.to_dict()["gamma"]) == (90.0, 120.0)
    assert str(hexagonal).startswith("indexed hexagonal: a 3.2500 c 5.2070 Å,")
    prediction = Prediction("x.xy", [(2, "P -1", 0.6)], ("aP", 1.0), ("triclinic", 1.0), ("P-", 1.0), cell.lattice(),
                            0.6, False, 0.5, 1.0, "m", indexed=data)
    assert f"peak positions index a triclinic lattice: {edges}, M20 40, 20 of 21 lines" in str(prediction)
    older = {k: v for k, v in data.items() if k not in ("alpha", "gamma")}  # a dict from before the angles
    assert "a 5.1235 b 6.3457 c 7.7654 Å, alpha 90.00 beta 101.71 gamma 90.00 deg" in str(
        Prediction("x.xy", [], ("aP", 1.0), ("triclinic", 1.0), ("P-", 1.0), None, 0.6, False, 0.5, 1.0, "m",
                   indexed=older))


def test_space_group_range_and_systems() -> None:
    assert SPACE_GROUP_RANGES["triclinic"] == (1, 2) and SYSTEMS[-1] == "triclinic"  # searched last


def test_groups_one_and_two_forbid_nothing() -> None:
    """P1 and P-1 have no reflection condition: no indexed line is forbidden, both miss the same lines, and every
    other group is outside the lattice (-1, weight 0)."""
    for lattice in (REDUCED, OBLIQUE):
        cell = triclinic(lattice, first_lines(lattice, 15))
        forbidden, unseen = line_evidence(cell)
        assert list(forbidden[:2]) == [0, 0] and (forbidden[2:] == -1).all()
        assert unseen[0] == unseen[1] == 0 and (unseen[2:] == -1).all()  # every line up to the 15th is indexed
        assert list(forbidden_lines(cell)) == [0, 0] + [-1] * 228
        weights = absence_weights(cell)
        assert list(weights[:2]) == [1.0, 1.0] and (weights[2:] == 0).all()
        assert group_counted(cell) is cell  # no group allows fewer lines than the lattice
    # lines missing from the pattern (some of them only of reflections with mixed signs, 1-10 or 01-1) count the
    # same against both groups
    for lattice, dropped in ((REDUCED, [2, 4, 6, 7]), (OBLIQUE, [4, 9, 10])):
        q = first_lines(lattice, 15)
        assert np.diff(q).min() > 5e-5  # distinct lines at the cell's tolerance (1e-5)
        cell = triclinic(lattice, np.delete(q, dropped))
        forbidden, unseen = line_evidence(cell)
        assert list(unseen[:2]) == [len(dropped)] * 2 and list(forbidden[:2]) == [0, 0]
        assert list(absence_weights(cell, forbidden, unseen=unseen, missing=MISSING)[:2]) == [1.0, 1.0]


@pytest.mark.parametrize("lattice", [REDUCED, OBLIQUE])
def test_line_reflections_find_every_reflection_of_a_line(lattice: tuple[float, ...]) -> None:
    """The reflections explaining each line are exactly those pymatgen puts within its tolerance, found in the wide
    box: the |h| <= a sqrt(Q) range misses none, however oblique the cell."""
    q_lines = first_lines(lattice, 30)
    tol = 1e-5
    cell = triclinic(lattice, q_lines, tol)
    hkl, line = line_reflections(cell)
    ref_hkl, ref_q = reference_q(lattice, q_lines.max() + 2 * tol)
    for k, q in enumerate(q_lines):
        expected = {tuple(h) for h in ref_hkl[np.abs(ref_q - q) <= tol]}
        assert {tuple(h) for h in hkl[line == k]} == expected
        assert all(tuple(-np.array(h)) in expected for h in expected)  # Friedel mates


def test_restriction_keeps_p1_and_p_1_in_ratio() -> None:
    probs = np.random.default_rng(3).dirichlet(np.ones(230), size=2)
    cell = triclinic(REDUCED, first_lines(REDUCED, 12))
    out = restrict_to_cells(probs, [cell, None])
    assert (out[0, 2:] == 0).all() and out[0, :2].sum() == pytest.approx(1.0)
    assert out[0, 0] / out[0, 1] == pytest.approx(probs[0, 0] / probs[0, 1])
    assert np.array_equal(out[1], probs[1])


def test_setting_lattice_and_cell_model_keep_the_angles() -> None:
    cell = triclinic(OBLIQUE, first_lines(OBLIQUE, 10))
    for number in (1, 2):
        assert setting_lattice(cell, number) == OBLIQUE
        setting = SpaceGroupSetting.from_key(number)
        model = CellModel.for_system(setting.crystal_system, setting_lattice(cell, number))
        assert model.crystal_system == "triclinic" and model.start == OBLIQUE and model.n_free == 6


def test_index_cells_asks_the_triclinic_indexer(monkeypatch) -> None:
    """index_cells hands 'triclinic' to refine.triclinic.index_triclinic (stood in for here); unknown systems are
    refused with the known ones listed."""
    found = triclinic(REDUCED)
    fake = types.ModuleType("powdersym.refine.triclinic")
    fake.index_triclinic = lambda peaks: found
    monkeypatch.setitem(sys.modules, "powdersym.refine.triclinic", fake)
    d = np.array([5.0, 4.0, 3.0])
    peaks = PeakPositions(d, d, np.ones(3), np.ones(3), np.ones(3), 0.0)
    assert index_cells(peaks, ("triclinic",)) == {"triclinic": found}
    with pytest.raises(ValueError, match="triclinic"):
        index_cells(peaks, ("rhombic",))


def test_refine_starts_from_a_triclinic_cell(monkeypatch, tmp_path, general_crystal) -> None:
    """`powdersym refine --sg 2` from an indexed triclinic cell 0.3 % and 0.2 deg off (the indexer stood in for)
    reaches the simulated P-1 cell; groups 1 and 2 take the cell as it is, any other group is refused."""
    from powdersym.simulate import preset, simulate

    true = (5.3, 6.2, 7.4, 97.0, 103.0, 92.0)
    instrument = preset("neutron-cw")
    y = simulate(general_crystal(2, list(true), 3, seed=7), instrument, dtype=torch.float64)[0].numpy()
    y = np.random.default_rng(0).poisson(5000 * y + 50.0).astype(float)
    path = tmp_path / "p-1.xy"
    np.savetxt(path, np.column_stack([instrument.grid(), y]))
    start = tuple(v * 1.003 for v in true[:3]) + tuple(v + 0.2 for v in true[3:])
    indexed = triclinic(start, first_lines(true, 10))
    monkeypatch.setattr("powdersym.refine.index_pattern", lambda *args, **kwargs: indexed)
    pattern = types.SimpleNamespace(unit="tof")
    assert _indexed_start(pattern, 1, None) == list(start) == _indexed_start(pattern, "P -1", None)
    with pytest.raises(ValueError, match="index a triclinic cell .* cannot have"):
        _indexed_start(pattern, 14, None)
    base = ["refine", str(path), "--wavelength", str(instrument.wavelengths[0]), "--unit", "two_theta",
            "--radiation", "neutron"]
    result = CliRunner().invoke(app, base + ["--sg", "2", "--json"])
    assert result.exit_code == 0, result.output
    refined = json.loads(result.output[result.output.index("{"):])["cell"]
    assert np.allclose([refined[k] for k in "abc"], true[:3], rtol=3e-4), refined
    assert np.allclose([refined[k] for k in ("alpha", "beta", "gamma")], true[3:], atol=0.02), refined
    wrong = CliRunner().invoke(app, base + ["--sg", "14"])
    assert wrong.exit_code == 2 and "index a triclinic cell" in wrong.output and "Traceback" not in wrong.output
