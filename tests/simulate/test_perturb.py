"""Per-crystal sample effects inside the simulator, against hand-computed physics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from powdersym.simulate import Perturbation, compute_sticks, preset, simulate
from powdersym.structures import Crystal

A = 5.64
NACL = Crystal(
    [A, A, A, 90, 90, 90],
    [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]],
    ["Na"] * 4 + ["Cl"] * 4,
)


def one(values: float) -> torch.Tensor:
    return torch.tensor([values], dtype=torch.float64)


def pattern(inst, perturbation=None, normalise=False) -> np.ndarray:
    return simulate(NACL, inst, dtype=torch.float64, perturbation=perturbation, normalise=normalise)[0].numpy()


def peak(x: np.ndarray, y: np.ndarray, near: float, window: float = 2.0) -> tuple[float, float]:
    """Centroid and FWHM (linear interpolation at half maximum) of the peak nearest `near`."""
    sel = np.abs(x - near) < window
    xs, ys = x[sel], y[sel]
    top = int(np.argmax(ys))
    half = ys[top] / 2
    left = np.interp(half, ys[: top + 1], xs[: top + 1])
    right = np.interp(half, ys[top:][::-1], xs[top:][::-1])
    above = ys > half / 10
    return float(np.sum(xs[above] * ys[above]) / np.sum(ys[above])), float(right - left)


def two_theta(d: float, lam: float = 1.5403) -> float:
    return 2 * math.degrees(math.asin(lam / (2 * d)))


def test_no_perturbation_changes_nothing():
    inst = preset("neutron-cw")
    assert np.array_equal(pattern(inst), pattern(inst, Perturbation()))
    same = Perturbation(march_dollase=one(1.0), preferred_axis=torch.tensor([[0.0, 0.0, 1.0]]))
    assert np.abs(pattern(inst) - pattern(inst, same)).max() < 1e-9 * pattern(inst).max()


def test_zero_shift_moves_every_peak_by_the_shift():
    inst = preset("neutron-cw")
    x = inst.grid()
    shifted = pattern(inst, Perturbation(zero_shift=one(0.3)))
    for d in (A / 2, A / np.sqrt(8)):  # 200 and 220
        before, _ = peak(x, pattern(inst), two_theta(d))
        after, _ = peak(x, shifted, two_theta(d) + 0.3)
        assert after - before == pytest.approx(0.3, abs=2e-3)


def test_sample_displacement_shifts_by_minus_two_s_cos_theta():
    inst = preset("neutron-cw")
    x = inst.grid()
    s = 2e-3
    moved = pattern(inst, Perturbation(displacement=one(s)))
    for d in (A / 2, A / np.sqrt(20)):  # 200 (low angle) and 420 (high angle)
        tt = two_theta(d)
        expected = -math.degrees(2 * s * math.cos(math.radians(tt / 2)))
        before, _ = peak(x, pattern(inst), tt)
        after, _ = peak(x, moved, tt + expected)
        assert after - before == pytest.approx(expected, abs=3e-3)


def test_march_dollase_reweights_a_cubic_family_as_computed_by_hand():
    """For axis [001] the six {200} reflections split into 2 along the axis (P = r^-3) and 4 across it (P = r^1.5)."""
    inst = preset("neutron-cw")
    r = 0.7
    p = Perturbation(march_dollase=one(r), preferred_axis=torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
    from powdersym.structures import CrystalBatch

    batch = CrystalBatch.from_crystals([NACL], dtype=torch.float64)
    plain = compute_sticks(batch, inst)
    oriented = compute_sticks(batch, inst, perturbation=p)
    hkl = plain.reflections.hkl[0].numpy()
    family = np.all(np.sort(np.abs(hkl), axis=1) == [0, 0, 2], axis=1)
    ratio = oriented.intensities[0, family, 0].sum() / plain.intensities[0, family, 0].sum()
    assert float(ratio) == pytest.approx((2 * r**-3 + 4 * r**1.5) / 6, rel=1e-9)


def test_march_dollase_angle_in_a_triclinic_cell_matches_cartesian_vectors():
    """The factor uses the angle between the scattering vector of hkl and the preferred axis (a reciprocal-lattice
    direction): here against the same angle from Cartesian reciprocal vectors, in an oblique cell."""
    from powdersym.simulate.perturb import orientation_factors
    from powdersym.simulate.reflections import enumerate_reflections, reciprocal_metric
    from powdersym.structures.crystal import lattice_matrix

    lattice = torch.tensor([[5.1, 6.3, 7.7, 78.0, 101.0, 115.0], [4.0, 4.5, 9.0, 90.0, 97.0, 90.0]], dtype=torch.float64)
    refl = enumerate_reflections(lattice, d_min=1.2)
    axis = torch.tensor([[1.0, -2.0, 1.0], [0.0, 1.0, 3.0]], dtype=torch.float64)
    r = torch.tensor([0.6, 1.3], dtype=torch.float64)
    got = orientation_factors(refl.hkl, refl.d, reciprocal_metric(lattice), Perturbation(march_dollase=r, preferred_axis=axis))
    recip = torch.linalg.inv(lattice_matrix(lattice)).transpose(-1, -2)  # rows a*, b*, c*
    q, a = refl.hkl @ recip, (axis[:, None, :] @ recip)  # [B, R, 3], [B, 1, 3]
    cos = (q * a).sum(-1) / (q.norm(dim=-1) * a.norm(dim=-1)).clamp(min=1e-12)
    expected = (r[:, None] ** 2 * cos**2 + (1 - cos**2) / r[:, None]) ** -1.5
    assert torch.allclose(got[refl.mask], expected[refl.mask], rtol=1e-10)


def test_size_and_strain_broadening_widths():
    """Scherrer (Lorentzian, K = 0.9) convolved with the Gaussian instrument gives the Voigt FWHM of Olivero &
    Longbothum (1977); microstrain and resolution jitter add Gaussian variance."""
    inst = preset("neutron-cw")
    x = inst.grid()
    tt = two_theta(A / 2)
    theta = math.radians(tt / 2)
    _, base = peak(x, pattern(inst), tt)
    size = 400.0
    lorentz = math.degrees(0.9 * 1.5403 / (size * math.cos(theta)))
    voigt = 0.5346 * lorentz + math.sqrt(0.2166 * lorentz**2 + base**2)
    _, broadened = peak(x, pattern(inst, Perturbation(crystallite_size=one(size))), tt)
    assert broadened == pytest.approx(voigt, rel=0.03)
    eps = 3e-3
    _, strained = peak(x, pattern(inst, Perturbation(microstrain=one(eps))), tt)
    assert strained == pytest.approx(math.hypot(base, math.degrees(4 * eps * math.tan(theta))), rel=0.03)
    _, jittered = peak(x, pattern(inst, Perturbation(resolution_jitter=one(0.44))), tt)
    assert jittered == pytest.approx(base * math.sqrt(1.44), rel=0.03)


def test_broadening_conserves_integrated_intensity_and_batches_independently():
    inst = preset("neutron-cw")
    crystals = [NACL, NACL]
    p = Perturbation(crystallite_size=torch.tensor([300.0, 1e7], dtype=torch.float64))
    both = simulate(crystals, inst, dtype=torch.float64, perturbation=p, normalise=False).numpy()
    assert both[0].sum() == pytest.approx(both[1].sum(), rel=1e-2)
    assert np.abs(both[1] - pattern(inst)).max() < 1e-3 * pattern(inst).max()  # 1 mm crystallites: no broadening


def test_intensity_jitter_rescales_each_reflection_by_a_function_of_d_only():
    """Sticks with intensity jitter: the same positions, and each reflection's intensity times exp(sigma z(d)) with
    z computed here by hand from the drawn frequencies and phases; reflections of equal d (the members of a cubic
    family) share one factor; sigma 0 changes nothing; over many random phases ln(factor) has standard deviation
    sigma."""
    from powdersym.simulate.perturb import intensity_factors

    inst = preset("xray-cuka")
    generator = torch.Generator().manual_seed(3)
    frequency = torch.exp(torch.empty(1, 6, dtype=torch.float64).uniform_(math.log(200), math.log(2000), generator=generator))
    phase = torch.empty(1, 6, dtype=torch.float64).uniform_(0, 2 * math.pi, generator=generator)
    jittered = Perturbation(intensity_jitter=one(0.8), jitter_frequency=frequency, jitter_phase=phase)
    from powdersym.structures import CrystalBatch

    batch = CrystalBatch.from_crystals([NACL], dtype=torch.float64)
    plain, moved = compute_sticks(batch, inst), compute_sticks(batch, inst, perturbation=jittered)
    real = plain.reflections.mask[0]
    assert torch.equal(torch.isnan(plain.positions), torch.isnan(moved.positions))
    assert torch.allclose(plain.positions[0][real], moved.positions[0][real])
    d = plain.reflections.d[0][real].double()
    z = (torch.sin(2 * math.pi * frequency[0][None, :] / d[:, None] + phase[0][None, :])).sum(1) * math.sqrt(2 / 6)
    strong = plain.intensities[0][real][..., 0] > 1e-6 * plain.intensities[0].max()  # NaCl's absent hkl are ~0
    ratio = (moved.intensities[0][real] / plain.intensities[0][real].clamp(min=1e-300)).double()
    np.testing.assert_allclose(ratio[strong][:, 0].numpy(), torch.exp(0.8 * z)[strong].numpy(), rtol=1e-9)
    # the six members of {200} share a factor; {200} and {220} do not
    f200, f220 = ratio[(d - A / 2).abs() < 1e-9, 0], ratio[(d - A / math.sqrt(8)).abs() < 1e-9, 0]
    assert len(f200) >= 3 and torch.allclose(f200, f200[0].expand_as(f200)) and not torch.isclose(f200[0], f220[0])
    off = Perturbation(intensity_jitter=one(0.0), jitter_frequency=frequency, jitter_phase=phase)
    assert torch.allclose(compute_sticks(batch, inst, perturbation=off).intensities, plain.intensities)
    many = torch.linspace(0.8, 3.0, 400, dtype=torch.float64)[None].expand(2000, -1)  # d [B, R]
    phases = torch.empty(2000, 6, dtype=torch.float64).uniform_(0, 2 * math.pi, generator=generator)
    spread = Perturbation(intensity_jitter=torch.full((2000,), 0.5, dtype=torch.float64),
                          jitter_frequency=frequency.expand(2000, -1), jitter_phase=phases)  # fmt: skip
    assert float(torch.log(intensity_factors(many, spread)).std()) == pytest.approx(0.5, rel=0.05)
