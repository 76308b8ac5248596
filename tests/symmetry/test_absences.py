"""Systematic absences against gemmi's GroupOps.is_systematically_absent and hand-known reflection conditions."""

import itertools

import gemmi
import numpy as np
import pytest
import torch

from powdersym.symmetry import (
    absence_table,
    is_systematically_absent,
    is_systematically_absent_batch,
    space_groups,
)

HKL = np.array(list(itertools.product(range(-8, 9), repeat=3)))


@pytest.fixture(scope="module")
def gemmi_absences() -> np.ndarray:
    """bool [231, N]: gemmi's absences for every group (in our setting) over |h|, |k|, |l| <= 8."""
    table = np.zeros((231, len(HKL)), dtype=bool)
    hkl = HKL.tolist()
    for sg in space_groups():
        ops = gemmi.find_spacegroup_by_name(sg.setting_symbol).operations()
        table[sg.number] = [ops.is_systematically_absent(h) for h in hkl]
    return table


def test_numpy_absences_match_gemmi_for_all_groups(gemmi_absences):
    for sg in space_groups():
        assert np.array_equal(is_systematically_absent(sg.number, HKL), gemmi_absences[sg.number]), sg.number


def test_torch_table_matches_gemmi(gemmi_absences):
    table = absence_table(torch.as_tensor(HKL))
    assert table.shape == (231, len(HKL)) and table.dtype == torch.bool
    assert np.array_equal(table.numpy(), gemmi_absences)


def test_batched_form(gemmi_absences):
    numbers = torch.tensor([14, 225, 14, 1, 227, 230])
    batch = is_systematically_absent_batch(numbers, HKL)
    assert np.array_equal(batch.numpy(), gemmi_absences[numbers.numpy()])
    with pytest.raises(ValueError, match="unknown space group"):
        is_systematically_absent_batch(torch.tensor([0, 14]), HKL)


@pytest.mark.parametrize(
    ("symbol", "absent", "present"),
    [
        ("P1", [], [[1, 0, 0], [0, 0, 1]]),
        ("P-1", [], [[1, 2, 3]]),
        ("P 21/c", [[0, 1, 0], [1, 0, 1], [0, 0, 3]], [[0, 2, 0], [1, 0, 2], [1, 1, 1]]),  # 0k0: k=2n; h0l: l=2n
        ("Fm-3m", [[1, 0, 0], [1, 1, 0], [2, 1, 0]], [[1, 1, 1], [2, 0, 0], [2, 2, 0]]),  # h, k, l all odd or even
        ("Im-3m", [[1, 0, 0], [1, 1, 1]], [[1, 1, 0], [2, 0, 0]]),  # h+k+l = 2n
        # diamond's forbidden 222 is absent only for atoms on 8a, not by the space group
        ("Fd-3m", [[2, 0, 0], [0, 4, 2], [6, 0, 0]], [[2, 2, 2], [4, 0, 0], [1, 1, 1], [0, 2, 2], [0, 4, 4]]),
        ("R-3m", [[1, 0, 0], [0, 1, 0]], [[1, 0, 1], [0, 0, 3], [1, 1, 0]]),  # obverse: -h+k+l = 3n
        ("P6_1", [[0, 0, 1], [0, 0, 3]], [[0, 0, 6], [1, 0, 1]]),  # 000l: l = 6n
    ],
)
def test_hand_known_conditions(symbol, absent, present):
    if absent:
        assert is_systematically_absent(symbol, np.array(absent)).all()
    assert not is_systematically_absent(symbol, np.array(present)).any()


def test_large_indices_are_refused_in_torch():
    with pytest.raises(ValueError, match="too large"):
        absence_table(np.array([[10**6, 0, 0]]))
