"""Which space groups the indexed lines allow: a line that only forbidden reflections explain rules a group out.

Systematic absences are the classical route from an indexed pattern to the extinction group (ITA Vol. A, Sect.
1.6.5; Friedman's extinction groups). With a cell indexed from the peak positions, each observed line is explained
by the reflections hkl whose Q = 1/d^2 lies within the line's tolerance (all of them: equivalent and accidentally
overlapping ones). A group whose reflection conditions forbid every one of them cannot have produced that line.
Only observed lines count (positive evidence): a line that is not seen may be weak rather than absent, so no
condition is ever inferred from a missing line, and a group without conditions (P222, P4/mmm, ...) is never ruled
out. An impurity line that happens to fall on a forbidden reflection counts against a right group, which is why
callers weigh violations softly (`absence_weights`).

Orthorhombic cells are indexed with a <= b <= c, which need not be a group's standard setting (Pnma has b the
shortest axis): each group is tested in the six axis orders and keeps the order that explains the most lines.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from powdersym.refine.index import SPACE_GROUP_RANGES, IndexedCell
from powdersym.symmetry.absences import is_systematically_absent_batch

PENALTY = 0.1  # probability factor per observed line a group forbids (absence_weights)


def reciprocal_metric(cell: IndexedCell) -> np.ndarray:
    """G* [3, 3] of the indexed cell: Q(hkl) = h G* h^T (hexagonal axes with gamma = 120 deg)."""
    a, b, c = cell.lattice()[:3]
    if cell.system == "hexagonal":
        g = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 0.0]]) * 4.0 / (3.0 * a**2)
        g[2, 2] = 1.0 / c**2
        return g
    return np.diag([1.0 / a**2, 1.0 / b**2, 1.0 / c**2])


def line_reflections(cell: IndexedCell) -> tuple[np.ndarray, np.ndarray]:
    """The reflections that explain each indexed line: hkl [M, 3] (all signs) and the line each belongs to [M]."""
    q, tol = np.asarray(cell.q_indexed, dtype=np.float64), np.asarray(cell.tol_indexed, dtype=np.float64)
    if len(q) == 0:
        return np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    limit = float((q + tol).max())
    # |h| <= a sqrt(Q) along each axis (hexagonal too: h^2 + hk + k^2 >= 3 h^2 / 4)
    n = [int(math.ceil(length * math.sqrt(limit))) + 1 for length in cell.lattice()[:3]]
    axes = [np.arange(-m, m + 1) for m in n]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    q_calc = np.einsum("ni,ij,nj->n", hkl, reciprocal_metric(cell), hkl)
    order = np.argsort(q_calc)
    lo, hi = np.searchsorted(q_calc[order], q - tol, "left"), np.searchsorted(q_calc[order], q + tol, "right")
    which = np.concatenate([order[a:b] for a, b in zip(lo, hi)])  # the reflections within each line's tolerance
    line = np.repeat(np.arange(len(q)), hi - lo)
    keep = (hkl[which] != 0).any(1)
    return hkl[which[keep]], line[keep]


def _forbidden_by_order(cell: IndexedCell, numbers: torch.Tensor) -> tuple[np.ndarray, list]:
    """int [G, O]: indexed lines each group forbids with the cell's axes in each order (one order unless
    orthorhombic), and the orders."""
    orders = list(itertools.permutations(range(3))) if cell.system == "orthorhombic" else [(0, 1, 2)]
    hkl, line = line_reflections(cell)
    n_lines = len(cell.q_indexed)
    if n_lines == 0:
        return np.zeros((len(numbers), len(orders)), dtype=np.int64), orders
    every = np.concatenate([hkl[:, list(order)] for order in orders])  # [O * M, 3]: one absence test for all orders
    present = (~is_systematically_absent_batch(numbers, every)).float()  # [G, O * M]
    line_of = torch.as_tensor(np.concatenate([line + n_lines * o for o in range(len(orders))]))
    allowed = torch.zeros(len(numbers), len(orders) * n_lines).scatter_reduce(
        1, line_of.expand(len(numbers), -1), present, "amax")  # [G, O * lines]
    return n_lines - allowed.reshape(len(numbers), len(orders), n_lines).sum(2).long().numpy(), orders


def forbidden_lines(cell: IndexedCell) -> np.ndarray:
    """int [230]: how many of the indexed lines group n (1-230) forbids outright, in its best axis order (for
    orthorhombic cells); -1 for groups outside the indexed lattice."""
    out = np.full(230, -1, dtype=np.int64)
    low, high = SPACE_GROUP_RANGES[cell.system]
    out[low - 1 : high] = _forbidden_by_order(cell, torch.arange(low, high + 1))[0].min(1)
    return out


def setting_lattice(cell: IndexedCell, number: int) -> tuple[float, ...]:
    """The cell's lattice (a, b, c, alpha, beta, gamma) with its axes in the order that suits group `number`'s
    standard setting: for an orthorhombic cell (indexed a <= b <= c), the order in which the group's reflection
    conditions forbid the fewest indexed lines (the first such order on a tie); other cells as they are."""
    lattice = cell.lattice()
    if cell.system != "orthorhombic":
        return lattice
    counts, orders = _forbidden_by_order(cell, torch.tensor([number]))
    order = orders[int(np.argmin(counts[0]))]
    return tuple(lattice[i] for i in order) + lattice[3:]


def absence_weights(cell: IndexedCell | None, count: np.ndarray | None = None, penalty: float = PENALTY) -> np.ndarray:
    """float [230]: the factor each group's probability takes from the indexed lines: penalty ** (lines it
    forbids) inside the indexed lattice, 0 outside it; all 1 without a cell. count: `forbidden_lines(cell)`
    (computed here when needed; penalty 1 needs only the lattice)."""
    if cell is None:
        return np.ones(230)
    if count is None and penalty >= 1:
        low, high = SPACE_GROUP_RANGES[cell.system]
        return np.where((np.arange(1, 231) >= low) & (np.arange(1, 231) <= high), 1.0, 0.0)
    count = forbidden_lines(cell) if count is None else count
    return np.where(count < 0, 0.0, penalty ** np.clip(count, 0, None))
