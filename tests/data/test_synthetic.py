"""Synthetic data: stored builds (labels, resume) and the endless stream (seeds per worker, reproducibility).

Skipped until powdersym.structures.random (random crystals) is importable.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from unittest.mock import patch

import h5py
import numpy as np
import pytest
import torch

pytest.importorskip("powdersym.structures.random", reason="random crystal generator (powdersym.structures.random) not available")

from powdersym.data import PatternDataset, SyntheticStream, build_dataset, class_labels, read_labels  # noqa: E402
from powdersym.data.loaders import worker_steps  # noqa: E402
from powdersym.symmetry import CRYSTAL_SYSTEMS, label_tables  # noqa: E402

N, BLOCK = 24, 8


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def synthetic_file(tmp_path_factory) -> Path:
    return build_dataset(tmp_path_factory.mktemp("synthetic") / "s.h5", "synthetic", "neutron-cw", N, block_size=BLOCK,
                         seed=11, augment="realistic")  # fmt: skip


def test_synthetic_labels_are_consistent(synthetic_file: Path):
    labels = read_labels(synthetic_file)
    assert len(labels["space_group"]) == N and set(labels["source"]) == {"synthetic"}
    derived = class_labels(labels["space_group"])
    for name, values in derived.items():
        assert np.array_equal(labels[name], values), name
    assert all(labels["formula"]) and (labels["n_atoms"] >= 1).all()
    for lattice, system in zip(labels["lattice"].astype(float), labels["crystal_system"]):
        a, b, c, alpha, beta, gamma = lattice
        name = CRYSTAL_SYSTEMS[system]
        if name == "cubic":
            assert np.allclose([b, c], a, rtol=1e-4) and np.allclose([alpha, beta, gamma], 90, atol=1e-2)
        elif name in ("hexagonal", "trigonal"):
            assert np.isclose(a, b, rtol=1e-4) and np.isclose(gamma, 120, atol=1e-2)
        elif name in ("tetragonal", "orthorhombic"):
            assert np.allclose([alpha, beta, gamma], 90, atol=1e-2)
    with h5py.File(synthetic_file, "r") as f:
        patterns = f["patterns"][()]
    assert np.isfinite(patterns).all() and len(np.unique(patterns, axis=0)) == N


def test_synthetic_build_resumes_exactly(synthetic_file: Path, tmp_path: Path):
    out = tmp_path / "resumed.h5"

    def stop(done: int, total: int) -> None:
        if done >= 2 * BLOCK:
            raise Interrupt

    with pytest.raises(Interrupt):
        build_dataset(out, "synthetic", "neutron-cw", N, block_size=BLOCK, seed=11, augment="realistic", progress=stop)
    build_dataset(out, "synthetic", "neutron-cw", N, block_size=BLOCK, seed=11, augment="realistic")
    first, second = PatternDataset(synthetic_file), PatternDataset(out)
    assert torch.equal(first.read(range(N))[0], second.read(range(N))[0])
    assert np.array_equal(first.strings("formula"), second.strings("formula"))


def test_stream_is_reproducible():
    def batches(**kwargs):
        return list(SyntheticStream("neutron-cw", 8, seed=5, max_batches=2, target="space_group", **kwargs))

    one, two = batches(), batches()
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(one, two))
    assert torch.equal(batches(start_step=1)[0][0], one[1][0])
    assert not torch.equal(one[0][0], one[1][0])


def test_worker_steps_cover_the_one_process_stream_pool_by_pool():
    """k workers, pools of 2 batches, as a DataLoader interleaves them (batch g from worker g % k): together the
    one-process steps, each once, consecutive pools interleaved; a restart at any step continues that order."""

    def interleaved(k: int, start: int, n: int) -> list[int]:
        per_worker = []
        for w in range(k):
            info = SimpleNamespace(id=w, num_workers=k)
            with patch("powdersym.data.loaders.get_worker_info", return_value=info):
                per_worker.append(list(worker_steps(start, n, 2)))
        return [per_worker[i % k][i // k] for i in range(n)]

    assert interleaved(1, 0, 6) == [0, 1, 2, 3, 4, 5]
    assert interleaved(2, 0, 8) == [0, 2, 1, 3, 4, 6, 5, 7]
    assert interleaved(3, 0, 6) == [0, 2, 4, 1, 3, 5]
    for k in (2, 3):
        whole = interleaved(k, 0, 24)
        assert sorted(whole) == list(range(24))
        for start in range(1, 7):
            assert interleaved(k, start, 24 - start) == whole[start:]


def test_stream_from_two_workers_yields_the_one_process_batches():
    def stream(**kwargs):
        return SyntheticStream("neutron-cw", 4, seed=5, max_batches=4, pool_size=8, **kwargs)

    alone = list(stream())
    loader = torch.utils.data.DataLoader(stream(), batch_size=None, num_workers=2)
    together = list(loader)
    assert len(together) == 4
    for got, expected in zip(together, [alone[i] for i in (0, 2, 1, 3)]):
        assert torch.equal(got[0], expected[0])
        assert all(torch.equal(got[1][name], expected[1][name]) for name in expected[1])
    x, labels = together[0]
    assert torch.equal(labels["bravais"], label_tables()["bravais"][labels["space_group"]])
    assert x.shape == (4, 3041) and labels["lattice"].shape == (4, 6)


def test_stream_pools_give_the_same_batches_from_any_start():
    stream = SyntheticStream("neutron-cw", 4, seed=2, max_batches=3, pool_size=8, target="space_group")
    batches = list(stream)
    assert len(batches) == 3 and not torch.equal(batches[0][1], batches[1][1])
    resumed = list(SyntheticStream("neutron-cw", 4, seed=2, start_step=1, max_batches=2, pool_size=8, target="space_group"))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(batches[1:], resumed))


def test_stream_rendering_several_batches_at_once_resumes_mid_block():
    """With render_size = 3 batches, the batches of one render block are the same whether the stream starts at
    the block or resumes in the middle of it (start_step), and labels stay with their patterns."""
    from powdersym.data import SyntheticStream

    def batches(start, n):
        stream = SyntheticStream("neutron-cw", 4, seed=11, render_size=12, start_step=start, max_batches=n, target="space_group")
        return list(stream)

    whole = batches(0, 4)
    resumed = batches(2, 2)
    for (x, y), (x2, y2) in zip(whole[2:], resumed):
        assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(whole[0][0], whole[1][0])  # slices of one block differ


def test_stream_workers_keep_the_rank_they_were_given():
    """Spawned workers do not know the torch.distributed rank: the stream carries it (the trainer passes it)."""

    def stream(rank: int, n: int) -> SyntheticStream:
        return SyntheticStream("neutron-cw", 4, seed=5, max_batches=n, pool_size=8, rank=rank, target="space_group")

    rank0, rank1 = list(stream(0, 3)), list(stream(1, 3))
    assert not torch.equal(rank0[0][0], rank1[0][0])
    together = list(torch.utils.data.DataLoader(stream(1, 2), batch_size=None, num_workers=2))
    assert torch.equal(together[0][0], rank1[0][0]) and torch.equal(together[1][0], rank1[2][0])
