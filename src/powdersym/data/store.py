"""Pattern files: HDF5 with float16 patterns in small row chunks, a labels group, and how the data set was made.

Layout of a pattern file (format 'powdersym-patterns', version 1):

    /x                    float64 [P]      the instrument grid (2theta in degrees, or time of flight in µs)
    /patterns             float16 [N, P]   max-normalised patterns; chunks of a few rows (~64 KB), no compression,
                                           Fletcher-32 checksum per chunk (h5py reads verify it)
    /labels/<name>        one dataset per label, N rows (see powdersym.data.labels): space_group, bravais,
                          crystal_system, lattice_system, laue_class, point_group, extinction_group, sg144 (int16),
                          lattice (float32 [N, 6]), n_atoms (int32), formula, source, prototype (UTF-8 strings)
    attributes            format, format_version, powdersym_version, created (UTC ISO 8601), n_patterns, seed,
                          instrument (JSON of the Instrument dataclass), generator (JSON: source and its
                          configuration), block_size, shard ('i/k'), classes (JSON: the name of every class index)

Building is resumable: blocks of rows are written one file each into `<out>.partial/` (a temporary name, renamed
when complete, so a killed build leaves only whole blocks) and merged into `<out>` (again via a temporary file) at
the end. Each block has its own seed (see generate.block_seed), so running the same command again regenerates
exactly the missing blocks and the result equals an uninterrupted build. `--shard i/k` writes blocks i, i+k, ...:
one file per writer, which `PatternDataset` reads together.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

import powdersym
from powdersym.data.labels import (
    NUMERIC_LABELS, STRING_LABELS, batch_amounts, label_columns, prototype, reduced_formula,
)  # fmt: skip
from powdersym.simulate import Instrument, preset

PATTERN_FORMAT = "powdersym-patterns"
FORMAT_VERSION = 1
PARTIAL_SUFFIX = ".partial"
CHUNK_BYTES = 64 * 1024  # target size of a pattern chunk: a random read touches one chunk of a few rows
LABEL_CHUNK_ROWS = 65536


class DatasetFormatError(ValueError):
    """A file that is not a complete, readable powdersym data set (missing, truncated, corrupt, wrong layout)."""


# ---------------------------------------------------------------------------------------------------------------------
# Opening and validating


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@contextmanager
def open_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open an HDF5 file read-only; any failure is a one-line DatasetFormatError naming the file."""
    path = Path(path)
    if path.is_dir():
        if path.name.endswith(PARTIAL_SUFFIX):
            raise DatasetFormatError(f"{path}: an unfinished build; run the same `dataset build` command to finish it")
        raise DatasetFormatError(f"{path}: a folder, not an HDF5 file")
    if not path.exists():
        partial = path.with_name(path.name + PARTIAL_SUFFIX)
        hint = f" (an unfinished build is in {partial.name}; run the build again to finish it)" if partial.exists() else ""
        raise DatasetFormatError(f"{path}: no such file{hint}")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise DatasetFormatError(f"{path}: not a readable HDF5 file (truncated or corrupt: {_first_line(err)})") from err
    try:
        yield handle
    except (OSError, RuntimeError, KeyError) as err:  # damaged metadata or data found while reading
        raise DatasetFormatError(f"{path}: damaged HDF5 file ({_first_line(err)})") from err
    finally:
        handle.close()


def require(f: h5py.File | h5py.Group, name: str, path: str | os.PathLike) -> h5py.Dataset:
    """The dataset `name`, or a DatasetFormatError saying it is missing."""
    try:
        found = f.get(name)
    except (OSError, RuntimeError, KeyError) as err:
        raise DatasetFormatError(f"{path}: damaged HDF5 file, cannot read {name!r} ({_first_line(err)})") from err
    if not isinstance(found, h5py.Dataset):
        raise DatasetFormatError(f"{path}: dataset {name!r} is missing (incomplete or not a powdersym file)")
    return found


