"""How often the zone vote of the triclinic indexer (`refine.triclinic`, its first step) puts true zones on top.

    python benchmarks/triclinic_zones.py              # the synthetic triclinic patterns of benchmarks/indexing.py

A zone is a 2D sublattice of the reciprocal lattice: Q(m, n) = P m^2 + R n^2 + S m n. ITO (Visser 1969) finds zones
from the first lines, then joins two zones that share a row into a 3D cell. `refine.triclinic.voted_zones` puts
every triple of the first 8 lines on every triple of small zone indices (m 0-2, n -2..2), solves (P, R, S), reduces
(|S| <= P <= R) and bins them 0.3 % wide: a true zone comes from many line triples. For each triclinic pattern (lines
found as `predict` finds them) the script counts how many of the most-voted zones are zones of the true lattice
(within 1 %): two true zones near the top are what joining zones needs.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from indexing import synthetic_set  # benchmarks/ is on the path when a benchmark runs as a script
from powdersym.predict import Predictor
from powdersym.refine.extinction import direct_metric
from powdersym.refine.index import denoised, find_peaks
from powdersym.refine.monoclinic import reduce_net
from powdersym.refine.triclinic import voted_zones


def true_zones(lattice) -> torch.Tensor:
    """Reduced zones (P, 1, R, S) of the lattice spanned by pairs of reciprocal vectors with indices -2..2."""
    metric = np.linalg.inv(direct_metric(tuple(float(v) for v in lattice)))
    vectors = [np.array(v) for v in itertools.product(range(-2, 3), repeat=3) if any(v)]
    grams = [(u @ metric @ u, 1.0, v @ metric @ v, 2 * u @ metric @ v) for u, v in itertools.combinations(vectors, 2)
             if np.cross(u, v).any()]  # fmt: skip
    return reduce_net(torch.tensor(grams, dtype=torch.float64))


def main() -> None:
    patterns, groups, lattices = synthetic_set()
    predictor = Predictor.for_instrument("xray-cuka")
    counts = []
    for pattern, number, lattice in zip(patterns, groups, lattices):
        if number > 2:
            continue
        quiet = denoised(pattern, 0.05)
        peaks = find_peaks(pattern if quiet is None else quiet, doublet=predictor.doublet_of(pattern))
        if len(peaks) < 12:
            continue
        zones, votes = voted_zones(torch.as_tensor(peaks.q))  # (P, R, S) [Z, 3]
        zones = zones[torch.argsort(votes, descending=True)].double()
        truth = true_zones(lattice)[:, [0, 2, 3]]
        close = ((zones[:, None, :2] / truth[None, :, :2] - 1).abs().amax(-1) < 0.01) & (
            (zones[:, None, 2] - truth[None, :, 2]).abs() < 0.01 * truth[None, :, 0])
        hit = close.any(1)
        counts.append([int(hit[:k].sum()) for k in (10, 100, 1000)])
    counts = np.array(counts)
    print(f"{len(counts)} synthetic triclinic patterns with 12 or more lines; true zones among the most-voted ones:")
    print("| most-voted zones | patterns with >= 1 true zone | with >= 2 |\n|---|---|---|")
    for column, k in enumerate((10, 100, 1000)):
        print(f"| {k} | {(counts[:, column] >= 1).sum()} | {(counts[:, column] >= 2).sum()} |")


if __name__ == "__main__":
    main()
