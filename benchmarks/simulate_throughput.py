"""Simulator throughput: powdersym (CPU, and CUDA when present) against pymatgen on the same structures.

Structures: the spglib test structures (../shared/data/structures/spglib_testdata) with at most --max-atoms
atoms in the cell. powdersym renders full patterns (reflections, structure factors, profiles on the grid);
pymatgen computes peak lists only (no profiles), so the ratio flatters pymatgen.

    python benchmarks/simulate_throughput.py                 # neutron-cw, <= 50 atoms
    python benchmarks/simulate_throughput.py --instrument xray-cuka --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import tarfile
import time
import warnings
from pathlib import Path

import torch

from powdersym.simulate import preset, simulate
from powdersym.structures import Crystal, CrystalBatch

# ../shared/data beside the checkout, or where POWDERSYM_SHARED_DATA points (e.g. on a GPU machine)
SHARED = Path(os.environ.get("POWDERSYM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def load_structures(max_atoms: int) -> list:
    """pymatgen Structures of the spglib test set with at most max_atoms atoms."""
    from pymatgen.core import Structure

    out = []
    with tarfile.open(SHARED / "structures/spglib_testdata/spglib_poscars.tar.gz") as tar, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if member.isfile():
                s = Structure.from_str(tar.extractfile(member).read().decode(), fmt="poscar")
                if len(s) <= max_atoms:
                    out.append(s)
    return out


def to_crystal(structure) -> Crystal:
    return Crystal(list(structure.lattice.parameters), structure.frac_coords, [s.symbol for s in structure.species])


def time_powdersym(batch: CrystalBatch, instrument: str, repeats: int, device: str, chunk: int | None = None) -> float:
    """Patterns per second, best of `repeats` runs over the whole batch."""
    batch = batch.to(device)
    simulate(batch[:8], instrument)  # warm-up: render plan, kernels
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        simulate(batch, instrument, chunk_size=chunk)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def time_pymatgen(structures: list, instrument: str) -> float:
    from pymatgen.analysis.diffraction.neutron import NDCalculator
    from pymatgen.analysis.diffraction.xrd import XRDCalculator

    inst = preset(instrument)
    if inst.geometry != "cw":
        return float("nan")
    calc = (NDCalculator if inst.radiation == "neutron" else XRDCalculator)(wavelength=inst.wavelengths[0])
    start = time.perf_counter()
    for s in structures:
        calc.get_pattern(s, two_theta_range=(inst.x_min, inst.x_max))
    return len(structures) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instrument", default="neutron-cw")
    parser.add_argument("--max-atoms", type=int, default=50)
    parser.add_argument("--cpu-copies", type=int, default=4, help="copies of the structure set in one CPU batch")
    parser.add_argument("--gpu-batch", type=int, default=16384, help="patterns per CUDA run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    structures = load_structures(args.max_atoms)
    crystals = [to_crystal(s) for s in structures]
    atoms = sorted(c.n_atoms for c in crystals)
    print(f"{len(crystals)} spglib structures with <= {args.max_atoms} atoms (median {atoms[len(atoms) // 2]}); "
          f"instrument {args.instrument}; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    results: dict[str, float] = {}
    cpu_batch = CrystalBatch.from_crystals(crystals * args.cpu_copies)
    results["powdersym_cpu"] = time_powdersym(cpu_batch, args.instrument, args.repeats, "cpu")
    if torch.cuda.is_available():
        copies = -(-args.gpu_batch // len(crystals))
        gpu_batch = CrystalBatch.from_crystals(crystals * copies)
        for chunk in (256, 1024, 4096):
            results[f"powdersym_cuda_chunk{chunk}"] = time_powdersym(gpu_batch, args.instrument, args.repeats, "cuda", chunk)
        results["powdersym_cuda"] = max(v for k, v in results.items() if k.startswith("powdersym_cuda_"))
        results["cuda_device"] = torch.cuda.get_device_name()
    results["pymatgen_cpu_peaks_only"] = time_pymatgen(structures, args.instrument)
    for key, value in results.items():
        print(f"{key:>26}: {value:,.1f} patterns/s" if isinstance(value, float) else f"{key:>26}: {value}")
    ratio = results["powdersym_cpu"] / results["pymatgen_cpu_peaks_only"]
    print(f"{'ratio powdersym/pymatgen':>26}: {ratio:.1f}x on CPU (same structures, same run)")
    if "powdersym_cuda" in results:
        print(f"{'ratio cuda/pymatgen':>26}: {results['powdersym_cuda'] / results['pymatgen_cpu_peaks_only']:.0f}x")
    if args.json:
        args.json.write_text(json.dumps({"instrument": args.instrument, "n_structures": len(crystals), **results}, indent=1))


if __name__ == "__main__":
    main()
