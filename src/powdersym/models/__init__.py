"""Networks that classify crystal symmetry from one powder pattern, and their losses.

Every classifier takes patterns [B, P] (or [B, 1, P]) and returns logits [B, n_classes]; it has
`features(x) -> [B, n_features]`, `n_features` and a final `classifier: nn.Linear`, so `MultiTask` can add lattice
heads to any of them, and `config`: the builder keyword arguments that rebuild it with
`build_model(name, n_classes, n_points, **config)`.

- resnet1d: Lolla et al. 2022's 1D ResNet-18, as their published code builds it; resnet1d_wide, convnext1d:
  candidates to beat it at the same input.
- dense, cnn_park: Vecsei et al. 2019's dense network and the CNN of Park et al. 2017 they compare it with.
- cae_regressor: Garcia-Cardona et al. 2020's convolutional autoencoder + dense network.
- sgan: the generator and the semi-supervised GAN losses (Lolla et al. eqs. 1-3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .cae import CAERegressor, ConvAutoencoder1d, cae_regressor
from .cnn_park import ParkCNN, cnn_park
from .convnext1d import ConvNeXt1d, convnext1d
from .dense import DenseClassifier, Ensemble, cross_entropy_loss, dense, quadratic_loss, vecsei_loss
from .forest import ForestBaseline, downsample_patterns, random_forest_baseline
from .lattice import LATTICE_PARAMETERS, LatticeScaler, MultiTask, lattice_errors, multitask_loss
from .layers import count_parameters
from .resnet1d import ResNet1d, resnet1d, resnet1d_wide
from .sgan import (
    SGAN,
    Generator,
    build_generator,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    real_fake_logit,
    real_probability,
    unsupervised_discriminator_loss,
)

MODELS: dict[str, Callable[..., nn.Module]] = {
    "resnet1d": resnet1d,
    "resnet1d_wide": resnet1d_wide,
    "convnext1d": convnext1d,
    "dense": dense,
    "cnn_park": cnn_park,
    "cae_regressor": cae_regressor,
}


def build_model(name: str, n_classes: int, n_points: int, **kwargs: Any) -> nn.Module:
    """The registered network `name` for n_classes classes and patterns of n_points points; kwargs go to its
    builder (e.g. dropout). The result remembers how it was built (see model_config)."""
    try:
        builder = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    model = builder(n_classes, n_points, **kwargs)
    model.build_args = {"name": name, "n_classes": int(n_classes), "n_points": int(n_points)}
    return model


def model_config(model: nn.Module) -> dict[str, Any]:
    """{"name", "n_classes", "n_points", "kwargs"} of a network made by build_model (a MultiTask or SGAN: of the
    network it wraps, plus "multitask"), JSON-safe; rebuild with rebuild_model."""
    inner = model
    for attribute in ("model", "discriminator"):
        inner = getattr(inner, attribute, inner)
    if not hasattr(inner, "build_args"):
        raise ValueError("model_config needs a network made by build_model")
    out = {**inner.build_args, "kwargs": dict(inner.config)}
    if isinstance(model, MultiTask):
        out["multitask"] = dict(model.multitask_config)
    return out


def rebuild_model(config: dict[str, Any]) -> nn.Module:
    """A fresh network (untrained) from model_config's output."""
    model = build_model(config["name"], config["n_classes"], config["n_points"], **config.get("kwargs", {}))
    if "multitask" in config:
        model = MultiTask(model, **config["multitask"])
    return model


def build_sgan(name: str, n_classes: int, n_points: int, noise_dim: int = 100, **kwargs: Any) -> SGAN:
    """Discriminator build_model(name, ...) and generator build_generator(n_points, noise_dim) together."""
    return SGAN(build_model(name, n_classes, n_points, **kwargs), build_generator(n_points, noise_dim))


__all__ = [
    "MODELS", "build_model", "build_generator", "build_sgan", "model_config", "rebuild_model", "count_parameters",
    "ResNet1d", "resnet1d", "resnet1d_wide", "ConvNeXt1d", "convnext1d", "DenseClassifier", "dense", "ParkCNN",
    "cnn_park", "CAERegressor", "ConvAutoencoder1d", "cae_regressor", "Ensemble", "quadratic_loss",
    "cross_entropy_loss", "vecsei_loss", "Generator", "SGAN", "real_fake_logit", "real_probability",
    "generator_loss", "feature_matching_loss", "unsupervised_discriminator_loss", "discriminator_loss",
    "LatticeScaler", "MultiTask", "multitask_loss", "lattice_errors", "LATTICE_PARAMETERS", "ForestBaseline", "random_forest_baseline",
    "downsample_patterns",
]  # fmt: skip
