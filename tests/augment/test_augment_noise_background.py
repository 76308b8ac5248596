"""Poisson counting noise and the Chebyshev background, against hand-computed statistics and a numpy fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from numpy.polynomial import chebyshev
from scipy import stats

from powdersym.augment import chebyshev_background, poisson_noise
from powdersym.augment.noise import sample_counts
from powdersym.simulate import preset

LEVELS = torch.tensor([1.0, 0.5, 0.1, 0.01, 0.0], dtype=torch.float64)


def repeated(levels: torch.Tensor, times: int) -> torch.Tensor:
    return levels.repeat(times, 1)


@pytest.mark.parametrize("counts, peak", [(1000.0, 1.0), (50.0, 1.0), (1000.0, 4.0)])
def test_poisson_mean_is_the_pattern_and_variance_is_mean_times_max_over_counts(counts, peak):
    times = 20_000
    patterns = repeated(LEVELS * peak, times)
    out = poisson_noise(patterns, counts, torch.Generator().manual_seed(1))
    mean, var = out.mean(0).numpy(), out.var(0).numpy()
    expected = (LEVELS * peak).numpy()
    # mean: within 5 standard errors; variance of a Poisson in counts = its mean, back in pattern units x scale
    assert np.all(np.abs(mean - expected) <= 5 * np.sqrt(expected * peak / counts / times) + 1e-12)
    assert np.allclose(var, expected * peak / counts, rtol=0.1, atol=1e-12)
    # values are whole counts times max / counts; a zero stays zero; nothing negative
    whole = out.numpy() * counts / peak
    assert np.allclose(whole, np.round(whole), atol=1e-6)
    assert out.min() >= 0 and torch.all(out[:, -1] == 0)


def test_poisson_count_level_is_per_pattern():
    patterns = repeated(LEVELS[:1], 4000).reshape(2, -1)  # two patterns of 2000 points at level 1
    counts = torch.tensor([10.0, 10_000.0], dtype=torch.float64)
    out = poisson_noise(patterns, counts, torch.Generator().manual_seed(3))
    assert out[0].var().item() == pytest.approx(1 / 10, rel=0.15)
    assert out[1].var().item() == pytest.approx(1 / 10_000, rel=0.15)


def test_poisson_leaves_an_all_zero_pattern_zero():
    assert torch.equal(poisson_noise(torch.zeros(2, 7), 100.0), torch.zeros(2, 7))


def test_count_levels_are_log_uniform_in_their_range():
    counts = sample_counts(20_000, (500.0, 1e5), torch.Generator().manual_seed(4), dtype=torch.float64)
    assert counts.min() >= 500 and counts.max() <= 1e5
    law = stats.uniform(math.log(500), math.log(1e5) - math.log(500))
    assert stats.kstest(np.log(counts.numpy()), law.cdf).pvalue > 1e-4


def clean_pattern(inst) -> torch.Tensor:
    patterns = torch.zeros(8, inst.n_points, dtype=torch.float64)
    patterns[:, inst.n_points // 3] = 1.0
    return patterns


@pytest.mark.parametrize("name", ["xray-cuka", "neutron-tof"])
@pytest.mark.parametrize("order", [1, 3, 6])
def test_chebyshev_background_has_the_requested_order(name, order):
    inst = preset(name)
    x = inst.grid()
    patterns = clean_pattern(inst)
    out = chebyshev_background(patterns, x, torch.Generator().manual_seed(order), order=(order, order),
                               amplitude=(0.1, 0.1), level=(0.02, 0.02))
    background = (out - patterns).numpy()
    for row in background:
        exact = chebyshev.Chebyshev.fit(x, row, order, domain=[x[0], x[-1]])
        assert np.abs(exact(x) - row).max() < 1e-9  # order k fits exactly...
        lower = chebyshev.Chebyshev.fit(x, row, order - 1, domain=[x[0], x[-1]])
        assert np.abs(lower(x) - row).max() > 1e-4  # ...order k - 1 does not
        assert row.min() == pytest.approx(0.02) and row.max() == pytest.approx(0.12)  # level, level + amplitude


def test_chebyshev_orders_cover_the_range_and_order_zero_is_flat_at_the_level():
    inst = preset("neutron-cw")
    x = inst.grid()
    patterns = clean_pattern(inst).repeat(25, 1)  # 200 patterns
    out = chebyshev_background(patterns, x, torch.Generator().manual_seed(0), order=(0, 4), amplitude=(0.1, 0.1),
                               level=(0.05, 0.05))
    orders = []
    for row in (out - patterns).numpy():
        fits = [np.abs(chebyshev.Chebyshev.fit(x, row, k, domain=[x[0], x[-1]])(x) - row).max() for k in range(5)]
        orders.append(next(k for k, r in enumerate(fits) if r < 1e-9))
        if orders[-1] == 0:
            assert np.allclose(row, 0.05)
    assert set(orders) == {0, 1, 2, 3, 4}


def test_chebyshev_amplitude_is_relative_to_the_pattern_maximum():
    inst = preset("neutron-cw")
    patterns = clean_pattern(inst)[:2] * torch.tensor([[1.0], [5.0]], dtype=torch.float64)
    out = chebyshev_background(patterns, inst.grid(), torch.Generator().manual_seed(1), order=(2, 2),
                               amplitude=(0.1, 0.1), level=(0.0, 0.0))
    assert (out - patterns).amax(1).tolist() == pytest.approx([0.1, 0.5])
    assert (out - patterns).amin(1).tolist() == pytest.approx([0.0, 0.0], abs=1e-12)


def test_zero_background_changes_nothing():
    inst = preset("neutron-cw")
    patterns = clean_pattern(inst)
    out = chebyshev_background(patterns, inst.grid(), order=(3, 3), amplitude=(0.0, 0.0), level=(0.0, 0.0))
    assert torch.equal(out, patterns)
