"""Vecsei et al.'s dense network, alternating loss and ensemble; Park et al.'s CNN."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from powdersym.models import Ensemble, build_model, cnn_park, cross_entropy_loss, dense, quadratic_loss, vecsei_loss
from powdersym.models.cnn_park import SameConv1d

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]])
TARGET = torch.tensor([0, 1])


def naive_softmax(logits: torch.Tensor) -> list[list[float]]:
    rows = []
    for row in logits.tolist():
        e = [math.exp(v) for v in row]
        rows.append([v / sum(e) for v in e])
    return rows


def test_quadratic_loss_is_eq4():
    y = naive_softmax(LOGITS)
    expected = sum(sum((p - (i == t)) ** 2 for i, p in enumerate(row)) for row, t in zip(y, TARGET.tolist())) / 2
    assert quadratic_loss(LOGITS, TARGET).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_loss_is_eq5():
    y = naive_softmax(LOGITS)
    total = 0.0
    for row, t in zip(y, TARGET.tolist()):
        total += sum(math.log(p) if i == t else math.log(1 - p) for i, p in enumerate(row))
    assert cross_entropy_loss(LOGITS, TARGET).item() == pytest.approx(-total / 2, rel=1e-6)


def test_cross_entropy_loss_finite_when_confident():
    logits = torch.tensor([[60.0, -60.0, 0.0]])
    assert math.isfinite(cross_entropy_loss(logits, torch.tensor([0])).item())
    assert math.isfinite(cross_entropy_loss(logits, torch.tensor([1])).item())
    assert cross_entropy_loss(logits, torch.tensor([0])).item() < 1e-6


def test_alternation_quadratic_on_even_epochs():
    assert vecsei_loss(LOGITS, TARGET, 0).item() == quadratic_loss(LOGITS, TARGET).item()
    assert vecsei_loss(LOGITS, TARGET, 1).item() == cross_entropy_loss(LOGITS, TARGET).item()
    assert vecsei_loss(LOGITS, TARGET, 4).item() == quadratic_loss(LOGITS, TARGET).item()


def test_dense_layers_as_in_vecsei():
    model = dense(230, 8501)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(8501, 4000), (4000, 3000), (3000, 1000),
                                                                   (1000, 800), (800, 230)]  # fmt: skip
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.6, 0.5, 0.4, 0.3]
    with pytest.raises(ValueError, match="dropout"):
        dense(14, 100, hidden=(10, 10), dropout=(0.1,))


class Constant(nn.Module):
    def __init__(self, logits: list[float]):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(len(x), -1)


def test_ensemble_averages_probabilities():
    a, b = [2.0, 0.0, -1.0], [-1.0, 3.0, 0.0]
    ensemble = Ensemble([Constant(a), Constant(b)])
    x = torch.zeros(2, 5)
    pa, pb = naive_softmax(torch.tensor([a]))[0], naive_softmax(torch.tensor([b]))[0]
    expected = torch.tensor([[(u + v) / 2 for u, v in zip(pa, pb)]] * 2)
    torch.testing.assert_close(ensemble.predict_proba(x), expected)
    torch.testing.assert_close(ensemble(x).softmax(-1), expected)
    torch.testing.assert_close(ensemble(x).exp(), expected)  # log of the average, not renormalised logits


def test_ensemble_members_seeded_independently_and_reproducibly():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = Ensemble.build(build_model, 3, seed=7, name="dense", n_classes=3, n_points=20, hidden=(8,), dropout=0.0)
    assert torch.equal(torch.get_rng_state(), state)  # the global random state is untouched
    again = Ensemble.build(build_model, 3, seed=7, name="dense", n_classes=3, n_points=20, hidden=(8,), dropout=0.0)
    w = [m.hidden[0].weight for m in first.members]
    assert not torch.equal(w[0], w[1]) and not torch.equal(w[1], w[2])
    assert all(torch.equal(u.hidden[0].weight, v.hidden[0].weight) for u, v in zip(first.members, again.members))


def test_park_flattened_length_matches_published_listing():
    # Park's 10001-point network flattens 80 x 11 = 880 values (its Keras listing); Vecsei's 8501 points: 80 x 9.
    assert cnn_park(230, 10001).dense[0].in_features == 880
    assert cnn_park(230, 8501).dense[0].in_features == 720
    model = cnn_park(230, 10001)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [2300, 1150, 230]
    assert all(isinstance(m, nn.AvgPool1d) for m in model.modules() if isinstance(m, (nn.AvgPool1d, nn.MaxPool1d)))
    assert all(isinstance(m, nn.MaxPool1d) for m in cnn_park(7, 8501, pool="max").modules()
               if isinstance(m, (nn.AvgPool1d, nn.MaxPool1d)))  # fmt: skip


@pytest.mark.parametrize("n_points", [1000, 3041, 5200, 8501])
def test_park_any_length(n_points):
    model = cnn_park(14, n_points).eval()
    with torch.no_grad():
        assert model(torch.rand(2, n_points)).shape == (2, 14)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel", [7, 100])
def test_same_conv_matches_torch_same_padding_at_stride_one(kernel):
    torch.manual_seed(0)
    ours = SameConv1d(2, 3, kernel, stride=1)
    reference = nn.Conv1d(2, 3, kernel, padding="same")
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(1, 2, 250)
    torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize(("length", "stride"), [(8501, 5), (1701, 5), (10, 2), (11, 2)])
def test_same_conv_length_is_ceil(length, stride):
    conv = SameConv1d(1, 1, 25, stride=stride)
    assert conv(torch.zeros(1, 1, length)).shape[-1] == math.ceil(length / stride)
