"""Cell refinement recovers the cell of patterns simulated by powdersym from a start 1.5 % off."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from powdersym.refine import CellModel, SpaceGroupSetting, allowed_reflections, format_uncertain, refine_cell
from powdersym.simulate import preset, simulate
from powdersym.structures.crystal import Crystal


def noisy_pattern(crystal: Crystal, instrument, seed: int, counts: float = 5000.0) -> np.ndarray:
    pattern = simulate(crystal, instrument, dtype=torch.float64)[0].numpy()
    return np.random.default_rng(seed).poisson(counts * pattern + 50.0).astype(float)


CASES = {
    # name: (space group, true cell, instrument, fitted range, relative start offsets of a, b, c; start beta offset)
    "tetragonal-neutron": (136, [4.60, 4.60, 3.10, 90, 90, 90], "neutron-cw", None, (0.015, 0.015, -0.015), 0.0),
    "monoclinic-neutron": (14, [5.30, 6.10, 7.20, 90, 104.5, 90], "neutron-cw", (5.0, 100.0), (0.015, -0.015, 0.015), 0.5),
    "hexagonal-tof": (194, [3.20, 3.20, 5.20, 90, 90, 120], "neutron-tof", None, (-0.015, -0.015, 0.015), 0.0),
}


@pytest.mark.parametrize("name", list(CASES))
def test_recovers_cell_from_start_off_by_1p5_percent(name: str, general_crystal) -> None:
    number, cell, instrument_name, x_range, offsets, beta_offset = CASES[name]
    instrument = preset(instrument_name)
    y = noisy_pattern(general_crystal(number, cell, 3, seed=number), instrument, seed=1)
    start = np.array(cell, dtype=float)
    start[:3] *= 1 + np.array(offsets)
    start[4] += beta_offset
    result = refine_cell(instrument.grid(), y, instrument=instrument, space_group=number, cell=start, x_range=x_range)
    assert result.converged
    assert np.abs(result.relative_error(cell)).max() < 2e-4, str(result)
    assert abs(result.cell[4] - cell[4]) < 0.01
    assert np.all(np.asarray(result.cell_sigma[:3]) > 0)
    # the scatter of the refined lengths is what their uncertainties say (within a generous factor)
    assert np.all(np.abs(np.asarray(result.cell[:3]) - cell[:3]) < 6 * np.asarray(result.cell_sigma[:3]) + 1e-5)
    assert result.chi2 < 1.5  # Poisson noise on the exact model: reduced chi^2 near 1
    assert result.rwp < 1.2 * result.rexp  # down to the counting noise


def test_result_prints_converts_and_plots(tmp_path, general_crystal) -> None:
    instrument = preset("neutron-cw")
    cell = [4.60, 4.60, 3.10, 90, 90, 90]
    y = noisy_pattern(general_crystal(136, cell, 3, seed=5), instrument, seed=2)
    result = refine_cell(instrument.grid(), y, instrument=instrument, space_group=136,
                         cell=[4.62, 4.62, 3.09, 90, 90, 90], x_range=(10.0, 80.0), refine_widths=False)
    text = str(result)
    assert "P 42/m n m" in text and "Rwp" in text and "a = 4.600" in text
    data = result.to_dict(curves=True)
    assert json.loads(json.dumps(data))["cell"]["a"] == pytest.approx(result.cell[0])
    assert len(data["calculated"]) == len(result.x) and data["widths"] == {}
    assert result.x.min() >= 10.0 and result.x.max() <= 80.0
    path = result.plot(tmp_path / "fit.png")
    assert path.stat().st_size > 10_000 and not list(tmp_path.glob(".fit.png*"))


def test_cell_constraints_follow_the_crystal_system() -> None:
    cubic = CellModel.for_system("cubic", [5.0, 5.1, 4.9, 90, 90, 90])
    assert cubic.free_names == ("a",) and cubic.full(torch.tensor([5.2], dtype=torch.float64)).tolist() == [5.2] * 3 + [90.0] * 3
    hexagonal = CellModel.for_system("trigonal", [4.0, 4.0, 9.0, 90, 90, 120])
    assert hexagonal.free_names == ("a", "c")
    assert hexagonal.full(torch.tensor([4.1, 9.1], dtype=torch.float64)).tolist() == [4.1, 4.1, 9.1, 90, 90, 120]
    monoclinic = CellModel.for_system("monoclinic", [5.0, 6.0, 7.0, 90, 100, 90])
    assert monoclinic.free_names == ("a", "b", "c", "beta")
    assert CellModel.for_system("triclinic", [5, 6, 7, 80, 85, 95]).n_free == 6
    with pytest.raises(ValueError):
        CellModel.for_system("hexagonal", [4.0, 4.0, 9.0, 90, 90, 90])  # not on hexagonal axes


def test_reflections_respect_absences_and_setting() -> None:
    # P 21/c (standard) vs P 21/n: h0l with l odd, resp. h + l odd, are absent
    standard = SpaceGroupSetting.from_key(14)
    n_setting = SpaceGroupSetting.from_key("P 1 21/n 1")
    assert n_setting.number == 14 and n_setting.crystal_system == "monoclinic"
    hkl = np.array([[1, 0, 1], [1, 0, 2], [0, 1, 0], [0, 2, 0], [2, 0, 0]])
    assert standard.is_absent(hkl).tolist() == [True, False, True, False, False]
    assert n_setting.is_absent(hkl).tolist() == [False, True, True, False, False]
    # cubic: the 24 permutations/signs of 321 are one group; F centring leaves h, k, l all even or all odd
    cell = CellModel.for_system("cubic", [5.43, 5.43, 5.43, 90, 90, 90])
    groups = allowed_reflections(cell, SpaceGroupSetting.from_key(225), 1.0, 10.0)
    assert all(len(set(np.asarray(h) % 2)) == 1 for h in groups.hkl)
    assert {tuple(sorted(np.abs(h))) for h in groups.hkl[:3]} == {(1, 1, 1), (0, 0, 2), (0, 2, 2)}
    assert groups.count[0] == 4  # 111: 8 reflections, 4 Friedel pairs


def test_format_uncertain() -> None:
    assert format_uncertain(5.431021, 0.000042) == "5.43102(4)"
    assert format_uncertain(5.431021, 0.000016) == "5.431021(16)"  # two digits while they read below 20
    assert format_uncertain(104.4873, 0.0052) == "104.487(5)"
    assert format_uncertain(1.5, 0.0) == "1.500000"
