"""Dense network of Vecsei et al. (2019, Fig. 2b), its alternating training loss (eqs. 4, 5) and the ensemble of
independently seeded networks whose averaged output is the final prediction.

Layer sizes: the figure did not survive in the seed text; 4000-3000-1000-800 hidden ReLU units, each followed by
dropout 0.6, 0.5, 0.4, 0.3, is the network as public re-implementations of the paper build it. All of it is a
parameter. At 8501 points it has ~50 M parameters (the input layer alone 34 M), as in the paper.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import DenseStack, as_rows


class DenseClassifier(nn.Module):
    """Pattern [B, P] -> hidden dense layers (Linear -> ReLU -> Dropout) -> Linear classifier."""

    def __init__(self, n_classes: int, n_points: int, hidden: Sequence[int], dropout: Sequence[float]):
        super().__init__()
        self.hidden = DenseStack(n_points, hidden, dropout)
        self.n_features = self.hidden.out_features
        self.classifier = nn.Linear(self.n_features, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last hidden layer [B, n_features] of patterns [B, P] or [B, 1, P]."""
        return self.hidden(as_rows(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [B, n_classes] (the paper's softmax output is softmax of these)."""
        return self.classifier(self.features(x))


def dense(
    n_classes: int,
    n_points: int,
    *,
    hidden: Sequence[int] = (4000, 3000, 1000, 800),
    dropout: float | Sequence[float] = (0.6, 0.5, 0.4, 0.3),
) -> DenseClassifier:
    """Vecsei et al.'s dense network for patterns of n_points (the paper: 8501, 5-90 deg 2theta in 0.01 deg)."""
    rates = [float(dropout)] * len(hidden) if isinstance(dropout, (int, float)) else [float(r) for r in dropout]
    config: dict[str, Any] = {"hidden": [int(h) for h in hidden], "dropout": rates}
    model = DenseClassifier(n_classes, n_points, **config)
    model.config = config
    return model


def quadratic_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Vecsei eq. 4: mean over the batch of |y - y_c|^2, y = softmax(logits), y_c the one-hot target."""
    probs = logits.float().softmax(-1)
    one_hot = F.one_hot(target, probs.shape[-1]).to(probs.dtype)
    return (probs - one_hot).pow(2).sum(-1).mean()


def _log1mexp(log_p: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(log_p)) for log_p <= 0, accurate near both ends (Maechler 2012)."""
    a = (-log_p).clamp(min=1e-7)  # p = 1 exactly would give log 0; 1e-7 is Keras' probability clip
    return torch.where(a < 0.6931471805599453, torch.log(-torch.expm1(-a)), torch.log1p(-torch.exp(-a)))


def cross_entropy_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Vecsei eq. 5: -mean over the batch of [y_c . ln y + (1 - y_c) . ln(1 - y)] summed over classes, with
    y = softmax(logits); the logs come from log_softmax so confident outputs stay finite."""
    log_p = logits.float().log_softmax(-1)
    one_hot = F.one_hot(target, log_p.shape[-1]).to(log_p.dtype)
    return -(one_hot * log_p + (1 - one_hot) * _log1mexp(log_p)).sum(-1).mean()


def vecsei_loss(logits: torch.Tensor, target: torch.Tensor, epoch: int) -> torch.Tensor:
    """The paper's alternating cost: quadratic (eq. 4) on even epochs, cross entropy (eq. 5) on odd ones, epochs
    counted from 0. The cross entropy speeds convergence; the quadratic cost keeps the output a meaningful
    distribution (without it the dense network is near one-hot even when wrong)."""
    return quadratic_loss(logits, target) if epoch % 2 == 0 else cross_entropy_loss(logits, target)


class Ensemble(nn.Module):
    """N independently trained classifiers; the prediction is their averaged class probabilities (Vecsei et al.
    average ten networks). forward returns log of that average, so it can be used as logits."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.config = dict(getattr(members[0], "config", {}))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over members of softmax(logits): [B, C]."""
        return torch.stack([m(x).float().softmax(-1) for m in self.members]).mean(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """log of the averaged probabilities [B, C] (softmax of these gives the averaged probabilities back)."""
        logp = torch.stack([m(x).float().log_softmax(-1) for m in self.members])  # [N, B, C]
        return torch.logsumexp(logp, dim=0) - torch.log(torch.tensor(float(len(self.members))))

    @classmethod
    def build(cls, builder: Callable[..., nn.Module], n_members: int, seed: int = 0, **kwargs: Any) -> Ensemble:
        """n_members networks from builder(**kwargs), member k initialised under torch seed `seed + k`
        (the global random state is left as it was)."""
        members = []
        for k in range(n_members):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed + k)
                members.append(builder(**kwargs))
        return cls(members)
