"""Monoclinic powder indexing: four reciprocal parameters, Q = A h^2 + B k^2 + C l^2 + D h l (unique axis b).

Half of RRUFF's minerals are monoclinic or triclinic; on 53 of its 100 monoclinic patterns the network's top group
is P-1 (docs/results.md). A monoclinic cell that indexes twenty lines with a good M20 settles the crystal system, as
DICVOL or TREOR would. The search is TREOR's idea made exhaustive over small indices, with a vote:

1. (A, B, C) from three of the first six lines put on three small reflections (h, k, l in 0-2; the orthorhombic
   trial cells of `refine.index`), each axis in turn taken as the unique one: the lines are assumed to lie in the
   zones h0l-free of D (h l = 0);
2. D from a fourth line among the first eight put on a small reflection with h l != 0 (h, l in 1-2, k in 0-2);
3. each trial's a*-c* net reduced (|D| <= A <= C, D >= 0: beta between 90 and 120 deg) and the trials binned
   (`vote`, 0.3 % wide): the right cell comes from many choices of lines, a chance one from few. The 3,000 most
   voted are ranked by M20 on the first 10 lines, the best 600 on 20, and the best 60, with each one's sub-cells
   (a, b or c halved), refined by weighted least squares with a zero shift as the other systems are;
4. nets within 0.3 % of rectangular or centred rectangular are dropped (an orthorhombic P or C lattice), and N20
   counts the lines of the centring (P, C, A or I in the found axes) that allows a reflection on every indexed line
   and the fewest lines: a C-centred cell (a third of RRUFF's monoclinic minerals: C2/c, C2/m, Cc) predicts half the
   lines of a primitive one.

`refine.index` runs it last, from 18 lines, where no cell of higher symmetry is accepted or only an orthorhombic one
with its group's lines counted (which the monoclinic cell replaces with twice its M20), and accepts its cell from
M20 10 with at most one unindexed line and 4.5 calculated lines per indexed one. On RRUFF that gives 22 of the 100
monoclinic patterns a monoclinic cell and none of the 46 triclinic or 67 orthorhombic ones (docs/results.md,
2026-12-06, second session). Triclinic cells are not searched.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from powdersym.refine.index import (
    _CHUNK, MAX_LINE_RATIO_MONOCLINIC, MAX_UNINDEXED, MIN_M20_MONOCLINIC, IndexedCell, PeakPositions, _least_squares,
    _m20, _orthorhombic_trials, _small_forms,
)

CENTRINGS = ("P", "C", "A", "I")
# fewer lines: four parameters fit too many of them by chance (from 16, RRUFF gained no monoclinic cell and one
# orthorhombic pattern a wrong one)
MIN_LINES = 18
# unindexed lines a cell may leave (two for the other systems): 3 of 16 simulated triclinic patterns indexed as
# monoclinic supercells with M20 12-30 leaving two of 20 lines, none leaving one
UNINDEXED = 1
VOTE_WIDTH = 0.003  # relative width of the bins trial cells vote in
METRIC_TOLERANCE = 0.003  # relative: a net this close to rectangular or centred rectangular is orthorhombic
# the most-voted trial cells ranked, then (lines ranked on, cells kept): on RRUFF ((10, 60),) indexed 13 monoclinic
# patterns, ((10, 600), (20, 60)) 22 at 0.3 s a pattern, ((10, 600), (20, 100)) 23 at 0.45 s; 10,000 voted cells
# instead of 3,000 found fewer (more chance competitors)
_VOTED = 3000
RANKING = ((10, 600), (20, 60))
_D_LINES = 8  # lines that may fix D
_MIN_LENGTH, _MAX_LENGTH = 2.5, 25.0  # Å, cell edges searched


def _d_rows() -> torch.Tensor:
    """(h^2, k^2, l^2, h l) of the small reflections with h l != 0 that fix D (h, l in 1-2; k in 0-2)."""
    rows = [(h * h, k * k, l * l, h * l) for h in (1, 2) for k in (0, 1, 2) for l in (1, 2)]
    return torch.tensor(rows, dtype=torch.float64)


def reduce_net(cells: torch.Tensor) -> torch.Tensor:
    """(A, B, C, D) [K, 4] with the a*-c* net Lagrange-reduced: |D| <= A <= C and D >= 0 (the same lattice)."""
    a, b, c, d = cells.unbind(1)
    for _ in range(30):
        swap = a > c
        a, c = torch.where(swap, c, a), torch.where(swap, a, c)
        m = torch.round(d / (2 * a))
        if not (m != 0).any() and not swap.any():
            break
        c = c - m * d + m * m * a
        d = d - 2 * m * a
    return torch.stack([a, b, c, d.abs()], 1)


def monoclinic_trials(q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distinct trial cells (A, B, C, D) [U, 4] (reduced, real lengths 2.5-25 Å) and the votes of each [U]."""
    abc = _orthorhombic_trials(q.double(), _small_forms("orthorhombic")).float()  # [T, 3]
    if len(abc) == 0:
        return torch.zeros((0, 4), dtype=torch.float64), torch.zeros(0, dtype=torch.long)
    # each axis in turn the unique one (column 1, B)
    abc = abc[:, torch.tensor([[0, 1, 2], [1, 0, 2], [0, 2, 1]])].reshape(-1, 3)  # [3T, 3]
    rows = _d_rows().float()  # [R, 4]
    lines = q[: min(_D_LINES, len(q))].float()  # [L]
    d = (lines[None, :, None] - (abc @ rows[:, :3].T)[:, None, :]) / rows[:, 3]  # [3T, L, R]
    a, c = abc[:, 0, None, None], abc[:, 2, None, None]
    valid = (d.abs() > 1e-7 * a) & (d * d < 3.8 * a * c)  # D != 0, and a positive-definite metric
    cell, _, _ = torch.nonzero(valid, as_tuple=True)
    d = d[valid]
    cells = reduce_net(torch.cat([abc[cell], d[:, None]], 1))
    lengths = real_lengths(cells)
    cells = cells[((lengths >= _MIN_LENGTH) & (lengths <= _MAX_LENGTH)).all(1)]
    cells, votes = vote(cells)
    return cells.double(), votes


