"""Semi-supervised GAN of Lolla et al. (2022, Sec. 2.4): generator, discriminator probability (eq. 1) and losses
(eqs. 2 and 3).

The discriminator is any classifier here (the paper's: resnet1d). It has no real/fake output of its own:
D(x) = Z(x) / (Z(x) + 1) with Z = sum_k exp(l_k(x)) over its class logits (Salimans et al. 2016), i.e.
D(x) = sigmoid(LSE(l)), LSE = logsumexp. The logs the losses need are taken without forming D:
log D = LSE - softplus(LSE) = -softplus(-LSE) and log(1 - D) = -softplus(LSE).
(The published training script instead trains a separate Linear(64, 1) head with BCE on smoothed labels; the paper
describes eq. 1, which is what is built here.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

PAPER_LENGTH = 3041  # the generator's stages below produce exactly this many points (neutron CW patterns)
PAPER_STAGES = ((17, 2), (15, 1), (14, 1), (18, 3), (13, 1), (11, 4), (9, 1), (9, 1))  # (kernel, stride)


class GeneratorStage(nn.Sequential):
    """ConvTranspose1d (no bias, no padding) -> LeakyReLU(0.2) -> BatchNorm, in the published code's order."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__(
            nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, bias=False),
            nn.LeakyReLU(0.2),
            nn.BatchNorm1d(out_channels, eps=1e-4),
        )


class Generator(nn.Module):
    """Noise [B, 1, noise_dim] -> pattern [B, n_points] in [0, 1] (sigmoid: the real patterns are max-normalised).

    With noise_dim 100 the paper's eight stages give 3035 points and the final ConvTranspose1d (kernel 7) 3041.
    For another n_points the 32-channel features are linearly resampled to n_points - 6 before that final stage,
    so the output has exactly n_points (8501 for X-ray, ~5200 for ToF) and the paper's stages stay unchanged.
    """

    def __init__(self, n_points: int = PAPER_LENGTH, noise_dim: int = 100, channels: int = 32):
        super().__init__()
        self.n_points = int(n_points)
        self.noise_dim = int(noise_dim)
        stages, length, in_channels = [], self.noise_dim, 1
        for kernel, stride in PAPER_STAGES:
            stages.append(GeneratorStage(in_channels, channels, kernel, stride))
            length = (length - 1) * stride + kernel
            in_channels = channels
        self.stages = nn.Sequential(*stages)
        final_kernel = 7
        # Identity where the paper's length comes out by itself; a fixed-size resampling otherwise.
        self.resample = (nn.Identity() if length + final_kernel - 1 == self.n_points
                         else nn.Upsample(size=self.n_points - final_kernel + 1, mode="linear", align_corners=False))
        self.to_pattern = nn.ConvTranspose1d(channels, 1, final_kernel, bias=False)
        self.config = {"noise_dim": self.noise_dim, "channels": int(channels)}

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        # noise [B, 1, noise_dim] (or [B, noise_dim])
        x = self.stages(noise.view(noise.shape[0], 1, -1))  # [B, 32, 3035 for noise_dim 100]
        x = self.to_pattern(self.resample(x))  # [B, 1, n_points]
        return torch.sigmoid(x).flatten(1)  # [B, n_points]

    def sample_noise(self, batch_size: int, device: torch.device | str | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard normal noise [B, 1, noise_dim] (paper: mean 0, standard deviation 1)."""
        return torch.randn(batch_size, 1, self.noise_dim, device=device, generator=generator)


def build_generator(n_points: int, noise_dim: int = 100, channels: int = 32) -> Generator:
    """The SGAN generator for patterns of n_points points."""
    return Generator(n_points, noise_dim, channels)


def real_fake_logit(logits: torch.Tensor) -> torch.Tensor:
    """log Z(x) = logsumexp of the class logits [B, C] -> [B]: the logit of D(x) (eq. 1)."""
    return torch.logsumexp(logits.float(), dim=-1)


def real_probability(logits: torch.Tensor) -> torch.Tensor:
    """D(x) = Z / (Z + 1), Z = sum_k exp(l_k) (eq. 1), from class logits [B, C] -> [B]."""
    return torch.sigmoid(real_fake_logit(logits))


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 2 (non-saturating): mean over the batch of -log D(G(z)), from the discriminator's logits on generated
    patterns."""
    return F.softplus(-real_fake_logit(fake_logits)).mean()


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Salimans et al. 2016 (sec. 3.1), the generator loss their semi-supervised GAN needed: squared distance between
    the batch means of the discriminator's features [B, F] on real and on generated patterns (real ones are a fixed
    target: no gradient). An alternative to eq. 2, not the main paper's."""
    return (real_features.detach().float().mean(0) - fake_features.float().mean(0)).pow(2).sum()


