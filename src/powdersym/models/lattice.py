"""Lattice-parameter regression beside the classification (Garcia-Cardona et al., IEEE Big Data 2020).

`MultiTask` wraps any classifier here: the shared trunk feeds the class head and a lattice head for the six
parameters (a, b, c in Angstrom, alpha, beta, gamma in degrees), trained on cross-entropy + MSE of the scaled
parameters (their integrated model I1, which did better than the class-conditional ones). conditional=True gives
one lattice head per class instead: the true class's head is used in training, the predicted class's at
inference (their class-conditional models, here sharing one trunk). `LatticeScaler` maps the parameters to the
scaled targets and back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LATTICE_PARAMETERS = ("a", "b", "c", "alpha", "beta", "gamma")


class LatticeScaler:
    """Lengths log-scaled then standardised (length="log", the default; cells span 2-50 Angstrom, so relative errors
    matter) or standardised (length="standard"); angles in degrees standardised. Fitted on training labels
    [N, 6]; works on torch tensors (any device, dtype) and numpy arrays."""

    def __init__(self, mean: list[float], std: list[float], length: str = "log"):
        if length not in ("log", "standard"):
            raise ValueError(f"length must be 'log' or 'standard', not {length!r}")
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.length = length

    @classmethod
    def fit(cls, lattice: torch.Tensor | np.ndarray, length: str = "log") -> LatticeScaler:
        """Scaling of training labels [N, 6] (a, b, c, alpha, beta, gamma). A constant column (e.g. all angles 90
        degrees) gets std 1 so it maps to 0 instead of dividing by zero."""
        values = np.asarray(lattice.detach().cpu() if isinstance(lattice, torch.Tensor) else lattice, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != 6 or len(values) == 0:
            raise ValueError(f"lattice labels must be [N, 6] with N > 0, got {values.shape}")
        if length == "log":
            values = np.concatenate([np.log(values[:, :3]), values[:, 3:]], axis=1)
        std = values.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)
        return cls(values.mean(axis=0).tolist(), std.tolist(), length)

    def _stats(self, like: Any) -> tuple[Any, Any]:
        if isinstance(like, torch.Tensor):
            dtype = like.dtype if like.is_floating_point() else torch.float32
            return (torch.tensor(self.mean, dtype=dtype, device=like.device),
                    torch.tensor(self.std, dtype=dtype, device=like.device))
        return np.asarray(self.mean), np.asarray(self.std)

    def transform(self, lattice: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Parameters [..., 6] in Angstrom/degrees -> scaled targets [..., 6]."""
        mean, std = self._stats(lattice)
        if self.length == "log":
            log = torch.log if isinstance(lattice, torch.Tensor) else np.log
            cat = torch.cat if isinstance(lattice, torch.Tensor) else np.concatenate
            lattice = cat([log(lattice[..., :3]), lattice[..., 3:]], -1)
        return (lattice - mean) / std

    def inverse(self, scaled: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """Scaled targets [..., 6] -> parameters in Angstrom/degrees."""
        mean, std = self._stats(scaled)
        values = scaled * std + mean
        if self.length == "log":
            exp = torch.exp if isinstance(values, torch.Tensor) else np.exp
            cat = torch.cat if isinstance(values, torch.Tensor) else np.concatenate
            values = cat([exp(values[..., :3]), values[..., 3:]], -1)
        return values

    def to_dict(self) -> dict[str, Any]:
        """Plain floats and a string, for JSON."""
        return {"mean": list(self.mean), "std": list(self.std), "length": self.length}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatticeScaler:
        return cls(data["mean"], data["std"], data.get("length", "log"))

    def __repr__(self) -> str:
        return f"LatticeScaler(length={self.length!r}, mean={self.mean}, std={self.std})"


def lattice_errors(predicted: torch.Tensor, true: torch.Tensor) -> dict[str, dict[str, float]]:
    """Mean absolute error (Angstrom, degrees) and mean absolute percentage error per parameter, from predicted and
    true parameters [N, 6] in physical units (use LatticeScaler.inverse on network outputs first)."""
    predicted, true = predicted.detach().double(), true.detach().double()
    absolute = (predicted - true).abs()
    percent = 100.0 * absolute / true.abs()
    return {
        "mae": {name: float(v) for name, v in zip(LATTICE_PARAMETERS, absolute.mean(0))},
        "mape": {name: float(v) for name, v in zip(LATTICE_PARAMETERS, percent.mean(0))},
    }


class MultiTask(nn.Module):
    """A classifier's trunk with its class head and a lattice head: forward(x, classes=None) ->
    (logits [B, C], lattice [B, n_lattice] scaled).

    conditional=False: one head for all classes (integrated model). conditional=True: a head per class; the row's
    class is `classes` when given (training: the true class; rows with -1 use class 0's head) and the argmax of
    the logits otherwise (inference).
    """

    def __init__(self, model: nn.Module, n_lattice: int = 6, conditional: bool = False, hidden: int = 128):
        super().__init__()
        self.model = model
        self.n_lattice = int(n_lattice)
        self.conditional = bool(conditional)
        self.n_classes = model.classifier.out_features
        self.n_features = model.n_features
        outputs = self.n_lattice * (self.n_classes if self.conditional else 1)
        self.lattice_head = nn.Sequential(nn.Linear(model.n_features, hidden), nn.GELU(), nn.Linear(hidden, outputs))
        self.config = dict(getattr(model, "config", {}))  # the wrapped model's kwargs, to rebuild it
        self.multitask_config = {"n_lattice": self.n_lattice, "conditional": self.conditional, "hidden": int(hidden)}

    @property
    def classifier(self) -> nn.Linear:
        return self.model.classifier

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)

    def forward(self, x: torch.Tensor, classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.model.features(x)  # [B, F]
        logits = self.model.classifier(features)  # [B, C]
        lattice = self.lattice_head(features)  # [B, 6] or [B, C * 6]
        if self.conditional:
            chosen = logits.argmax(-1) if classes is None else classes.clamp(min=0)
            per_class = lattice.view(-1, self.n_classes, self.n_lattice)  # [B, C, 6]
            lattice = per_class.gather(1, chosen.view(-1, 1, 1).expand(-1, 1, self.n_lattice)).squeeze(1)
        return logits, lattice


def multitask_loss(logits: torch.Tensor, lattice: torch.Tensor, target: torch.Tensor, lattice_target: torch.Tensor,
                   lattice_weight: float = 1.0, ignore_index: int = -1) -> torch.Tensor:
    """Garcia-Cardona's integrated objective: cross-entropy on the class + weight x MSE on the scaled parameters."""
    ce = F.cross_entropy(logits.float(), target, ignore_index=ignore_index)
    return ce + lattice_weight * F.mse_loss(lattice.float(), lattice_target.float())
