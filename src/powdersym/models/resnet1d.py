"""1D ResNet of Lolla et al. (J. Appl. Cryst. 2022, Fig. 3), built as its published code builds it
(github.com/usnistgov/semi-supervised-neutron, Models/ResNet.py, configured in TrainingScripts/*Trainer.py).

Paper's ResNet-18 (`resnet1d`): stem Conv1d 1->32 (kernel 13, stride 1, no padding, no bias) -> Dropout ->
LayerNorm over channels -> GELU; four layers of two residual blocks with channels 32, 64, 64, 64, kernels 5, 7, 17,
13 and strides 4, 4, 5, 3 (the first block of a layer strided); AdaptiveMaxPool1d(1); Linear classifier.
Measured: 641 006 trainable parameters with 14 classes, 649 456 with 144, for any pattern length (the paper says
"about 0.65 M"; the published model has 65 more in an unused real/fake head, see sgan.py).

`resnet1d_wide` is the same network with wider, deeper layers, built by the same builder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .layers import ChannelLayerNorm, as_channels


NORMS = ("layer", "batch")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """'layer': LayerNorm over the channels at each position (the published network). It makes every position's
    features independent of the local intensity, so on a pattern with background and counting noise the flat
    stretches look as strong as the peaks: trained on realistically augmented patterns the published network did
    not learn at all (chance level after 260 steps of 256, H100, see docs/results.md). 'batch': BatchNorm1d, which
    keeps relative intensities along the pattern."""
    if kind == "layer":
        return ChannelLayerNorm(channels)
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    raise ValueError(f"unknown norm {kind!r} (one of {', '.join(NORMS)})")


class ConvNorm1d(nn.Sequential):
    """Conv1d (no bias) -> Dropout -> LayerNorm over channels; the published code's CNN1dlayerNoAct."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dropout: float = 0.0, norm: str = "layer"):
        layers: list[nn.Module] = [nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding, bias=False)]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(norm_layer(norm, out_channels))
        super().__init__(*layers)


class ConvNormGELU1d(nn.Sequential):
    """ConvNorm1d -> GELU; the published code's CNN1dlayer."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dropout: float = 0.0, norm: str = "layer"):
        super().__init__(*ConvNorm1d(in_channels, out_channels, kernel_size, stride, padding, dropout, norm), nn.GELU())


class BasicBlock1d(nn.Module):
    """conv -> dropout -> LN -> GELU -> conv -> dropout -> LN, plus a 1x1 conv + LN shortcut; GELU after the sum.

    Every block has the projection shortcut, also where channels and length do not change: the published code
    tests `downsample is not None` and passes False, so its second blocks project too (their parameters count
    in the paper's model). Kernels must be odd: padding k // 2 then gives both paths ceil(L / stride) positions
    for any length L.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dropout: float = 0.05,
                 norm: str = "layer"):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (got {kernel_size}) so both paths keep the same length")
        pad = kernel_size // 2
        self.conv1 = ConvNormGELU1d(in_channels, out_channels, kernel_size, stride, pad, dropout, norm)
        self.conv2 = ConvNorm1d(out_channels, out_channels, kernel_size, 1, pad, dropout, norm)
        self.shortcut = ConvNorm1d(in_channels, out_channels, 1, stride, norm=norm)  # published dropout here: 0
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, C_in, L] -> [B, C_out, ceil(L / stride)]
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet1d(nn.Module):
    """Stem, four (or more) layers of BasicBlock1d, global max pooling and a linear classifier."""

    def __init__(self, n_classes: int, channels: Sequence[int], kernels: Sequence[int], strides: Sequence[int],
                 blocks: Sequence[int], stem_channels: int, stem_kernel: int, dropout: float, stem_pool: bool,
                 norm: str = "layer"):
        super().__init__()
        if not len(channels) == len(kernels) == len(strides) == len(blocks):
            raise ValueError("channels, kernels, strides and blocks need one entry per layer")
        self.stem = ConvNormGELU1d(1, stem_channels, stem_kernel, 1, 0, dropout, norm)
        # The published model builds MaxPool1d(7, stride 7) after the stem and never calls it (its forward goes
        # from the stem straight to layer1); the paper's results come from that network, so it is skipped unless
        # stem_pool=True. It has no parameters either way.
        self.maxpool = nn.MaxPool1d(7, stride=7, padding=3)
        self.stem_pool = bool(stem_pool)
        layers = []
        in_channels = stem_channels
        for out_channels, kernel, stride, n_blocks in zip(channels, kernels, strides, blocks):
            stage = [BasicBlock1d(in_channels, out_channels, kernel, stride, dropout, norm)]
            stage += [BasicBlock1d(out_channels, out_channels, kernel, 1, dropout, norm) for _ in range(n_blocks - 1)]
            layers.append(nn.Sequential(*stage))
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveMaxPool1d(1)
        self.n_features = in_channels
        self.classifier = nn.Linear(in_channels, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled trunk output [B, n_features] of patterns [B, P] or [B, 1, P]."""
        x = self.stem(as_channels(x))  # [B, 32, P - 12]
        if self.stem_pool:
            x = self.maxpool(x)
        x = self.layers(x)  # [B, 64, ~P / 240]
        return self.pool(x).flatten(1)  # [B, 64]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, n_classes]."""
        return self.classifier(self.features(x))


def resnet1d(
    n_classes: int,
    n_points: int | None = None,
    *,
    channels: Sequence[int] = (32, 64, 64, 64),
    kernels: Sequence[int] = (5, 7, 17, 13),
    strides: Sequence[int] = (4, 4, 5, 3),
    blocks: Sequence[int] = (2, 2, 2, 2),
    stem_channels: int = 32,
    stem_kernel: int = 13,
    dropout: float = 0.05,
    stem_pool: bool = False,
    norm: str = "layer",
) -> ResNet1d:
    """The main paper's 1D ResNet-18 (defaults: the published code; its Table 2 says dropout 0.1, the code uses
    0.05). Works for any pattern length >= stem_kernel; n_points is accepted for the common builder signature."""
    config: dict[str, Any] = dict(channels=list(channels), kernels=list(kernels), strides=list(strides),
                                  blocks=list(blocks), stem_channels=int(stem_channels), stem_kernel=int(stem_kernel),
                                  dropout=float(dropout), stem_pool=bool(stem_pool), norm=str(norm))  # fmt: skip
    model = ResNet1d(n_classes, **config)
    model.config = config
    return model


# 3.0 M parameters: the paper's first two layers, which run on the longest sequences, and wider last two, so one
# 8501-point pattern takes ~15 ms on two CPU cores (the paper's network ~11 ms). A third block in layer 3
# (blocks=(2, 2, 3, 2): 3.55 M) measured 16-21 ms, at the 20 ms limit.
WIDE = dict(channels=(32, 64, 128, 192), stem_channels=32)


def resnet1d_wide(n_classes: int, n_points: int | None = None, **kwargs: Any) -> ResNet1d:
    """resnet1d with wider last layers (a candidate to beat the paper's network at the same input); same stem,
    kernels, strides and depth, so the same receptive field."""
    return resnet1d(n_classes, n_points, **{**WIDE, **kwargs})