def unsupervised_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The real/fake part of eq. 3, negated to be minimised: -mean log D(x) - mean log(1 - D(G(z))), on unlabelled
    real patterns and generated ones."""
    return F.softplus(-real_fake_logit(real_logits)).mean() + F.softplus(real_fake_logit(fake_logits)).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, labelled_logits: torch.Tensor,
                       labels: torch.Tensor, ignore_index: int = -1) -> torch.Tensor:
    """Eq. 3 negated: the unsupervised real/fake terms plus the cross-entropy on labelled patterns."""
    supervised = F.cross_entropy(labelled_logits.float(), labels, ignore_index=ignore_index)
    return unsupervised_discriminator_loss(real_logits, fake_logits) + supervised


@contextmanager
def real_statistics(discriminator: nn.Module, n_real: int, update: bool = True) -> Iterator[None]:
    """Inside: the discriminator's BatchNorm layers (in training mode) normalise the whole batch with the statistics
    of its first n_real rows, the real patterns, and (update=True) only those enter their running statistics.

    Reference batch normalisation (Salimans et al. 2016, sec. 3.4). Generated patterns in BatchNorm's statistics
    (at first a sigmoid's ~0.5 everywhere against a mean of ~0.04 in max-normalised patterns) made the real
    patterns' spread a small part of the batch variance: real patterns came out of every BatchNorm nearly alike and
    the evaluated classifier gave uniform outputs (val CE ln 144 with the 144 groups). Generated patterns normalised
    with their own batch's statistics would be told from real ones by the batch alone; with the same statistics as
    the real rows of their batch they cannot be."""
    norms = [m for m in discriminator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]

    def normalise(norm: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor], _: torch.Tensor) -> torch.Tensor:
        x = inputs[0]  # [B, C, ...]
        real = x[:n_real].float().transpose(0, 1).flatten(1)  # [C, n_real * ...]
        mean, var = real.mean(1), real.var(1, unbiased=False)
        if update and norm.track_running_stats:
            with torch.no_grad():
                norm.num_batches_tracked += 1
                momentum = norm.momentum if norm.momentum is not None else 1.0 / float(norm.num_batches_tracked)
                norm.running_mean.lerp_(mean, momentum)
                norm.running_var.lerp_(var * real.shape[1] / max(real.shape[1] - 1, 1), momentum)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        y = (x.float() - mean.view(shape)) * torch.rsqrt(var.view(shape) + norm.eps)
        if norm.affine:
            y = y * norm.weight.view(shape) + norm.bias.view(shape)
        return y.to(x.dtype)

    # eval mode: BatchNorm's own statistics and updates are off; the hook's output replaces its output
    hooks = [m.register_forward_hook(normalise) for m in norms]
    for m in norms:
        m.eval()
    try:
        yield
    finally:
        for m, hook in zip(norms, hooks):
            m.train()
            hook.remove()


class SGAN(nn.Module):
    """The two networks together: `discriminator` (a classifier; what is exported) and `generator`.
    forward(x) is the discriminator's class logits."""

    def __init__(self, discriminator: nn.Module, generator: Generator):
        super().__init__()
        self.discriminator = discriminator
        self.generator = generator
        self.config = getattr(discriminator, "config", {})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.discriminator(x)
