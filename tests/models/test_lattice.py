"""Lattice-parameter scaling, errors, MultiTask heads, CAE and the random-forest baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from powdersym.models import (
    LatticeScaler,
    MultiTask,
    build_model,
    cae_regressor,
    downsample_patterns,
    lattice_errors,
    random_forest_baseline,
)

LATTICE = torch.tensor([[4.0, 4.0, 4.0, 90.0, 90.0, 90.0],
                        [5.0, 6.0, 7.0, 90.0, 100.0, 90.0],
                        [10.0, 3.0, 8.0, 80.0, 95.0, 120.0]])  # fmt: skip


@pytest.mark.parametrize("length", ["log", "standard"])
def test_scaler_round_trip_torch_numpy_and_json(length):
    scaler = LatticeScaler.fit(LATTICE, length=length)
    scaled = scaler.transform(LATTICE)
    torch.testing.assert_close(scaler.inverse(scaled), LATTICE)
    restored = LatticeScaler.from_dict(json.loads(json.dumps(scaler.to_dict())))
    np.testing.assert_allclose(restored.transform(LATTICE.double().numpy()), scaled.double().numpy(), rtol=1e-6)
    np.testing.assert_allclose(restored.inverse(scaled.numpy()), LATTICE.numpy(), rtol=1e-5)


def test_scaler_standardises_log_lengths_and_angles():
    scaler = LatticeScaler.fit(LATTICE)
    scaled = scaler.transform(LATTICE.double())
    log_a = np.log([4.0, 5.0, 10.0])
    assert scaled[1, 0].item() == pytest.approx((np.log(5.0) - log_a.mean()) / log_a.std())
    gamma = np.array([90.0, 90.0, 120.0])
    assert scaled[2, 5].item() == pytest.approx((120.0 - gamma.mean()) / gamma.std())


def test_constant_column_maps_to_zero():
    cubic = torch.tensor([[4.0, 4.0, 4.0, 90.0, 90.0, 90.0], [5.0, 5.0, 5.0, 90.0, 90.0, 90.0]])
    scaled = LatticeScaler.fit(cubic).transform(cubic)
    assert torch.isfinite(scaled).all()
    assert torch.equal(scaled[:, 3:], torch.zeros(2, 3))


def test_lattice_errors_in_physical_units():
    true = torch.tensor([[4.0, 5.0, 10.0, 90.0, 90.0, 120.0]] * 2)
    predicted = true + torch.tensor([[0.4, -0.5, 0.0, 9.0, 0.0, -12.0], [0.0, 0.5, 1.0, 0.0, 0.0, 0.0]])
    errors = lattice_errors(predicted, true)
    assert errors["mae"]["a"] == pytest.approx(0.2)
    assert errors["mae"]["b"] == pytest.approx(0.5)
    assert errors["mae"]["alpha"] == pytest.approx(4.5)
    assert errors["mape"]["a"] == pytest.approx(5.0)
    assert errors["mape"]["c"] == pytest.approx(5.0)
    assert errors["mape"]["gamma"] == pytest.approx(5.0)


@pytest.mark.parametrize("name", ["resnet1d", "convnext1d", "cae_regressor"])
def test_multitask_shapes(name):
    model = MultiTask(build_model(name, 5, 1000)).eval()
    with torch.no_grad():
        logits, lattice = model(torch.rand(3, 1000))
    assert logits.shape == (3, 5) and lattice.shape == (3, 6)


def test_conditional_multitask_selects_the_class_head():
    torch.manual_seed(0)
    model = MultiTask(build_model("resnet1d", 4, 1000), conditional=True).eval()
    last = model.lattice_head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.arange(24.0))  # class c's head outputs 6c, ..., 6c + 5 for any input
        x = torch.rand(5, 1000)
        classes = torch.tensor([3, 0, 2, 1, -1])
        _, given = model(x, classes)
        logits, predicted = model(x)
    expected = 6.0 * classes.clamp(min=0)[:, None] + torch.arange(6.0)
    torch.testing.assert_close(given, expected)
    torch.testing.assert_close(predicted, 6.0 * logits.argmax(-1)[:, None].float() + torch.arange(6.0))


def test_cae_reconstructs_any_length():
    for n_points in (1000, 1003, 3041):
        model = cae_regressor(3, n_points)
        x = torch.rand(2, n_points)
        assert model.autoencoder.encode(x).shape == (2, 2, n_points // 4)
        assert model.autoencoder(x).shape == (2, n_points)
    encoder_convs = [m for m in model.autoencoder.encoder if isinstance(m, torch.nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in encoder_convs] == [(9, 15), (2, 7)]
    assert model.n_features == 20


def test_cae_freezes_autoencoder():
    model = cae_regressor(3, 1000)
    model.freeze_autoencoder()
    assert not any(p.requires_grad for p in model.autoencoder.parameters())
    assert all(p.requires_grad for p in model.regressor.parameters())


def test_downsample_patterns_is_bin_mean():
    x = np.arange(10.0)[None]
    np.testing.assert_allclose(downsample_patterns(x, 5), [[0.5, 2.5, 4.5, 6.5, 8.5]])
    np.testing.assert_allclose(downsample_patterns(np.ones((3, 1001)), 7), np.ones((3, 7)))


def test_random_forest_baseline_fits():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    n, n_points = 80, 400
    position = rng.uniform(50, 350, n)
    grid = np.arange(n_points)
    patterns = np.exp(-0.5 * ((grid[None] - position[:, None]) / 5.0) ** 2)
    targets = np.stack([position / 100.0, 2 * position / 100.0], 1)
    forest = random_forest_baseline(patterns[:60], targets[:60], n_bins=50, n_estimators=30, max_depth=10)
    predicted = forest.predict(patterns[60:])
    assert predicted.shape == (20, 2)
    baseline = np.abs(targets[60:] - targets[:60].mean(0)).mean()
    assert np.abs(predicted - targets[60:]).mean() < 0.3 * baseline
