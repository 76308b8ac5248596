"""SGAN generator (Lolla et al. Fig. 5) and losses (eqs. 1-3) against direct computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from powdersym.models import (
    build_generator,
    build_sgan,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    real_fake_logit,
    real_probability,
    unsupervised_discriminator_loss,
)


def test_generator_paper_length_without_resampling():
    g = build_generator(3041)
    assert isinstance(g.resample, torch.nn.Identity)
    # (100 - 1) * 2 + 17 = 215, +14, +13 -> 242, 241 * 3 + 18 = 741, +12 -> 753, 752 * 4 + 11 = 3019, +8, +8, +6
    convs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose1d)]
    assert [(c.kernel_size[0], c.stride[0]) for c in convs] == [(17, 2), (15, 1), (14, 1), (18, 3), (13, 1), (11, 4),
                                                                 (9, 1), (9, 1), (7, 1)]  # fmt: skip
    assert all(c.bias is None for c in convs)
    torch.manual_seed(0)
    out = g(g.sample_noise(4))
    assert out.shape == (4, 3041)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("n_points", [8501, 5200])
def test_generator_other_lengths(n_points):
    torch.manual_seed(0)
    g = build_generator(n_points)
    out = g(torch.randn(2, 1, 100))
    assert out.shape == (2, n_points)
    assert out.min() >= 0 and out.max() <= 1


def test_real_probability_is_z_over_z_plus_one():
    logits = torch.tensor([[0.3, -1.2, 2.0], [-4.0, -5.0, -3.5], [1.0, 1.0, 1.0]], dtype=torch.float64)
    z = logits.exp().sum(-1)
    torch.testing.assert_close(real_probability(logits), (z / (z + 1)).float())
    torch.testing.assert_close(real_fake_logit(logits), z.log().float())


def naive_d(logits: torch.Tensor) -> torch.Tensor:
    z = logits.double().exp().sum(-1)
    return z / (z + 1)


def test_generator_loss_matches_naive_eq2():
    fake = torch.tensor([[0.5, -0.3], [-2.0, -1.0], [1.5, 0.1]])
    expected = -naive_d(fake).log().mean()
    assert generator_loss(fake).item() == pytest.approx(expected.item(), rel=1e-6)


def test_discriminator_loss_matches_naive_eq3():
    real = torch.tensor([[0.2, 1.1, -0.4], [2.0, -1.0, 0.0]])
    fake = torch.tensor([[-1.0, -2.0, -0.5], [0.3, 0.2, 0.1]])
    labelled = torch.tensor([[1.0, 0.0, -1.0], [0.1, 0.9, 0.3], [-0.5, 0.2, 2.2]])
    labels = torch.tensor([0, 1, 2])
    unsup = -naive_d(real).log().mean() - (1 - naive_d(fake)).log().mean()
    e = labelled.double().exp()
    ce = -(e[torch.arange(3), labels] / e.sum(-1)).log().mean()
    assert unsupervised_discriminator_loss(real, fake).item() == pytest.approx(unsup.item(), rel=1e-6)
    assert discriminator_loss(real, fake, labelled, labels).item() == pytest.approx((unsup + ce).item(), rel=1e-6)


def test_losses_stay_finite_for_extreme_logits():
    big = torch.tensor([[200.0, 150.0], [-300.0, -250.0]])
    for value in (generator_loss(big), unsupervised_discriminator_loss(big, big)):
        assert math.isfinite(value.item())
    # D -> 1 for the first row: -log D -> 0; D -> 0 for the second: -log D ~ -LSE = 250
    assert generator_loss(big[:1]).item() == pytest.approx(0.0, abs=1e-6)
    assert generator_loss(big[1:]).item() == pytest.approx(250.0, rel=1e-4)


def test_generator_learns_to_fool_a_fixed_discriminator():
    torch.manual_seed(0)
    # a narrow discriminator keeps this fast; the generator is the paper's
    sgan = build_sgan("resnet1d", 4, 3041, channels=(8, 8, 8, 8), stem_channels=8)
    sgan.discriminator.eval().requires_grad_(False)
    opt = torch.optim.Adam(sgan.generator.parameters(), lr=1e-3)
    z = sgan.generator.sample_noise(4)
    losses = []
    for _ in range(4):
        loss = generator_loss(sgan.discriminator(sgan.generator(z)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_feature_matching_compares_batch_means_and_moves_only_the_fake_side():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)  # mean (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 4.0]], requires_grad=True)  # mean (1, 2)
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx((2 - 1) ** 2 + (3 - 2) ** 2)
    loss.backward()
    assert real.grad is None  # the real features are a fixed target
    # d/d fake_ij of sum_j (r_j - mean_i f_ij)^2 = -2 (r_j - m_j) / n
    assert torch.allclose(fake.grad, torch.full((3, 2), -2.0 / 3))
    assert feature_matching_loss(fake, fake).item() == 0.0
