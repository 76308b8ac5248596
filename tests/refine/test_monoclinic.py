"""Monoclinic indexing: the reciprocal parametrisation against gemmi, the net reduction, simulated cells of three
groups (P21/c, C2/c, P21) compared with the cells simulated after Niggli reduction, a measured synchrotron pattern
of sucrose against its published cell, and the extinction analysis of monoclinic cells against gemmi."""

from __future__ import annotations

import math
from pathlib import Path

import gemmi
import numpy as np
import pytest
import torch

from powdersym.evaluate.sets import load_evaluation_set
from powdersym.io import read_pattern
from powdersym.predict import Predictor
from powdersym.refine import index, index_pattern, refine_pattern
from powdersym.refine.extinction import line_evidence, setting_lattice
from powdersym.refine.monoclinic import cell_parameters, reciprocal_cell, reduce_net, reflections
from powdersym.symmetry.absences import is_systematically_absent_batch

from .test_index import simulated


def niggli(lattice, centring: str = "P") -> np.ndarray:
    """gemmi's Niggli-reduced primitive cell (a, b, c, alpha, beta, gamma) of a lattice and its centring."""
    vector = gemmi.GruberVector(gemmi.UnitCell(*lattice), centring)
    vector.niggli_reduce()
    return np.array(vector.cell_parameters())


def test_reciprocal_cell_gives_gemmi_d_spacings() -> None:
    cell = (8.726, 11.251, 6.106, 110.2)
    a, b, c, d = reciprocal_cell(*cell)
    reference = gemmi.UnitCell(cell[0], cell[1], cell[2], 90, cell[3], 90)
    for h, k, l in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 0, -1), (2, 3, -1), (-3, 1, 2)]:
        q = a * h * h + b * k * k + c * l * l + d * h * l
        assert q == pytest.approx(reference.calculate_1_d2([h, k, l]), rel=1e-12)
    assert cell_parameters(reciprocal_cell(*cell)) == pytest.approx(cell, rel=1e-12)


def test_net_reduction_keeps_the_lattice() -> None:
    """Other bases of the a*-c* net reduce to |D| <= A <= C, D >= 0 with the same reflections."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        cell = reciprocal_cell(*rng.uniform(4, 12, 3), rng.uniform(91, 119))
        m = rng.integers(-2, 3)  # c* -> c* + m a*: another basis of the same net
        skewed = np.array([cell[0], cell[1], cell[2] + m * cell[3] + m * m * cell[0], cell[3] + 2 * m * cell[0]])
        reduced = reduce_net(torch.as_tensor(skewed[None])).numpy()[0]
        assert 0 <= reduced[3] <= reduced[0] * (1 + 1e-12) and reduced[0] <= reduced[2] * (1 + 1e-12)
        q_limit = 3.7 * max(cell[:3])  # not on a line (4 A is the 200 line)
        assert np.sort(reflections(reduced, q_limit)[1]) == pytest.approx(np.sort(reflections(cell, q_limit)[1]))


@pytest.mark.parametrize("number, cell, centring", [
    (14, [5.30, 6.10, 7.20, 90, 104.5, 90], "P"),
    (15, [10.5, 6.90, 8.20, 90, 117.0, 90], "C"),  # C2/c: half the lines absent
    (4, [10.86, 8.70, 7.76, 90, 102.9, 90], "P"),  # sucrose's cell
])  # fmt: skip
def test_simulated_monoclinic_cells(number: int, cell: list[float], centring: str, general_crystal) -> None:
    """The indexed cell is the simulated lattice: the Niggli-reduced primitive cells agree within 0.1 % and 0.1 deg
    (the indexed one may be another setting), and its centring's lines are the ones counted."""
    found = index_pattern(simulated(general_crystal(number, cell, n_sites=3, seed=number)))
    assert found is not None and found.system == "monoclinic", str(found)
    assert (found.centring == "P") == (centring == "P"), found.centring
    got, want = niggli(found.lattice(), found.centring), niggli(cell, centring)
    assert np.abs(got[:3] / want[:3] - 1).max() < 1e-3, (got, want)
    assert np.abs(got[3:] - want[3:]).max() < 0.1, (got, want)


def test_measured_sucrose(shared_data: Path) -> None:
    """Sucrose on 11-BM (APS), 0.589 Å: the published cell a 10.8633, b 8.7050, c 7.7585 Å, beta 102.945 deg
    (Brown & Levy, Acta Cryst. B29, 790, 1973), within 0.1 % and 0.1 deg."""
    folder = shared_data / "measured/gsas2_tutorials/files_gsas2_main/Exercises/sucrose"
    found = index_pattern(read_pattern(folder / "11bmb_0842.fxye", instrument_file=folder / "11bmb_0842.prm"))
    assert found is not None and found.system == "monoclinic", str(found)
    got, want = niggli(found.lattice()), niggli([10.8633, 8.7050, 7.7585, 90, 102.945, 90])
    assert np.abs(got[:3] / want[:3] - 1).max() < 1e-3, (got, want)
    assert np.abs(got[3:] - want[3:]).max() < 0.1, (got, want)


