"""Crystals -> patterns -> augmentations, one block at a time: the pipeline shared by `build_dataset` (stored) and
`SyntheticStream` (on the fly), so that a stored data set and a training stream with the same settings draw from
the same distribution.

Every block has its own random generator seeded from (seed, stream, block): a block can be regenerated alone, which
is what makes an interrupted build resumable and shards written by separate processes disjoint.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from powdersym.simulate import Instrument, simulate
from powdersym.structures import CrystalBatch


# Crystals simulated at a time on a GPU (simulate also splits by memory: large cells go in smaller chunks). With the
# matrix-product |F|^2, 1024 ran fastest on an H100 (X-ray 20 k/s vs 18 k/s at 256; neutron CW 29 k/s vs 17 k/s); with
# the fused kernel (no [chunk, reflections, atoms] arrays) larger chunks do: neutron CW 56.5 k/s at 2048 vs 48.8 k/s at
# 1024 on an H200. 4096 against 2048 in the whole stream (calls of 16,384, H200, 2026-12-04): 46.5 k vs 45.9 k/s averaged
# over both timing orders (the configuration timed later in a process runs faster): no difference beyond that.
CUDA_CHUNK = 4096


def block_seed(*keys: int) -> int:
    """A 63-bit seed from a tuple of non-negative integers (numpy's SeedSequence hashing: nearby keys give
    unrelated streams)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(2, dtype=np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def make_generator(seed: int, device: torch.device | str) -> torch.Generator:
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(seed)
    return generator


def config_dict(config: Any) -> Any:
    """A dataclass (or None) as plain JSON-ready data, for the data set's attributes and resume checks."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config):
        return json.loads(json.dumps(dataclasses.asdict(config), default=_json_default))
    return json.loads(json.dumps(config, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return repr(value)


@dataclass
class SyntheticSettings:
    """What random crystals to draw: which labels are balanced (`label_set`), an optional prior over its classes,
    and the random-crystal and augmentation configurations (None: clean patterns)."""

    label_set: str = "sg"
    prior: Any = None
    crystal_config: Any = None
    augment_config: Any = None

    def __post_init__(self) -> None:
        from powdersym.structures.random import label_set_classes

        label_set_classes(self.label_set)  # raises ValueError for an unknown label set

    def as_dict(self) -> dict:
        from powdersym.structures.random import RandomCrystalConfig

        prior = self.prior.tolist() if isinstance(self.prior, (torch.Tensor, np.ndarray)) else self.prior
        return {
            "label_set": self.label_set,
            "prior": prior,
            "random_crystals": config_dict(self.crystal_config or RandomCrystalConfig()),
            "augment": config_dict(self.augment_config),
        }


def augment_config(augment: Any, instrument: Instrument, ranges: dict | None = None) -> Any:
    """An AugmentConfig from a name ('realistic' for the instrument's kind, 'vecsei', 'none') or as given, with
    `ranges` replacing some of its effects' ranges (AugmentConfig.with_ranges); None and 'none' mean clean patterns."""
    config = _named_augment_config(augment, instrument)
    if ranges:
        if config is None:
            raise ValueError("augmentation ranges given, but augmentation is off ('none')")
        config = config.with_ranges(ranges)
    return config


def _named_augment_config(augment: Any, instrument: Instrument) -> Any:
    if augment is None or (isinstance(augment, str) and augment == "none"):
        return None
    if not isinstance(augment, str):
        return augment
    from powdersym.augment import AugmentConfig

    if augment == "realistic":
        return AugmentConfig.realistic(instrument)
    if augment == "vecsei":
        return AugmentConfig.vecsei()
    raise ValueError(f"unknown augmentation {augment!r} (known: realistic, vecsei, none)")


def render(
    batch: CrystalBatch,
    instrument: Instrument,
    augment_config: Any,
    generator: torch.Generator,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Patterns [B, n_points] of a crystal batch (chunk_size: crystals simulated at a time; None: CUDA_CHUNK on a
    GPU, simulate's default on the CPU); with an augmentation config, sample effects (shifts, preferred
    orientation, broadening) act inside the simulator and pattern effects (impurity, background, noise) after it."""
    batch = batch.to(device)
    if chunk_size is None and torch.device(device).type == "cuda":
        chunk_size = CUDA_CHUNK
    if augment_config is None:
        return simulate(batch, instrument, device=device, dtype=dtype, chunk_size=chunk_size)
    from powdersym.augment import augment, sample_perturbation

    perturbation = None
    if augment_config.perturbs:
        perturbation = sample_perturbation(len(batch), instrument, augment_config, generator, torch.device(device), dtype)
    patterns = simulate(batch, instrument, device=device, dtype=dtype, perturbation=perturbation, chunk_size=chunk_size)
    # The impurity phase of pattern i is crystal i-1 of the same block: another random (or real) crystal, at no
    # extra simulation cost; augment() decides per pattern whether it gets one and at what share.
    impurity = patterns.roll(1, dims=0) if augment_config.impurity_fraction is not None else None
    return augment(patterns, instrument, augment_config, generator=generator, impurity=impurity)


def synthetic_crystals(n: int, settings: SyntheticSettings, generator: torch.Generator, device: torch.device | str):
    """n random crystals (RandomCrystals) with space groups drawn as the settings say."""
    from powdersym.structures.random import RandomCrystalConfig, random_crystals, sample_space_groups

    groups = sample_space_groups(n, settings.label_set, prior=settings.prior, generator=generator, device=device)
    return random_crystals(groups, settings.crystal_config or RandomCrystalConfig(), generator=generator, device=device)


def synthetic_block(
    n: int,
    instrument: Instrument,
    settings: SyntheticSettings,
    generator: torch.Generator,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
    chunk_size: int | None = None,
) -> tuple[torch.Tensor, Any]:
    """n random crystals and their patterns: (patterns [n, P], RandomCrystals)."""
    crystals = synthetic_crystals(n, settings, generator, device)
    patterns = render(crystals.batch, instrument, settings.augment_config, generator, device, dtype, chunk_size)
    return patterns, crystals
