"""Trained models on disk: weights as safetensors and a small JSON beside them (same stem) that says how to
rebuild the network and what it was trained on. Loading never unpickles anything."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from powdersym.files import atomic_write, atomic_write_text


class ModelFileError(ValueError):
    """A model file that is missing, incomplete or not a powdersym model (one-line message)."""


@dataclass
class SavedModel:
    """A network ready for inference and its description (model, label set, classes, instrument, normalisation,
    lattice scaler, temperature, training data, metrics)."""

    net: torch.nn.Module
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label_set(self) -> str:
        return self.meta["label_set"]

    @property
    def temperature(self) -> float:
        return float(self.meta.get("temperature", 1.0))


def meta_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def save_model(path: str | os.PathLike, net: torch.nn.Module, meta: dict[str, Any], half: bool = False) -> Path:
    """Write `path` (.safetensors) and its JSON: `meta` (label_set, classes, instrument, ...) plus the network's
    own description (`network`: model_config, to rebuild it). half=True stores float16 weights (half the size;
    loaded back as float32)."""
    from powdersym.models import model_config

    path = Path(path).with_suffix(".safetensors")
    if "label_set" not in meta:
        raise ValueError("model description lacks label_set")
    meta = {**meta, "network": model_config(net)}
    state = {k: v.detach().to("cpu", torch.float16 if half and v.is_floating_point() else v.dtype).contiguous()
             for k, v in net.state_dict().items()}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata={"format": "powdersym"}))
    atomic_write_text(meta_path(path), json.dumps(meta, indent=1, default=str))
    return path


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> SavedModel:
    """A saved model in eval mode on `device`; ModelFileError for anything that is not one."""
    from powdersym.models import rebuild_model

    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_suffix(".safetensors")
    if not path.is_file() or not meta_path(path).is_file():
        raise ModelFileError(f"{path}: no such model (needs {path.name} and {meta_path(path).name})")
    try:
        meta = json.loads(meta_path(path).read_text())
        net = rebuild_model(meta["network"])
        state = load_file(str(path))
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise ModelFileError(f"{path}: not a readable powdersym model ({str(err).splitlines()[0][:200]})") from None
    return SavedModel(net.to(device).eval(), meta)
