"""Training data as Lightning sees it: the synthetic stream (random crystals simulated on the training device) or
stored pattern files with seeded splits and class-balanced mini-batches (as Garcia-Cardona et al.'s)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from powdersym.data import PatternDataset, SyntheticStream, label_fraction_split, random_split, structure_disjoint_split
from powdersym.train.config import TrainConfig, balance_label_set, class_target, synthetic_draw


class BatchIndexSampler(Sampler[np.ndarray]):
    """Endless mini-batches of row indices drawn from `indices`; with `classes`, every class is equally likely in
    each draw (then a row uniformly within its class), otherwise rows are drawn uniformly. Batch `step` of a
    process is seeded by (seed, rank, step): under DDP (one process per device, `rank` = its global rank) every
    process draws its own batches, and a resumed run continues where it stopped (`start` = the step reached)."""

    def __init__(self, indices: np.ndarray, batch_size: int, classes: np.ndarray | None = None, seed: int = 0,
                 start: int = 0, rank: int = 0):  # fmt: skip
        self.indices = np.asarray(indices, dtype=np.int64)
        if len(self.indices) == 0:
            raise ValueError("no rows to draw batches from")
        self.batch_size = batch_size
        self.seed = seed
        self.start = start
        self.rank = rank
        self.members: list[np.ndarray] | None = None
        if classes is not None:
            classes = np.asarray(classes)
            keep = classes >= 0  # rows without a class in this label set cannot be balanced over
            self.members = [self.indices[keep][classes[keep] == c] for c in np.unique(classes[keep])]

    def __iter__(self) -> Iterator[np.ndarray]:
        for step in itertools.count(self.start):
            rng = np.random.default_rng([self.seed, self.rank, step])
            if self.members is None:
                yield self.indices[rng.integers(0, len(self.indices), self.batch_size)]
                continue
            which = rng.integers(0, len(self.members), self.batch_size)
            yield np.array([self.members[c][rng.integers(0, len(self.members[c]))] for c in which], dtype=np.int64)


class PatternData(L.LightningDataModule):
    """Batches (patterns [B, P], labels dict) for training and validation.

    Synthetic: an endless SyntheticStream on the training device (seeded by rank and step) and a fixed validation
    set drawn once from another seed. Stored: the pattern files split into train / validation / test (random or
    structure-disjoint, seeded); with labelled_fraction < 1 the main paper's label-fraction split, whose
    unlabelled rows feed `unlabelled_dataloader` (SGAN).

    Under DDP (Lightning's distributed sampler is off) every process draws its own training batches: the stream
    and BatchIndexSampler are seeded by the global rank. Validation: every process validates all stored
    validation rows (the metrics are exactly those of one device); the synthetic validation set is drawn as one
    shard of validation_size / world patterns per process (each from its own stream), and the modules average
    the metrics over processes (sync_dist).
    """

    def __init__(self, config: TrainConfig):
        super().__init__()
        self.config = config
        self.dataset: PatternDataset | None = None
        self.split: dict[str, np.ndarray] = {}
        self._validation: list[tuple[torch.Tensor, dict]] | None = None

    # ---- helpers ----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _start_step(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_step) // self.config.optimiser_steps if trainer is not None else 0

    def _rank_world(self) -> tuple[int, int]:
        """(global rank, number of processes) of this process in a DDP run; (0, 1) otherwise."""
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def _stream(self, seed: int, batch_size: int, start: int = 0, max_batches: int | None = None) -> SyntheticStream:
        c = self.config
        label_set, prior = synthetic_draw(c)
        return SyntheticStream(
            c.instrument, batch_size, seed=seed, device=self.device, label_set=label_set, prior=prior,
            augment=c.augment_config(), start_step=start, max_batches=max_batches, rank=self._rank_world()[0],
        )  # fmt: skip

    # ---- Lightning hooks --------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        c = self.config
        if c.synthetic or self.dataset is not None:
            return
        self.dataset = PatternDataset(c.data)
        n = len(self.dataset)
        split = c.split
        if split == "auto":  # structure-disjoint for real structures, random for synthetic crystals
            split = "structure" if any(str(v).startswith("real") for v in self.dataset.strings("source")) else "random"
        if split == "structure":
            groups = self.dataset.strings("prototype")
            if not any(groups):
                groups = self.dataset.strings("formula")
            parts = structure_disjoint_split(groups, test_fraction=c.test_fraction, validation_fraction=c.validation_fraction, seed=c.seed)
        else:
            parts = random_split(n, test_fraction=c.test_fraction, validation_fraction=c.validation_fraction, seed=c.seed)
        self.split = dict(parts)
        if c.labelled_fraction < 1:
            # the paper's protocol: the labelled / unlabelled division is made inside the training part
            train = parts["train"]
            fractions = label_fraction_split(len(train), c.labelled_fraction, test_fraction=0.0, seed=c.seed)
            self.split["train"], self.split["unlabelled"] = train[fractions["labelled"]], train[fractions["unlabelled"]]

    def _classes(self, rows: np.ndarray) -> np.ndarray:
        assert self.dataset is not None
        column = {name: torch.from_numpy(values[rows].astype(np.int64)) for name, values in self.dataset.labels.items() if name != "lattice"}
        return class_target(column, self.config.labels).numpy()

    def _loader(self, rows: np.ndarray, balanced: bool, seed: int) -> DataLoader:
        c = self.config
        classes = self._classes(rows) if balanced else None
        sampler = BatchIndexSampler(rows, c.batch_size, classes, seed=seed, start=self._start_step(), rank=self._rank_world()[0])
        return DataLoader(self.dataset, sampler=sampler, batch_size=None, num_workers=c.num_workers,
                          persistent_workers=c.num_workers > 0)  # fmt: skip

    def train_dataloader(self) -> DataLoader | dict[str, DataLoader]:
        c = self.config
        if c.sgan:
            return {"labelled": self._labelled_loader(), "unlabelled": self.unlabelled_dataloader()}
        return self._labelled_loader()

    def _labelled_loader(self) -> DataLoader:
        c = self.config
        if c.synthetic:
            return self._stream_loader(c.seed)
        return self._loader(self.split["train"], c.balanced, c.seed)

    def unlabelled_dataloader(self) -> DataLoader:
        """Rows whose labels the SGAN may not use (the labels are still yielded; the module drops them)."""
        c = self.config
        if c.synthetic:
            return self._stream_loader(c.seed + 1)
        return self._loader(self.split["unlabelled"], False, c.seed + 1)

    def _stream_loader(self, seed: int) -> DataLoader:
        """The endless training stream. With stream_workers, that many processes generate beside training, each its
        own pools of this rank's stream (the same batches as without, consecutive pools interleaved; spawned on a
        GPU, where CUDA does not survive fork)."""
        c = self.config
        return self._stream(seed, c.batch_size, start=self._start_step()).loader(c.stream_workers)

    def val_dataloader(self) -> DataLoader | list:
        c = self.config
        if c.synthetic:
            if self._validation is None:
                # drawn once, on the training device, from a seed no training stream uses; one shard per process
                size = max(1, c.validation_size // self._rank_world()[1])
                batch = min(size, 1024)
                stream = self._stream(c.seed + 10_000, batch, max_batches=max(1, size // batch))
                self._validation = [(x, labels) for x, labels in stream]
            return DataLoader(self._validation, batch_size=None)  # the batches as they are
        rows = self.split["validation"]
        if len(rows) == 0:
            return []
        batches = [rows[i : i + 1024] for i in range(0, len(rows), 1024)]
        return DataLoader(self.dataset, sampler=batches, batch_size=None, num_workers=0)

    def describe(self) -> dict[str, Any]:
        """What the model was trained on, for the exported model's JSON and the report."""
        c = self.config
        if c.synthetic:
            world = self._rank_world()[1]
            validation = f"{c.validation_size} synthetic patterns (seed {c.seed + 10_000})" + (f", {world} shards (one per process)" if world > 1 else "")
            return {"source": "synthetic random crystals, simulated on the fly", "instrument": c.instrument,
                    "augment": c.augment, "augment_ranges": c.augment_ranges, "label_set": c.labels,
                    "balanced_over": balance_label_set(c), "known_exponent": c.known_exponent,
                    "validation": validation}  # fmt: skip
        sizes = {name: int(len(rows)) for name, rows in self.split.items()}
        return {"source": [str(p) for p in np.atleast_1d(c.data)], "split": c.split, "seed": c.seed, "rows": sizes,
                "labelled_fraction": c.labelled_fraction, "balanced": c.balanced}  # fmt: skip
