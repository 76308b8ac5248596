"""Convolutional network of Park et al. (IUCrJ 2017, 4, 486), the network Vecsei et al. compare their dense
network against (Vecsei Fig. 2a).

Park's space-group network (the Keras listing in its supporting information): three Conv1d layers of 80 filters
(kernel/stride 100/5, 50/5, 25/2, 'same' padding), each -> ReLU -> Dropout 0.3 -> average pooling (3/2, 3/3,
3/3); flatten; Dense 2300 -> ReLU -> Dropout 0.5 -> Dense 1150 -> ReLU -> Dropout 0.5 -> classes.
Park pools by averaging; pool="max" gives the max-pooling variant. The flattened length follows from n_points
(Park: 10001 points -> 80 x 11; Vecsei: 8501 -> 80 x 9).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DenseStack, as_channels


class SameConv1d(nn.Conv1d):
    """Conv1d with Keras/TensorFlow 'same' padding at any stride: ceil(L / stride) outputs, the padding split
    with the extra position on the right (PyTorch's padding='same' allows stride 1 only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        stride, kernel = self.stride[0], self.kernel_size[0]
        total = max((math.ceil(length / stride) - 1) * stride + kernel - length, 0)
        return super().forward(F.pad(x, (total // 2, total - total // 2)))


def same_conv_length(length: int, stride: int) -> int:
    return math.ceil(length / stride)


def pool_length(length: int, kernel: int, stride: int) -> int:
    return (length - kernel) // stride + 1


class ConvPool1d(nn.Sequential):
    """SameConv1d -> ReLU -> Dropout -> pooling: one of Park's three convolution stages."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, pool_kernel: int,
                 pool_stride: int, dropout: float, pool: str):
        pooling = nn.AvgPool1d if pool == "avg" else nn.MaxPool1d
        super().__init__(SameConv1d(in_channels, out_channels, kernel_size, stride), nn.ReLU(), nn.Dropout(dropout),
                         pooling(pool_kernel, pool_stride))


class ParkCNN(nn.Module):
    """Three convolution stages, flatten, two dense layers with dropout, linear classifier."""

    def __init__(self, n_classes: int, n_points: int, filters: int, kernels: Sequence[int], strides: Sequence[int],
                 pools: Sequence[Sequence[int]], hidden: Sequence[int], conv_dropout: float, dropout: float,
                 pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', not {pool!r}")
        stages, in_channels, length = [], 1, n_points
        for kernel, stride, (pool_kernel, pool_stride) in zip(kernels, strides, pools):
            stages.append(
                ConvPool1d(in_channels, filters, kernel, stride, pool_kernel, pool_stride, conv_dropout, pool)
            )
            in_channels = filters
            length = pool_length(same_conv_length(length, stride), pool_kernel, pool_stride)
        if length < 1:
            raise ValueError(f"{n_points} points are too few for these convolution and pooling strides")
        self.convs = nn.Sequential(*stages)
        self.dense = DenseStack(filters * length, hidden, dropout)
        self.n_features = self.dense.out_features
        self.classifier = nn.Linear(self.n_features, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last dense layer [B, n_features] of patterns [B, P] or [B, 1, P] (P = the n_points built for)."""
        x = self.convs(as_channels(x))  # [B, 80, ~P / 150]
        return self.dense(x.flatten(1))  # [B, 1150]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, n_classes]."""
        return self.classifier(self.features(x))


def cnn_park(
    n_classes: int,
    n_points: int,
    *,
    filters: int = 80,
    kernels: Sequence[int] = (100, 50, 25),
    strides: Sequence[int] = (5, 5, 2),
    pools: Sequence[Sequence[int]] = ((3, 2), (3, 3), (3, 3)),
    hidden: Sequence[int] = (2300, 1150),
    conv_dropout: float = 0.3,
    dropout: float = 0.5,
    pool: Literal["avg", "max"] = "avg",
) -> ParkCNN:
    """Park et al.'s CNN for patterns of n_points (any length that leaves at least one pooled position)."""
    config: dict[str, Any] = dict(filters=int(filters), kernels=list(kernels), strides=list(strides),
                                  pools=[list(p) for p in pools], hidden=list(hidden), conv_dropout=float(conv_dropout),
                                  dropout=float(dropout), pool=str(pool))  # fmt: skip
    model = ParkCNN(n_classes, n_points, **config)
    model.config = config
    return model
