"""`augment`: switches, order, normalisation, seeding, per-pattern draws, and random input (hypothesis)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from powdersym.augment import AugmentConfig, augment, max_normalise
from powdersym.simulate import Instrument, preset

INST = preset("neutron-cw")


def peaks(batch: int = 4, seed: int = 0) -> torch.Tensor:
    """Max-normalised patterns of a few Gaussian peaks on INST's grid."""
    g = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(INST.grid())
    centres = 10 + 140 * torch.rand(batch, 6, 1, generator=g, dtype=torch.float64)
    heights = torch.rand(batch, 6, 1, generator=g, dtype=torch.float64)
    return max_normalise((heights * torch.exp(-0.5 * ((x - centres) / 0.3) ** 2)).sum(1))


SWITCHES = {
    "impurity": dict(impurity_fraction=(0.01, 0.2)),
    "chebyshev": dict(chebyshev_order=(0, 6)),
    "vecsei_background": dict(vecsei_background=0.1),
    "poisson": dict(poisson_counts=(500.0, 1e5)),
    "vecsei_noise": dict(vecsei_noise=(0.002, 0.02)),
}


def run(config: AugmentConfig, patterns: torch.Tensor, seed: int = 0) -> torch.Tensor:
    impurity = peaks(len(patterns), seed=99)
    return augment(patterns, INST, config, torch.Generator().manual_seed(seed), impurity=impurity)


def test_nothing_switched_on_leaves_the_patterns_unchanged():
    patterns = peaks()
    assert torch.equal(run(AugmentConfig.none(), patterns), patterns)
    raw = 7.0 * patterns
    assert torch.equal(run(AugmentConfig(normalise=False), raw), raw)
    assert torch.allclose(run(AugmentConfig(), raw), patterns, rtol=1e-15, atol=0)


@pytest.mark.parametrize("switch", SWITCHES)
def test_each_switch_alone_changes_the_patterns_and_normalises_them(switch):
    patterns = peaks()
    out = run(AugmentConfig(**SWITCHES[switch]), patterns)
    assert not torch.allclose(out, patterns, atol=1e-4)
    assert torch.isfinite(out).all() and out.min() >= 0
    assert torch.allclose(out.amax(1), torch.ones(len(out), dtype=out.dtype))


def test_vecsei_preset_is_exactly_the_paper_s_two_augmentations():
    config = AugmentConfig.vecsei()
    on = {f.name for f in dataclasses.fields(config) if getattr(config, f.name) != getattr(AugmentConfig(), f.name)}
    assert on == {"vecsei_background", "vecsei_noise"}
    assert config.vecsei_noise == (0.002, 0.02) and config.vecsei_background == 0.1
    # without renormalisation, eq. 18: f_theory + background + noise with noise >= 0.002 and background <= 0.15
    added = run(config.replace(normalise=False), peaks()) - peaks()
    assert added.min() >= 0.002 and added.max() <= 0.15 + 0.02


def test_same_seed_same_output_different_seed_different_output():
    config = AugmentConfig.realistic(INST)
    patterns = peaks()
    assert torch.equal(run(config, patterns, seed=1), run(config, patterns, seed=1))
    assert not torch.equal(run(config, patterns, seed=1), run(config, patterns, seed=2))


def test_every_pattern_in_a_batch_gets_its_own_draw():
    patterns = peaks(1).repeat(6, 1)
    for switch in ("chebyshev", "vecsei_noise", "poisson"):
        out = run(AugmentConfig(**SWITCHES[switch]), patterns)
        assert len({tuple(row.tolist()) for row in out}) == 6, switch
    # Vecsei's background may choose no function (probability 1/16), so ask for many patterns
    out = run(AugmentConfig(vecsei_background=0.1), peaks(1).repeat(64, 1))
    assert len({tuple(row.tolist()) for row in out}) > 50


def test_impurity_switched_on_without_impurity_patterns_is_refused():
    with pytest.raises(ValueError, match="impurity"):
        augment(peaks(), INST, AugmentConfig(impurity_fraction=(0.01, 0.2)))


