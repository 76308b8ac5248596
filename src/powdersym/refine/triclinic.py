"""Triclinic powder indexing from zones, as ITO does (Visser, J. Appl. Cryst. 2, 89, 1969).

A triclinic reciprocal lattice has six parameters, too many to try every set of lines on small indices. A zone (a
plane of the reciprocal lattice through the origin) has three: Q(m, n) = P m^2 + R n^2 + S m n. ITO finds zones
from the first lines, then joins two zones that share a row into a lattice:

1. zones from every triple of the first 8 lines put on every triple of small zone indices (m 0-2, n -2..2), reduced
   (|S| <= P <= R) and binned 0.3 % wide (`refine.monoclinic.vote`): a true zone comes from many line triples, and
   the most voted are kept (on the synthetic triclinic patterns of benchmarks/indexing.py, 51 of 79 have two true
   zones among the 100 most voted: benchmarks/triclinic_zones.py);
2. two zones join where a short row of one (m, n in 0-2) has the length of a short row of the other: with that row w
   and a second row of each zone (x1, x2) as basis, five of the six products are known and the last, x1 . x2, comes
   from the other lines put on small indices, voted;
3. the most voted lattices are ranked by M20 on the first 10 lines, the best on 20, and the best refined by weighted
   least squares with a zero shift (`refine.index._least_squares`), as the other systems are.

A cell is accepted with M20 >= 20 on the first 20 lines indexing all but `unindexed_allowed` of the first 30, or with
M20 >= 15 indexing every one of 30 lines (`acceptable`), unless a cubic, tetragonal, hexagonal or orthorhombic cell
indexes the first 12 lines (`higher_first_lines`). It is Niggli-reduced (gemmi) and its two-fold axes counted (Le Page's obliquity, 0.5 deg): with none it is triclinic; with
one, its conventional monoclinic cell (spglib) is refined and scored as `refine.monoclinic` scores its own (that
search tries lines on h0l zones only and misses some C-centred cells); with more, nothing is reported (those
searches did not accept it). `refine.index` runs this last, where nothing else is accepted. The limits were set on
the synthetic triclinic, monoclinic and orthorhombic patterns of benchmarks/indexing.py and on random lines (M20 up
to 14 with all but two of 30 lines indexed); RRUFF was only checked (docs/results.md, 2026-12-06, fourth session).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from powdersym.refine.index import MAX_UNINDEXED, IndexedCell, PeakPositions, _least_squares, _m20
from powdersym.refine.monoclinic import reduce_net, vote

MIN_LINES = 20  # observed lines a six-parameter cell needs
MAX_LINES = 30  # lines the cell is refined on and must index
MIN_M20 = 20.0
MIN_M20_ALL = 15.0  # ... where every one of MAX_LINES lines is indexed (`acceptable`)
VETO_LINES = 12  # first lines a higher-symmetry cell may explain instead (`higher_first_lines`)
UNINDEXED = 1  # unindexed lines allowed among the first 20 ...
UNINDEXED_ALL = 2  # ... and among the first MAX_LINES
ZONE_LINES = 8  # lines whose triples give zones
ZONES = 100  # most-voted zones joined
T_LINES = 10  # lines that fix the last product x1 . x2
T_KEPT = 3  # most-voted x1 . x2 of each zone pair
T_INDEX = 1  # |a| of the rows a w + b x1 + c x2 the lines are put on, and (b, c):
T_ROWS = ((1, 1), (1, -1), (1, 2), (1, -2), (2, 1), (2, -1))
VOTED = 2000  # most-voted lattices ranked
RANKING = ((10, 600), (20, 60))
_MIN_LENGTH, _MAX_LENGTH = 2.5, 25.0  # Å, cell edges searched
CHUNK = 128  # cells scored together (of similar volume: each chunk enumerates the indices its largest cell needs)
_MAX_INDEX = 14  # largest |h|, |k|, |l| scored (a cell that needs more misses its lines beyond)
SYMMETRY_TOLERANCE = 0.002  # relative to the cube root of the cell volume: spglib's distance tolerance
# deg: a two-fold axis this close makes the lattice monoclinic (found monoclinic lattices of the synthetic set had
# 0.05-0.13 deg, triclinic ones none or 1 deg and more)
MAX_OBLIQUITY = 0.5


def zone_rows() -> torch.Tensor:
    """(m^2, n^2, m n) of the small zone indices, one of each +-(m, n)."""
    rows = [(m * m, n * n, m * n) for m in range(3) for n in range(-2, 3)
            if (m, n) != (0, 0) and not (m == 0 and n < 0)]  # fmt: skip
    return torch.tensor(rows, dtype=torch.float64)


def voted_zones(q: torch.Tensor, first: int = ZONE_LINES) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct reduced zones (P, R, S) [Z, 3] (|S| <= P <= R, S >= 0) from the first lines and their votes [Z]."""
    rows = zone_rows()
    triples = torch.combinations(torch.arange(min(first, len(q))), 3)
    matrix = rows[torch.cartesian_prod(*[torch.arange(len(rows))] * 3)]  # [F^3, 3, 3]
    matrix = matrix[torch.linalg.det(matrix).abs() > 1e-9]
    solution = torch.linalg.solve(matrix[None], q.double()[triples][:, None, :, None].expand(-1, len(matrix), -1, -1))
    p, r, s = solution.reshape(-1, 3).unbind(1)
    ok = (p > 0) & (r > 0) & (s * s < 3.8 * p * r)
    zones = reduce_net(torch.stack([p[ok], torch.ones(int(ok.sum()), dtype=p.dtype), r[ok], s[ok]], 1))
    zones = zones[(zones[:, 0] > 1 / _MAX_LENGTH**2) & (zones[:, 2] < 1 / _MIN_LENGTH**2)]
    if len(zones) == 0:
        return torch.zeros((0, 3), dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    zones, votes = vote(zones.float())
    return zones[:, [0, 2, 3]].double(), votes


def _row_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """Short rows w = (m, n) of a zone [W, 2] and for each a second row x with (w, x) a basis of the zone [W, 2]."""
    rows, seconds = [], []
    for m, n in ((1, 0), (0, 1), (1, 1), (1, -1), (2, 1), (1, 2), (2, -1), (1, -2)):
        p, q = next((p, q) for p in (0, 1, -1) for q in (0, 1, -1) if m * q - n * p == 1)
        rows.append((m, n))
        seconds.append((p, q))
    return torch.tensor(rows, dtype=torch.float64), torch.tensor(seconds, dtype=torch.float64)


def _zone_products(zones: torch.Tensor) -> torch.Tensor:
    """For each zone and short row: (w.w, x.x, w.x) [Z, W, 3], x's sign chosen so that w.x >= 0."""
    p, r, s = zones.unbind(1)
    g = torch.stack([torch.stack([p, s / 2], -1), torch.stack([s / 2, r], -1)], -2)  # [Z, 2, 2]
    w, x = _row_pairs()
    ww = torch.einsum("wi,zij,wj->zw", w, g, w)
    xx = torch.einsum("wi,zij,wj->zw", x, g, x)
    wx = torch.einsum("wi,zij,wj->zw", w, g, x)
    return torch.stack([ww, xx, wx.abs()], -1)


def joined_lattices(zones: torch.Tensor, q: torch.Tensor, width: float = 0.003) -> tuple[torch.Tensor, torch.Tensor]:
    """Reciprocal metrics G* [K, 3, 3] of the lattices two zones span where a short row of each has the same
    length (relative `width`), the last product x1 . x2 voted from the first T_LINES lines on small indices (the
    T_KEPT most voted of each pair), and the votes of each [K]."""
    none = torch.zeros((0, 3, 3), dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    products = _zone_products(zones)  # [Z, W, 3]
    n_zones, n_rows = products.shape[:2]
    flat = products.reshape(-1, 3)
    zone_of = torch.arange(n_zones).repeat_interleave(n_rows)
    close = (torch.log(flat[:, None, 0] / flat[None, :, 0]).abs() < width) & (zone_of[:, None] < zone_of[None, :])
    i, j = torch.nonzero(close, as_tuple=True)
    if len(i) == 0:
        return none
    ww = (flat[i, 0] + flat[j, 0]) / 2
    x1, x2, wx1, wx2 = flat[i, 1], flat[j, 1], flat[i, 2], flat[j, 2]
    # Q(a w + b x1 + c x2) = a^2 ww + b^2 x1 + c^2 x2 + 2ab wx1 + 2ac wx2 + 2bc t: t from each line and (a, b, c)
    abc = torch.tensor([(a, b, c) for a in range(-T_INDEX, T_INDEX + 1) for b, c in T_ROWS], dtype=torch.float64)
    a, b, c = (v[None, :] for v in abc.unbind(1))  # [1, R]
    ww_, x1_, x2_, wx1_, wx2_ = (v[:, None] for v in (ww, x1, x2, wx1, wx2))  # [P, 1]
    rest = a * a * ww_ + b * b * x1_ + c * c * x2_ + 2 * a * b * wx1_ + 2 * a * c * wx2_  # [P, R]
    lines = q[: min(T_LINES, len(q))].double()
    t = (lines[None, :, None] - rest[:, None, :]) / (2 * b * c)[:, None, :]  # [P, L, R]
    t = t.reshape(len(i), -1)
    limit = (x1_ * x2_).sqrt()
    # positive definite: det > 0 (the two zones' own 2x2 minors are)
    det = ww_ * (x1_ * x2_ - t * t) - wx1_ * (wx1_ * x2_ - t * wx2_) + wx2_ * (wx1_ * t - x1_ * wx2_)
    ok = (t.abs() < limit) & (det > 1e-6 * ww_ * x1_ * x2_)
    pair, which = torch.nonzero(ok, as_tuple=True)
    if len(pair) == 0:
        return none
    t = t[pair, which]
    key = torch.round(t / (width * limit[pair, 0])).long()
    key = pair * (4 * int(1 / width) + 8) + key - key.min()
    bins, inverse, counts = torch.unique(key, return_inverse=True, return_counts=True)
    first = torch.full((len(bins),), len(key)).scatter_reduce(0, inverse, torch.arange(len(key)), "amin")
    bin_pair = pair[first]
    # the T_KEPT most voted t of each pair
    order = torch.argsort(bin_pair * (counts.max() + 1) - counts)
    rank = torch.arange(len(order)) - torch.searchsorted(bin_pair[order], bin_pair[order], right=False)
    chosen = first[order[rank < T_KEPT]]
    p, tt = pair[chosen], t[chosen]
    g = torch.stack([torch.stack([ww[p], wx1[p], wx2[p]], -1), torch.stack([wx1[p], x1[p], tt], -1),
                     torch.stack([wx2[p], tt, x2[p]], -1)], -2)  # fmt: skip
    return g, counts[order[rank < T_KEPT]]


def reduce_metrics(g: torch.Tensor, rounds: int = 12) -> torch.Tensor:
    """Reciprocal metrics [K, 3, 3] with each basis vector shortened against the others (b_i -= round(g_ij / g_jj)
    b_j, then sorted by length) until none changes: short reciprocal vectors, so small indices reach the lines."""
    eye = torch.eye(3, dtype=g.dtype)
    for _ in range(rounds):
        changed = False
        for i in range(3):
            for j in range(3):
                if i == j:
                    continue
                m = torch.round(g[:, i, j] / g[:, j, j])
                if (m != 0).any():
                    changed = True
                    t = eye.repeat(len(g), 1, 1)
                    t[:, j, i] = -m  # column i of T: e_i - m e_j
                    g = t.transpose(1, 2) @ g @ t
        order = torch.argsort(g.diagonal(dim1=1, dim2=2), 1)
        g = g[torch.arange(len(g))[:, None, None], order[:, :, None], order[:, None, :]]
        if not changed:
            break
    return g


def to_params(g: torch.Tensor) -> torch.Tensor:
    """(A, B, C, D, E, F) [K, 6]: Q = A h^2 + B k^2 + C l^2 + D h k + E h l + F k l."""
    return torch.stack([g[:, 0, 0], g[:, 1, 1], g[:, 2, 2], 2 * g[:, 0, 1], 2 * g[:, 0, 2], 2 * g[:, 1, 2]], 1)


def to_metric(params: torch.Tensor) -> torch.Tensor:
    a, b, c, d, e, f = params.unbind(1)
    return torch.stack([torch.stack([a, d / 2, e / 2], -1), torch.stack([d / 2, b, f / 2], -1),
                        torch.stack([e / 2, f / 2, c], -1)], -2)  # fmt: skip


def _hkl(limits: tuple[int, int, int], dtype) -> torch.Tensor:
    """hkl [M, 3] in |h|, |k|, |l| <= limits, one of each Friedel pair, (0, 0, 0) left out."""
    axes = [torch.arange(-m, m + 1) for m in limits]
    hkl = torch.cartesian_prod(*axes)
    h, k, l = hkl.unbind(1)
    half = (h > 0) | ((h == 0) & (k > 0)) | ((h == 0) & (k == 0) & (l > 0))
    return hkl[half].to(dtype)


def index_limits(params: torch.Tensor, q_max: torch.Tensor) -> torch.Tensor:
    """Largest |h|, |k|, |l| [K, 3] with Q <= q_max: |h| <= a sqrt(Q) (a the direct edge)."""
    direct = torch.linalg.inv(to_metric(params)).diagonal(dim1=1, dim2=2).clamp(min=0)
    return (direct * q_max[:, None]).sqrt().floor().long() + 1


def score_triclinic(params: torch.Tensor, q: torch.Tensor, tol_q: torch.Tensor):
    """For cells [K, 6] and observed Q [K, n] (zero shift removed): indexed [K, n], misfit [K, n], the design rows
    (h^2, k^2, l^2, hk, hl, kl) of the nearest calculated lines [K, n, 6] and N20 [K] (reflections up to the last
    observed line, one of each Friedel pair)."""
    q_max = q.max(1).values
    limits = index_limits(params, q_max).amax(0).clamp(max=_MAX_INDEX)
    hkl = _hkl(tuple(int(v) for v in limits), q.dtype)  # [M, 3]
    h, k, l = hkl.unbind(1)
    design = torch.stack([h * h, k * k, l * l, h * k, h * l, k * l], 1)  # [M, 6]
    calc = params.to(q.dtype) @ design.T  # [K, M]
    near = (calc <= 1.05 * q_max[:, None]).any(0)  # the box's corners lie beyond every cell's last line: not sorted
    near[:2] = True  # two at least, for the neighbours below
    calc, design = calc[:, near], design[near]
    calc, order = torch.sort(calc, 1)
    pos = torch.searchsorted(calc, q.contiguous()).clamp(1, calc.shape[1] - 1)  # [K, n]
    below, above = calc.gather(1, pos - 1), calc.gather(1, pos)
    use_above = (above - q).abs() < (q - below).abs()
    nearest = torch.where(use_above, pos, pos - 1)
    misfit = torch.minimum((above - q).abs(), (q - below).abs())
    rows = design[order.gather(1, nearest)]  # [K, n, 6]
    n_calc = (calc <= q_max[:, None] * (1 + 1e-9)).sum(1)
    return misfit <= tol_q, misfit, rows, n_calc


def direct_lengths(params: torch.Tensor) -> torch.Tensor:
    """(a, b, c) [K, 3] in Å."""
    return torch.linalg.inv(to_metric(params)).diagonal(dim1=1, dim2=2).clamp(min=0).sqrt()


def triclinic_trials(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Trial cells (A..F) [K, 6], reduced, with edges 2.5-25 Å: the VOTED lattices with the most votes (summed over
    the zone pairs that give each), and those votes [K]."""
    zones, votes = voted_zones(q)
    zones = zones[torch.argsort(votes, descending=True)[:ZONES]]
    g, votes = joined_lattices(zones, q)
    if len(g) == 0:
        return torch.zeros((0, 6), dtype=torch.float64), votes
    params = canonical(to_params(reduce_metrics(g)))
    lengths = direct_lengths(params)
    keep = ((lengths >= _MIN_LENGTH) & (lengths <= _MAX_LENGTH)).all(1)
    if not keep.any():
        return torch.zeros((0, 6), dtype=torch.float64), votes[:0]
    params, votes = lattice_vote(params[keep], votes[keep])
    order = torch.argsort(votes, descending=True)[:VOTED]
    return params[order], votes[order]


def canonical(params: torch.Tensor) -> torch.Tensor:
    """Cells [K, 6] with the signs of b and c chosen so that D >= 0 and E >= 0 (the same lattice)."""
    a, b, c, d, e, f = params.unbind(1)
    flip_b = d < 0
    d, f = torch.where(flip_b, -d, d), torch.where(flip_b, -f, f)
    flip_c = e < 0
    e, f = torch.where(flip_c, -e, e), torch.where(flip_c, -f, f)
    return torch.stack([a, b, c, d, e, f], 1)


def lattice_vote(params: torch.Tensor, votes: torch.Tensor, width: float = 0.003) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct cells [U, 6] (bins of relative width `width`) and the summed votes of the trials in each [U]: the
    true lattice comes from many pairs of zones."""
    a, b, c = params[:, 0], params[:, 1], params[:, 2]
    scale = torch.stack([(a * b).sqrt(), (a * c).sqrt(), (b * c).sqrt()], 1)
    key = torch.cat([torch.round(torch.log(params[:, :3]) / width), torch.round(params[:, 3:] / scale / width)], 1)
    bins, inverse = torch.unique(key.long(), dim=0, return_inverse=True)
    first = torch.full((len(bins),), len(key)).scatter_reduce(0, inverse, torch.arange(len(key)), "amin")
    summed = torch.zeros(len(bins), dtype=torch.long).scatter_add(0, inverse, votes.long())
    return params[first], summed


def search_triclinic(peaks: PeakPositions) -> tuple[torch.Tensor, ...]:
    """The best refined triclinic cells of the peaks: params [K, 6], zero shifts [K], M20 [K] (first 20 lines,
    UNINDEXED allowed), which of the first MAX_LINES lines each indexes [K, n] and its calculated lines up to the
    last of them [K]; empty with fewer than MIN_LINES lines or no trial cell."""
    empty = torch.zeros(0, dtype=torch.float64)
    none = torch.zeros((0, 6), dtype=torch.float64), empty, empty, torch.zeros((0, 0), dtype=torch.bool), empty
    if len(peaks) < MIN_LINES:
        return none
    n = min(len(peaks), MAX_LINES)
    q0 = torch.as_tensor(peaks.q)[:n]
    slope = torch.as_tensor(peaks.slope)[:n]
    tol_q = torch.as_tensor(np.abs(peaks.slope) * peaks.tolerance)[:n].clamp(min=1e-9)
    cells, _ = triclinic_trials(q0)
    if len(cells) == 0:
        return none
    for lines, keep in RANKING:
        m = min(lines, n)
        q, tol = q0[:m].float(), tol_q[:m].float()  # single precision: the ranking needs no more, and sorts faster
        volume = torch.linalg.det(to_metric(cells))
        cells = cells[torch.argsort(volume)]  # chunks of similar cells: each scores the indices its own cells reach
        scores = []
        for part in cells.float().split(CHUNK):
            indexed, misfit, _, n_calc = score_triclinic(part, q[None].expand(len(part), -1), 2 * tol)
            scores.append(_m20(indexed, misfit, n_calc, q.max().expand(len(part)), unindexed=MAX_UNINDEXED))
        cells = cells[torch.topk(torch.cat(scores), min(keep, len(cells))).indices]
    zero = torch.zeros(len(cells), dtype=torch.float64)
    fit_zero = peaks.max_zero > 0
    for widen in (2, 2, 1):
        cells, zero = _least_squares(cells, zero, "triclinic", q0, slope, widen * tol_q, fit_zero)
        zero = zero.clamp(-peaks.max_zero, peaks.max_zero)
    cells = to_params(reduce_metrics(to_metric(cells)))
    q = q0[None, :] - slope[None, :] * zero[:, None]
    indexed, misfit, _, n_calc = score_triclinic(cells, q[:, :20], tol_q[:20])
    m20 = _m20(indexed, misfit, n_calc, q[:, :20].max(1).values, unindexed=UNINDEXED)
    indexed, _, _, n_calc = score_triclinic(cells, q, tol_q)
    return cells, zero, m20, indexed, n_calc


def lattice_of(params: np.ndarray) -> tuple[float, ...]:
    """(a, b, c, alpha, beta, gamma) of reciprocal cell params, Niggli-reduced (gemmi)."""
    import gemmi

    from powdersym.refine.extinction import lattice_of as from_metric

    direct = np.linalg.inv(to_metric(torch.as_tensor(params)[None])[0].numpy())
    gv = gemmi.GruberVector(gemmi.UnitCell(*from_metric(direct)), None, True)
    gv.niggli_reduce()
    cell = gv.get_cell()
    return (cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma)


def two_fold_axes(lattice: tuple[float, ...], max_obliquity: float = MAX_OBLIQUITY) -> int:
    """How many two-fold axes the lattice has within `max_obliquity` deg (Le Page's method, gemmi): 0 for a
    triclinic metric, 1 for a monoclinic one."""
    import gemmi

    return len(gemmi.find_lattice_2fold_ops(gemmi.UnitCell(*lattice), max_obliquity))


def lattice_symmetry(lattice: tuple[float, ...], tolerance: float = SYMMETRY_TOLERANCE) -> tuple[int, tuple]:
    """The space group number of the lattice's holohedry (2: triclinic, 10 or 12: monoclinic, ...) and its
    conventional cell (a, b, c, alpha, beta, gamma) (spglib on one lattice point, distance tolerance relative to the
    cell size)."""
    import gemmi
    import spglib

    from powdersym.refine.extinction import lattice_of as from_metric

    cell = gemmi.UnitCell(*lattice)
    vectors = np.array(cell.orth.mat).T  # rows: a, b, c
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+ warns about its old error handling
        try:
            symprec = tolerance * cell.volume ** (1 / 3)
            data = spglib.get_symmetry_dataset((vectors, [[0.0, 0.0, 0.0]], [1]), symprec=symprec)
        except spglib.SpglibError:
            data = None
    if data is None:
        return 2, lattice
    std = np.asarray(data.std_lattice)
    return int(data.number), from_metric(std @ std.T)


def monoclinic_cell(lattice: tuple[float, ...]) -> tuple[float, ...] | None:
    """The conventional cell (a, b, c, alpha, beta, gamma; unique axis b, C-centred for a C2/m lattice) of a lattice
    with one two-fold axis: spglib's, at the smallest tolerance (doubling from SYMMETRY_TOLERANCE) that finds a
    monoclinic holohedry; None if it finds a higher one first or none by 32 times the tolerance."""
    for step in range(6):
        number, conventional = lattice_symmetry(lattice, SYMMETRY_TOLERANCE * 2**step)
        if number > 2:
            return conventional if number in (10, 12) else None
    return None


def unindexed_allowed(n_lines: int) -> int:
    """Unindexed lines a triclinic cell may leave among n: none of 20-24, one of 25-29, two of 30 (on the synthetic
    triclinic patterns of benchmarks/indexing.py, the two wrong cells of M20 >= 20 left one of 21 and one of 20)."""
    return min(UNINDEXED_ALL, max(0, (n_lines - MIN_LINES) // 5))


def acceptable(m20: torch.Tensor, n_indexed: torch.Tensor, n_lines: int) -> torch.Tensor:
    """bool [K]: M20 >= MIN_M20 with all but `unindexed_allowed` of the n lines indexed, or M20 >= MIN_M20_ALL with
    every one of MAX_LINES lines indexed. On the synthetic patterns of benchmarks/indexing.py, 4 right triclinic cells
    scored M20 15-19 indexing all 30 lines; the wrong cells of M20 15-18 on monoclinic patterns left a line unindexed
    or came from fewer lines, and random lines reached 13.6."""
    limit = (m20 >= MIN_M20) & (n_indexed >= n_lines - unindexed_allowed(n_lines))
    return limit | ((m20 >= MIN_M20_ALL) & (n_indexed == MAX_LINES) & (n_lines == MAX_LINES))


def index_triclinic(peaks: PeakPositions) -> IndexedCell | None:
    """The accepted triclinic cell of the peaks (Niggli-reduced), or None: fewer than MIN_LINES lines, no cell
    `acceptable` (M20 on the first 20 lines, UNINDEXED of them unindexed; lines indexed of the first MAX_LINES), the
    first lines fit by a cell of higher symmetry (`higher_first_lines`),
    or a lattice with two-fold axes: with one, the monoclinic cell if accepted (`_as_monoclinic`). No limit on
    calculated lines per indexed one: M20 counts them, and a triclinic cell predicts many
    (on the synthetic patterns, right cells predicted 2-6 per line observed up to d 1.3 Å)."""
    cells, zero, m20, indexed, n_calc = search_triclinic(peaks)
    if len(cells) == 0:
        return None
    n = min(len(peaks), MAX_LINES)
    q0 = torch.as_tensor(peaks.q)[:n] - torch.as_tensor(peaks.slope)[:n] * zero[:, None]  # [K, n]
    tol_q = torch.as_tensor(np.abs(peaks.slope) * peaks.tolerance)[:n].clamp(min=1e-9)
    n_indexed = indexed.sum(1)
    good = acceptable(m20, n_indexed, n)
    if not good.any() or higher_first_lines(peaks):
        return None
    k = int(torch.argmax(torch.where(good, m20, -1.0)))
    lattice = lattice_of(cells[k].numpy())
    axes = two_fold_axes(lattice)
    if axes == 1:
        return _as_monoclinic(lattice, peaks)
    if axes > 1:
        return None
    lines = indexed[k].numpy()
    a, b, c, alpha, beta, gamma = lattice
    return IndexedCell("triclinic", a, c, float(zero[k]), float(m20[k]), int(n_indexed[k]), n, int(n_calc[k]), b=b,
                       alpha=alpha, beta=beta, gamma=gamma, q_indexed=q0[k].numpy()[lines],
                       tol_indexed=tol_q.numpy()[lines])


def first_lines(peaks: PeakPositions, n: int) -> PeakPositions:
    """The first n lines of the peaks."""
    return PeakPositions(*(v[:n] for v in (peaks.x, peaks.d, peaks.height, peaks.tolerance, peaks.slope)),
                         max_zero=peaks.max_zero)  # fmt: skip


def higher_first_lines(peaks: PeakPositions, n: int = VETO_LINES) -> bool:
    """Whether a cubic, tetragonal, hexagonal or orthorhombic cell indexes all but one of the first n lines with M20
    >= MIN_M20: the pattern is of that symmetry, its later lines overlapping or extra (a crystallographer would not
    go triclinic). Six parameters fit such patterns by chance: on the pymatgen-simulated neutron set two cubic
    patterns (a 9.5 and 12.1 Å) and a measured ToF I4_1/amd pattern took triclinic cells of M20 33-59 indexing
    every line, and each is vetoed here; none of the 16 right cells of the synthetic and RRUFF patterns is."""
    from powdersym.refine.index import HIGH_SYMMETRY, index_cells

    cells = index_cells(first_lines(peaks, n), (*HIGH_SYMMETRY, "orthorhombic"))
    return any(cell is not None and cell.m20 >= MIN_M20 and cell.n_indexed >= n - 1 for cell in cells.values())


def _as_monoclinic(lattice: tuple[float, ...], peaks: PeakPositions) -> IndexedCell | None:
    """The monoclinic cell of a triclinic-search lattice with one two-fold axis, refined and scored as
    `refine.monoclinic` scores its own (first 20 lines, N20 of its centring), if `index.choose_cell` accepts it with
    the monoclinic limits."""
    from powdersym.refine.index import MONOCLINIC_LIMITS, choose_cell
    from powdersym.refine.monoclinic import reciprocal_cell, refined_monoclinic

    conventional = monoclinic_cell(lattice)
    if conventional is None:
        return None
    a, b, c, _, beta, _ = conventional
    cell = refined_monoclinic(torch.as_tensor(reciprocal_cell(a, b, c, beta))[None], first_lines(peaks, 20))
    return choose_cell({"monoclinic": cell}, **MONOCLINIC_LIMITS)