def vote(cells: torch.Tensor, width: float = VOTE_WIDTH) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct cells [U, 4] (bins of relative width `width` in A, B, C and D / sqrt(A C)) and how many trials
    fell in each [U]: the right cell comes from many choices of lines, a chance one from few."""
    logs = torch.log(cells[:, :3]) / width
    cos = cells[:, 3] / (2 * (cells[:, 0] * cells[:, 2]).sqrt()) / width
    key = torch.cat([torch.round(logs), torch.round(cos)[:, None]], 1).long()
    key = key - key.min(0).values
    flat = ((key[:, 0] * 4096 + key[:, 1]) * 4096 + key[:, 2]) * 4096 + key[:, 3]
    bins, which, counts = torch.unique(flat, return_inverse=True, return_counts=True)
    first = torch.full((len(bins),), len(flat)).scatter_reduce(0, which, torch.arange(len(flat)), "amin")
    return cells[first], counts


def _grid(cells: torch.Tensor, q_max: torch.Tensor):
    """Index ranges covering Q <= q_max for every cell: h in 0..H, k in 0..J (l of either sign)."""
    a, b, c, d = cells.unbind(1)
    a_eff = a - d * d / (4 * c)  # min over l of Q(h, 0, l) / h^2
    h_max = int(math.sqrt(float((q_max / a_eff).max()))) + 1
    k_max = int(math.sqrt(float((q_max / b).max()))) + 1
    return h_max, k_max


def score_monoclinic(cells: torch.Tensor, q: torch.Tensor, tol_q: torch.Tensor):
    """For cells [K, 4] and observed Q [K, n] (zero shift removed): indexed [K, n], misfit [K, n], the design rows
    (h^2, k^2, l^2, h l) of the nearest calculated lines [K, n, 4] and N20 [K] of the primitive lattice."""
    a, b, c, d = (v[:, None, None, None] for v in cells.unbind(1))  # [K, 1, 1, 1]
    q_max = q.max(1).values
    h_max, k_max = _grid(cells, q_max)
    # h >= 0: (-h, k, -l) is the same line as (h, k, l), and the two roots give l of either sign
    h = torch.arange(h_max + 1, dtype=q.dtype)[None, None, :, None]  # [1, 1, H, 1]
    k2 = (torch.arange(k_max + 1, dtype=q.dtype) ** 2)[None, None, None, :]  # [1, 1, 1, J]
    base = a * h * h + b * k2  # [K, 1, H, J]
    lin = d * h
    qq = q[:, :, None, None]
    disc = (lin * lin - 4 * c * (base - qq)).clamp(min=0)  # [K, n, H, J]
    root = disc.sqrt()
    best_misfit = None
    for sign in (1.0, -1.0):
        l = torch.round((-lin + sign * root) / (2 * c))
        zero = (h == 0) & (k2 == 0) & (l == 0)
        calc = base + c * l * l + lin * l
        misfit = torch.where(zero, torch.inf, (calc - qq).abs())
        flat = misfit.flatten(2)
        m, idx = flat.min(-1)
        lbest = l.flatten(2).gather(-1, idx[..., None])[..., 0]
        if best_misfit is None:
            best_misfit, best_idx, best_l = m, idx, lbest
        else:
            better = m < best_misfit
            best_misfit = torch.where(better, m, best_misfit)
            best_idx = torch.where(better, idx, best_idx)
            best_l = torch.where(better, lbest, best_l)
    j = k_max + 1
    hh = (best_idx // j).to(q.dtype)
    kk = (best_idx % j).to(q.dtype)
    rows = torch.stack([hh * hh, kk * kk, best_l * best_l, hh * best_l], -1)
    n_calc = count_lines(cells, q_max, h_max, k_max)
    return best_misfit <= tol_q, best_misfit, rows, n_calc


def count_lines(cells: torch.Tensor, q_max: torch.Tensor, h_max: int, k_max: int) -> torch.Tensor:
    """Reflections (Friedel pairs and (h, -k, l) once) with Q <= q_max [K]: de Wolff's N20."""
    a, b, c, d = (v[:, None, None, None] for v in cells.unbind(1))
    l_max = int(math.sqrt(float((q_max / (c - d * d / (4 * a)).flatten()).max()))) + 1
    h = torch.arange(0, h_max + 1, dtype=cells.dtype)[:, None, None]
    k = torch.arange(0, k_max + 1, dtype=cells.dtype)[None, :, None]
    l = torch.arange(-l_max, l_max + 1, dtype=cells.dtype)[None, None, :]
    calc = a * h * h + b * k * k + c * l * l + d * h * l  # [K, H, J, L]
    half = (h > 0) | ((h == 0) & (l > 0)) | ((h == 0) & (l == 0) & (k > 0))
    return ((calc <= q_max[:, None, None, None] * (1 + 1e-9)) & half).sum((1, 2, 3))


