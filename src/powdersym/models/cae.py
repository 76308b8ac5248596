"""1D convolutional autoencoder + dense regressor (Garcia-Cardona et al. 2020, "CAENN", Sec. V-3).

Encoder: Conv1d 1->9 (kernel 15) -> ReLU -> MaxPool(2, 2) -> Conv1d 9->2 (kernel 7) -> ReLU -> MaxPool(2, 2); the
decoder mirrors it with its own (untied) weights. Trained first on its own (the paper: mean absolute error of the
reconstruction), its latent [2, P / 4] then feeds a dense network with 150, 70 and 20 ReLU units. Here that
network ends in the usual linear classifier (and a MultiTask lattice head can sit on its 20 features), which
replaces the paper's single 4-output regressor of class index and cell parameters: the paper found cross-entropy
for the class better than regressing its index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DenseStack, as_channels


class ConvAutoencoder1d(nn.Module):
    """Pattern [B, P] -> latent [B, 2, P // 4] -> reconstruction [B, P]. Convolutions keep the length
    (padding k // 2); the decoder upsamples to the encoder's lengths, so any P >= 4 comes back exactly."""

    def __init__(self, n_points: int, channels: Sequence[int] = (9, 2), kernels: Sequence[int] = (15, 7)):
        super().__init__()
        (c1, c2), (k1, k2) = channels, kernels
        self.n_points = int(n_points)
        self.latent_shape = (c2, self.n_points // 4)
        self.encoder = nn.Sequential(
            nn.Conv1d(1, c1, k1, padding=k1 // 2), nn.ReLU(), nn.MaxPool1d(2, 2),
            nn.Conv1d(c1, c2, k2, padding=k2 // 2), nn.ReLU(), nn.MaxPool1d(2, 2),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Upsample(size=self.n_points // 2), nn.Conv1d(c2, c1, k2, padding=k2 // 2), nn.ReLU(),
            nn.Upsample(size=self.n_points), nn.Conv1d(c1, 1, k1, padding=k1 // 2),
        )  # fmt: skip

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(as_channels(x))  # [B, 2, P // 4]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction [B, P]."""
        return self.decoder(self.encode(x)).flatten(1)


class CAERegressor(nn.Module):
    """The autoencoder's encoder, a dense network on its flattened latent, and a linear classifier."""

    def __init__(self, n_classes: int, n_points: int, hidden: Sequence[int], channels: Sequence[int],
                 kernels: Sequence[int], dropout: float):
        super().__init__()
        self.autoencoder = ConvAutoencoder1d(n_points, channels, kernels)
        latent_channels, latent_length = self.autoencoder.latent_shape
        self.regressor = DenseStack(latent_channels * latent_length, hidden, dropout)
        self.n_features = self.regressor.out_features
        self.classifier = nn.Linear(self.n_features, n_classes)

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean absolute error of the autoencoder's reconstruction (the paper's autoencoder objective)."""
        x = x.flatten(1)
        return F.l1_loss(self.autoencoder(x).float(), x.float())

    def freeze_autoencoder(self, frozen: bool = True) -> None:
        """Stop (or resume) training the autoencoder, as the paper does once it is fitted."""
        for p in self.autoencoder.parameters():
            p.requires_grad_(not frozen)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last dense layer [B, n_features] (20 by default) of patterns [B, P] or [B, 1, P]."""
        return self.regressor(self.autoencoder.encode(x).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, n_classes]."""
        return self.classifier(self.features(x))


def cae_regressor(
    n_classes: int,
    n_points: int,
    *,
    hidden: Sequence[int] = (150, 70, 20),
    channels: Sequence[int] = (9, 2),
    kernels: Sequence[int] = (15, 7),
    dropout: float = 0.0,
) -> CAERegressor:
    """Garcia-Cardona et al.'s CAE + dense network for patterns of n_points."""
    config: dict[str, Any] = dict(hidden=list(hidden), channels=list(channels), kernels=list(kernels),
                                  dropout=float(dropout))  # fmt: skip
    model = CAERegressor(n_classes, n_points, **config)
    model.config = config
    return model