def test_measured_sucrose_refined_from_its_indexed_cell(shared_data: Path) -> None:
    """Le Bail refinement in P2_1 from the indexed cell put in the group's setting (`setting_lattice`: of the cells
    P2_1's conditions fit, beta nearest 90 deg): the published cell within 0.1 % and 0.05 deg, as given (no other
    setting)."""
    folder = shared_data / "measured/gsas2_tutorials/files_gsas2_main/Exercises/sucrose"
    pattern = read_pattern(folder / "11bmb_0842.fxye", instrument_file=folder / "11bmb_0842.prm")
    found = index_pattern(pattern)
    assert found is not None and found.system == "monoclinic", str(found)
    result = refine_pattern(pattern, space_group=4, cell=list(setting_lattice(found, 4)))
    published = [10.8633, 8.7050, 7.7585, 90, 102.945, 90]
    assert np.abs(result.relative_error(published)).max() < 1e-3, str(result)
    assert result.cell[4] == pytest.approx(published[4], abs=0.05), str(result)


@pytest.mark.parametrize("number, cell", [
    (14, [5.30, 6.10, 7.20, 90, 104.5, 90]),
    (15, [10.5, 6.90, 8.20, 90, 117.0, 90]),
])  # fmt: skip
def test_monoclinic_extinction_groups(number: int, cell: list[float], general_crystal) -> None:
    """The simulated group forbids no indexed line and allows the fewest unseen lines among the groups that forbid
    none, whatever setting the cell was indexed in; in the setting `setting_lattice` gives, gemmi's absences of the
    group's standard setting forbid none of the indexed lines."""
    found = index_pattern(simulated(general_crystal(number, cell, n_sites=3, seed=number)))
    assert found is not None and found.system == "monoclinic", str(found)
    forbidden, unseen = line_evidence(found)
    assert forbidden[number - 1] == 0
    assert unseen[number - 1] == unseen[2:15][forbidden[2:15] == 0].min()
    lattice = setting_lattice(found, number)
    standard = gemmi.UnitCell(*lattice)
    assert standard.volume == pytest.approx(gemmi.UnitCell(*found.lattice()).volume, rel=1e-9)
    hkl = np.array([[h, k, l] for h in range(-8, 9) for k in range(9) for l in range(-8, 9) if (h, k, l) != (0, 0, 0)])
    q = np.array([standard.calculate_1_d2(list(v)) for v in hkl])
    absent = is_systematically_absent_batch(torch.tensor([number]), hkl)[0].numpy()
    for q_line, tol in zip(found.q_indexed, found.tol_indexed):
        near = np.abs(q - q_line) <= tol
        assert near.any() and (~absent[near]).any(), q_line


@pytest.mark.parametrize("structure", ["POSCAR-003", "POSCAR-004"])
def test_weak_orthorhombic_cell_loses_to_a_much_better_monoclinic_one(structure: str, shared_data: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """P2 and P2_1 cells of the spglib structures simulated by pymatgen (another code): a wrong orthorhombic cell
    of M20 18-20 indexes their lines, the true monoclinic cell has M20 over 100. Without the contest the
    orthorhombic cell is kept; with it the monoclinic cell wins and equals the structure's (gemmi Niggli)."""
    monkeypatch.setenv("POWDERSYM_SHARED_DATA", str(shared_data))  # an installed package does not sit beside it
    data = load_evaluation_set("spglib-pymatgen-xray")
    i = next(k for k, name in enumerate(data.names) if name.endswith(f"monoclinic/{structure}"))
    predictor = Predictor.for_instrument("xray-cuka")
    found = predictor.index_patterns([data.patterns[i]])[0]
    assert found is not None and found.system == "monoclinic", str(found)
    assert np.abs(niggli(found.lattice()) - niggli(data.lattice[i]))[:3].max() < 0.01 * data.lattice[i][:3].min()
    assert np.abs(niggli(found.lattice()) - niggli(data.lattice[i]))[3:].max() < 0.2
    monkeypatch.setattr(index, "MONOCLINIC_FACTOR", math.inf)
    kept = predictor.index_patterns([data.patterns[i]])[0]
    assert kept is not None and kept.system == "orthorhombic" and kept.lines_of and kept.m20 < 25, str(kept)


def test_orthorhombic_cell_leaving_lines_unindexed_loses_to_a_monoclinic_one(shared_data: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Jadarite on 11-BM (GSAS-II's indexing exercise): an orthorhombic cell of four times the volume indexes 18 of
    its 20 lines at M20 35 and was accepted; the monoclinic cell indexes all 20 at M20 over 300 and equals the
    refined cell of the tutorial's CIF (P2_1/c a 6.762, b 13.8016, c 7.6878 Å, beta 124.089 deg; gemmi Niggli)."""
    folder = shared_data / "measured/gsas2_tutorials"
    data = folder / "files/FitPeaks/data"
    pattern = read_pattern(data / "11bmb_6231.fxye", instrument_file=data / "11bmb_6231.prm")
    found = index_pattern(pattern)
    assert found is not None and found.system == "monoclinic" and found.n_indexed == found.n_lines, str(found)
    assert found.m20 > 300, str(found)
    doc = gemmi.cif.read(str(folder / "files_gsas2_main/Exercises/kryptonite/jadarite.cif"))
    cif = next(block for block in doc if block.find_value("_cell_length_a"))
    want = niggli([float(cif.find_value(f"_cell_{n}").split("(")[0]) for n in
                   ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")])
    got = niggli(found.lattice())
    assert np.abs(got[:3] / want[:3] - 1).max() < 1e-3 and np.abs(got[3:] - want[3:]).max() < 0.1, (got, want)
    monkeypatch.setattr(index, "MONOCLINIC_FACTOR", math.inf)  # no contest: the orthorhombic cell stays
    kept = index_pattern(pattern)
    assert kept is not None and kept.system == "orthorhombic" and kept.n_indexed < kept.n_lines, str(kept)
