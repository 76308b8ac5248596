"""The registry and what the training code relies on: shapes, features, rebuilding from JSON, bf16 autocast,
graphs without breaks for torch.compile, and the size limits of the candidate models."""

from __future__ import annotations

import json

import pytest
import torch

from powdersym.models import MODELS, MultiTask, build_model, count_parameters, model_config, rebuild_model

TINY = {"dense": {"hidden": (32, 16), "dropout": 0.1}}  # the paper's dense network has ~30 M parameters at 1000 points
REQUIRED = {"resnet1d", "resnet1d_wide", "convnext1d", "dense", "cnn_park", "cae_regressor"}


def test_registry_has_the_required_models():
    assert REQUIRED <= set(MODELS)
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet99", 14, 3041)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_classifier_interface(name):
    model = build_model(name, 7, 1000, **TINY.get(name, {})).eval()
    x = torch.rand(3, 1000)
    with torch.no_grad():
        logits = model(x)
        features = model.features(x.unsqueeze(1))
    assert logits.shape == (3, 7)
    assert features.shape == (3, model.n_features)
    assert isinstance(model.classifier, torch.nn.Linear) and model.classifier.in_features == model.n_features
    torch.testing.assert_close(model.classifier(features), logits)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_rebuild_from_json_gives_the_same_network(name):
    torch.manual_seed(0)
    model = MultiTask(build_model(name, 5, 1000, **TINY.get(name, {})), conditional=True).eval()
    config = json.loads(json.dumps(model_config(model)))
    rebuilt = rebuild_model(config).eval()
    rebuilt.load_state_dict(model.state_dict())  # same parameter names and shapes
    x = torch.rand(2, 1000)
    with torch.no_grad():
        for a, b in zip(model(x), rebuilt(x)):
            torch.testing.assert_close(a, b)
    assert config["kwargs"] == model.config  # what train.run stores as model_kwargs


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_bf16_autocast(name):
    model = build_model(name, 4, 1000, **TINY.get(name, {})).eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(torch.rand(2, 1000))
    assert logits.shape == (2, 4) and torch.isfinite(logits.float()).all()


@pytest.mark.parametrize("name", ["resnet1d", "convnext1d", "cnn_park"])
def test_whole_graph_for_torch_compile(name):
    # fullgraph=True fails on any graph break (Python control flow on tensor values); the eager backend only
    # traces, so this stays fast on CPU.
    model = MultiTask(build_model(name, 4, 1000), conditional=True).eval()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    x = torch.rand(2, 1000)
    with torch.no_grad():
        for a, b in zip(compiled(x), model(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ["resnet1d_wide", "convnext1d"])
@pytest.mark.parametrize("n_points", [3041, 5200, 8501])
def test_candidates_shapes_and_size(name, n_points):
    model = build_model(name, 144, n_points).eval()
    with torch.no_grad():
        assert model(torch.rand(1, n_points)).shape == (1, 144)
    # <= ~4 M parameters keeps the shipped float32 weights under 20 MB
    assert count_parameters(model) * 4 < 20e6
    assert count_parameters(model) > 2 * count_parameters(build_model("resnet1d", 144, n_points))