def check_pattern_file(f: h5py.File, path: str | os.PathLike) -> int:
    """Validate the layout of an open pattern file; returns the number of patterns."""
    fmt = f.attrs.get("format")
    if fmt != PATTERN_FORMAT:
        if fmt == "powdersym-structures":
            raise DatasetFormatError(f"{path}: a structure collection, not patterns (build patterns with "
                                     f"`powdersym dataset build --source {path}`)")  # fmt: skip
        raise DatasetFormatError(f"{path}: not a powdersym pattern file (no format attribute {PATTERN_FORMAT!r})")
    version = int(f.attrs.get("format_version", 0))
    if version > FORMAT_VERSION:
        raise DatasetFormatError(f"{path}: format version {version} is newer than this powdersym reads ({FORMAT_VERSION})")
    patterns = require(f, "patterns", path)
    if patterns.ndim != 2 or patterns.dtype != np.float16:
        raise DatasetFormatError(f"{path}: 'patterns' is {patterns.dtype} {patterns.shape}, expected float16 [N, P]")
    n, p = patterns.shape
    if require(f, "x", path).shape != (p,):
        raise DatasetFormatError(f"{path}: 'x' does not have the {p} points of the patterns")
    for name in (*NUMERIC_LABELS, *STRING_LABELS):
        rows = require(f, f"labels/{name}", path).shape[:1]
        if rows != (n,):
            raise DatasetFormatError(f"{path}: 'labels/{name}' has {rows[0] if rows else 0} rows for {n} patterns")
    if int(f.attrs.get("n_patterns", -1)) != n:
        raise DatasetFormatError(f"{path}: holds {n} patterns but says it should hold {f.attrs.get('n_patterns')}")
    return n


def chunk_offsets(patterns: h5py.Dataset, path: str | os.PathLike, file_size: int) -> np.ndarray | None:
    """Byte offset of every row chunk of an uncompressed pattern dataset, for memory-mapped reading; None when the
    data are compressed (read through h5py then). Raises DatasetFormatError when a chunk lies past the end of the
    file (a truncated file) or is missing."""
    filters = set(patterns._filters) - {"fletcher32"}  # the checksum is appended after the raw bytes
    if filters or patterns.chunks is None:
        return None
    rows = patterns.chunks[0]
    n_chunks = math.ceil(patterns.shape[0] / rows)
    offsets = np.full(n_chunks, -1, dtype=np.int64)
    ends = np.zeros(n_chunks, dtype=np.int64)

    def visit(info) -> None:
        index = info.chunk_offset[0] // rows
        offsets[index] = info.byte_offset
        ends[index] = info.byte_offset + info.size

    try:
        patterns.id.chunk_iter(visit)
    except (OSError, RuntimeError) as err:
        raise DatasetFormatError(f"{path}: damaged chunk index ({_first_line(err)})") from err
    if (offsets < 0).any():
        raise DatasetFormatError(f"{path}: {int((offsets < 0).sum())} of {n_chunks} pattern chunks are missing")
    if n_chunks and ends.max() > file_size:
        raise DatasetFormatError(f"{path}: truncated (pattern data end at byte {ends.max()}, the file has {file_size})")
    return offsets


# ---------------------------------------------------------------------------------------------------------------------
# Summary


