"""Learning-rate schedule over a run's budget: cosine decay from the configured rate to zero, by whichever of the
step limit and the wall-clock limit runs out first. Legs limited by minutes (the shipped models' legs) end with
a rate of zero instead of wherever a constant rate left them (the usual choice for a fixed budget; for the X-ray
legs of docs/results.md it helped the pymatgen set and not RRUFF)."""

from __future__ import annotations

import math

import lightning as L
from lightning.pytorch.callbacks import Timer

def budget_fraction(step: int, max_steps: int, elapsed: float, max_seconds: float | None) -> float:
    """Fraction of the run's budget used, in [0, 1]: the larger of the step and time fractions."""
    fraction = step / max_steps
    if max_seconds:
        fraction = max(fraction, elapsed / max_seconds)
    return min(max(fraction, 0.0), 1.0)


def cosine_factor(fraction: float) -> float:
    """Multiplier of the base rate: 1 at the start, 0 at the end of the budget."""
    return 0.5 * (1.0 + math.cos(math.pi * fraction))


class CosineOverBudget(L.Callback):
    """Sets every optimiser's rate before each batch to base x cosine_factor(budget_fraction). The base rates are
    those the optimisers were built with; elapsed time is Lightning's Timer (present when max_time is set), which
    survives a resume."""

    def __init__(self, max_steps: int, max_seconds: float | None = None) -> None:
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self._base: list[list[float]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._base = [[group.get("initial_lr", group["lr"]) for group in opt.param_groups] for opt in trainer.optimizers]
        for opt in trainer.optimizers:  # the base survives a resume, where the saved rate is already decayed
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        elapsed = timer.time_elapsed("train") if timer is not None else 0.0
        factor = cosine_factor(budget_fraction(trainer.global_step, self.max_steps, elapsed, self.max_seconds))
        for opt, bases in zip(trainer.optimizers, self._base):
            for group, base in zip(opt.param_groups, bases):
                group["lr"] = base * factor