def centring_mask(centring: str, h: np.ndarray, k: np.ndarray, l: np.ndarray) -> np.ndarray:
    """bool: the reflections a monoclinic lattice centring (P, C, A, I in the cell's own axes) allows."""
    if centring == "C":
        return (h + k) % 2 == 0
    if centring == "A":
        return (k + l) % 2 == 0
    if centring == "I":
        return (h + k + l) % 2 == 0
    return np.ones(np.broadcast(h, k, l).shape, dtype=bool)


def index_monoclinic(peaks: PeakPositions) -> IndexedCell | None:
    """The best monoclinic cell of the peaks (the most lines indexed at M20 >= MIN_M20_MONOCLINIC with at most
    MAX_LINE_RATIO_MONOCLINIC calculated lines per indexed one, else the best M20; N20 counting its centring's lines),
    or None: fewer than MIN_LINES lines, or no trial cell. Whether to accept it is `index.choose_cell`'s call."""
    n = len(peaks)
    if n < MIN_LINES:
        return None
    q0 = torch.as_tensor(peaks.q)
    tol_q = torch.as_tensor(np.abs(peaks.slope) * peaks.tolerance).clamp(min=1e-9)
    cells, votes = monoclinic_trials(q0)
    if len(cells) == 0:
        return None
    cells = cells[torch.argsort(votes, descending=True)[:_VOTED]]
    for lines, keep in RANKING:
        m = min(lines, n)
        q, tol = q0[:m].float(), tol_q[:m].float()
        # chunks of similar cells: each scores only the indices its own cells reach
        cells = cells[torch.argsort(cells[:, 0] * cells[:, 1], descending=True)]
        scores = []
        for part in cells.float().split(_CHUNK):
            indexed, misfit, _, n_calc = score_monoclinic(part, q[None].expand(len(part), -1), 2 * tol)
            scores.append(_m20(indexed, misfit, n_calc, q.max().expand(len(part)), unindexed=MAX_UNINDEXED))
        cells = cells[torch.topk(torch.cat(scores), min(keep, len(cells))).indices]
    return refined_monoclinic(torch.cat([cells, sub_cells(cells)]), peaks)


