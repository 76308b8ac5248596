"""PyTorch datasets: `PatternDataset` over stored pattern files, `SyntheticStream` generating patterns on the fly.

PatternDataset reads rows through a memory map of the HDF5 file (the chunk offsets are found once, at
construction): no HDF5 handle crosses a fork, so any number of DataLoader workers can read, and a random batch costs
one gather per file. Compressed files, or mmap=False, read through h5py instead (a handle opened lazily in each
worker process), which also verifies each chunk's checksum.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from powdersym.data.labels import CLASS_LABELS, NUMERIC_LABELS, STRING_LABELS
from powdersym.data.store import DatasetFormatError, check_pattern_file, chunk_offsets, open_h5, require
from powdersym.simulate import Instrument, preset

Target = str | Sequence[str] | None

# Crystals drawn per call on a GPU: a call costs a near-fixed number of kernel launches, so larger pools are cheaper
# per crystal, up to about this size. Whole neutron-cw stream on an H200 (batches of 512, realistic augmentation,
# one whole pool cycle after a warm-up pool, benchmarks/stream_profile.py, 2026-12-04): 36.3 k and 42.7 k patterns/s
# with pools of 262,144, 40.8 k and 43.5 k/s with 524,288 (the first of a process is the slower): no gain from the
# larger pool beyond run-to-run spread. Under 1 GB of GPU memory (<= 64 atoms each).
CUDA_POOL = 262_144
# Patterns simulated per call on a GPU: each call has a fixed cost (sample effects, augmentation, a few hundred
# launches and host syncs) beside its chunks. Same stream, one H200 (2026-12-04, stream_profile.py --stream-renders
# 16384 4096 --stream-chunks 4096 2048, timed in both orders): calls of 16,384 40.5 k / 51.8 k patterns/s, calls of
# 4,096 31.7 k / 36.8 k (each the mean over both chunk sizes; first / second order).
CUDA_RENDER = 16_384


def _select(labels: dict[str, torch.Tensor], target: Target) -> Any:
    """One label (target a name), a dict of some (a list of names) or of all numeric labels (None)."""
    if target is None:
        return labels
    if isinstance(target, str):
        return labels[target]
    return {name: labels[name] for name in target}


def _check_target(target: Target) -> None:
    names = [target] if isinstance(target, str) else list(target or [])
    unknown = [name for name in names if name not in NUMERIC_LABELS]
    if unknown:
        raise ValueError(f"unknown label(s) {', '.join(unknown)} (numeric labels: {', '.join(NUMERIC_LABELS)})")


def _as_tensors(labels: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Class labels and atom counts as int64 (what losses index with), lattice parameters as float32."""
    return {
        name: torch.from_numpy(values.astype(np.float32 if name == "lattice" else np.int64))
        for name, values in labels.items()
    }


