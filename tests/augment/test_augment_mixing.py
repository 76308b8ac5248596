"""Impurity mixing: the impurity's share of the integrated intensity is the requested fraction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from powdersym.augment import mix_impurity
from powdersym.augment.mixing import sample_fractions
from powdersym.simulate import preset


def triangle(n: int, centre: int, half_width: int, height: float) -> np.ndarray:
    i = np.arange(n)
    return height * np.clip(1 - np.abs(i - centre) / half_width, 0, None)


def test_hand_computed_case_on_a_unit_grid():
    # main: a triangle of height 1, half-width 4 (area 4); impurity: height 2, half-width 1 (area 2)
    main = torch.tensor(triangle(40, 10, 4, 1.0))[None]
    impurity = torch.tensor(triangle(40, 30, 1, 2.0))[None]
    mixed = mix_impurity(main, impurity, 0.2)
    # w = 0.2 / 0.8 * 4 / 2 = 0.5: the impurity peak is 1 high; the main peak is untouched
    assert mixed[0, 30].item() == pytest.approx(1.0)
    assert torch.equal(mixed[0, :20], main[0, :20])
    added = np.trapezoid((mixed - main)[0].numpy())
    assert added / np.trapezoid(mixed[0].numpy()) == pytest.approx(0.2)


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.2])
def test_fraction_of_integrated_intensity_on_a_time_of_flight_grid(fraction):
    inst = preset("neutron-tof")
    x, n = inst.grid(), inst.n_points
    main = torch.tensor(triangle(n, n // 4, 30, 1.0) + triangle(n, n // 2, 50, 0.3))[None]
    impurity = torch.tensor(triangle(n, 3 * n // 4, 80, 1.0))[None]
    mixed = mix_impurity(main, impurity, fraction, x)
    share = np.trapezoid((mixed - main)[0].numpy(), x) / np.trapezoid(mixed[0].numpy(), x)
    assert share == pytest.approx(fraction, rel=1e-9)


def test_zero_fraction_or_empty_impurity_changes_nothing():
    main = torch.rand(3, 50, generator=torch.Generator().manual_seed(0))
    impurity = torch.rand(3, 50, generator=torch.Generator().manual_seed(1))
    assert torch.equal(mix_impurity(main, impurity, 0.0), main)
    assert torch.equal(mix_impurity(main, torch.zeros_like(main), 0.1), main)


def test_fractions_per_pattern():
    main = torch.tensor(np.stack([triangle(60, 10, 5, 1.0)] * 3))
    impurity = torch.tensor(np.stack([triangle(60, 45, 5, 1.0)] * 3))
    fractions = torch.tensor([0.0, 0.1, 0.15], dtype=torch.float64)
    mixed = mix_impurity(main, impurity, fractions)
    shares = (mixed - main).sum(1) / mixed.sum(1)  # equal to the trapezoid areas: the patterns end at zero
    assert shares.tolist() == pytest.approx([0.0, 0.1, 0.15])


def test_sampled_fractions_are_uniform_between_1_and_20_percent_with_the_given_probability():
    n = 20_000
    fractions = sample_fractions(n, (0.01, 0.20), 0.5, torch.Generator().manual_seed(2), dtype=torch.float64)
    mixed = fractions[fractions > 0].numpy()
    assert abs(len(mixed) / n - 0.5) < 4 * math.sqrt(0.25 / n)
    assert mixed.min() >= 0.01 and mixed.max() <= 0.20
    assert stats.kstest(mixed, stats.uniform(0.01, 0.19).cdf).pvalue > 1e-4


def test_bad_input_is_refused():
    main = torch.ones(2, 5)
    with pytest.raises(ValueError, match="must match"):
        mix_impurity(main, torch.ones(2, 6), 0.1)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        mix_impurity(main, main, 1.0)
