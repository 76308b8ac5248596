"""Superstructure lines: weak lines an indexed cell leaves unexplained, which a larger cell of the same system explains.

Indexing works on the stronger lines (`refine.index`), and where a structure is a small distortion of a simpler one
the strong lines are all the simpler cell's: the sub-cell indexes them with a high M20 and the superstructure shows
only in weak lines. Judged in the sub-cell, the true group forbids indexed lines (its conditions refer to the larger
cell's axes) and the wrong groups win. A crystallographer looks at the weak lines the cell does not explain and tries
the supercells that would (ITA Vol. A, the maximal subgroups' cell enlargements): here the enlargements of one
step that keep the system, a hexagonal a * sqrt(3) (rotated 30 deg) or 2a, tetragonal a * sqrt(2) (45 deg) or 2a,
c doubled or tripled, an orthorhombic axis doubled, a cubic a doubled.

A supercell explains any line by chance with the probability its extra lines cover the Q range the sub-cell's lines
leave free (each line within its tolerance); the supercell that explains the most of the unexplained weak lines
against that chance (binomial tail) replaces the cell where the tail is below SIGNIFICANCE. On the spglib structures
simulated by pymatgen (X-ray) 9 cells change, each to the true cell; RRUFF's cells do not change (docs/results.md,
2026-12-06, eighth session).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from scipy.stats import binom

from powdersym.refine.index import IndexedCell

SIGNIFICANCE = 1e-3  # binomial tail below which the explained weak lines are not chance
MIN_UNEXPLAINED = 2  # unexplained weak lines a supercell must have to explain

_R2, _R3 = math.sqrt(2.0), math.sqrt(3.0)
# (a, c) factors (hexagonal, tetragonal, cubic) or (a, b, c) factors (orthorhombic) of the enlargements tried
ENLARGEMENTS = {
    "hexagonal": ((_R3, 1), (2, 1), (1, 2), (1, 3), (_R3, 2), (2, 2)),
    "tetragonal": ((_R2, 1), (2, 1), (1, 2), (_R2, 2), (2, 2)),
    "cubic": ((2, 2),),
    "orthorhombic": ((2, 1, 1), (1, 2, 1), (1, 1, 2)),
}


def enlarged(cell: IndexedCell, factors: tuple[float, ...]) -> IndexedCell:
    """The cell with its edges multiplied by `factors` (the system, zero shift and lines kept)."""
    if cell.system == "orthorhombic":
        return replace(cell, a=cell.a * factors[0], b=cell.b * factors[1], c=cell.c * factors[2])
    a = cell.a * factors[0]
    c = a if cell.system == "cubic" else cell.c * factors[1]
    return replace(cell, a=a, c=c, b=None if cell.b is None else a)


def coverage(cell: IndexedCell, q_max: float) -> float:
    """The fraction of Q in (0, q_max] within tolerance of one of the cell's lines: where a random line is explained."""
    from powdersym.refine.extinction import _lattice_lines, _tolerance_at

    q = _lattice_lines(cell, q_max)[1]
    if len(q) == 0:
        return 0.0
    tol = _tolerance_at(cell, q)
    low, high = np.clip(q - tol, 0, q_max), np.clip(q + tol, 0, q_max)
    order = np.argsort(low)
    low, high = low[order], high[order]
    reach = np.maximum.accumulate(high)  # merged intervals: a new one starts past everything before it
    starts = np.flatnonzero(np.concatenate([[True], low[1:] > reach[:-1]]))
    ends = np.concatenate([starts[1:], [len(low)]]) - 1
    return float((reach[ends] - low[starts]).sum() / q_max)


def superstructure(cell: IndexedCell) -> IndexedCell:
    """The supercell whose extra lines explain the cell's unexplained weak lines beyond chance (module docstring),
    primitive, with N20 counting every line of its lattice and M20 scaled to match; the cell itself where none does."""
    if cell.system not in ENLARGEMENTS:
        return cell
    from powdersym.refine.extinction import _lattice_lines, lines_explained, weak_off_lines

    weak = weak_off_lines(cell)
    weak = weak[~lines_explained(cell, weak)]
    if len(weak) < MIN_UNEXPLAINED:
        return cell
    q_max = float((np.asarray(cell.q_indexed) + np.asarray(cell.tol_indexed)).max())
    covered = coverage(cell, q_max)
    free = 1.0 - covered
    best, best_tail = cell, SIGNIFICANCE
    for factors in ENLARGEMENTS[cell.system]:
        bigger = enlarged(cell, factors)
        hits = int(lines_explained(bigger, weak).sum())
        extra = coverage(bigger, q_max) - covered  # the range only the supercell's extra lines cover
        chance = min(1.0, max(1e-6, extra / max(free, 1e-6)))
        tail = float(binom.sf(hits - 1, len(weak), chance))
        if hits >= MIN_UNEXPLAINED and tail < best_tail:
            best, best_tail = bigger, tail
    if best is cell:
        return cell
    # N20: every line of the supercell's lattice (a sub-cell's centring or group-counted lines refer to its own axes)
    n_calculated = int(_lattice_lines(best, q_max)[2].max()) + 1
    return replace(best, n_calculated=n_calculated, m20=cell.m20 * cell.n_calculated / n_calculated, centring="P",
                   lines_of=0)
