"""Pattern files: a build killed midway and resumed equals an uninterrupted one; shards add up to the whole; reading
returns the simulated patterns to float16 precision; damaged files are reported, never silently read."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from powdersym.data import (
    DatasetFormatError,
    PatternDataset,
    StructureCollection,
    build_dataset,
    dataset_info,
    read_labels,
    verify_dataset,
)
from powdersym.simulate import simulate


class Interrupt(Exception):
    pass


def stop_after(rows: int):
    def progress(done: int, total: int) -> None:
        if done >= rows:
            raise Interrupt

    return progress


def contents(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with h5py.File(path, "r") as f:
        return f["patterns"][()], read_labels(path)


def assert_same(first: Path, second: Path) -> None:
    patterns_a, labels_a = contents(first)
    patterns_b, labels_b = contents(second)
    assert np.array_equal(patterns_a, patterns_b)
    for name in labels_a:
        assert np.array_equal(labels_a[name], labels_b[name]), name


def test_file_layout(pattern_file: Path, known):
    with h5py.File(pattern_file, "r") as f:
        patterns = f["patterns"]
        assert patterns.dtype == np.float16 and patterns.shape == (len(known), 3041)
        assert patterns.chunks == (8, 3041) and patterns.compression is None and patterns.fletcher32
        assert f["x"].shape == (3041,) and f["x"][0] == pytest.approx(3.0)
        assert f["labels/space_group"].dtype == np.int16 and f["labels/lattice"].shape == (len(known), 6)
        assert h5py.check_string_dtype(f["labels/formula"].dtype) is not None
        attrs = dict(f.attrs)
    assert attrs["format"] == "powdersym-patterns" and attrs["n_patterns"] == len(known) and attrs["seed"] == 0
    assert '"name": "neutron-cw"' in attrs["instrument"] and '"source": "structures"' in attrs["generator"]
    assert not pattern_file.with_name(pattern_file.name + ".partial").exists()


def test_round_trip_to_float16_precision(pattern_file: Path, collection_file: Path):
    dataset = PatternDataset(pattern_file, target="space_group")
    collection = StructureCollection.load(collection_file)
    expected = simulate(collection.batch(range(len(collection))), "neutron-cw")
    patterns, groups = dataset.read(range(len(dataset)))
    assert patterns.dtype == torch.float32 and patterns.shape == expected.shape
    assert torch.allclose(patterns, expected, atol=5e-4, rtol=1e-3)  # float16: 11 significant bits
    assert groups.tolist() == [r.space_group for r in collection.records]
    pattern, group = dataset[3]
    assert torch.equal(pattern, patterns[3]) and int(group) == collection[3].space_group


def test_memory_map_and_hdf5_reads_agree_in_worker_processes(pattern_file: Path):
    mapped = PatternDataset(pattern_file, target=["space_group", "lattice"])
    through_h5py = PatternDataset(pattern_file, target=["space_group", "lattice"], mmap=False)
    order = [14, 0, 7, 7, 3]
    a, labels_a = mapped.read(order)
    b, labels_b = through_h5py.read(order)
    assert torch.equal(a, b) and torch.equal(labels_a["lattice"], labels_b["lattice"])
    loader = torch.utils.data.DataLoader(mapped, batch_size=4, num_workers=2)
    batches = list(loader)
    assert torch.equal(torch.cat([x for x, _ in batches]), mapped.read(range(len(mapped)))[0])
    assert torch.cat([y["space_group"] for _, y in batches]).tolist() == mapped.labels["space_group"].tolist()


def test_interrupted_build_resumes_to_the_uninterrupted_result(collection_file: Path, pattern_file: Path, tmp_path: Path):
    out = tmp_path / "resumed.h5"
    with pytest.raises(Interrupt):
        build_dataset(out, collection_file, "neutron-cw", block_size=4, progress=stop_after(8))
    partial = out.with_name(out.name + ".partial")
    assert not out.exists() and len(list(partial.glob("block-*.h5"))) == 2
    with pytest.raises(DatasetFormatError, match="unfinished build"):
        PatternDataset(out)
    seen = []
    build_dataset(out, collection_file, "neutron-cw", block_size=4, progress=lambda done, total: seen.append(done))
    assert seen[0] == 8 and seen[-1] == 15  # two blocks were kept, two regenerated
    assert_same(out, pattern_file)
    patterns, _ = contents(out)
    assert len(np.unique(patterns, axis=0)) == len(patterns) == 15


KILL_AFTER_TWO_BLOCKS = """
import os, signal, sys
from powdersym.data import build_dataset

def progress(done, total):
    if done >= 8:
        os.kill(os.getpid(), signal.SIGKILL)