def refined_monoclinic(cells: torch.Tensor, peaks: PeakPositions) -> IndexedCell | None:
    """Of trial cells (A, B, C, D) [K, 4], refined by weighted least squares with a zero shift on the peaks, the one
    that indexes the most lines at M20 >= MIN_M20_MONOCLINIC (N20 counting its centring's lines) with at most
    MAX_LINE_RATIO_MONOCLINIC calculated lines per indexed one, else the best M20; None where every refined net is
    (centred) rectangular or has an edge below 2.5 Å."""
    n = len(peaks)
    q0 = torch.as_tensor(peaks.q)
    slope = torch.as_tensor(peaks.slope)
    tol_q = torch.as_tensor(np.abs(peaks.slope) * peaks.tolerance).clamp(min=1e-9)
    zero = torch.zeros(len(cells), dtype=torch.float64)
    fit_zero = peaks.max_zero > 0
    for widen in (2, 2, 1):
        cells, zero = _least_squares(cells, zero, "monoclinic", q0, slope, widen * tol_q, fit_zero)
        zero = zero.clamp(-peaks.max_zero, peaks.max_zero)
    cells = reduce_net(cells)
    keep = (cells[:, 3] ** 2 < 4 * cells[:, 0] * cells[:, 2]) & ~orthorhombic_metric(cells)
    keep &= (real_lengths(cells) >= _MIN_LENGTH).all(1)
    if not keep.any():
        return None
    cells, zero = cells[keep], zero[keep]
    q = q0[None, :] - slope[None, :] * zero[:, None]
    indexed, misfit, _, n_calc = score_monoclinic(cells, q, tol_q)
    q_max = q.max(1).values
    m20 = _m20(indexed, misfit, n_calc, q_max, unindexed=UNINDEXED)
    n_indexed = indexed.sum(1)
    good = (m20 >= MIN_M20_MONOCLINIC) & (n_calc <= MAX_LINE_RATIO_MONOCLINIC * n_indexed)
    k = int(torch.argmax(torch.where(good, n_indexed * (m20.max() + 1) + m20, m20 - m20.max() - 1)))
    lines = indexed[k].numpy()
    q_indexed, tol_indexed = q[k].numpy()[lines], tol_q.numpy()[lines]
    centring, n_centred = _centring(cells[k], q_indexed, tol_indexed, float(q_max[k]))
    a, b, c, beta = cell_parameters(cells[k].numpy())
    return IndexedCell("monoclinic", a, c, float(zero[k]), float(m20[k]) * int(n_calc[k]) / max(n_centred, 1),
                       int(n_indexed[k]), n, n_centred, b=b, beta=beta, q_indexed=q_indexed, tol_indexed=tol_indexed,
                       centring=centring)


def _centring(cell: torch.Tensor, q_indexed: np.ndarray, tol: np.ndarray, q_max: float) -> tuple[str, int]:
    """The lattice centring (in the cell's axes) that allows a reflection on every indexed line and the fewest lines
    up to q_max, and how many it allows."""
    hkl, q = reflections(cell.numpy(), q_max * (1 + 1e-9))
    best = ("P", len(q))
    for centring in CENTRINGS[1:]:
        ok = centring_mask(centring, *hkl.T)
        near = np.abs(q[ok][None, :] - q_indexed[:, None]) <= tol[:, None]
        if near.any(1).all() and ok.sum() < best[1]:
            best = (centring, int(ok.sum()))
    return best


