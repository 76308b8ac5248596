"""Small pieces shared by the 1D networks: pattern shape handling, LayerNorm over channels, stochastic depth."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def as_channels(x: torch.Tensor) -> torch.Tensor:
    """Patterns [B, P] or [B, 1, P] as [B, 1, P] (the layout every Conv1d here expects)."""
    return x.unsqueeze(1) if x.dim() == 2 else x


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """Patterns [B, P] or [B, 1, P] as [B, P] (the layout the dense networks expect)."""
    return x.flatten(1)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of [B, C, L] (the main paper normalises each position's channel vector,
    as its published code does by transposing around nn.LayerNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, C, L] -> [B, L, C] -> normalise C -> [B, C, L]
        x = F.layer_norm(x.transpose(1, 2), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.transpose(1, 2)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): drop a whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DenseStack(nn.Sequential):
    """Linear -> ReLU -> Dropout for each hidden width: the fully connected part of the dense, Park and CAE
    networks. `out_features` is the last width (the input width when there are no hidden layers)."""

    def __init__(self, in_features: int, hidden: Sequence[int], dropout: float | Sequence[float] = 0.0):
        rates = [float(dropout)] * len(hidden) if isinstance(dropout, (int, float)) else [float(r) for r in dropout]
        if len(rates) != len(hidden):
            raise ValueError(f"one dropout rate per hidden layer (or one float), not {len(rates)} for {len(hidden)}")
        layers: list[nn.Module] = []
        width = in_features
        for units, rate in zip(hidden, rates):
            layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(rate)]
            width = units
        super().__init__(*layers)
        self.out_features = width


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