def read_labels(path: str | os.PathLike, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Label columns of a pattern file (all by default): numeric as numpy arrays, text as object arrays of str."""
    with open_h5(path) as f:
        check_pattern_file(f, path)
        out = {}
        for name in names or (*NUMERIC_LABELS, *STRING_LABELS):
            dataset = require(f, f"labels/{name}", path)
            out[name] = dataset.asstr()[()].astype(object) if name in STRING_LABELS else dataset[()]
        return out


def dataset_info(path: str | os.PathLike) -> dict[str, Any]:
    """How a pattern file was made and how many patterns each class has: JSON-ready."""
    from powdersym.data.labels import CLASS_LABELS

    with open_h5(path) as f:
        n = check_pattern_file(f, path)
        attrs = {key: _attr(value) for key, value in f.attrs.items()}
        n_points = f["patterns"].shape[1]
        chunks = f["patterns"].chunks
    labels = read_labels(path, CLASS_LABELS + ("source",))
    classes = json.loads(attrs.get("classes", "{}"))
    counts = {}
    for name in CLASS_LABELS:
        values, number = np.unique(labels[name], return_counts=True)
        names = classes.get(name)
        counts[name] = {
            (str(int(v)) if names is None or v < 0 else f"{int(v)} {names[int(v)]}"): int(c) for v, c in zip(values, number)
        }
    synthetic = int(sum(1 for s in labels["source"] if s == "synthetic"))
    return {
        "path": str(path),
        "n_patterns": n,
        "n_points": n_points,
        "chunk_rows": chunks[0] if chunks else None,
        "synthetic": synthetic,
        "real": n - synthetic,
        "instrument": json.loads(attrs.get("instrument", "{}")),
        "generator": json.loads(attrs.get("generator", "{}")),
        **{key: attrs.get(key) for key in ("seed", "created", "powdersym_version", "shard", "block_size")},
        "counts": counts,
    }


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def verify_dataset(path: str | os.PathLike, rows_per_read: int = 4096) -> None:
    """Read every pattern through HDF5 (which checks each chunk's Fletcher-32 checksum) and check it is finite;
    DatasetFormatError (one line) at the first damaged chunk."""
    with open_h5(path) as f:
        n = check_pattern_file(f, path)
        patterns = f["patterns"]
        for start in range(0, n, rows_per_read):
            try:
                block = patterns[start : start + rows_per_read]
            except OSError as err:
                raise DatasetFormatError(f"{path}: damaged pattern data near row {start} ({_first_line(err)})") from err
            if not np.isfinite(block).all():
                raise DatasetFormatError(f"{path}: non-finite values in patterns near row {start}")


# ---------------------------------------------------------------------------------------------------------------------
# Building


def chunk_rows(n_points: int) -> int:
    """Rows per pattern chunk: a power of two giving chunks of about CHUNK_BYTES (8 rows for 3041 float16 points)."""
    return 2 ** max(0, int(math.log2(max(1, CHUNK_BYTES // (2 * n_points)))))


def shard_blocks(n: int, block_size: int, shard: tuple[int, int]) -> list[tuple[int, int, int]]:
    """(block index, first row, row count) of the blocks one shard writes: blocks i, i+k, i+2k... of n rows."""
    index, count = shard
    if not (count >= 1 and 0 <= index < count):
        raise ValueError(f"shard must be i/k with 0 <= i < k, got {index}/{count}")
    n_blocks = math.ceil(n / block_size)
    return [(b, b * block_size, min(block_size, n - b * block_size)) for b in range(index, n_blocks, count)]


def build_dataset(
    out: str | os.PathLike,
    source: str | os.PathLike = "synthetic",
    instrument: str | Instrument = "neutron-cw",
    n: int | None = None,
    *,
    seed: int = 0,
    block_size: int = 1024,
    device: torch.device | str = "cpu",
    augment: Any = None,
    label_set: str = "sg",
    prior: Any = None,
    crystal_config: Any = None,
    shard: tuple[int, int] = (0, 1),
    chunk_size: int | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Simulate a data set into the pattern file `out`; resumes an unfinished build of the same settings.

    source: 'synthetic' (random crystals; n required), a folder of CIF/POSCAR files (imported, standardised and
        de-duplicated as by `import_structures`), or a structure collection file from `dataset import`. Real
        structures give one pattern each by default; a larger n cycles through them with new augmentation draws.
    augment: an AugmentConfig (sample effects in the simulator, pattern effects after it), 'realistic' (the
        instrument kind's AugmentConfig.realistic), 'vecsei', or None / 'none' (clean patterns).
    label_set, prior, crystal_config: how synthetic space groups and crystals are drawn.
    shard: (i, k) writes blocks i, i+k, ... of the n rows (one file per writer).
    device, chunk_size: where to simulate and how many crystals at a time (None: generate.CUDA_CHUNK on a GPU).
    Blocks are reproducible on one kind of device; a build resumed on another may differ in the last bits.
    progress(rows_done, rows_total) is called after every block (resumed blocks included at the start);
    warn gets one line per structure file skipped.
    """
    from powdersym.data.generate import (
        SyntheticSettings, augment_config, block_seed, config_dict, make_generator, synthetic_block,
    )  # fmt: skip

    out = Path(out)
    inst = preset(instrument) if isinstance(instrument, str) else instrument
    augment = augment_config(augment, inst)
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (use overwrite=True / --overwrite to replace it)")
    if overwrite and partial.exists():
        shutil.rmtree(partial)
    if block_size < 1:
        raise ValueError(f"block size must be positive, got {block_size}")
    device = torch.device(device)

    synthetic = str(source) == "synthetic"
    collection = None
    if synthetic:
        if n is None or n < 1:
            raise ValueError("a synthetic build needs the number of patterns n >= 1")
        settings = SyntheticSettings(label_set, prior, crystal_config, augment)
        generator_config: dict[str, Any] = {"source": "synthetic", **settings.as_dict()}
    else:
        collection = _real_structures(Path(source), partial, inst, warn)
        n = len(collection) if n is None else n
        if n < 1:
            raise ValueError(f"the number of patterns must be positive, got {n}")
        generator_config = {
            "source": "structures", "path": str(Path(source).resolve()), "n_structures": len(collection),
            "import": collection.settings, "augment": config_dict(augment),
        }  # fmt: skip
    blocks = shard_blocks(n, block_size, shard)
    if not blocks:
        raise ValueError(f"shard {shard[0]}/{shard[1]} has no blocks: {n} rows make {math.ceil(n / block_size)} blocks")
    plan = {
        "format_version": FORMAT_VERSION, "n_patterns_total": n, "seed": seed, "block_size": block_size,
        "shard": f"{shard[0]}/{shard[1]}", "instrument": config_dict(inst), "generator": generator_config,
    }  # fmt: skip
    _start_or_resume(partial, plan)
    if collection is not None and not (partial / "structures.h5").exists():
        collection.save(partial / "structures.h5")  # a resumed build uses exactly these structures

    total = sum(rows for _, _, rows in blocks)
    done = sum(rows for b, _, rows in blocks if _block_path(partial, b).exists())
    if progress is not None:
        progress(done, total)
    for block, first, rows in blocks:
        path = _block_path(partial, block)
        if path.exists():
            continue
        generator = make_generator(block_seed(seed, 0, block), device)
        with torch.no_grad():
            if synthetic:
                patterns, crystals = synthetic_block(rows, inst, settings, generator, device, chunk_size=chunk_size)
                columns = _synthetic_columns(crystals)
            else:
                patterns, columns = _real_block(collection, first, rows, inst, augment, generator, device, chunk_size)
        stored = patterns.float().cpu().numpy().astype(np.float16)
        if not np.isfinite(stored).all():  # float16 ends at 65504: unnormalised counts would become inf
            raise ValueError(f"block {block}: patterns not finite in float16 (store max-normalised patterns)")
        _write_block(path, stored, columns)
        done += rows
        if progress is not None:
            progress(done, total)

    attrs = {
        "format": PATTERN_FORMAT, "format_version": FORMAT_VERSION, "powdersym_version": powdersym.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "n_patterns": total, "seed": seed, "block_size": block_size, "shard": plan["shard"],
        "instrument": json.dumps(plan["instrument"]), "generator": json.dumps(generator_config),
        "classes": json.dumps(class_names()),
    }  # fmt: skip
    merged = partial / "merged.h5"
    _merge([_block_path(partial, b) for b, _, _ in blocks], merged, attrs, inst.grid())
    os.replace(merged, out)
    shutil.rmtree(partial)
    return out


def class_names() -> dict[str, list[str]]:
    """The name of every class index of each class label, stored with a data set so it describes itself."""
    from powdersym import symmetry

    return {
        "space_group": ["-"] + [symmetry.space_group(i).hm_symbol for i in range(1, 231)],
        "bravais": list(symmetry.BRAVAIS_LABELS),
        "crystal_system": list(symmetry.CRYSTAL_SYSTEMS),
        "lattice_system": list(symmetry.LATTICE_SYSTEMS),
        "laue_class": list(symmetry.LAUE_CLASSES),
        "point_group": list(symmetry.POINT_GROUPS),
        "extinction_group": list(symmetry.EXTINCTION_GROUP_SYMBOLS),
        "sg144": [symmetry.space_group(i).hm_symbol for i in symmetry.SG144],
    }


def _start_or_resume(partial: Path, plan: dict) -> None:
    """Create the partial folder with its plan, or check that an existing one was started with the same settings."""
    plan_path = partial / "plan.json"
    if plan_path.exists():
        try:
            existing = json.loads(plan_path.read_text())
        except (OSError, ValueError) as err:
            raise DatasetFormatError(f"{plan_path}: unreadable ({_first_line(err)}); delete {partial} to start again") from err
        if existing != plan:
            changed = sorted(k for k in set(plan) | set(existing) if plan.get(k) != existing.get(k))
            raise ValueError(
                f"{partial} is an unfinished build with other settings ({', '.join(changed)}): "
                "repeat its settings to resume, or use --overwrite to start again"
            )
        return
    partial.mkdir(parents=True, exist_ok=True)
    temporary = partial / "plan.json.tmp"
    temporary.write_text(json.dumps(plan, indent=1))
    os.replace(temporary, plan_path)


def _block_path(partial: Path, block: int) -> Path:
    return partial / f"block-{block:07d}.h5"


def _write_block(path: Path, patterns: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    try:
        with h5py.File(temporary, "w") as f:
            f["patterns"] = patterns
            for name, values in columns.items():
                if name in STRING_LABELS:
                    f.create_dataset(f"labels/{name}", data=list(values), dtype=h5py.string_dtype())
                else:
                    f[f"labels/{name}"] = values.astype(NUMERIC_LABELS[name])
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _merge(blocks: Sequence[Path], target: Path, attrs: dict, x: np.ndarray) -> None:
    """Concatenate block files into one pattern file (row chunks, checksums), written at `target`."""
    sizes, n_points = [], None
    for path in blocks:
        with open_h5(path) as f:
            sizes.append(require(f, "patterns", path).shape[0])
            n_points = f["patterns"].shape[1]
    n = sum(sizes)
    strings: dict[str, list[str]] = {name: [] for name in STRING_LABELS}
    with h5py.File(target, "w") as out:
        out.attrs.update(attrs)
        out["x"] = np.asarray(x, dtype=np.float64)
        patterns = out.create_dataset(
            "patterns", (n, n_points), dtype="<f2", chunks=(min(chunk_rows(n_points), n), n_points), fletcher32=True
        )
        numeric = {}
        for name, dtype in NUMERIC_LABELS.items():
            shape = (n, 6) if name == "lattice" else (n,)
            chunks = (min(n, LABEL_CHUNK_ROWS),) + shape[1:]
            numeric[name] = out.create_dataset(f"labels/{name}", shape, dtype=dtype, chunks=chunks, fletcher32=True)
        row = 0
        for path, size in zip(blocks, sizes):
            with open_h5(path) as f:
                patterns[row : row + size] = f["patterns"][()]
                for name, dataset in numeric.items():
                    dataset[row : row + size] = require(f, f"labels/{name}", path)[()]
                for name in STRING_LABELS:
                    strings[name].extend(require(f, f"labels/{name}", path).asstr()[()])
            row += size
        for name, values in strings.items():
            out.create_dataset(f"labels/{name}", data=values, dtype=h5py.string_dtype())


def _real_structures(source: Path, partial: Path, inst: Instrument, warn: Callable[[str], None] | None):
    """The structure collection of a build: from an unfinished build's copy, a collection file or a folder; the
    structures the instrument's radiation has no scattering data for are dropped with a warning."""
    from powdersym.data.collection import StructureCollection, import_structures
    from powdersym.simulate.scattering import Neutron, radiation
    from powdersym.structures.species import species_index

    saved = partial / "structures.h5"
    if saved.exists():
        return StructureCollection.load(saved)
    if source.is_dir():
        collection, _ = import_structures(source, warn=warn)
    elif source.exists():
        collection = StructureCollection.load(source)
    else:
        raise FileNotFoundError(f"{source}: no such structure folder or collection file (or 'synthetic')")
    scattering = radiation(inst.radiation)
    if isinstance(scattering, Neutron):
        kept = []
        for record in collection.records:
            try:
                scattering.check(torch.tensor([species_index(s) for s in record.crystal.species]))
                kept.append(record)
            except ValueError as err:
                if warn is not None:
                    warn(f"skipped {record.source}: {_first_line(err)}")
        collection.records = kept
    if not len(collection):
        raise ValueError(f"{source}: no structures to simulate")
    return collection


def _synthetic_columns(crystals) -> dict[str, np.ndarray]:
    """Label columns of a block of RandomCrystals (prototypes from the Wyckoff sites they were built on)."""
    batch = crystals.batch
    amounts = batch_amounts(batch.species, batch.occupancy, batch.mask)
    groups = crystals.space_group.tolist()
    prototypes = [
        prototype(amount, number, [label.lstrip("0123456789") for label in crystals.wyckoff_labels(i)])
        for i, (amount, number) in enumerate(zip(amounts, groups))
    ]
    return label_columns(
        groups, batch.lattice, batch.mask.sum(1), [reduced_formula(a) for a in amounts], ["synthetic"] * len(groups),
        prototypes,
    )  # fmt: skip


def _real_block(collection, first: int, rows: int, inst: Instrument, augment: Any, generator, device, chunk_size):
    from powdersym.data.generate import render

    index = [(first + i) % len(collection) for i in range(rows)]
    records = [collection[i] for i in index]
    patterns = render(collection.batch(index), inst, augment, generator, device, chunk_size=chunk_size)
    columns = label_columns(
        [r.space_group for r in records], np.array([r.lattice for r in records]), [r.n_sites for r in records],
        [r.formula for r in records], [r.source for r in records], [r.prototype for r in records],
    )  # fmt: skip
    return patterns, columns

