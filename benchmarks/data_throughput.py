"""Data throughput: labelled, augmented patterns per second into a training batch, CPU and CUDA, against a
pyxtal + pymatgen pipeline on the same space groups in the same run.

Pipelines timed (each gives patterns/s of batches ready for a loss: patterns [B, P] and label tensors):
- stream:  SyntheticStream: random crystals -> simulate -> augmentations ('realistic' for the instrument), on the
           CPU and on CUDA when present (needs powdersym.structures.random).
- render:  the same simulate + augment + label step from fixed crystals (512 random crystals drawn once; the spglib
           test structures when the generator is missing), i.e. the stream without crystal generation.
- stored:  PatternDataset over an HDF5 pattern file, shuffled DataLoader batches (0 and 2 worker processes).
- pyxtal+pymatgen: pyxtal random crystal of the same space group, pymatgen peak list (NDCalculator /
           XRDCalculator), Gaussian profiles with the instrument's widths on its grid, max-normalised, labels; a
           few crystals with a time limit each, on one CPU core (it is single-threaded Python).

    python benchmarks/data_throughput.py                          # neutron-cw; about 1-2 minutes on 2 CPU cores
    python benchmarks/data_throughput.py --gpu-batch 512 4096 --json out.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import signal
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from powdersym.data import PatternDataset, build_dataset
from powdersym.data.generate import augment_config, make_generator, render
from powdersym.simulate import preset
from powdersym.data.collection import standardise
from powdersym.structures import CrystalBatch, StructureError
from powdersym.symmetry import label_tables

HERE = Path(__file__).resolve().parent


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(step, batch: int, device: str, seconds: float, warmup: int = 1) -> float:
    """Patterns per second of `step()` (one batch each), repeated for about `seconds` after warm-up."""
    for _ in range(warmup):
        step()
    synchronise(device)
    start, batches = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or batches < 2:
        step()
        batches += 1
    synchronise(device)
    return batches * batch / (time.perf_counter() - start)


def time_stream(instrument: str, batch: int, device: str, seconds: float, chunk: int | None) -> float:
    from powdersym.data import SyntheticStream

    source = SyntheticStream(instrument, batch, device=device, augment="realistic", chunk_size=chunk)
    stream, cycle = iter(source), source.batches_per_pool
    # warm-up: the whole first pool of crystals (kernels compiled, caches filled); then whole pool cycles, so that
    # the crystal draws are counted as often as training meets them
    for _ in range(cycle):
        next(stream)
    synchronise(device)
    start, batches = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or batches % cycle:
        next(stream)
        batches += 1
    synchronise(device)
    return batches * batch / (time.perf_counter() - start)


def time_render(crystals: list, instrument: str, batch: int, device: str, seconds: float, chunk: int | None) -> float:
    inst = preset(instrument)
    config = augment_config("realistic", inst)
    copies = math.ceil(batch / len(crystals))
    crystal_batch = CrystalBatch.from_crystals((crystals * copies)[:batch], device=device)
    groups = torch.tensor([(c.space_group or 1) for c in (crystals * copies)[:batch]], device=device)
    tables = label_tables(device)
    generator = make_generator(0, device)

    def step():
        with torch.no_grad():
            patterns = render(crystal_batch, inst, config, generator, device, chunk_size=chunk)
        return patterns, {name: table[groups] for name, table in tables.items()}

    return rate(step, batch, device, seconds)


def time_stored(crystals: list, instrument: str, batch: int, workers: int, seconds: float, folder: Path) -> float:
    from powdersym.data import StructureCollection
    from powdersym.data.collection import StructureRecord

    path = folder / "stored.h5"
    if not path.exists():
        records = [StructureRecord(c, f"spglib/{i}", "", c.formula(), c.space_group or 1, 0, "", c.n_atoms) for i, c in enumerate(crystals)]
        StructureCollection(records).save(folder / "structures.h5")
        build_dataset(path, folder / "structures.h5", instrument, n=2048, block_size=1024)  # reading cost: any content
    dataset = PatternDataset(path, target="space_group")
    # whole batches read in one gather: the sampler hands the dataset a list of rows
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(dataset), batch, drop_last=True)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=workers,
                                         persistent_workers=workers > 0)  # fmt: skip
    batches = iter(())

    def step():
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:
            batches = iter(loader)
            return next(batches)

    return rate(step, batch, "cpu", seconds, warmup=2)


def spglib_crystals(max_atoms: int) -> list:
    """The spglib test structures (../shared/data) with at most max_atoms atoms and a space group found by spglib."""
    spec = importlib.util.spec_from_file_location("simulate_throughput", HERE / "simulate_throughput.py")
    simulate_benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(simulate_benchmark)
    crystals = []
    for structure in simulate_benchmark.load_structures(max_atoms):
        crystal = simulate_benchmark.to_crystal(structure)
        try:
            crystal.space_group = standardise(crystal)[1]
        except StructureError:  # a few virtual test structures have no group at symprec 0.01
            continue
        crystals.append(crystal)
    return crystals


class Timeout(Exception):
    pass


def time_pyxtal_pymatgen(groups: list[int], instrument: str, per_crystal_s: float, budget_s: float) -> tuple[float, int, int]:
    """(patterns/s, patterns made, crystals given up) for pyxtal generation + pymatgen peaks + profiles."""
    from pymatgen.analysis.diffraction.neutron import NDCalculator
    from pymatgen.analysis.diffraction.xrd import XRDCalculator
    from pyxtal import pyxtal

    from powdersym.symmetry import space_group

    inst = preset(instrument)
    if inst.geometry != "cw":
        return float("nan"), 0, 0
    calculator = (NDCalculator if inst.radiation == "neutron" else XRDCalculator)(wavelength=inst.wavelengths[0])
    grid = inst.grid()
    tables = {name: table.numpy() for name, table in label_tables().items()}

    def on_alarm(signum, frame):
        raise Timeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    made, failed, start = 0, 0, time.perf_counter()
    try:
        for number in groups:
            if time.perf_counter() - start > budget_s:
                break
            signal.setitimer(signal.ITIMER_REAL, per_crystal_s)
            try:
                multiplicities = sorted({w.multiplicity for w in space_group(number).wyckoff_positions})
                crystal = pyxtal()
                for count in multiplicities[:3]:
                    try:
                        crystal.from_random(3, number, ["Fe", "O"], [count, 2 * count])
                        break
                    except Exception:  # pyxtal: composition incompatible with the Wyckoff positions; try the next
                        continue
                if not crystal.valid:
                    raise Timeout
                peaks = calculator.get_pattern(crystal.to_pymatgen(), two_theta_range=(inst.x_min, inst.x_max))
                fwhm = inst.fwhm(torch.as_tensor(np.asarray(peaks.x, dtype=np.float64))).numpy()
                sigma = fwhm[:, None] / (2 * math.sqrt(2 * math.log(2)))
                pattern = (np.asarray(peaks.y)[:, None] * np.exp(-0.5 * ((grid - np.asarray(peaks.x)[:, None]) / sigma) ** 2)).sum(0)
                pattern /= max(pattern.max(), 1e-12)
                _ = torch.as_tensor(pattern, dtype=torch.float32), {k: v[number] for k, v in tables.items()}
                made += 1
            except Timeout:
                failed += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return made / (time.perf_counter() - start), made, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instrument", default="neutron-cw")
    parser.add_argument("--cpu-batch", type=int, default=256)
    parser.add_argument("--gpu-batch", type=int, nargs="+", default=[512, 4096], help="CUDA batch sizes to try (512: the shipped models' training batch)")
    parser.add_argument("--gpu-chunk", type=int, default=None, help="crystals simulated at a time on CUDA (default: the stream's, generate.CUDA_CHUNK)")
    parser.add_argument("--seconds", type=float, default=8.0, help="time per measurement")
    parser.add_argument("--max-atoms", type=int, default=50, help="spglib structures with at most this many atoms (render, stored)")
    parser.add_argument("--reference-crystals", type=int, default=24, help="crystals for pyxtal + pymatgen")
    parser.add_argument("--reference-timeout", type=float, default=10.0, help="seconds per pyxtal + pymatgen crystal")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    results: dict[str, object] = {"instrument": args.instrument, "torch": torch.__version__, "cpu_threads": torch.get_num_threads()}
    devices = [("cpu", args.cpu_batch)] + ([("cuda", b) for b in args.gpu_batch] if torch.cuda.is_available() else [])
    if torch.cuda.is_available():
        results["cuda_device"] = torch.cuda.get_device_name()

    try:
        from powdersym.structures.random import random_crystals, sample_space_groups

        has_generator = True
    except ImportError:
        has_generator = False
        print("stream: skipped (powdersym.structures.random is not available)")
    if has_generator:  # fixed crystals for 'render' and 'stored': random ones, the stream's distribution
        groups = sample_space_groups(512, "sg", generator=make_generator(0, "cpu"))
        crystals = random_crystals(groups, generator=make_generator(1, "cpu")).to_crystals()
        origin = "random crystals"
    else:
        crystals = spglib_crystals(args.max_atoms)
        origin = f"spglib structures <= {args.max_atoms} atoms"
    print(f"{args.instrument}; fixed crystals: {len(crystals)} {origin}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads" + (f"; {results['cuda_device']}" if "cuda_device" in results else ""))

    for device, batch in devices:
        chunk = args.gpu_chunk if device == "cuda" else None
        if has_generator:
            key = f"stream_{device}_batch{batch}"
            results[key] = time_stream(args.instrument, batch, device, args.seconds, chunk)
            print(f"stream  {device:>4} batch {batch:>5}: {results[key]:>10,.0f} patterns/s")
        key = f"render_{device}_batch{batch}"
        results[key] = time_render(crystals, args.instrument, batch, device, args.seconds, chunk)
        print(f"render  {device:>4} batch {batch:>5}: {results[key]:>10,.0f} patterns/s (fixed crystals)")
    with tempfile.TemporaryDirectory() as folder:
        for workers in (0, 2):
            key = f"stored_workers{workers}"
            results[key] = time_stored(crystals, args.instrument, args.cpu_batch, workers, args.seconds / 2, Path(folder))
            print(f"stored  {workers} workers batch {args.cpu_batch}: {results[key]:>10,.0f} patterns/s (HDF5, shuffled)")

    groups = [int(c.space_group) for c in crystals][: args.reference_crystals]  # the same groups as above
    try:
        per_second, made, failed = time_pyxtal_pymatgen(groups, args.instrument, args.reference_timeout, 20 * args.seconds)
    except ImportError as err:
        print(f"pyxtal + pymatgen: skipped ({err})")
    else:
        results.update(pyxtal_pymatgen=per_second, pyxtal_pymatgen_made=made, pyxtal_pymatgen_timeouts=failed)
        print(f"pyxtal + pymatgen (same groups, 1 core): {per_second:,.1f} patterns/s ({made} made, {failed} gave up)")
        prefix = "stream_" if has_generator else "render_"  # the whole pipeline when the generator is there
        best = max((v, k) for k, v in results.items() if k.startswith(prefix))
        print(f"ratio {best[1]} / pyxtal+pymatgen: {best[0] / per_second:,.0f}x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
