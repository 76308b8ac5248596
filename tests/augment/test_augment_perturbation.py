"""Per-crystal effects drawn for the simulator: the configured distributions, and a run through `simulate`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from powdersym.augment import LOW_INDEX_AXES, AugmentConfig, augment, sample_perturbation
from powdersym.simulate import Perturbation, preset, simulate
from powdersym.structures import Crystal

N = 20_000
P_MIN = 1e-4


def ks(sample: torch.Tensor, distribution) -> float:
    return stats.kstest(sample.double().numpy(), distribution.cdf).pvalue


def test_no_effects_switched_on_gives_an_empty_perturbation():
    p = sample_perturbation(5, "xray-cuka", AugmentConfig.none())
    assert isinstance(p, Perturbation)
    assert all(getattr(p, name) is None for name in vars(p))


def test_realistic_xray_draws_follow_the_documented_distributions():
    config = AugmentConfig.realistic("xray-cuka")
    p = sample_perturbation(N, "xray-cuka", config, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert ks(p.zero_shift, stats.uniform(-0.05, 0.1)) > P_MIN  # degrees 2theta
    assert ks(p.displacement, stats.uniform(-5e-4, 1e-3)) > P_MIN
    assert ks(p.march_dollase, stats.uniform(0.7, 0.6)) > P_MIN
    assert ks(torch.log(p.crystallite_size), stats.uniform(math.log(200), math.log(5000 / 200))) > P_MIN
    assert ks(p.microstrain, stats.uniform(0, 2e-3)) > P_MIN
    assert ks(p.resolution_jitter, stats.uniform(0, 0.3)) > P_MIN
    for value in (p.zero_shift, p.displacement, p.march_dollase, p.crystallite_size):
        assert value.shape == (N,) and value.dtype == torch.float64


def test_preferred_axes_are_the_13_low_index_directions_equally_often():
    axes = {tuple(a) for a in LOW_INDEX_AXES}
    assert len(axes) == 13 and all(max(map(abs, a)) == 1 for a in axes)
    assert not any(tuple(-c for c in a) in axes for a in axes)  # one of each +- pair
    config = AugmentConfig(march_dollase=(0.7, 1.3))
    p = sample_perturbation(13_000, "xray-cuka", config, torch.Generator().manual_seed(1))
    assert p.preferred_axis.shape == (13_000, 3)
    drawn = [tuple(int(c) for c in a) for a in p.preferred_axis.tolist()]
    counts = np.array([drawn.count(a) for a in LOW_INDEX_AXES])
    assert counts.sum() == 13_000 and stats.chisquare(counts).pvalue > P_MIN


def test_time_of_flight_defaults_shift_in_microseconds_and_leave_displacement_off():
    p = sample_perturbation(N, "neutron-tof", AugmentConfig.realistic("neutron-tof"), torch.Generator().manual_seed(2))
    assert p.displacement is None
    assert ks(p.zero_shift, stats.uniform(-5, 10)) > P_MIN
    neutron_cw = sample_perturbation(10, "neutron-cw", AugmentConfig.realistic("neutron-cw"))
    assert neutron_cw.displacement is None and neutron_cw.zero_shift.abs().max() <= 0.05


def test_same_seed_same_draws_different_seed_different_draws():
    config = AugmentConfig.realistic("xray-cuka")
    a, b, c = (sample_perturbation(8, "xray-cuka", config, torch.Generator().manual_seed(s)) for s in (7, 7, 8))
    assert torch.equal(a.crystallite_size, b.crystallite_size) and torch.equal(a.preferred_axis, b.preferred_axis)
    assert not torch.equal(a.crystallite_size, c.crystallite_size)
    assert len(set(a.zero_shift.tolist())) == 8  # every crystal its own draw


NACL = Crystal(
    [5.64] * 3 + [90] * 3,
    [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]],
    ["Na"] * 4 + ["Cl"] * 4,
)
SILICON = Crystal(
    [5.431] * 3 + [90] * 3,
    [[0, 0, 0], [0.25, 0.25, 0.25], [0, 0.5, 0.5], [0.25, 0.75, 0.75], [0.5, 0, 0.5], [0.75, 0.25, 0.75],
     [0.5, 0.5, 0], [0.75, 0.75, 0.25]],
    ["Si"] * 8,
)


@pytest.mark.parametrize("name", ["xray-cuka", "neutron-cw", "neutron-tof"])
def test_realistic_training_step_through_the_simulator(name):
    inst = preset(name)
    config = AugmentConfig.realistic(inst)
    g = torch.Generator().manual_seed(3)
    perturbation = sample_perturbation(3, inst, config, g)
    clean = simulate([NACL] * 3, inst)
    perturbed = simulate([NACL] * 3, inst, perturbation=perturbation)
    out = augment(perturbed, inst, config, g, impurity=simulate([SILICON] * 3, inst))
    assert not torch.equal(perturbed, clean)
    assert out.shape == clean.shape and torch.isfinite(out).all() and out.min() >= 0
    assert torch.allclose(out.amax(1), torch.ones(3))


def test_intensity_jitter_is_drawn_last_within_its_ranges():
    """Turning the intensity jitter on leaves every other per-crystal draw as it was (so earlier streams replay
    unchanged) and gives sigma in its range, JITTER_WAVES frequencies in JITTER_FREQUENCIES and phases in [0, 2 pi)."""
    from powdersym.augment.perturbation import JITTER_FREQUENCIES, JITTER_WAVES

    base = AugmentConfig.realistic("xray-cuka")
    plain = sample_perturbation(256, "xray-cuka", base, torch.Generator().manual_seed(4))
    jittered = sample_perturbation(256, "xray-cuka", base.with_ranges({"intensity_jitter": (0.2, 0.6)}), torch.Generator().manual_seed(4))
    for name in ("zero_shift", "displacement", "march_dollase", "crystallite_size", "microstrain", "resolution_jitter"):
        assert torch.equal(getattr(plain, name), getattr(jittered, name)), name
    assert plain.intensity_jitter is None and plain.jitter_phase is None
    assert 0.2 <= float(jittered.intensity_jitter.min()) and float(jittered.intensity_jitter.max()) <= 0.6
    assert jittered.jitter_frequency.shape == (256, JITTER_WAVES) == jittered.jitter_phase.shape
    assert JITTER_FREQUENCIES[0] <= float(jittered.jitter_frequency.min()) <= float(jittered.jitter_frequency.max()) <= JITTER_FREQUENCIES[1]
    assert 0 <= float(jittered.jitter_phase.min()) and float(jittered.jitter_phase.max()) < 2 * math.pi
    with pytest.raises(ValueError, match="intensity_jitter"):
        AugmentConfig(intensity_jitter=(-0.1, 0.2))
