"""Which space groups the indexed lines allow: a line that only forbidden reflections explain rules a group out,
and a line a group allows that the pattern does not show counts, more softly, against it.

Systematic absences are the classical route from an indexed pattern to the extinction group (ITA Vol. A, Sect.
1.6.5; Friedman's extinction groups). With a cell indexed from the peak positions, each observed line is explained
by the reflections hkl whose Q = 1/d^2 lies within the line's tolerance (all of them: equivalent and accidentally
overlapping ones). A group whose reflection conditions forbid every one of them cannot have produced that line
(`forbidden_lines`; an impurity line that happens to fall on a forbidden reflection counts against a right group,
which is why callers weigh violations softly: PENALTY per line).

The converse evidence (`line_evidence`): up to the last indexed line, every line a group allows should show unless
it is weak. A group that allows lines no peak explains is less likely, by MISSING per such line, than one whose
conditions remove them (NaCl's lines 111 200 220 311 222 400: Fm-3m allows no other line below 400, Pm-3m eight).
A line can be weak by chance or by pseudo-symmetry, so this is a factor per line, not a rule: on RRUFF, minerals
whose superstructure lines are weak (Pnma olivines with weak h+k odd lines, apatites) lose their group to the
pseudo-symmetric one as often as other minerals gain theirs, while on the spglib structures simulated by pymatgen
space-group top-1 rises from 13.1 to 16.9 % (X-ray) and 5.8 to 10.7 % (neutron) (docs/results.md, 2026-12-06).
Weak lines, below the search threshold (`IndexedCell.q_weak`), count as seen, and a weak line that only
reflections a group forbids explain counts against it as an indexed one does (`weak_only`).

Orthorhombic cells are indexed with a <= b <= c, which need not be a group's standard setting (Pnma has b the
shortest axis): each group is tested in the six axis orders and keeps the order with the most weight. Monoclinic
cells are indexed with a reduced a*-c* net, which need not be a group's cell choice: each group is tested in 20
bases of the a-c net (`_settings`; ITA's three cell choices and their a-c swaps among them). A triclinic cell's
groups, P1 and P-1, have no reflection condition: it forbids no line, in the setting it was indexed in.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import replace

import numpy as np
import torch

from powdersym.refine.index import SPACE_GROUP_RANGES, IndexedCell
from powdersym.symmetry.absences import is_systematically_absent_batch

# probability factor per observed line a group forbids (absence_weights). Against 0.1, chosen on the pymatgen-simulated
# spglib sets: X-ray space-group top-1 gains 7 patterns and loses none, extinction group +15 / -2; neutron top-5
# +12 / -1; RRUFF top-1 +2 / -1, the measured CW neutron set +1 (docs/results.md, 2026-12-06, third session)
PENALTY = 0.01
MISSING = 0.7  # probability factor per line a group allows, within the observed range, that no line shows


def reciprocal_metric(cell: IndexedCell) -> np.ndarray:
    """G* [3, 3] of the indexed cell: Q(hkl) = h G* h^T (hexagonal axes with gamma = 120 deg)."""
    return np.linalg.inv(direct_metric(cell.lattice()))


def direct_metric(lattice: tuple[float, ...]) -> np.ndarray:
    """G [3, 3] of a lattice (a, b, c in Å, alpha, beta, gamma in deg): G_ij = a_i . a_j."""
    lengths = np.asarray(lattice[:3], dtype=np.float64)
    cos = np.cos(np.radians(np.asarray(lattice[3:], dtype=np.float64)))
    angles = np.array([[1.0, cos[2], cos[1]], [cos[2], 1.0, cos[0]], [cos[1], cos[0], 1.0]])
    return lengths[:, None] * lengths[None, :] * angles


def lattice_of(metric: np.ndarray) -> tuple[float, ...]:
    """(a, b, c, alpha, beta, gamma) of a direct metric G."""
    lengths = np.sqrt(np.diag(metric))
    cos = metric / lengths[:, None] / lengths[None, :]
    angles = np.degrees(np.arccos(np.clip([cos[1, 2], cos[0, 2], cos[0, 1]], -1, 1)))
    return tuple(float(v) for v in lengths) + tuple(float(v) for v in angles)


@functools.lru_cache(maxsize=8)
def _settings(system: str) -> tuple[np.ndarray, ...]:
    """Index transformations [3, 3] (h' = h M) to try a group's standard setting in: the six axis orders of an
    orthorhombic cell (indexed a <= b <= c; Pnma has b the shortest); for a monoclinic cell (unique axis b) the
    changes of basis of the a-c net with entries -1, 0, 1, one of each +-pair (the three cell choices of ITA and
    their a-c swaps: an indexed C2/c cell may be any of them); the identity otherwise (triclinic cells too: P1
    and P-1 have no reflection condition to suit)."""
    if system == "orthorhombic":
        return tuple(np.eye(3, dtype=np.int64)[:, list(order)] for order in itertools.permutations(range(3)))
    if system == "monoclinic":
        out: list[np.ndarray] = [np.eye(2, dtype=np.int64)]
        for p, q, r, s in itertools.product((-1, 0, 1), repeat=4):
            basis = np.array([[p, q], [r, s]])
            if abs(p * s - q * r) == 1 and not any((m == basis).all() or (m == -basis).all() for m in out):
                out.append(basis)
        return tuple(np.array([[m[0, 0], 0, m[0, 1]], [0, 1, 0], [m[1, 0], 0, m[1, 1]]]) for m in out)
    return (np.eye(3, dtype=np.int64),)


def line_reflections(cell: IndexedCell) -> tuple[np.ndarray, np.ndarray]:
    """The reflections that explain each indexed line: hkl [M, 3] (all signs) and the line each belongs to [M]."""
    q, tol = np.asarray(cell.q_indexed, dtype=np.float64), np.asarray(cell.tol_indexed, dtype=np.float64)
    if len(q) == 0:
        return np.zeros((0, 3), dtype=np.int64), np.zeros(0, dtype=np.int64)
    limit = float((q + tol).max())
    # |h| <= a sqrt(Q) along each axis, for any cell: h = r . a for the reciprocal vector r, |r . a| <= |r| |a|
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


def _tolerance_at(cell: IndexedCell, q: np.ndarray) -> np.ndarray:
    """The indexed lines' tolerance (Q units) interpolated to Q values q."""
    q_lines = np.asarray(cell.q_indexed, dtype=np.float64)
    order = np.argsort(q_lines)
    return np.interp(q, q_lines[order], np.asarray(cell.tol_indexed, dtype=np.float64)[order])


def _lattice_lines(cell: IndexedCell, q_limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every reflection of the cell up to Q = q_limit, hkl [M, 3] (one of each set the Laue group relates, 000 left
    out), its Q [M] and the resolved line it falls on [M]: reflections whose Q lie within the indexed lines' tolerance of
    each other make one line."""
    n = [int(math.ceil(length * math.sqrt(q_limit))) + 1 for length in cell.lattice()[:3]]
    # absences share the Laue symmetry; mmm, 4/m and m-3 map every reflection into h, k, l >= 0, 2/m into h, k >= 0,
    # -1 into h >= 0, -3 does not
    first = {"hexagonal": [-m for m in n], "monoclinic": [0, 0, -n[2]], "triclinic": [0, -n[1], -n[2]]}.get(
        cell.system, [0, 0, 0])
    hkl = np.stack(np.meshgrid(*[np.arange(f, m + 1) for f, m in zip(first, n)], indexing="ij"), -1).reshape(-1, 3)
    q = np.einsum("ni,ij,nj->n", hkl, reciprocal_metric(cell), hkl)
    keep = (q > 0) & (q <= q_limit)
    hkl, q = hkl[keep], q[keep]
    order = np.argsort(q)
    q_sorted = q[order]
    tol = _tolerance_at(cell, q_sorted)
    line = np.empty(len(q), dtype=np.int64)
    line[order] = np.cumsum(np.diff(q_sorted, prepend=-np.inf) > tol) - 1
    return hkl, q, line


def _allowed_by_order(cell: IndexedCell, numbers: torch.Tensor, orders: tuple) -> tuple[np.ndarray, np.ndarray]:
    """int [G, O] twice: lines of the cell up to its last indexed line that group g allows (in axis order o) and
    that no indexed or weak line explains, and all the lines it allows there."""
    q_lines = np.asarray(cell.q_indexed, dtype=np.float64)
    nothing = np.zeros((len(numbers), len(orders)), dtype=np.int64)
    if len(q_lines) == 0:
        return nothing, nothing
    tol = np.asarray(cell.tol_indexed, dtype=np.float64)
    hkl, q, line = _lattice_lines(cell, float((q_lines + tol).max()))
    n_lines = int(line.max()) + 1 if len(line) else 0
    if n_lines == 0:
        return nothing, nothing
    seen_reflection = (np.abs(q[:, None] - q_lines[None, :]) <= tol[None, :]).any(1)
    q_weak = np.asarray(cell.q_weak, dtype=np.float64)
    if len(q_weak):  # a weak line on a reflection shows it too
        seen_reflection |= (np.abs(q[:, None] - q_weak[None, :]) <= _tolerance_at(cell, q_weak)[None, :]).any(1)
    seen = np.zeros(n_lines, dtype=bool)
    seen[line[seen_reflection]] = True  # a resolved line is seen where one of its reflections explains a line
    every = np.concatenate([hkl @ order for order in orders])  # [O * M, 3]
    present = (~is_systematically_absent_batch(numbers, every)).float()  # [G, O * M]
    line_of = torch.as_tensor(np.concatenate([line + n_lines * o for o in range(len(orders))]))
    allowed = torch.zeros(len(numbers), len(orders) * n_lines).scatter_reduce(
        1, line_of.expand(len(numbers), -1), present, "amax").reshape(len(numbers), len(orders), n_lines).bool()
    return (allowed & ~torch.as_tensor(seen)).sum(2).long().numpy(), allowed.sum(2).long().numpy()


def _forbidden_by_order(cell: IndexedCell, numbers: torch.Tensor) -> tuple[np.ndarray, tuple]:
    """int [G, O]: indexed lines each group forbids with the cell's indices transformed by each setting
    (`_settings`), and the settings."""
    orders = _settings(cell.system)
    hkl, line = line_reflections(cell)
    n_lines = len(cell.q_indexed)
    if n_lines == 0:
        return np.zeros((len(numbers), len(orders)), dtype=np.int64), orders
    every = np.concatenate([hkl @ order for order in orders])  # [O * M, 3]: one absence test for all orders
    present = (~is_systematically_absent_batch(numbers, every)).float()  # [G, O * M]
    line_of = torch.as_tensor(np.concatenate([line + n_lines * o for o in range(len(orders))]))
    allowed = torch.zeros(len(numbers), len(orders) * n_lines).scatter_reduce(
        1, line_of.expand(len(numbers), -1), present, "amax")  # [G, O * lines]
    return n_lines - allowed.reshape(len(numbers), len(orders), n_lines).sum(2).long().numpy(), orders


def weak_off_lines(cell: IndexedCell) -> np.ndarray:
    """Q of the cell's weak lines (`IndexedCell.q_weak`) that lie on no indexed line (within its tolerance)."""
    q = np.asarray(cell.q_weak, dtype=np.float64)
    if len(q) == 0 or len(cell.q_indexed) == 0:
        return np.zeros(0)
    q_lines, tol_lines = np.asarray(cell.q_indexed, dtype=np.float64), np.asarray(cell.tol_indexed, dtype=np.float64)
    return q[~(np.abs(q[:, None] - q_lines[None, :]) <= tol_lines[None, :]).any(1)]


def lines_explained(cell: IndexedCell, q: np.ndarray) -> np.ndarray:
    """bool [n]: which lines at Q = q a reflection of the cell's lattice explains (within the indexed lines'
    tolerance, interpolated to q)."""
    out = np.zeros(len(q), dtype=bool)
    if len(q):
        out[np.unique(line_reflections(replace(cell, q_indexed=q, tol_indexed=_tolerance_at(cell, q)))[1])] = True
    return out


def weak_only(cell: IndexedCell) -> IndexedCell | None:
    """The cell with its weak lines (`IndexedCell.q_weak`) as its lines: those not on an indexed line and within
    tolerance of a reflection of the lattice (a weak line nothing explains, an impurity's, tells nothing about the
    group); None where there is none."""
    q = weak_off_lines(cell)
    q = q[lines_explained(cell, q)]
    if len(q) == 0:
        return None
    return replace(cell, q_indexed=q, tol_indexed=_tolerance_at(cell, q))


def _observed_forbidden(cell: IndexedCell, numbers: torch.Tensor) -> tuple[np.ndarray, tuple]:
    """int [G, O]: observed lines each group forbids in each setting: the indexed lines, and the weak lines the
    cell explains (`weak_only`); and the settings. A weak line only forbidden reflections explain counts as an
    indexed one does: cerussite's (Pnma) weak h+l odd lines are what tell it from the pseudo-centred Cmcm and
    Cmc2_1 its strong lines fit (on RRUFF space-group top-1 gained 5 patterns and lost none, on the spglib set
    simulated by pymatgen (X-ray) 5 and none; docs/results.md, 2026-12-06, seventh session)."""
    count, orders = _forbidden_by_order(cell, numbers)
    weak = weak_only(cell)
    if weak is not None:
        count = count + _forbidden_by_order(weak, numbers)[0]
    return count, orders


def forbidden_lines(cell: IndexedCell) -> np.ndarray:
    """int [230]: how many of the observed lines (indexed, and weak ones the cell explains) group n (1-230) forbids
    outright, in its best axis order (for orthorhombic cells); -1 for groups outside the indexed lattice."""
    out = np.full(230, -1, dtype=np.int64)
    low, high = SPACE_GROUP_RANGES[cell.system]
    out[low - 1 : high] = _observed_forbidden(cell, torch.arange(low, high + 1))[0].min(1)
    return out


def setting_lattice(cell: IndexedCell, number: int) -> tuple[float, ...]:
    """The cell's lattice (a, b, c, alpha, beta, gamma) in the setting that suits group `number`'s standard one:
    for an orthorhombic cell (indexed a <= b <= c) the axis order, for a monoclinic one the a-c basis, in which the
    group's reflection conditions forbid the fewest observed lines (indexed, and weak ones the cell explains: on
    RRUFF's cerussite two axis orders forbid no indexed line of Pnma, one of them no weak line either; on a tie, beta
    nearest 90 deg, then the first; beta >= 90); other cells (triclinic ones too: P1 and P-1 have no reflection
    condition) as they are."""
    lattice = cell.lattice()
    if cell.system not in ("orthorhombic", "monoclinic"):
        return lattice
    counts, orders = _observed_forbidden(cell, torch.tensor([number]))
    # h' = h M: G' = M^T G M; of the settings that forbid the fewest lines, the one with beta nearest 90 deg (ITA's
    # choice among a monoclinic group's cells), the first on a tie (the identity: orthorhombic cells keep their order)
    fits = [lattice_of(m.T @ direct_metric(lattice) @ m) for m, n in zip(orders, counts[0]) if n == counts[0].min()]
    a, b, c, alpha, beta, gamma = min(fits, key=lambda fit: round(abs(fit[4] - 90.0), 6))
    return (a, b, c, alpha, max(beta, 180.0 - beta), gamma)


def line_evidence(cell: IndexedCell, penalty: float = PENALTY, missing: float = MISSING) -> tuple[np.ndarray, np.ndarray]:
    """int [230] twice: the observed lines (indexed, and weak ones the cell explains) each group forbids and the
    lines it allows that are not seen (up to the last indexed line), in the axis order (orthorhombic cells) that
    gives it the most weight, penalty ** forbidden * missing ** unseen; -1 for groups outside the indexed lattice."""
    forbidden, unseen = np.full(230, -1, dtype=np.int64), np.full(230, -1, dtype=np.int64)
    low, high = SPACE_GROUP_RANGES[cell.system]
    numbers = torch.arange(low, high + 1)
    count, orders = _observed_forbidden(cell, numbers)
    missed = _allowed_by_order(cell, numbers, orders)[0]
    score = count * math.log(penalty) + (missed * math.log(missing) if missing < 1 else 0.0)  # [G, O]
    best = np.argmax(score, axis=1)
    rows = np.arange(len(numbers))
    forbidden[low - 1 : high], unseen[low - 1 : high] = count[rows, best], missed[rows, best]
    return forbidden, unseen


def group_counted(cell: IndexedCell) -> IndexedCell:
    """The cell with de Wolff's N20 counting only the lines of the group of its lattice that forbids no indexed line
    and allows the fewest (in its best axis order), and M20 scaled to match: DICVOL's figure of merit once an
    extinction symbol is chosen (`lines_of` names the group). A cell of a group with many conditions (Pnma, Ia-3d)
    predicts far fewer lines than its lattice, and counting them all held its M20 below the limit. The cell as it
    is where no group allows fewer lines than the lattice without forbidding an indexed one."""
    low, high = SPACE_GROUP_RANGES[cell.system]
    numbers = torch.arange(low, high + 1)  # the first, P23 / P4 / P3 / P222, has no reflection condition
    count, orders = _forbidden_by_order(cell, numbers)
    allowed = _allowed_by_order(cell, numbers, orders)[1]
    lattice = int(allowed[0, 0])
    fewest = np.where(count == 0, allowed, lattice)
    g, o = np.unravel_index(np.argmin(fewest), fewest.shape)
    if fewest[g, o] >= lattice or fewest[g, o] == 0:
        return cell
    factor = lattice / fewest[g, o]
    n_calculated = max(1, round(cell.n_calculated / factor))
    return replace(cell, m20=cell.m20 * factor, n_calculated=n_calculated, lines_of=int(numbers[g]))


def absence_weights(cell: IndexedCell | None, count: np.ndarray | None = None, penalty: float = PENALTY,
                    unseen: np.ndarray | None = None, missing: float = MISSING) -> np.ndarray:
    """float [230]: the factor each group's probability takes from the indexed lines: penalty ** (lines it
    forbids) * missing ** (lines it allows that are not seen, beyond the fewest of any group of the lattice) inside
    the indexed lattice, 0 outside it; all 1 without a cell. count, unseen: `line_evidence(cell)` (computed here when
    needed; penalty and missing 1 need only the lattice)."""
    if cell is None:
        return np.ones(230)
    use_missing = missing < 1
    if count is None and penalty >= 1 and not use_missing:
        low, high = SPACE_GROUP_RANGES[cell.system]
        return np.where((np.arange(1, 231) >= low) & (np.arange(1, 231) <= high), 1.0, 0.0)
    if count is None or (use_missing and unseen is None):
        count, unseen = line_evidence(cell, penalty, missing) if use_missing else (forbidden_lines(cell), None)
    weight = penalty ** np.clip(count, 0, None)
    if use_missing:
        weight = weight * missing ** np.clip(unseen - unseen[unseen >= 0].min(), 0, None)
    return np.where(count < 0, 0.0, weight)