def test_grid_mismatch_and_bad_ranges_are_refused():
    with pytest.raises(ValueError, match="points"):
        augment(peaks()[:, :-1], INST, AugmentConfig.vecsei())
    with pytest.raises(ValueError):
        AugmentConfig(poisson_counts=(100.0, 10.0))
    with pytest.raises(ValueError):
        AugmentConfig(impurity_fraction=(0.0, 1.0))


def test_ranges_replace_one_effect_each_and_are_checked():
    from powdersym.augment.config import parse_ranges

    base = AugmentConfig.realistic("xray-cuka")
    ranges = parse_ranges(["crystallite_size=1000:1e4", "microstrain=off", "zero-shift=0.01", "chebyshev_order=2:5"])
    assert ranges == {"crystallite_size": (1000.0, 10000.0), "microstrain": None, "zero_shift": (0.01, 0.01),
                      "chebyshev_order": (2.0, 5.0)}  # fmt: skip
    changed = base.with_ranges(ranges)
    assert changed.crystallite_size == (1000.0, 10000.0) and changed.microstrain is None
    assert changed.chebyshev_order == (2, 5) and isinstance(changed.chebyshev_order[0], int)
    assert changed.replace(crystallite_size=base.crystallite_size, microstrain=base.microstrain, zero_shift=base.zero_shift,
                           chebyshev_order=base.chebyshev_order) == base  # fmt: skip
    for bad, message in ((["size=1:2"], None), (["crystallite_size"], "NAME=LOW:HIGH"), (["microstrain=a:b"], "LOW:HIGH")):
        if message:
            with pytest.raises(ValueError, match=message):
                parse_ranges(bad)
    with pytest.raises(ValueError, match="unknown augmentation range 'size'"):
        base.with_ranges(parse_ranges(["size=1:2"]))
    with pytest.raises(ValueError, match="low <= high"):
        base.with_ranges({"crystallite_size": (1e4, 1000)})
    with pytest.raises(ValueError, match="cannot be switched off"):
        base.with_ranges({"chebyshev_level": None})


def test_presets_for_each_instrument():
    for name in ("xray-cuka", "neutron-cw", "neutron-tof"):
        config = AugmentConfig.realistic(name)
        assert config.perturbs and config.poisson_counts is not None and config.vecsei_noise is None
        assert config.to_dict()["impurity_fraction"] == (0.01, 0.2)
    assert not AugmentConfig.none().perturbs and not AugmentConfig.vecsei().perturbs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_with_a_cpu_generator_matches_the_cpu():
    config = AugmentConfig.vecsei().replace(chebyshev_order=(0, 6))
    patterns = peaks()
    on_cpu = run(config, patterns)
    on_gpu = run(config, patterns.cuda())
    assert on_gpu.device.type == "cuda" and torch.allclose(on_gpu.cpu(), on_cpu)


def tiny_instrument(n: int) -> Instrument:
    return Instrument("tiny", "xray", "cw", 10.0, 10.0 + 0.5 * (n - 1), 0.5)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    batch=st.integers(1, 4),
    n=st.integers(2, 40),
    switches=st.lists(st.sampled_from(sorted(SWITCHES)), unique=True),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_patterns_in_finite_max_normalised_non_negative_patterns_out(data, batch, n, switches, dtype, seed):
    values = st.floats(0, 1e4, allow_subnormal=False, width=32)
    patterns = torch.as_tensor(data.draw(arrays(np.float32, (batch, n), elements=values)), dtype=dtype)
    impurity = torch.as_tensor(data.draw(arrays(np.float32, (batch, n), elements=values)), dtype=dtype)
    config = AugmentConfig(**{k: v for s in switches for k, v in SWITCHES[s].items()})
    inst = tiny_instrument(n)
    assert inst.n_points == n
    out = augment(patterns, inst, config, torch.Generator().manual_seed(seed), impurity=impurity)
    assert out.shape == patterns.shape and out.dtype == dtype
    assert torch.isfinite(out).all() and out.min() >= 0
    positive = patterns.amax(1) > 0
    assert torch.allclose(out.amax(1)[positive], torch.ones((), dtype=dtype))
    assert torch.all(out[~positive] == 0)  # no intensity to scale anything by: stays zero
