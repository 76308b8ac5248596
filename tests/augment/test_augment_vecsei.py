"""Vecsei et al.'s noise and background against the distributions stated in their appendix (eqs. 14-18).

Expected distributions come from scipy.stats, built from the paper's numbers; the draws are seeded, so the
statistical tests are deterministic (their thresholds leave room for any seed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from powdersym.augment import VecseiBackground, sample_vecsei_background, vecsei_background, vecsei_noise
from powdersym.augment.sampling import relative_coordinate
from powdersym.simulate import preset

N = 20_000
P_MIN = 1e-4  # KS / chi-square p-values below this reject the paper's distribution


@pytest.fixture(scope="module")
def params() -> VecseiBackground:
    return sample_vecsei_background(N, torch.Generator().manual_seed(11), dtype=torch.float64)


def ks(sample: torch.Tensor, distribution) -> float:
    return stats.kstest(sample.numpy(), distribution.cdf).pvalue


def test_each_function_is_chosen_with_probability_half_independently(params):
    chosen = params.chosen.numpy()
    assert np.all(np.abs(chosen.mean(0) - 0.5) < 4 * math.sqrt(0.25 / N))
    counts = np.bincount(chosen.sum(1), minlength=5)
    expected = N * stats.binom(4, 0.5).pmf(np.arange(5))
    assert stats.chisquare(counts, expected).pvalue > P_MIN


def test_threshold_is_a_tenth_over_the_number_of_functions_chosen(params):
    k = params.chosen.sum(1)
    assert torch.allclose(params.threshold[k > 0], 0.1 / k[k > 0].double())


def test_functions_not_chosen_are_absent(params):
    c = params.chosen
    assert torch.all(params.step_up_height[~c[:, 0]] == 0)
    assert torch.all(params.step_down_height[~c[:, 1]] == 0)
    assert torch.all(params.polynomial_coefficients[~c[:, 2]] == 0)
    assert torch.all(params.bump_height[~c[:, 3]] == 0)


def test_step_heights_are_truncated_normal_mean_third_sd_seventh_of_t_on_zero_to_t(params):
    # eq. 14: h ~ N(T/3, T/7) truncated to [0, T]; in units of T: loc 1/3, scale 1/7, bounds [0, 1]
    law = stats.truncnorm((0 - 1 / 3) / (1 / 7), (1 - 1 / 3) / (1 / 7), loc=1 / 3, scale=1 / 7)
    for i, height in ((0, params.step_up_height), (1, params.step_down_height)):
        h = (height / params.threshold)[params.chosen[:, i]]
        assert h.min() >= 0 and h.max() <= 1
        assert ks(h, law) > P_MIN


def test_step_steepness_and_positions_are_uniform_as_stated(params):
    assert ks(params.step_up_steepness, stats.uniform(10, 50)) > P_MIN  # a ~ U(10, 60)
    assert ks(params.step_down_steepness, stats.uniform(10, 50)) > P_MIN
    assert ks(params.step_up_position, stats.uniform(0, 1 / 7)) > P_MIN  # U(0, W), W = 1/7
    assert ks(params.step_down_position, stats.uniform(6 / 7, 1 / 7)) > P_MIN  # U(1 - W, 1)


def test_polynomial_degree_and_coefficients_follow_eq_16(params):
    on = params.chosen[:, 2]
    degree = params.polynomial_degree[on].numpy()
    coefficients = (params.polynomial_coefficients[on] / params.threshold[on, None]).numpy()
    counts = np.bincount(degree, minlength=5)
    assert len(counts) == 5 and stats.chisquare(counts).pvalue > P_MIN  # n_max uniform on {0, ..., 4}
    n = np.arange(5)[None, :]
    assert np.all(coefficients[n > degree[:, None]] == 0)  # no terms above n_max
    inside = n <= degree[:, None]
    zero = coefficients[inside] == 0
    assert abs(zero.mean() - 0.5) < 4 * math.sqrt(0.25 / inside.sum())  # a_n = 0 with probability 1/2
    # otherwise a_n = 3T / (2 (n_max + 1)) U(-1, 1)
    scaled = (coefficients / (3 / (2 * (degree[:, None] + 1))))[inside & (coefficients != 0)]
    assert stats.kstest(scaled, stats.uniform(-1, 2).cdf).pvalue > P_MIN


def test_bump_height_and_steepness_follow_eq_17(params):
    # h ~ N(2T/5, 3T/35) truncated to [0, 3T/5]; n ~ U(40, 70)
    law = stats.truncnorm((0 - 2 / 5) / (3 / 35), (3 / 5 - 2 / 5) / (3 / 35), loc=2 / 5, scale=3 / 35)
    h = (params.bump_height / params.threshold)[params.chosen[:, 3]]
    assert h.min() >= 0 and h.max() <= 3 / 5 + 1e-12
    assert ks(h, law) > P_MIN
    assert ks(params.bump_steepness, stats.uniform(40, 30)) > P_MIN


def one_function(**values) -> VecseiBackground:
    """Parameters of one pattern with everything zero except the given values."""
    zero = torch.zeros(1, dtype=torch.float64)
    fields = dict(
        chosen=torch.ones(1, 4, dtype=torch.bool), threshold=zero + 0.1, step_up_height=zero, step_up_steepness=zero,
        step_up_position=zero, step_down_height=zero, step_down_steepness=zero, step_down_position=zero,
        polynomial_degree=torch.zeros(1, dtype=torch.long),
        polynomial_coefficients=torch.zeros(1, 5, dtype=torch.float64),
        bump_height=zero, bump_steepness=zero,
    )
    fields.update({k: torch.as_tensor(v, dtype=fields[k].dtype).reshape(fields[k].shape) for k, v in values.items()})
    return VecseiBackground(**fields)


THETA_REL = torch.linspace(0, 1, 2001, dtype=torch.float64)


def test_step_up_falls_from_h_to_zero_with_half_height_at_its_position():
    h, a, s = 0.03, 25.0, 0.1
    curve = one_function(step_up_height=h, step_up_steepness=a, step_up_position=s).curve(THETA_REL)[0]
    assert torch.all(torch.diff(curve) <= 0)
    assert curve[200].item() == pytest.approx(h / 2)  # theta_rel = 0.1
    assert curve[0].item() == pytest.approx(h / (1 + math.exp(-a * s)))  # hand value of eq. 14 at theta_rel = 0
    assert curve[-1].item() == pytest.approx(h / (1 + math.exp(a * 0.9)))


def test_step_down_rises_from_zero_to_h_with_half_height_at_its_position():
    h, a, s = 0.02, 40.0, 0.9
    curve = one_function(step_down_height=h, step_down_steepness=a, step_down_position=s).curve(THETA_REL)[0]
    assert torch.all(torch.diff(curve) >= 0)
    assert curve[1800].item() == pytest.approx(h / 2)
    assert curve[-1].item() == pytest.approx(h * (1 - 1 / (1 + math.exp(a * 0.1))))


def test_bump_peaks_at_low_angle_two_over_n_with_height_four_h_over_e_squared():
    h, n = 0.04, 50.0
    curve = one_function(bump_height=h, bump_steepness=n).curve(THETA_REL)[0]
    top = int(torch.argmax(curve))
    assert THETA_REL[top].item() == pytest.approx(2 / n, abs=1e-3)
    assert curve[top].item() == pytest.approx(4 * h * math.exp(-2), rel=1e-5)
    assert curve[0].item() == 0


def test_polynomial_is_the_absolute_value_of_the_sum():
    a = [0.01, -0.05, 0.0, 0.03, 0.0]
    curve = one_function(polynomial_coefficients=a, polynomial_degree=3).curve(THETA_REL)[0]
    t = THETA_REL.numpy()
    assert np.allclose(curve.numpy(), np.abs(0.01 - 0.05 * t + 0.03 * t**3))


def test_background_is_the_sum_of_its_components_is_non_negative_and_bounded(params):
    curve = params.curve(THETA_REL[::20])
    parts = params.components(THETA_REL[::20])
    assert torch.allclose(curve, sum(parts.values()))
    assert curve.min() >= 0
    # largest possible: polynomial alone, |sum a_n| <= (n_max + 1) 3T / (2 (n_max + 1)) = 1.5 T with T = 0.1
    assert curve.max() <= 0.15 + 1e-12
    none = ~params.chosen.any(1)
    assert torch.all(curve[none] == 0)


def test_background_is_relative_to_the_pattern_maximum_and_uses_the_relative_angle():
    inst = preset("xray-cuka")
    x = inst.grid()
    patterns = torch.zeros(3, inst.n_points, dtype=torch.float64)
    patterns[:, 4000] = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    out = vecsei_background(patterns, x, g)
    expected = sample_vecsei_background(3, torch.Generator().manual_seed(5), dtype=torch.float64).curve(
        torch.as_tensor((x - x[0]) / (x[-1] - x[0]))
    )
    assert torch.allclose(out - patterns, expected * patterns.amax(1, keepdim=True))
    # theta_rel is the same on a theta and a 2theta axis
    assert torch.allclose(relative_coordinate(x, patterns), relative_coordinate(x / 2, patterns))


def test_noise_is_uniform_between_0_002_and_0_02_of_the_maximum_at_every_point():
    patterns = torch.zeros(4, 5000, dtype=torch.float64)
    patterns[:, 0] = torch.tensor([1.0, 1.0, 3.0, 0.5], dtype=torch.float64)
    noise = (vecsei_noise(patterns, torch.Generator().manual_seed(2)) - patterns)[:, 1:]
    noise = noise / patterns[:, :1]
    assert noise.min() >= 0.002 and noise.max() <= 0.02
    for row in noise:  # each pattern, each point: U(0.002, 0.02)
        assert ks(row, stats.uniform(0.002, 0.018)) > P_MIN
    assert not torch.equal(noise[0], noise[1])
