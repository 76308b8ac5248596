"""Training configuration: one dataclass with the main paper's hyper-parameters as defaults (Lolla et al. 2022,
Table 2), and the label sets a model can be trained on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

# Label set (as the CLI names it) -> label column of a pattern file / stream.
LABEL_COLUMNS: dict[str, str] = {
    "sg": "space_group",
    "sg144": "sg144",
    "bravais": "bravais",
    "eg": "extinction_group",
    "cs": "crystal_system",
    "lattice_system": "lattice_system",
    "laue_class": "laue_class",
}
LABEL_SET_ALIASES: dict[str, str] = {
    "space_group": "sg", "extinction_group": "eg", "extinction": "eg", "crystal_system": "cs",
}  # fmt: skip


def canonical_label_set(label_set: str) -> str:
    """'sg', 'sg144', 'bravais', 'eg', 'cs', ... from any accepted spelling; ValueError otherwise."""
    name = LABEL_SET_ALIASES.get(label_set, label_set)
    if name not in LABEL_COLUMNS:
        raise ValueError(f"unknown label set {label_set!r} (known: {', '.join(LABEL_COLUMNS)})")
    return name


def balance_label_set(config: "TrainConfig") -> str:
    """The label set synthetic space groups are balanced over, as `structures.random.sample_space_groups` names it."""
    return LABEL_COLUMNS[canonical_label_set(config.balance or config.labels)]


def synthetic_draw(config: "TrainConfig") -> tuple[str, Any]:
    """(label set, prior) with which the synthetic stream draws space groups: balanced over `balance_label_set`,
    or, with `known_exponent` > 0, the 230 groups weighted towards known crystals' frequencies."""
    balanced = balance_label_set(config)
    if not config.known_exponent:
        return balanced, None
    from powdersym.structures.random import space_group_distribution
    from powdersym.structures.statistics import tempered_space_group_distribution

    return "space_group", tempered_space_group_distribution(space_group_distribution(balanced), config.known_exponent)


def class_names(label_set: str) -> list[str]:
    """Names of a label set's classes in label order (space groups as 'number symbol')."""
    from powdersym.structures.random import label_set_classes
    from powdersym.symmetry import space_group

    name = canonical_label_set(label_set)
    classes = label_set_classes(LABEL_COLUMNS[name])
    if name in ("sg", "sg144"):
        return [f"{n} {space_group(int(n)).hm_symbol}" for n in classes]
    return [str(c) for c in classes]


def n_classes(label_set: str) -> int:
    return len(class_names(label_set))


def class_target(labels: dict[str, torch.Tensor], label_set: str) -> torch.Tensor:
    """Class indices [B] (long) of a batch's labels for a label set; -1 (ignored by the loss) where a row has no
    class in the set (space groups outside the 144 subset)."""
    name = canonical_label_set(label_set)
    column = labels[LABEL_COLUMNS[name]].long()
    return column - 1 if name == "sg" else column