def reflections(cell: np.ndarray, q_limit: float) -> tuple[np.ndarray, np.ndarray]:
    """hkl [M, 3] (one of each Friedel pair and (h, -k, l)) and Q [M] of the reflections of cell (A, B, C, D) with
    0 < Q <= q_limit."""
    a, b, c, d = (float(v) for v in cell)
    hm = int(math.sqrt(q_limit / (a - d * d / (4 * c)))) + 1
    km = int(math.sqrt(q_limit / b)) + 1
    lm = int(math.sqrt(q_limit / (c - d * d / (4 * a)))) + 1
    hkl = np.stack(np.meshgrid(np.arange(0, hm + 1), np.arange(0, km + 1), np.arange(-lm, lm + 1), indexing="ij"),
                   -1).reshape(-1, 3)
    h, k, l = hkl.T
    hkl = hkl[(h > 0) | ((h == 0) & (l > 0)) | ((h == 0) & (l == 0) & (k > 0))]
    h, k, l = hkl.T
    q = a * h * h + b * k * k + c * l * l + d * h * l
    return hkl[q <= q_limit], q[q <= q_limit]


def orthorhombic_metric(cells: torch.Tensor, rel: float = METRIC_TOLERANCE) -> torch.Tensor:
    """[K] bool: the reduced a*-c* net (|D| <= A <= C) is rectangular (D ~ 0) or centred rectangular (A ~ C or
    D ~ A), so the lattice is orthorhombic (P or C), not monoclinic."""
    a, _, c, d = cells.unbind(1)
    return (d <= 2 * rel * a) | (c - a <= 2 * rel * a) | (a - d <= 2 * rel * a)


def real_lengths(cells: torch.Tensor) -> torch.Tensor:
    """(a, b, c) [K, 3] in Å of reciprocal cells (A, B, C, D)."""
    a, b, c, d = cells.unbind(1)
    sin2 = (1 - d * d / (4 * a * c)).clamp(min=1e-12)
    return torch.stack([1 / (a * sin2).sqrt(), 1 / b.sqrt(), 1 / (c * sin2).sqrt()], 1)


def sub_cells(cells: torch.Tensor) -> torch.Tensor:
    """Each cell with a, b or c halved [3K, 4]: a supercell indexes the lines of its sub-cell too, with a smaller
    misfit, so both compete on M20."""
    factors = torch.tensor([[4.0, 1.0, 1.0, 2.0], [1.0, 4.0, 1.0, 1.0], [1.0, 1.0, 4.0, 2.0]], dtype=cells.dtype)
    return (cells[None] * factors[:, None]).reshape(-1, 4)


def cell_parameters(cell: np.ndarray) -> tuple[float, float, float, float]:
    """(a, b, c, beta deg) from (A, B, C, D): a* = sqrt(A), c* = sqrt(C), cos beta* = D / (2 a* c*),
    beta = 180 - beta*."""
    a_s, b_s, c_s = (math.sqrt(float(v)) for v in cell[:3])
    cos_bs = float(cell[3]) / (2 * a_s * c_s)
    sin_bs = math.sqrt(max(1 - cos_bs**2, 1e-12))
    return 1 / (a_s * sin_bs), 1 / b_s, 1 / (c_s * sin_bs), 180.0 - math.degrees(math.acos(cos_bs))


def reciprocal_cell(a: float, b: float, c: float, beta: float) -> np.ndarray:
    """(A, B, C, D) of a monoclinic cell (Å, deg; unique axis b): Q = A h^2 + B k^2 + C l^2 + D h l."""
    sin, cos = math.sin(math.radians(beta)), math.cos(math.radians(beta))
    return np.array([1 / (a * sin) ** 2, 1 / b**2, 1 / (c * sin) ** 2, -2 * cos / (a * c * sin**2)])
