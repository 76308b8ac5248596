"""SGAN with BatchNorm: the discriminator's normalisation must come from real patterns. With generated patterns in
its batch statistics (at first ~0.5 everywhere against a mean of ~0.04 in max-normalised patterns) the real
patterns' differences were normalised away and the evaluated classifier's outputs were uniform (val CE = ln 144 with
the 144 groups on the GPU)."""

from __future__ import annotations

import pytest
import torch

from powdersym.data import build_dataset
from powdersym.models import Generator
from powdersym.models.saved import load_model
from powdersym.simulate import preset
from powdersym.train import TrainConfig, train

COARSE = preset("neutron-cw", x_step=0.4)


@pytest.fixture(scope="module")
def patterns(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("sgan") / "sg144.h5"
    return str(build_dataset(path, "synthetic", COARSE, 32, label_set="sg144", seed=4))


def running_statistics(tmp_path, data: str, generated_intensity: float, monkeypatch) -> dict[str, torch.Tensor]:
    """BatchNorm running means and variances of the discriminator after one SGAN batch in which every generated
    pattern is `generated_intensity` everywhere."""
    forward = Generator.forward
    monkeypatch.setattr(Generator, "forward", lambda self, z: forward(self, z) * 0 + generated_intensity)
    config = TrainConfig(model="resnet1d", labels="sg144", data=data, out=str(tmp_path / f"run{generated_intensity}"),
                         max_steps=1, batch_size=8, sgan=True, labelled_fraction=0.5, model_kwargs={"norm": "batch"},
                         discriminator_lr=5e-4, generator_lr=1e-4, validate_every=1, checkpoint_every=10,
                         num_workers=0, progress=False, patience=None, validation_fraction=0.1, test_fraction=0.1)  # fmt: skip
    state = load_model(train(config).model_path).net.state_dict()
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var"))}


def test_generated_patterns_leave_the_discriminators_statistics_alone(tmp_path, patterns, monkeypatch):
    faint = running_statistics(tmp_path, patterns, 0.05, monkeypatch)
    bright = running_statistics(tmp_path, patterns, 0.9, monkeypatch)
    assert faint, "no BatchNorm statistics in the discriminator"
    assert all(torch.allclose(faint[k], bright[k]) for k in faint), [k for k in faint if not torch.allclose(faint[k], bright[k])]