@dataclass
class TrainConfig:
    """Everything a training run needs; defaults are the main paper's (Adam 1e-4, batch 64; SGAN: generator 1e-6,
    discriminator 5e-6, batch 32) where it states them.

    data: 'synthetic' (random crystals simulated on the fly) or pattern files (HDF5 from `powdersym dataset build`).
    labelled_fraction: < 1 keeps labels on that fraction of the training part (the paper's Table 4 set-up); the
    rest is used unlabelled by the SGAN and ignored by supervised models.
    lattice_weight: > 0 adds six lattice-parameter heads (Garcia-Cardona's integrated multitask model) with this
    weight on their MSE.
    """

    model: str = "resnet1d"
    labels: str = "bravais"
    data: str | list[str] = "synthetic"
    instrument: str = "neutron-cw"
    out: str = "runs/run"
    seed: int = 0
    max_steps: int = 20_000
    max_minutes: float | None = None  # wall-clock limit of the fit (then the model is exported as it is)
    batch_size: int = 64
    lr: float = 1e-4
    lr_schedule: str = "constant"  # constant | cosine (to zero over max_steps or max_minutes, whichever ends first)
    weight_decay: float = 0.0
    dropout: float | None = None  # None: the model's default
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    lattice_weight: float = 0.0
    init: str | None = None  # a saved model (.safetensors) whose weights start the run: fine-tuning
    # synthetic data
    augment: str = "realistic"
    # effect -> (low, high) or None (off), replacing the ranges of `augment` (AugmentConfig.with_ranges), e.g.
    # {"crystallite_size": (1000, 10000), "microstrain": (0, 5e-4)} for an instrument with sharper peaks
    augment_ranges: dict[str, Any] = field(default_factory=dict)
    # label set whose classes synthetic crystals are drawn equally often from (None: the trained labels); e.g.
    # "crystal_system" gives monoclinic + triclinic 2/7 of the patterns, against 15/230 when balanced over groups
    balance: str | None = None
    # 0 < e <= 1: space groups drawn ∝ balanced^(1-e) × known crystals' frequencies^e (1: as often as among known
    # crystals, P-1 7.5 %, P2_1/c 4.7 %, rare groups ~1e-5), so the network learns the groups real samples take
    known_exponent: float = 0.0
    validation_size: int = 2048
    stream_workers: int = 0  # processes generating the synthetic stream beside training (0: the training process)
    # stored data
    split: str = "auto"  # auto (structure for real structures, else random) | random | structure (by prototype, else formula)
    validation_fraction: float = 0.05
    test_fraction: float = 0.10
    labelled_fraction: float = 1.0
    balanced: bool = True
    num_workers: int = 2
    # SGAN (Table 2)
    sgan: bool = False
    generator_lr: float = 1e-6
    discriminator_lr: float = 5e-6
    generator_loss: str = "paper"  # paper (eq. 2, non-saturating) | feature_matching (Salimans et al. 2016)
    # running
    precision: str | None = None  # None: bf16-mixed on a GPU, 32 on the CPU
    accelerator: str = "auto"
    devices: int | str = 1
    validate_every: int = 1000
    log_every: int = 50
    checkpoint_every: int = 1000
    patience: int | None = 10  # validations without improvement before stopping (None: never)
    compile: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        self.labels = canonical_label_set(self.labels)
        if self.balance is not None:
            self.balance = canonical_label_set(self.balance)
        if self.split not in ("auto", "random", "structure"):
            raise ValueError(f"unknown split {self.split!r} (auto, random or structure)")
        if not 0 < self.labelled_fraction <= 1:
            raise ValueError("labelled_fraction must lie in (0, 1]")
        if self.generator_loss not in ("paper", "feature_matching"):
            raise ValueError(f"unknown generator loss {self.generator_loss!r} (paper or feature_matching)")
        if self.batch_size < 1 or self.max_steps < 1:
            raise ValueError("batch_size and max_steps must be positive")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"unknown learning-rate schedule {self.lr_schedule!r} (constant or cosine)")
        if not 0 <= self.known_exponent <= 1:
            raise ValueError(f"known_exponent must lie in [0, 1], not {self.known_exponent}")
        if self.stream_workers < 0:
            raise ValueError("stream_workers must be 0 or more")
        if self.augment_ranges:
            if not self.synthetic:
                raise ValueError("augmentation ranges apply to synthetic data; pattern files carry the augmentation they were built with")
            self.augment_config()  # ValueError now, not after the first steps

    def augment_config(self) -> Any:
        """The AugmentConfig of synthetic patterns (None: clean)."""
        from powdersym.data.generate import augment_config
        from powdersym.simulate import preset

        return augment_config(self.augment, preset(self.instrument), self.augment_ranges)

    @property
    def optimiser_steps(self) -> int:
        """Optimiser steps per training batch: Lightning's global step counts them (SGAN: discriminator and
        generator, 2); max_steps, checkpoint_every and the reported steps count batches."""
        return 2 if self.sgan else 1

    @property
    def synthetic(self) -> bool:
        return self.data == "synthetic"

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> TrainConfig:
        """A config saved in a model's JSON or a checkpoint; fields of older versions that no longer exist are
        ignored (e.g. crystal_prior, replaced by balance)."""
        return cls(**{k: v for k, v in config.items() if k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
