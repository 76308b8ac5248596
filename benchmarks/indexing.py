"""How often `powdersym predict`'s indexing finds the right crystal system, and how often a wrong one: the cell
each pattern gets (`Predictor.index_patterns`, as predict does) against the true system, per set.

    python benchmarks/indexing.py                                  # about 4 minutes on 2 CPU cores
    python benchmarks/indexing.py --sets synthetic --workers 4

Sets:
- synthetic: random crystals (`structures.random_crystals`, 4-12 Wyckoff sites, seed 777) of the triclinic,
  monoclinic and orthorhombic groups that are common among known crystals, simulated on the xray-cuka grid with
  its realistic augmentation (impurity lines, texture, zero shift, broadening, noise: what training sees), read
  as Cu K-alpha 2theta patterns. Indexing is hardest and a false cell most costly in these systems (a monoclinic
  cell on a triclinic pattern zeroes the triclinic groups). Independent of RRUFF: no limit was set on it.
- rruff: the shared measured RRUFF patterns (development data: they chose several indexing limits).
- spglib-pymatgen-xray / -neutron: the shared spglib structures simulated by pymatgen.
- random-lines: 200 patterns of 20-40 Gaussian lines at random 2theta (8-80 deg, Cu K-alpha1), random heights, on a
  flat background with Poisson noise: no lattice, so every accepted cell is a false one.

Per set: a table of true crystal system against the system of the accepted cell (a hexagonal lattice is right for
trigonal groups), and, where the set has lattices, how many monoclinic cells have the true primitive volume within
1 % (the right lattice, in any setting) and the mean seconds per pattern (one thread per worker).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np

SYNTHETIC_GROUPS = {2: 70, 1: 10, 14: 40, 15: 20, 4: 12, 12: 12, 11: 8, 9: 8, 5: 6, 7: 6, 13: 8, 62: 20, 19: 12,
                    61: 8, 33: 8, 60: 8, 63: 8, 29: 6, 64: 6, 74: 6, 70: 6, 56: 6, 58: 6}  # group: patterns
SEED = 777
SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic", "no lattice")
FOUND = ("none", "cubic", "tetragonal", "hexagonal", "orthorhombic", "monoclinic", "triclinic")
CENTRING_POINTS = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "F": 4, "R": 3}


def synthetic_set() -> tuple[list, np.ndarray, np.ndarray]:
    """(MeasuredPattern list, space groups [N], lattices [N, 6]) of the synthetic set."""
    import torch

    from powdersym.data.generate import augment_config, make_generator, render
    from powdersym.io import MeasuredPattern
    from powdersym.simulate.instruments import preset
    from powdersym.structures.random import RandomCrystalConfig, random_crystals

    groups = np.repeat(list(SYNTHETIC_GROUPS), list(SYNTHETIC_GROUPS.values()))
    # 4-12 sites: cells of minerals' size (median edge 7.7 Å), not the 2-4 Å ones of few-site crystals
    config = RandomCrystalConfig(n_sites_weights=(0, 0, 0) + (1,) * 9, real_site_fraction=0.5)
    crystals = random_crystals(torch.as_tensor(groups), config, generator=make_generator(SEED, "cpu"), device="cpu")
    instrument = preset("xray-cuka")
    with torch.no_grad():
        augment = augment_config("realistic", instrument)
        y = render(crystals.batch, instrument, augment, make_generator(SEED + 1, "cpu"), "cpu")
    x = instrument.grid()
    wavelength = instrument.wavelengths[0]
    patterns = [MeasuredPattern(x, row.double().numpy(), None, "two_theta", wavelength=wavelength) for row in y]
    return patterns, groups, crystals.batch.lattice.numpy()


def random_lines_set(n: int = 200) -> tuple[list, np.ndarray, None]:
    """(MeasuredPattern list, zeros [N] (no space group), None) of patterns of random lines."""
    from powdersym.io import MeasuredPattern

    x = np.arange(5.0, 90.0, 0.01)
    patterns = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(20, 40))
        position, height, fwhm = rng.uniform(8, 80, k), rng.exponential(1.0, k) + 0.05, rng.uniform(0.06, 0.15)
        y = 100 + (1000 * height * np.exp(-0.5 * ((x[:, None] - position) / (fwhm / 2.355)) ** 2)).sum(1)
        patterns.append(MeasuredPattern(x, rng.poisson(y).astype(float), None, "two_theta", wavelength=1.5406))
    return patterns, np.zeros(n, dtype=int), None


def load(name: str) -> tuple[list, np.ndarray, np.ndarray | None, str]:
    if name == "synthetic":
        return (*synthetic_set(), "xray-cuka")
    if name == "random-lines":
        return (*random_lines_set(), "xray-cuka")
    from powdersym.evaluate.sets import load_evaluation_set

    data = load_evaluation_set(name)
    return data.patterns, data.space_group, data.lattice, "neutron-cw" if "neutron" in name else "xray-cuka"


def _index(args: tuple) -> tuple:
    import torch

    torch.set_num_threads(1)
    from powdersym.predict import Predictor

    instrument, patterns = args
    predictor = Predictor.for_instrument(instrument)
    out = []
    for pattern in patterns:
        start = time.perf_counter()
        out.append((predictor.index_patterns([pattern])[0], time.perf_counter() - start))
    return out


def system_of(number: int) -> str:
    from powdersym.symmetry import space_group

    return "no lattice" if number == 0 else space_group(int(number)).crystal_system


def primitive_volume(lattice, centring: str) -> float:
    """Volume (Å^3) per lattice point of a cell with this centring."""
    from powdersym.refine.extinction import direct_metric

    volume = math.sqrt(max(np.linalg.det(direct_metric(tuple(float(v) for v in lattice))), 0.0))
    return volume / CENTRING_POINTS.get(centring, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["synthetic", "rruff", "spglib-pymatgen-xray", "random-lines"],
                        choices=["synthetic", "rruff", "spglib-pymatgen-xray", "spglib-pymatgen-neutron", "random-lines"])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    from powdersym.symmetry import space_group

    for name in args.sets:
        patterns, groups, lattices, instrument = load(name)
        parts = [(instrument, patterns[k :: args.workers]) for k in range(args.workers)]
        with ProcessPoolExecutor(args.workers) as pool:
            done = list(pool.map(_index, parts))
        results = [None] * len(patterns)
        for k, part in enumerate(done):
            results[k :: args.workers] = part
        table, volumes = Counter(), Counter()
        for (cell, _), number, i in zip(results, groups, range(len(groups))):
            truth = system_of(number)
            found = "none" if cell is None else cell.system
            table[truth, found] += 1
            if cell is not None and cell.system == "monoclinic" == truth and lattices is not None:
                true_volume = primitive_volume(lattices[i], space_group(int(number)).hm_symbol[0])
                right = abs(primitive_volume(cell.lattice(), cell.centring) / true_volume - 1) < 0.01
                volumes["right" if right else "wrong"] += 1
        accepted = sum(v for (t, f), v in table.items() if f != "none")
        right = sum(v for (t, f), v in table.items() if f == t or (t, f) == ("trigonal", "hexagonal"))
        seconds = np.mean([t for _, t in results])
        print(f"\n**{name}** ({len(patterns)} patterns): {accepted} cells accepted, {right} of the right system, "
              f"{accepted - right} wrong; {seconds:.3f} s per pattern")
        if volumes:
            print(f"monoclinic cells of monoclinic patterns with the true primitive volume (1 %): {volumes['right']} "
                  f"of {volumes['right'] + volumes['wrong']}")
        print("\n| true \\ found | " + " | ".join(FOUND) + " |\n|---|" + "---|" * len(FOUND))
        for truth in SYSTEMS:
            row = [table[truth, f] for f in FOUND]
            if sum(row):
                print(f"| {truth} | " + " | ".join(map(str, row)) + " |")


if __name__ == "__main__":
    main()
