"""ConvNeXt (Liu et al., CVPR 2022) in 1D: a candidate to beat the main paper's ResNet at the same input.

Patchify stem, four stages of ConvNeXt blocks (depthwise conv -> LayerNorm -> pointwise MLP x4 -> layer scale,
residual), strided convolutions between stages, then mean and max pooling (max pooling keeps the presence of one
sharp peak, as the paper's ResNet does) and a linear classifier. Defaults: 2.2 M parameters; the pattern is
shortened 4x by the stem and 32x more by the stages (8501 points -> 66 positions in the last stage).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .layers import ChannelLayerNorm, DropPath, as_channels


class ConvNeXtBlock1d(nn.Module):
    """x + gamma * MLP(LN(dwconv(x))): depthwise conv mixes positions, the MLP mixes channels."""

    def __init__(self, channels: int, kernel_size: int = 15, expansion: int = 4, drop_path: float = 0.0,
                 layer_scale: float = 1e-6):
        super().__init__()
        self.dwconv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.pwconv1 = nn.Linear(channels, expansion * channels)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(expansion * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), layer_scale))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, C, L]; the MLP runs channels-last [B, L, C]
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        return x + self.drop_path((self.gamma * y).transpose(1, 2))


class ConvNeXt1d(nn.Module):
    """Stem, stages of ConvNeXtBlock1d separated by LN + strided conv, pooled features, linear classifier."""

    def __init__(self, n_classes: int, dims: Sequence[int], depths: Sequence[int], downsample: Sequence[int],
                 stem_stride: int, kernel_size: int, drop_path: float, dropout: float):
        super().__init__()
        if not len(dims) == len(depths) == len(downsample) + 1:
            raise ValueError("dims and depths need one entry per stage, downsample one per stage transition")
        self.stem = nn.Sequential(nn.Conv1d(1, dims[0], stem_stride, stride=stem_stride), ChannelLayerNorm(dims[0]))
        rates = torch.linspace(0, drop_path, sum(depths)).tolist()  # deeper blocks dropped more often
        stages: list[nn.Module] = []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            if i > 0:
                step = downsample[i - 1]
                downsampling = nn.Conv1d(dims[i - 1], dim, step, stride=step)
                stages.append(nn.Sequential(ChannelLayerNorm(dims[i - 1]), downsampling))
            first = sum(depths[:i])
            blocks = [ConvNeXtBlock1d(dim, kernel_size, drop_path=rates[first + j]) for j in range(depth)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(2 * dims[-1])
        self.dropout = nn.Dropout(dropout)
        self.n_features = 2 * dims[-1]
        self.classifier = nn.Linear(self.n_features, n_classes)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv1d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features [B, n_features] (mean and max over positions) of patterns [B, P] or [B, 1, P]."""
        x = self.stem(as_channels(x))  # [B, dims[0], P / 4]
        x = self.stages(x)  # [B, dims[-1], P / 128]
        x = torch.cat([x.mean(-1), x.amax(-1)], dim=1)  # [B, 2 dims[-1]]
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, n_classes]."""
        return self.classifier(self.dropout(self.features(x)))


def convnext1d(
    n_classes: int,
    n_points: int | None = None,
    *,
    dims: Sequence[int] = (40, 80, 160, 256),
    depths: Sequence[int] = (1, 2, 4, 2),
    downsample: Sequence[int] = (4, 4, 2),
    stem_stride: int = 4,
    kernel_size: int = 15,
    drop_path: float = 0.1,
    dropout: float = 0.0,
) -> ConvNeXt1d:
    """ConvNeXt-1D; works for any pattern length >= stem_stride * prod(downsample) (128 by default)."""
    config: dict[str, Any] = dict(dims=list(dims), depths=list(depths), downsample=list(downsample),
                                  stem_stride=int(stem_stride), kernel_size=int(kernel_size),
                                  drop_path=float(drop_path), dropout=float(dropout))  # fmt: skip
    model = ConvNeXt1d(n_classes, **config)
    model.config = config
    return model