class PatternDataset(Dataset):
    """Patterns (float32 tensors [P]) and labels of one pattern file or several shards read as one.

    target: a label name ('space_group', 'bravais', 'extinction_group', 'lattice'...) to get (pattern, label),
    a list of names for (pattern, {name: label}), or None for every numeric label.
    `labels` holds the numeric label columns of all rows (numpy), e.g. for splits and class weights;
    `strings('formula')` the text columns. Indices run over the files in the order given.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], target: Target = None, mmap: bool = True):
        _check_target(target)
        self.paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("no pattern files given")
        self.target = target
        self.mmap = mmap
        columns: dict[str, list[np.ndarray]] = {name: [] for name in NUMERIC_LABELS}
        self._offsets: list[np.ndarray | None] = []
        self._chunk_rows: list[int] = []
        sizes, grid = [], None
        for path in self.paths:
            with open_h5(path) as f:
                n = check_pattern_file(f, path)
                x = f["x"][()]
                if grid is None:
                    grid, self.instrument_json = x, f.attrs.get("instrument", "{}")
                elif not np.array_equal(grid, x):
                    raise DatasetFormatError(f"{path}: its grid differs from {self.paths[0]}'s: shards of different instruments")
                for name in NUMERIC_LABELS:
                    columns[name].append(f[f"labels/{name}"][()])
                patterns = f["patterns"]
                self._chunk_rows.append(patterns.chunks[0] if patterns.chunks else n)
                self._offsets.append(chunk_offsets(patterns, path, os.path.getsize(path)) if mmap else None)
            sizes.append(n)
        self.x = grid
        self.n_points = len(grid)
        self.labels = {name: np.concatenate(parts) for name, parts in columns.items()}
        self._starts = np.concatenate([[0], np.cumsum(sizes)])
        self._handles: dict[int, Any] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._starts[-1])

    def strings(self, name: str) -> np.ndarray:
        """A text label of every row ('formula', 'source', 'prototype') as an object array of str."""
        if name not in STRING_LABELS:
            raise ValueError(f"unknown text label {name!r} (text labels: {', '.join(STRING_LABELS)})")
        parts = []
        for path in self.paths:
            with open_h5(path) as f:
                parts.append(require(f, f"labels/{name}", path).asstr()[()].astype(object))
        return np.concatenate(parts)

    @property
    def instrument(self) -> Instrument:
        """The instrument the patterns were simulated for (from the file's attributes)."""
        import json

        return Instrument.from_dict(json.loads(self.instrument_json))

    # ---- reading ------------------------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = {}  # memory maps and h5py handles are opened again in each worker
        return state

    def _handle(self, k: int) -> Any:
        if self._pid != os.getpid():  # a forked worker must not use its parent's h5py handles
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(k)
        if handle is None:
            if self._offsets[k] is not None:
                handle = np.memmap(self.paths[k], dtype=np.uint8, mode="r")
            else:
                handle = h5py.File(self.paths[k], "r")["patterns"]
            self._handles[k] = handle
        return handle

    def read(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> tuple[torch.Tensor, Any]:
        """A batch: patterns [B, P] float32 and the target labels of rows `indices` (any order, repeats allowed)."""
        index = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(index) and (index.min() < -len(self) or index.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} patterns")
        index = np.where(index < 0, index + len(self), index)
        file_of_row = np.searchsorted(self._starts, index, side="right") - 1
        patterns = np.empty((len(index), self.n_points), dtype=np.float16)
        for k in np.unique(file_of_row):
            where = np.flatnonzero(file_of_row == k)
            patterns[where] = self._read_rows(int(k), index[where] - self._starts[k])
        labels = _as_tensors({name: values[index] for name, values in self.labels.items()})
        return torch.from_numpy(patterns).float(), _select(labels, self.target)  # torch converts float16 faster

    def _read_rows(self, k: int, rows: np.ndarray) -> np.ndarray:
        handle = self._handle(k)
        offsets = self._offsets[k]
        if offsets is not None:
            rows_per_chunk = self._chunk_rows[k]
            row_bytes = 2 * self.n_points
            start = offsets[rows // rows_per_chunk] + (rows % rows_per_chunk) * row_bytes
            raw = np.empty((len(rows), row_bytes), dtype=np.uint8)
            for i, first in enumerate(start.tolist()):  # one memcpy a row: 3x faster than a fancy-index gather
                raw[i] = handle[first : first + row_bytes]
            return raw.view("<f2")
        order = np.argsort(rows, kind="stable")
        unique, inverse = np.unique(rows[order], return_inverse=True)
        try:
            block = handle[unique]  # h5py reads increasing, distinct rows
        except OSError as err:
            raise DatasetFormatError(f"{self.paths[k]}: damaged pattern data ({str(err).splitlines()[0]})") from err
        out = np.empty((len(rows), self.n_points), dtype=np.float16)
        out[order] = block[inverse]
        return out

    def __getitem__(self, index: int | Sequence[int]) -> tuple[torch.Tensor, Any]:
        """One row (pattern [P], label), or with a list of rows a whole batch ([B, P], labels [B]): pass
        sampler=BatchSampler(...), batch_size=None to a DataLoader to read each batch in one gather."""
        if not isinstance(index, (int, np.integer)):
            return self.read(index)
        patterns, labels = self.read([index])
        single = {name: value[0] for name, value in labels.items()} if isinstance(labels, dict) else labels[0]
        return patterns[0], single

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, Any]]:
        """A DataLoader batch read in one gather (torch calls this instead of __getitem__ per row)."""
        patterns, labels = self.read(indices)
        if isinstance(labels, dict):
            return [(patterns[i], {name: value[i] for name, value in labels.items()}) for i in range(len(indices))]
        return [(patterns[i], labels[i]) for i in range(len(indices))]


def stream_rank() -> int:
    """The rank of this process under torch.distributed (0 without): the index of its synthetic stream."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def worker_steps(start: int, max_batches: int | None, per_pool: int) -> Iterator[int]:
    """The steps of the one-process stream that this DataLoader worker yields, in its order.

    A DataLoader takes batch g (counted from `start`) from worker g % k. Worker roles rotate with `start` so that
    each role serves every k-th batch and, in the one-process stream, every k-th pool: a worker draws only its own
    pools, and k endless workers together yield exactly the one-process stream's batches, consecutive pools
    interleaved batch by batch. The order depends on k, not on timing, so a run resumed at `start` with the same k
    replays the same batches. A finite stream (max_batches) yields max_batches of those batches, the whole first
    pools only when max_batches is a multiple of k pools. Without workers: start, start + 1, ...
    """
    worker = get_worker_info()
    k, w = (worker.num_workers, worker.id) if worker is not None else (1, 0)
    role = (start + w) % k
    served = itertools.count(start + w, k) if max_batches is None else range(start + w, start + max_batches, k)
    for g in served:
        j = g // k  # the role's own batch count
        yield (j // per_pool * k + role) * per_pool + j % per_pool


class SyntheticStream(IterableDataset):
    """An endless stream of batches of random crystals -> patterns -> augmentations, generated on `device`.

    Yields (patterns [batch_size, P], target) batch by batch; use DataLoader(stream, batch_size=None). Crystals are
    drawn `pool_size` at a time (a call of the generator costs a near-fixed number of kernel launches on a GPU, so
    the default there is CUDA_POOL crystals, or what max_batches needs if fewer, rendered batch by batch) and every
    crystal is used once. Pools and batches have their own
    seeds from (seed, rank, index): ranks never repeat each other's crystals, and a run is reproducible (start_step
    skips to a batch, e.g. when resuming training); rank: that index (None: this process's torch.distributed rank,
    which spawned worker processes do not know). DataLoader workers share their rank's stream pool by pool
    (`worker_steps`): with k workers an endless stream gives the same batches, consecutive pools interleaved;
    `loader(k)` builds that DataLoader (spawned workers on a GPU, where CUDA does not survive fork: each generates
    beside the consumer and hands its batches over through CUDA IPC).
    augment: an AugmentConfig, 'realistic', 'vecsei' or None (clean); target as for PatternDataset (None: all
    numeric labels, as tensors on `device`). max_batches: in all, over the workers (None: endless); chunk_size: crystals simulated
    at a time (None: generate.CUDA_CHUNK on a GPU, simulate's default on the CPU). render_size: patterns
    simulated per call and then yielded batch_size at a time (None: CUDA_RENDER on a GPU, or the pool if smaller, and
    batch_size on the CPU); a multiple of batch_size.
    """

    def __init__(
        self,
        instrument: str | Instrument = "neutron-cw",
        batch_size: int = 256,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
        label_set: str = "sg",
        prior: Any = None,
        crystal_config: Any = None,
        augment: Any = None,
        target: Target = None,
        dtype: torch.dtype = torch.float32,
        start_step: int = 0,
        rank: int | None = None,
        max_batches: int | None = None,
        chunk_size: int | None = None,
        pool_size: int | None = None,
        render_size: int | None = None,
    ) -> None:
        from powdersym.data.generate import SyntheticSettings, augment_config

        _check_target(target)
        self.instrument = preset(instrument) if isinstance(instrument, str) else instrument
        augment = augment_config(augment, self.instrument)
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device)
        self.settings = SyntheticSettings(label_set, prior, crystal_config, augment)
        self.target = target
        self.dtype = dtype
        self.start_step = start_step
        self.rank = rank
        self.max_batches = max_batches
        self.chunk_size = chunk_size
        if pool_size is None:
            pool_size = CUDA_POOL if self.device.type == "cuda" else batch_size
            if max_batches is not None:  # a finite stream (e.g. validation) draws no more crystals than it uses
                pool_size = min(pool_size, max_batches * batch_size)
        if render_size is None:
            render_size = min(CUDA_RENDER, pool_size) if self.device.type == "cuda" else batch_size
        self.batches_per_render = max(1, render_size // batch_size)
        # a pool holds whole render blocks
        self.batches_per_pool = max(1, pool_size // batch_size) // self.batches_per_render * self.batches_per_render or self.batches_per_render

    def loader(self, workers: int = 0) -> DataLoader:
        """A DataLoader over this stream: batches as they are, generated by this process (workers=0) or by that many
        worker processes beside it (spawned on a GPU), each prefetching a few batches."""
        if not workers:
            return DataLoader(self, batch_size=None)
        context = "spawn" if self.device.type == "cuda" else None
        return DataLoader(self, batch_size=None, num_workers=workers, multiprocessing_context=context,
                          persistent_workers=True, prefetch_factor=4)  # fmt: skip

    def __iter__(self) -> Iterator[tuple[torch.Tensor, Any]]:
        from powdersym.data.generate import block_seed, make_generator, render, synthetic_crystals
        from powdersym.symmetry import label_tables

        stream = stream_rank() if self.rank is None else self.rank
        if get_worker_info() is not None and self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)  # a spawned worker starts on cuda:0, whatever its stream's device
        tables = label_tables(self.device)
        pool, pool_index, block_index = None, -1, -1
        k, b = self.batches_per_render, self.batch_size
        for step in worker_steps(self.start_step, self.max_batches, self.batches_per_pool):
            if step // self.batches_per_pool != pool_index:
                pool_index = step // self.batches_per_pool
                generator = make_generator(block_seed(self.seed, 2, stream, pool_index), self.device)
                with torch.no_grad():
                    pool = synthetic_crystals(b * self.batches_per_pool, self.settings, generator, self.device)
            if step // k != block_index:  # render k batches at once; a block's seed depends on its first step
                block_index = step // k
                start = (block_index * k % self.batches_per_pool) * b
                rows = torch.arange(start, start + k * b, device=self.device)
                batch, groups = pool.batch[rows], pool.space_group[rows].to(self.device, torch.long)
                generator = make_generator(block_seed(self.seed, 1, stream, block_index * k), self.device)
                with torch.no_grad():
                    patterns = render(batch, self.instrument, self.settings.augment_config, generator, self.device,
                                      self.dtype, self.chunk_size)  # fmt: skip
                labels = {"space_group": groups, **{name: tables[name][groups] for name in CLASS_LABELS[1:]}}
                labels["lattice"] = batch.lattice.to(self.device, torch.float32)
                labels["n_atoms"] = batch.mask.sum(1).to(self.device)
            part = slice((step % k) * b, (step % k + 1) * b)
            yield patterns[part], _select({name: value[part] for name, value in labels.items()}, self.target)
