"""A few Adam steps on a tiny separable problem make every model's loss fall below that of the best constant
prediction (ln 2 for two balanced classes), which only a model that uses its input can do. The loss is taken in
eval mode on the training batch after every step; the lowest is compared, since a few steps of the LayerNorm
ResNets are noisy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from powdersym.models import LatticeScaler, MultiTask, build_model, multitask_loss, vecsei_loss

CHANCE = math.log(2)
LR = {"resnet1d": 1e-4}  # the paper's rate; larger first Adam steps throw this network off; 1e-3 for the rest
SMALL = {  # narrower than the defaults where the default would only make the test slow
    "resnet1d": {},
    "resnet1d_wide": {"channels": (16, 16, 16, 16), "stem_channels": 16},
    "convnext1d": {"dims": (16, 16, 32, 32), "depths": (1, 1, 1, 1), "drop_path": 0.0},
    "dense": {"hidden": (64, 32), "dropout": 0.1},
    "cnn_park": {"hidden": (64, 32), "filters": 16},
    "cae_regressor": {},
}


def fit(model: torch.nn.Module, loss_of, steps: int, lr: float) -> list[float]:
    """Losses (eval mode, no gradient) before and after each of `steps` Adam steps taken in train mode."""

    def evaluate() -> float:
        model.eval()
        with torch.no_grad():
            value = loss_of(model, step).item()
        model.train()
        return value

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    step = 0
    losses = [evaluate()]
    for step in range(steps):
        loss = loss_of(model, step)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(evaluate())
    return losses


@pytest.mark.parametrize("name", sorted(SMALL))
def test_cross_entropy_falls(name, separable):
    x, classes, _ = separable
    torch.manual_seed(0)
    model = build_model(name, 2, x.shape[1], **SMALL[name]).train()
    losses = fit(model, lambda m, step: F.cross_entropy(m(x), classes), steps=10, lr=LR.get(name, 1e-3))
    assert min(losses) < CHANCE - 0.03, losses


def test_vecsei_alternating_loss_falls(separable):
    x, classes, _ = separable
    torch.manual_seed(0)
    model = build_model("dense", 2, x.shape[1], hidden=(64, 32), dropout=0.1)
    # one "epoch" per step here, so the loss alternates between eq. 4 and eq. 5 every step
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    quadratic, cross = [], []
    for step in range(10):
        loss = vecsei_loss(model(x), classes, step)
        (quadratic if step % 2 == 0 else cross).append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert quadratic[-1] < 0.8 * quadratic[0] and cross[-1] < 0.8 * cross[0], (quadratic, cross)


@pytest.mark.parametrize("conditional", [False, True])
def test_multitask_loss_falls(conditional, separable):
    x, classes, lattice = separable
    scaler = LatticeScaler.fit(lattice)
    target = scaler.transform(lattice)
    torch.manual_seed(0)
    model = MultiTask(build_model("convnext1d", 2, x.shape[1], **SMALL["convnext1d"]), conditional=conditional)

    def loss_of(m, step):
        logits, predicted = m(x, classes) if conditional else m(x)
        return multitask_loss(logits, predicted, classes, target)

    losses = fit(model, loss_of, steps=10, lr=1e-3)
    assert min(losses) < 0.5 * losses[0], losses


def test_autoencoder_reconstruction_falls(separable):
    x, _, _ = separable
    torch.manual_seed(0)
    model = build_model("cae_regressor", 2, x.shape[1])
    losses = fit(model.autoencoder, lambda m, step: F.l1_loss(m(x), x), steps=8, lr=3e-3)
    assert losses[-1] < 0.5 * losses[0], losses
    assert model.reconstruction_loss(x).item() == pytest.approx(F.l1_loss(model.autoencoder(x), x).item())