build_dataset(sys.argv[1], sys.argv[2], "neutron-cw", block_size=4, progress=progress)
"""


def test_killed_build_resumes(collection_file: Path, pattern_file: Path, tmp_path: Path):
    out = tmp_path / "killed.h5"
    run = subprocess.run([sys.executable, "-c", KILL_AFTER_TWO_BLOCKS, str(out), str(collection_file)], timeout=120)
    assert run.returncode == -9
    partial = out.with_name(out.name + ".partial")
    (partial / "block-0000002.h5.tmp").write_bytes(b"half a block")  # as a kill during a block write leaves it
    build_dataset(out, collection_file, "neutron-cw", block_size=4)
    assert_same(out, pattern_file)
    assert not partial.exists()


def test_resume_with_other_settings_is_refused(collection_file: Path, tmp_path: Path):
    out = tmp_path / "x.h5"
    with pytest.raises(Interrupt):
        build_dataset(out, collection_file, "neutron-cw", block_size=4, progress=stop_after(4))
    with pytest.raises(ValueError, match="other settings .*seed"):
        build_dataset(out, collection_file, "neutron-cw", block_size=4, seed=1)
    build_dataset(out, collection_file, "neutron-cw", block_size=4, seed=1, overwrite=True)
    with pytest.raises(FileExistsError):
        build_dataset(out, collection_file, "neutron-cw", block_size=4, seed=1)


def test_shards_add_up_to_the_whole(collection_file: Path, pattern_file: Path, tmp_path: Path):
    shards = [build_dataset(tmp_path / f"s{i}.h5", collection_file, "neutron-cw", block_size=4, shard=(i, 2)) for i in range(2)]
    together = PatternDataset(shards, target=None)
    whole = PatternDataset(pattern_file)
    assert len(together) == len(whole) == 15
    assert sorted(together.strings("source")) == sorted(whole.strings("source"))
    row = {source: i for i, source in enumerate(whole.strings("source"))}
    order = [row[s] for s in together.strings("source")]
    assert torch.equal(together.read(range(15))[0], whole.read(order)[0])


def test_info_counts(pattern_file: Path):
    info = dataset_info(pattern_file)
    labels = read_labels(pattern_file)
    assert info["n_patterns"] == 15 and info["real"] == 15 and info["synthetic"] == 0
    for name in ("space_group", "bravais", "crystal_system", "extinction_group"):
        values, counts = np.unique(labels[name], return_counts=True)
        assert sorted(info["counts"][name].values()) == sorted(counts.tolist())
    assert info["counts"]["crystal_system"]["6 cubic"] == 8
    assert info["counts"]["space_group"]["225 F m -3 m"] == 5


# ---- damaged files ----------------------------------------------------------------------------------------------


def damaged_copies(pattern_file: Path, folder: Path) -> dict[str, Path]:
    data = pattern_file.read_bytes()
    garbage = folder / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    truncated = folder / "truncated.h5"
    truncated.write_bytes(data[: len(data) * 6 // 10])
    missing = folder / "missing.h5"
    shutil.copy(pattern_file, missing)
    with h5py.File(missing, "a") as f:
        del f["labels/bravais"]
    empty = folder / "empty.h5"
    empty.write_bytes(b"")
    return {"garbage": garbage, "truncated": truncated, "missing": missing, "empty": empty}


@pytest.mark.parametrize("kind, message", [
    ("garbage", "not a readable HDF5 file"), ("truncated", "truncated"), ("missing", "'labels/bravais' is missing"),
    ("empty", "not a readable HDF5 file"),
])  # fmt: skip
def test_damaged_file_is_reported(pattern_file: Path, tmp_path: Path, kind: str, message: str):
    path = damaged_copies(pattern_file, tmp_path)[kind]
    for reader in (PatternDataset, dataset_info, read_labels):
        with pytest.raises(DatasetFormatError, match=message) as caught:
            reader(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value)


def test_flipped_bits_fail_the_checksum(pattern_file: Path, tmp_path: Path):
    path = tmp_path / "flipped.h5"
    shutil.copy(pattern_file, path)
    with h5py.File(path, "r") as f:
        offset = f["patterns"].id.get_chunk_info(1).byte_offset
    with open(path, "r+b") as handle:
        handle.seek(offset + 100)
        byte = handle.read(1)
        handle.seek(offset + 100)
        handle.write(bytes([byte[0] ^ 0x40]))
    dataset_info(path)  # labels and layout are intact
    with pytest.raises(DatasetFormatError, match="damaged pattern data"):
        verify_dataset(path)
    with pytest.raises(DatasetFormatError, match="damaged pattern data"):
        PatternDataset(path, mmap=False).read([9])
    verify_dataset(pattern_file)
