"""Powder indexing: does a cubic, tetragonal, hexagonal, orthorhombic, monoclinic or triclinic cell explain the peaks?

The network reads symmetry from the whole profile and misses the high-symmetry systems of measured samples
(docs/results.md: on RRUFF it calls most hexagonal and tetragonal minerals monoclinic or orthorhombic). A
crystallographer would first index the strongest lines. Cells of one to three parameters can be searched
exhaustively:

1. `find_peaks`: the first (largest-d) lines above `threshold` of the strongest, after a SNIP background; positions
   from a quadratic fit to each peak's top, K-alpha2 companions dropped when the pattern has a doublet, and so are
   ripples on the flanks of a line ten times stronger and maxima less than 5 local noise sigmas above their
   surroundings. Where the counting noise reaches the line threshold (a third of RRUFF's patterns), the lines are
   found on a copy smoothed over a peak width with everything below 5 local noise sigmas removed (`denoised`).
2. Trial cells from every pair of the first lines given every pair of small indices (one line and one index for
   cubic cells, and two lines with a zero shift; three lines and three index triples, indices 0-2, for
   orthorhombic ones), scored on the first lines, the best refined by weighted least squares with a zero shift.
3. de Wolff's figure of merit M20 = Q20 / (2 <dQ> N20) (J. Appl. Cryst. 1, 108, 1968; Q = 1/d^2, <dQ> the mean
   misfit of the indexed lines, N20 the distinct lines the cell predicts up to the last observed one): large cells
   index anything but predict many lines and score low.

`index_pattern(pattern)` returns the cell a crystallographer would accept (`choose_cell`: M20 >= 20, at most 6
calculated lines per indexed one, no unindexed line among 7 or fewer, one among 8-11, two among more; M20 >= 50
from fewer than 12 lines; a cell of two or three parameters only from >= 10 lines, with M20 >= 100 from fewer
than 16; none whose indexed lines are, at least 5 and three quarters of them, the orders d, d/2, d/3 ... of one
spacing, the 00l series of a platy crystal lying flat; of the cells indexing the most lines the cubic one when its
M20 is within a factor 2 of the best) or None. Where none is accepted, `centred_cubic` looks for the cubic cell of
a mixture's main phase (three quarters of the lines, the strongest among them, M20 >= 100 counting the lines of its
P, I or F centring). An orthorhombic cell is searched only where no cubic, tetragonal or hexagonal one is
accepted: the higher symmetry wins. Where still none is, each tetragonal, hexagonal and orthorhombic best cell is
scored again with N20 counting only the lines of the group of its lattice that allows the fewest without forbidding
an indexed one (`refine.extinction.group_counted`, DICVOL's M20 for an extinction symbol; `IndexedCell.lines_of`
names the group), and accepted from M20 12. Last, from 18 or more lines, a monoclinic cell (`refine.monoclinic`):
M20 >= 10 counting its centring's lines, at most one line unindexed and 4.5 calculated lines per indexed one. It is also
searched where the accepted cell is orthorhombic with its group's lines counted or with lines unindexed, and
replaces it when it indexes as many lines with twice the M20 (a monoclinic lattice indexes at least as well by
chance: only a clear margin counts). These limits were set on the development RRUFF patterns and the
pymatgen-simulated spglib structures (docs/results.md, 2026-12-05 third to fifth sessions, 2026-12-06 and its second
and third sessions). Where none is accepted, a triclinic cell is searched on up to 30 lines (`refine.triclinic`:
ITO's zones, M20 >= 20, none of 20-24 lines unindexed, one of 25-29, two of 30, and a reduced cell whose metric has
no two-fold axis). A pattern not denoised that shows fewer than 20 lines above the threshold is searched again from
its lines down to 2 % of the strongest; that cell is taken where the first search gave none, where it has a higher
symmetry, where it has the same and indexes more lines, or where it has a lower symmetry and the first cell leaves a
line above the threshold unexplained. A hexagonal cell says "hexagonal lattice": trigonal groups index on it too. A
None means "no cell shown", never "triclinic", and a monoclinic cell with beta near 90 deg can index as orthorhombic
(8 of RRUFF's 100 monoclinic patterns). A metrically pseudo-symmetric cell (an orthorhombic a = b within the peak
widths) indexes as the higher system; positions alone cannot tell them apart. `benchmarks/indexing.py` tabulates
the systems found against the true ones.
`refine.extinction` then tests the indexed lines against each group's systematic absences.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from powdersym.io.background import snip_background
from powdersym.io.pattern import MeasuredPattern

HIGH_SYMMETRY = ("cubic", "tetragonal", "hexagonal")
SYSTEMS = (*HIGH_SYMMETRY, "orthorhombic", "monoclinic", "triclinic")
# ITA numbers of the groups whose lattice each indexed system implies (hexagonal lattice: trigonal + hexagonal)
# (triclinic: P1 and P-1, for cells of a triclinic indexer; SYSTEMS does not search them)
SPACE_GROUP_RANGES = {"cubic": (195, 230), "tetragonal": (75, 142), "hexagonal": (143, 194), "orthorhombic": (16, 74),
                      "monoclinic": (3, 15), "triclinic": (1, 2)}
MAX_UNINDEXED = 2
MIN_M20 = 20.0  # de Wolff's M20 a cell needs to be accepted
MAX_LINE_RATIO = 6.0  # calculated lines per indexed line beyond which a cell is too large to accept
# lines that are orders n = 1, 2, 3 ... of one spacing, at least this many and this fraction of them, show that
# spacing only (`one_spacing`): on RRUFF and the pymatgen X-ray set, two patterns' lines and no other accepted cell
# met even 4 and 60 %
MIN_ORDERS, ORDERS_FRACTION = 5, 0.75
ORDER_WINDOW = 0.125  # an order's window at most this fraction of the gap to the next: a random line falls in 1 of 4
_MIN_LINES = 10  # observed lines a cell of two or three parameters needs (choose_cell) ...
_SHORT_LINES, _MIN_M20_SHORT = 16, 100.0  # ... and M20 >= 100 from fewer than 16
_FIRST_LINES = 6  # lines whose pairs give trial cells ...
_ANCHOR_LINES = 2  # ... when one of the two is among the first 2
# trial cells are ranked (single precision, twice the tolerance, no zero shift yet) on the first 5 lines, the best
# 2000 of them on the first 10, and the best 50 refined on all lines
_COARSE = ((5, 2000), (10, 50))
# three parameters fit any three lines exactly: rank orthorhombic cells on more lines (keeping 1,000 instead of 3,000
# after 8 lines indexes the same RRUFF and pymatgen X-ray patterns, 15 % faster)
_COARSE_3 = ((8, 1000), (12, 50))
_CHUNK = 1024
# a maximum within 3 FWHM of a line more than 10 times stronger is a ripple on its flank (counting noise, an
# imperfect K-alpha2 strip), not a line: on RRUFF dropping them indexes 3 more patterns, all right
SHOULDER_RATIO, SHOULDER_WIDTHS = 0.1, 3.0
# on a noisy pattern a line must stand this many local noise sigmas above the background (on RRUFF 5 and 6 index
# the same patterns, 4 fewer)
NOISE_SIGMAS = 5.0
# cells recounted with their group's lines (`_group_counted`) from M20 7 (counting the lattice's lines): every cell so
# accepted on RRUFF, the pymatgen sets and the measured neutron ones had 7.6 or more
MIN_M20_RECOUNT = 7.0
# ... and accepted from M20 12 (de Wolff: above 10, with few unindexed lines, a cell is rarely wrong): against 20, RRUFF
# gains 8 right cells and 3 wrong ones, the measured CW neutron set PbSO4 and Er2Ge2O7, the pymatgen neutron set 19 / 11
MIN_M20_GROUP = 12.0
# lines down to this fraction of the search threshold (2 % of the strongest line at the default 5 %), the first 80
# by d, tell which allowed lines are seen (`weak_lines`; on RRUFF 2 % gave one right space group more than 1 or 0.5 %)
WEAK_FRACTION = 0.4
WEAK_MAX_LINES = 80
# a cubic cell of the main phase of a mixture (`centred_cubic`): the lines it must index, the M20 it needs (lines
# of its centring counted) and the most calculated lines per indexed one
CENTRINGS = ("P", "I", "F")
MIXTURE_FRACTION = 0.75
MIN_M20_CENTRED = 100.0
MAX_LINE_RATIO_CENTRED = 3.0
_MIN_LINES_CENTRED = 5
# a monoclinic cell (refine.monoclinic) is accepted from M20 10 (de Wolff's limit for twenty lines), its centring's
# lines counted, with at most 4.5 calculated lines per indexed one: above that, RRUFF accepted 2 triclinic and 2
# monoclinic patterns, the pymatgen X-ray set 1 orthorhombic and 5 monoclinic ones, 4 of them with wrong cells
MIN_M20_MONOCLINIC = 10.0
MAX_LINE_RATIO_MONOCLINIC = 4.5
# `choose_cell`'s limits for a monoclinic cell (refine.monoclinic's, and those refine.triclinic finds)
MONOCLINIC_LIMITS = {"min_m20": MIN_M20_MONOCLINIC, "max_line_ratio": MAX_LINE_RATIO_MONOCLINIC}
MONOCLINIC_FACTOR = 2.0  # a monoclinic cell replaces a group-counted orthorhombic one with this many times its M20
# a line must stand LINE_SIGMAS local noise sigmas above the level around it, which counts up to LEVEL_SIGMAS: a SNIP
# background follows the lower edge of noisy counts, so noise maxima stand 1-2 sigma higher on it than on the true
# background (the long-d end of LaB6 on POWGEN gave 13 such lines of 5-10 % of the strongest; on RRUFF the test gives
# 4 more cells of the right lattice and 2 wrong ones, on the synthetic set 3 more right and 1 wrong fewer)
LINE_SIGMAS, LEVEL_SIGMAS = 5.0, 2.0
_NOISE_BLOCK = 300  # points per block the noise level is measured over
# a pattern (not a denoised one) with fewer than RETRY_LINES lines above the threshold (5 % of the strongest by
# default) is indexed again from its lines down to RETRY_THRESHOLD, and that cell is taken where the first search gave
# none or a cell `_keeps` does not prefer. On RRUFF SG top-1 35.6 -> 37.0 %, crystal system 58.5 -> 60.2 %; the
# pymatgen X-ray set 24.6 -> 26.3 %, Bravais 77.1 -> 80.9 %; measured ToF 3 -> 4 of 10, measured X-ray 8 -> 9 of 24.
# Taking the weaker lines' cell everywhere lost 12 right RRUFF lattices (cubic cells of 5-9 lines failing with noise
# lines added) and LBCO on HRPT (cubic 14 of 14, then tetragonal 17 of 17: one 4 % line is off the cubic cell); taking
# it only where the first search gave none: RRUFF 36.3 %; replacing a cell of the same system also where it indexes no
# more lines: measured CW neutron Cr2WO6 lost P4_2/mnm (docs/results.md, 2026-12-07 eleventh session)
RETRY_LINES, RETRY_THRESHOLD = 20, 0.02


@dataclass
class PeakPositions:
    """Observed lines, ordered by decreasing d: where they are (pattern units and d) and how sharply known."""

    x: np.ndarray  # positions in the pattern's unit
    d: np.ndarray  # Å
    height: np.ndarray  # above background, relative to the strongest line
    tolerance: np.ndarray  # how far (pattern units) a calculated line may sit and still index it: half the FWHM
    slope: np.ndarray  # dQ/dx at each line, Q = 1/d^2: a zero shift z moves Q by -slope z
    max_zero: float  # largest zero shift fitted (pattern units; 0 where the unit has none)

    @property
    def q(self) -> np.ndarray:
        return 1.0 / self.d**2

    def __len__(self) -> int:
        return len(self.d)


@dataclass
class IndexedCell:
    """A cell that indexes the observed lines, with de Wolff's M20 and how many lines it explains."""

    # cubic, tetragonal, hexagonal (lattice: hexagonal covers trigonal groups), orthorhombic, monoclinic, triclinic
    system: str
    a: float  # Å
    c: float  # Å (= a for cubic cells)
    zero: float  # fitted zero shift, pattern units (2theta deg or ToF µs)
    m20: float
    n_indexed: int
    n_lines: int
    n_calculated: int  # distinct lines the cell predicts up to the last observed one (de Wolff's N20)
    b: float | None = None  # Å, orthorhombic (a <= b <= c), monoclinic and triclinic cells only; the others have b = a
    beta: float = 90.0  # deg, monoclinic (unique axis b, beta >= 90) and triclinic cells
    # Q = 1/d^2 (zero shift removed) and tolerance of the lines the cell indexes (refine.extinction tests them)
    q_indexed: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    tol_indexed: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    # Q (zero shift removed) of weaker lines within the indexed range, below the search threshold (`weak_lines`)
    q_weak: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    denoised: bool = False  # the lines were found on the smoothed copy of a noisy pattern (`denoised`)
    centring: str = "P"  # the lattice centring whose lines N20 counts (cubic I, F: `centred_cubic`; monoclinic C, A, I)
    lines_of: int = 0  # the space group whose lines N20 counts (refine.extinction.group_counted); 0: the lattice's
    alpha: float = 90.0  # deg, triclinic cells (Niggli-reduced) ...
    gamma: float = 90.0  # ... the others have alpha 90 and gamma 90 (hexagonal: 120, whatever the field says)

    def lattice(self) -> tuple[float, float, float, float, float, float]:
        """(a, b, c in Å, alpha, beta, gamma in deg); angles the system fixes take their fixed values."""
        b = self.a if self.b is None else self.b
        if self.system == "triclinic":
            return (self.a, b, self.c, self.alpha, self.beta, self.gamma)
        gamma = 120.0 if self.system == "hexagonal" else 90.0
        return (self.a, b, self.c, 90.0, self.beta, gamma)

    def line_d(self, d_min: float) -> np.ndarray:
        """d-spacings (Å, decreasing) of the distinct lines of the lattice down to d_min, none extinct."""
        if self.system == "monoclinic":
            from powdersym.refine.monoclinic import reciprocal_cell, reflections

            q = np.unique(np.round(reflections(reciprocal_cell(*self.lattice()[:3], self.beta), 1.0 / d_min**2)[1], 12))
            return 1.0 / np.sqrt(q)
        if self.system == "triclinic":
            return self._triclinic_line_d(d_min)
        if self.system == "orthorhombic":
            h, k, l = (np.arange(int(v / d_min) + 2) ** 2 for v in (self.a, self.b, self.c))
            q = (h[:, None, None] / self.a**2 + k[None, :, None] / self.b**2 + l[None, None, :] / self.c**2).ravel()
            q = np.unique(np.round(q[q > 0], 12))
            return 1.0 / np.sqrt(q[q <= 1.0 / d_min**2])
        values = lattice_integers(self.system, int(self.a / d_min) + 2)
        if self.system == "cubic":
            values = values[centring_allows(self.centring, values)]
            q = values / self.a**2
        else:
            l = np.arange(int(self.c / d_min) + 2)
            q = (_scale(self.system) * values[:, None] / self.a**2 + l[None, :] ** 2 / self.c**2).ravel()
            q = np.unique(np.round(q[q > 0], 12))
        return 1.0 / np.sqrt(q[q <= 1.0 / d_min**2])

    def _triclinic_line_d(self, d_min: float) -> np.ndarray:
        """line_d of a triclinic cell: Q = h G* h^T over every hkl with |h| <= a sqrt(Q_max) (|h| = |r . a| <=
        |r| |a| for the reciprocal vector r: a bound for any cell), one Q per Friedel pair and coincidence."""
        from powdersym.refine.extinction import reciprocal_metric  # it imports this module

        q_max = 1.0 / d_min**2
        n = [int(math.ceil(length * math.sqrt(q_max))) + 1 for length in self.lattice()[:3]]
        hkl = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in n], indexing="ij"), -1).reshape(-1, 3)
        hkl = hkl[hkl[np.arange(len(hkl)), np.argmax(hkl != 0, axis=1)] > 0]  # first non-zero index positive
        q = np.einsum("ni,ij,nj->n", hkl, reciprocal_metric(self), hkl)
        q = np.unique(np.round(q[q <= q_max], 12))
        return 1.0 / np.sqrt(q)

    def to_dict(self) -> dict:
        a, b, c, alpha, beta, gamma = self.lattice()
        return {"system": self.system, "a": round(a, 5), "b": round(b, 5), "c": round(c, 5),
                "alpha": round(alpha, 3), "beta": round(beta, 3), "gamma": round(gamma, 3), "zero": round(self.zero, 5),
                "m20": round(self.m20, 1), "n_indexed": self.n_indexed, "n_lines": self.n_lines,
                "n_calculated": self.n_calculated, "denoised": self.denoised, "centring": self.centring,
                "lines_of": self.lines_of}  # fmt: skip

    def __str__(self) -> str:
        a, b, c, alpha, beta, gamma = self.lattice()
        edges = cell_edges(self.system, a, b, c, beta, alpha, gamma)
        return f"indexed {self.system}: {edges}, M20 {self.m20:.0f}, {self.n_indexed} of {self.n_lines} lines"


def cell_edges(system: str, a: float, b: float, c: float, beta: float = 90.0, alpha: float = 90.0,
               gamma: float = 90.0) -> str:
    """The free parameters of a cell of this system, as printed: 'a 5.6400 Å', 'a 3.2500 c 5.2070 Å',
    'a .. b .. c .. Å', 'a .. b .. c .. Å, beta 105.12 deg', 'a .. b .. c .. Å, alpha .. beta .. gamma .. deg'."""
    values = {"a": a, "b": b, "c": c}
    axes = {"cubic": "a", "orthorhombic": "abc", "monoclinic": "abc", "triclinic": "abc"}.get(system, "ac")
    edges = " ".join(f"{axis} {values[axis]:.4f}" for axis in axes) + " Å"
    if system == "triclinic":
        return edges + f", alpha {alpha:.2f} beta {beta:.2f} gamma {gamma:.2f} deg"
    return edges + (f", beta {beta:.2f} deg" if system == "monoclinic" else "")


def with_article(system: str) -> str:
    """'a cubic', 'an orthorhombic'."""
    return f"{'an' if system[0] in 'aeiou' else 'a'} {system}"


def find_peaks(
    pattern: MeasuredPattern, max_peaks: int = 20, threshold: float = 0.05, doublet: tuple[float, float] | None = None,
    d_min: float = 0.0,
) -> PeakPositions:
    """The first `max_peaks` lines (largest d first) above `threshold` of the strongest line, none below d_min (Å).

    doublet: (wavelength2, ratio I2/I1) of a K-alpha doublet whose second line should not count as a line of its
    own (default: the pattern's `wavelength2`, `ka2_ratio`).
    """
    y = np.asarray(pattern.y, dtype=np.float64)
    n = len(y)
    width = _strongest_fwhm_points(y - np.percentile(y, 5))
    signal = y - snip_background(y, max(3 * width, 5))
    top = signal.max()
    if not np.isfinite(top) or top <= 1e-6 * np.abs(y).max():  # flat: nothing above the background
        return _no_peaks()
    signal = signal / top
    half = max(1, width // 2)
    padded = np.pad(signal, half, mode="constant", constant_values=-np.inf)
    window = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).max(axis=1)
    candidates = np.flatnonzero((signal >= window) & (signal > threshold))
    # a line stands out of the local counting noise (from second differences, which a line's smooth flanks barely
    # change), even where the pattern as a whole is quiet enough not to be `denoised`: the long-d end of a ToF bank
    noise = _local_noise(np.abs(np.diff(signal, 2, prepend=signal[0], append=signal[-1])) / math.sqrt(6))
    level = np.array([np.median(signal[max(0, k - 3 * width):k + 3 * width + 1]) for k in candidates])
    level = np.clip(level, 0.0, LEVEL_SIGMAS * noise[candidates])  # a dense stretch's lines do not raise it further
    candidates = candidates[signal[candidates] - level > LINE_SIGMAS * noise[candidates]]
    # a maximum within half a line width of either end has no flank there: a background the SNIP could not follow
    # down a steep edge (HB2A's first points), or a line cut off, whose position is unknown
    candidates = candidates[(candidates >= half) & (candidates < n - half)]
    # one maximum per peak: a flat top (rounded counts) or a shoulder within one FWHM is the same line
    keep: list[int] = []
    for k in candidates:
        if keep and k - keep[-1] <= width:
            if signal[k] > signal[keep[-1]]:
                keep[-1] = k
            continue
        keep.append(int(k))
    index = np.array(keep, dtype=np.int64)
    if len(index) == 0:
        return _no_peaks()
    d_all = pattern.d_spacing()
    index = index[d_all[index] >= d_min]
    if len(index) == 0:
        return _no_peaks()
    # only the largest-d lines are used: keep enough for the K-alpha2 companions (each at smaller d than its line)
    index = np.sort(index[np.argsort(-d_all[index], kind="stable")[: 3 * max_peaks]])
    position = np.array([_top_position(signal, k, width) for k in index])  # fractional point index
    fwhm = np.array([_fwhm_points(signal, k) for k in index], dtype=np.float64)
    fwhm = np.clip(fwhm, 0.5 * width, 2.0 * width)
    points = np.arange(n, dtype=np.float64)
    x = np.interp(position, points, pattern.x)
    step = np.interp(position, points[:-1] + 0.5, np.diff(pattern.x))
    d = np.interp(position, points, d_all)
    q_all = 1.0 / d_all**2
    slope = np.interp(position, points, np.gradient(q_all, pattern.x))
    height = signal[index]
    wavelength2, ratio = doublet if doublet is not None else (pattern.wavelength2, pattern.ka2_ratio)
    if pattern.unit == "two_theta" and wavelength2 and pattern.wavelength:
        companion = _doublet_companions(x, height, 0.5 * fwhm * step, pattern.wavelength, wavelength2, ratio or 0.5)
        keep_mask = ~companion
        x, d, height, fwhm, step, slope = (v[keep_mask] for v in (x, d, height, fwhm, step, slope))
    keep_mask = ~_shoulders(x, height, fwhm * step)
    x, d, height, fwhm, step, slope = (v[keep_mask] for v in (x, d, height, fwhm, step, slope))
    order = np.argsort(-d, kind="stable")[:max_peaks]
    median_fwhm = float(np.median(fwhm * step)) if len(fwhm) else 0.0
    max_zero = 3.0 * median_fwhm if pattern.unit in ("two_theta", "tof") else 0.0
    return PeakPositions(x=x[order], d=d[order], height=height[order], tolerance=(0.5 * fwhm * step)[order],
                         slope=slope[order], max_zero=max_zero)  # fmt: skip


def denoised(pattern: MeasuredPattern, threshold: float = 0.05, sigmas: float = NOISE_SIGMAS) -> MeasuredPattern | None:
    """A copy of a pattern whose counting noise reaches the line threshold, smoothed over about a peak width (a
    Gaussian of the strongest line's FWHM) and with the signal below `sigmas` local noise sigmas (or below the
    threshold) set to the background, so that noise maxima are not taken for lines; None where the noise stays
    below the threshold (smoothing would only merge close lines)."""
    y = np.asarray(pattern.y, dtype=np.float64)
    if len(y) < 2 * _NOISE_BLOCK // 3 or not np.isfinite(y).all():
        return None
    floor = np.percentile(y, 5)
    top = y.max() - floor
    # white noise: sigma = |difference of neighbours| / sqrt 2; its median per block ignores the few steep flanks
    noise = _local_noise(np.abs(np.diff(y, prepend=y[0])) / math.sqrt(2))  # [n] local sigma
    if not top > 0 or sigmas * np.median(noise) <= threshold * top:
        return None
    width = _strongest_fwhm_points(y - floor)
    s = max(1.0, width / 2.355)
    u = np.arange(-math.ceil(4 * s), math.ceil(4 * s) + 1)
    kernel = np.exp(-0.5 * (u / s) ** 2)
    smooth = np.convolve(np.pad(y, len(u) // 2, mode="reflect"), kernel / kernel.sum(), mode="valid")
    gain = 1.0 / math.sqrt(2 * math.sqrt(math.pi) * s)  # how much the Gaussian lowers white noise
    signal = smooth - snip_background(smooth, max(3 * width, 5))
    weak = signal <= np.maximum(threshold * signal.max(), sigmas * gain * noise)
    return replace(pattern, y=np.where(weak, smooth - np.clip(signal, 0, None), smooth))


def _local_noise(deviation: np.ndarray) -> np.ndarray:
    """[n] local sigma of white noise from per-point deviations of unit noise variance (scaled differences): their
    median per block of _NOISE_BLOCK points (robust to the few steep flanks), times 1.4826."""
    blocks = np.array_split(deviation, max(1, len(deviation) // _NOISE_BLOCK))
    return np.concatenate([np.full(len(b), 1.4826 * np.median(b)) for b in blocks])


def _shoulders(x, height, fwhm) -> np.ndarray:
    """bool: maxima within SHOULDER_WIDTHS FWHM of a line more than 1 / SHOULDER_RATIO times stronger."""
    near = np.abs(x[:, None] - x[None, :]) <= SHOULDER_WIDTHS * np.maximum(fwhm[:, None], fwhm[None, :])
    return (near & (height[:, None] < SHOULDER_RATIO * height[None, :])).any(1)


def _no_peaks() -> PeakPositions:
    empty = np.zeros(0)
    return PeakPositions(empty, empty, empty, empty, empty, 0.0)


def _strongest_fwhm_points(y: np.ndarray) -> int:
    return max(2, _fwhm_points(y, int(np.argmax(y))))


def _fwhm_points(y: np.ndarray, k: int) -> int:
    """Width (points) where y stays above half of y[k] around k."""
    half = 0.5 * y[k]
    below = np.flatnonzero(y[:k] < half)
    left = below[-1] if len(below) else 0
    above = np.flatnonzero(y[k:] < half)
    right = k + above[0] if len(above) else len(y) - 1
    return int(right - left)


def _top_position(y: np.ndarray, k: int, width: int) -> float:
    """Fractional index of a peak's maximum: a parabola fitted to the points above 70 % of its height."""
    lo, hi = max(0, k - width), min(len(y), k + width + 1)
    near = np.arange(lo, hi)
    top = near[y[near] >= 0.7 * y[k]]
    top = top[np.abs(top - k) <= width]
    if len(top) < 3:
        top = np.arange(max(0, k - 1), min(len(y), k + 2))
    if len(top) < 3:
        return float(k)
    u = top - k
    c2, c1, _ = np.polyfit(u, y[top], 2)
    if c2 >= 0:
        return float(np.average(top, weights=np.clip(y[top], 1e-12, None)))
    return float(k + np.clip(-c1 / (2 * c2), u.min(), u.max()))


def instrument_doublet(instrument) -> tuple[float, float] | None:
    """(wavelength2, I2/I1) of an instrument's K-alpha doublet, or None with one wavelength."""
    waves, weights = instrument.wavelengths, instrument.wavelength_weights
    return (waves[1], weights[1] / weights[0]) if len(waves) > 1 else None


def _doublet_companions(two_theta, height, tolerance, wavelength, wavelength2, ratio) -> np.ndarray:
    """bool: lines at the K-alpha2 position of a stronger line, at most about its expected relative height. A
    partly resolved K-alpha2 peak sits on the K-alpha1 peak's flank, which pulls its apex towards it: anything
    from a third of the way to the K-alpha2 position up to that position (plus the tolerance) counts."""
    sin2 = np.sin(np.radians(two_theta) / 2) * wavelength2 / wavelength
    partner = np.where(np.abs(sin2) < 1, 2 * np.degrees(np.arcsin(np.clip(sin2, -1, 1))), np.inf)
    split = partner - two_theta  # [n] K-alpha2 - K-alpha1 separation of each line
    offset = two_theta[:, None] - two_theta[None, :]  # [companion, line]
    close = (offset >= split[None, :] / 3) & (offset <= split[None, :] + np.maximum(tolerance[:, None], 0.02))
    weaker = height[:, None] <= min(1.5 * ratio, 0.9) * height[None, :]
    return (close & weaker).any(axis=1)


def lattice_integers(system: str, n: int) -> np.ndarray:
    """Sorted distinct M of the lines with indices 0 <= h, k, l < n: Q = scale * M / a^2 (+ l^2 / c^2) with
    M = h^2+k^2+l^2 (cubic, 0 left out), h^2+k^2 (tetragonal) or h^2+hk+k^2 (hexagonal, scale 4/3; 0 kept for
    the 00l lines)."""
    h = np.arange(n)
    if system == "cubic":
        values = (h[:, None, None] ** 2 + h[None, :, None] ** 2 + h[None, None, :] ** 2).ravel()
        return np.unique(values[values > 0])
    cross = h[:, None] * h[None, :] if system == "hexagonal" else 0
    return np.unique((h[:, None] ** 2 + cross + h[None, :] ** 2).ravel())


def centring_allows(centring: str, values: np.ndarray) -> np.ndarray:
    """bool: which cubic M = h^2+k^2+l^2 a lattice centring allows. I: h+k+l even, i.e. M even; F: h, k, l all odd
    (M = 3 mod 8) or all even (M = 0 mod 4); P: all."""
    if centring == "I":
        return values % 2 == 0
    if centring == "F":
        return (values % 8 == 3) | (values % 4 == 0)
    if centring != "P":
        raise ValueError(f"unknown centring {centring!r} (expected one of {', '.join(CENTRINGS)})")
    return np.ones(len(values), dtype=bool)


@functools.lru_cache(maxsize=4)
def _cubic_values(centring: str) -> np.ndarray:
    """The M of a centred cubic lattice's lines up to 2500 (a 40 Å cell down to d 0.8 Å), as floats."""
    values = lattice_integers("cubic", 51)
    return values[(values <= 2500) & centring_allows(centring, values)].astype(np.float64)


def centred_cubic(peaks: PeakPositions) -> IndexedCell | None:
    """A cubic cell that indexes the main phase of a mixture: at least MIXTURE_FRACTION of the lines (and 5),
    the strongest among them, with M20 >= MIN_M20_CENTRED counting only the lines its centring (P, I or F) allows
    (DICVOL-style, once the centring is chosen) and at most MAX_LINE_RATIO_CENTRED calculated lines per indexed
    one; the best such cell by M20, or None.

    The impurity lines of a natural sample (RRUFF's garnets, spinels and fluorites) leave more lines unindexed
    than `choose_cell` allows, and F-centred cells of 5-8 lines (rock salt, fluorite) predict three times the
    lines they show when every line of the lattice counts. One parameter and a zero shift: trials put one of the
    first six lines on each allowed M <= 40, refined by weighted least squares on the lines they index."""
    n = len(peaks)
    if n < _MIN_LINES_CENTRED:
        return None
    q0, slope = peaks.q, peaks.slope
    tol = np.maximum(np.abs(slope) * peaks.tolerance, 1e-9)
    need = max(_MIN_LINES_CENTRED, math.ceil(MIXTURE_FRACTION * n))
    strongest = int(np.argmax(peaks.height))
    best: IndexedCell | None = None
    for centring in CENTRINGS:
        values = _cubic_values(centring)
        x = (q0[:6, None] / values[values <= 40][None, :]).ravel()  # trial 1/a^2 [T]
        x = x[(x > 1 / 40**2) & (x < 1 / 2**2)]
        zero = np.zeros_like(x)
        for widen in (2, 2, 1):
            _, m, misfit = _cubic_lines(values, x, zero, q0, slope)
            x, zero = _fit_cubic(m, misfit <= widen * tol, q0, slope, tol, peaks.max_zero, x, zero)
        q, m, misfit = _cubic_lines(values, x, zero, q0, slope)
        indexed = misfit <= tol
        n_indexed = indexed.sum(1)
        q_max = np.where(indexed, q, 0.0).max(1)
        mean = np.where(indexed, misfit, 0.0).sum(1) / np.maximum(n_indexed, 1)
        n_calc = np.searchsorted(values, q_max / x * (1 + 1e-9), side="right")
        m20 = q_max / (2 * np.maximum(mean, 1e-7 * q_max + 1e-300) * np.maximum(n_calc, 1))
        good = (n_indexed >= need) & indexed[:, strongest] & (m20 >= MIN_M20_CENTRED) & (n_calc <= MAX_LINE_RATIO_CENTRED * n_indexed)
        if not good.any():
            continue
        k = int(np.argmax(np.where(good, m20, -1.0)))
        if best is None or m20[k] > best.m20:
            a = 1 / math.sqrt(x[k])
            best = IndexedCell("cubic", a, a, float(zero[k]), float(m20[k]), int(n_indexed[k]), n, int(n_calc[k]),
                               q_indexed=q[k][indexed[k]], tol_indexed=tol[indexed[k]], centring=centring)
    return best


def _cubic_lines(values, x, zero, q0, slope):
    """For trial cells 1/a^2 [T] and zero shifts [T]: the lines' Q with the shift removed [T, n], the nearest
    allowed M to each [T, n] and the misfit in Q [T, n]."""
    q = q0[None, :] - slope[None, :] * zero[:, None]
    i = np.clip(np.searchsorted(values, q / x[:, None]), 1, len(values) - 1)
    below, above = values[i - 1], values[i]
    m = np.where(np.abs(below * x[:, None] - q) <= np.abs(above * x[:, None] - q), below, above)
    return q, m, np.abs(m * x[:, None] - q)


def _fit_cubic(m, indexed, q0, slope, tol, max_zero, x, zero):
    """Weighted least squares of q0 = m x + slope z over each trial's indexed lines (z only where max_zero > 0);
    trials indexing fewer than 3 lines keep their values."""
    w = indexed / tol**2  # [T, n]
    smm, sqm = (w * m * m).sum(1), (w * m * q0).sum(1)
    if max_zero > 0:
        sms, sss, sqs = (w * m * slope).sum(1), (w * slope * slope).sum(1), (w * slope * q0).sum(1)
        det = smm * sss - sms**2
        safe = np.abs(det) > 1e-12 * np.maximum(smm * sss, 1e-300)
        new_x = np.where(safe, (sqm * sss - sqs * sms) / np.where(safe, det, 1), x)
        new_zero = np.clip(np.where(safe, (smm * sqs - sms * sqm) / np.where(safe, det, 1), zero), -max_zero, max_zero)
    else:
        new_x, new_zero = sqm / np.maximum(smm, 1e-300), zero
    ok = (indexed.sum(1) >= 3) & (new_x > 0) & np.isfinite(new_x)
    return np.where(ok, new_x, x), np.where(ok, new_zero, zero)


def _scale(system: str) -> float:
    return 4.0 / 3.0 if system == "hexagonal" else 1.0


def _small_forms(system: str) -> torch.Tensor:
    """Coefficient rows [F, p] of the low-index lines trial cells are built from (indices 0-4, and M <= 13 for the
    two-parameter systems): Q = row . (1/a^2[, 1/c^2]), row = M (cubic) or (scale * M, l^2)."""
    if system == "orthorhombic":  # rows (h^2, k^2, l^2), indices 0-2
        h = torch.arange(3, dtype=torch.float64) ** 2
        rows = torch.cartesian_prod(h, h, h)
        return rows[rows.sum(1) > 0]
    values = lattice_integers(system, 5)
    if system == "cubic":
        return torch.as_tensor(values, dtype=torch.float64)[:, None]
    rows = [(_scale(system) * m, l * l) for m in values[values <= 13] for l in range(5) if (m, l) != (0, 0)]
    return torch.tensor(rows, dtype=torch.float64)


@dataclass(frozen=True)
class _Lines:
    """Which integers M (up to `size`) a lattice's lines take: Q = scale * M / a^2 (+ l^2 / c^2), M = h^2+k^2+l^2
    (cubic), h^2+k^2 (tetragonal) or h^2+hk+k^2 (hexagonal, scale 4/3); 0 included for the two-parameter systems
    (00l lines). Tables indexed by an integer i give the nearest allowed M below and above and how many are <= i, so
    the nearest line of a trial cell is two look-ups instead of a search."""

    scale: float
    below: torch.Tensor  # [size + 2] largest allowed M <= i (the smallest allowed where there is none)
    above: torch.Tensor  # [size + 2] smallest allowed M >= i (the largest where there is none)
    count: torch.Tensor  # [size + 2] allowed M <= i

    def nearest(self, target: torch.Tensor) -> torch.Tensor:
        """The allowed scale * M nearest to each target (Q units of 1/a^2)."""
        t = (target / self.scale).clamp(0, len(self.below) - 2)
        i = t.long()
        lo, hi = self.below[i].to(t.dtype), self.above[i + 1].to(t.dtype)
        return self.scale * torch.where((hi - t).abs() < (t - lo).abs(), hi, lo)

    def up_to(self, limit: torch.Tensor) -> torch.Tensor:
        """How many allowed scale * M are <= limit (0 where limit < 0)."""
        i = (limit / self.scale).clamp(-1, len(self.count) - 2).floor().long()
        return torch.where(i >= 0, self.count[i.clamp(min=0)], 0)


@functools.lru_cache(maxsize=32)
def _lines(system: str, size: int) -> _Lines:
    values = lattice_integers(system, math.isqrt(size) + 2)
    allowed = np.zeros(size + 2, dtype=bool)
    allowed[np.unique(values[values <= size + 1])] = True
    positions = np.arange(size + 2)
    below = np.maximum.accumulate(np.where(allowed, positions, -1))
    above = np.minimum.accumulate(np.where(allowed, positions, size + 2)[::-1])[::-1]
    first, last = positions[allowed][0], positions[allowed][-1]
    below, above = np.where(below < 0, first, below), np.where(above > size + 1, last, above)
    return _Lines(_scale(system), torch.as_tensor(below), torch.as_tensor(above),
                  torch.as_tensor(np.cumsum(allowed)))  # fmt: skip


def _lines_for(system: str, largest: float) -> _Lines:
    """Tables covering Q / (scale / a^2) up to `largest` (sizes rounded up to powers of 2, so they are reused)."""
    return _lines(system, 1 << max(6, math.ceil(math.log2(largest + 2))))


def _trial_cells(q: torch.Tensor, forms: torch.Tensor, system: str) -> torch.Tensor:
    """Reciprocal cell parameters [K, p] that put one of the first three lines on a small-index line (cubic) or two
    of the first lines on two of them (two-parameter systems); lengths between 2 and 40 Å."""
    if system == "cubic":
        cells = (q[:3, None] / forms[None, :, 0]).reshape(-1, 1)
        return cells[(cells > 1 / 40**2).all(1) & (cells < 1 / 2**2).all(1)]
    if system == "orthorhombic":
        return _orthorhombic_trials(q, forms)
    first = min(_FIRST_LINES, len(q))
    i, j = torch.triu_indices(first, first, 1)
    i, j = i[i < _ANCHOR_LINES], j[i < _ANCHOR_LINES]  # one of the pair among the very first lines
    # the anchor line (the earlier of the two) is a low-index one: m <= 5 (in units of the form's scale), l <= 3
    low = torch.nonzero((forms[:, 0] <= 5 * forms[forms[:, 0] > 0, 0].min()) & (forms[:, 1] <= 9))[:, 0]
    a, b = torch.meshgrid(low, torch.arange(len(forms)), indexing="ij")
    matrix = torch.stack([forms[a.reshape(-1)], forms[b.reshape(-1)]], 1)  # [P, 2, 2]
    matrix = matrix[torch.linalg.det(matrix).abs() > 1e-9]
    rhs = torch.stack([q[i], q[j]], -1)  # [R, 2]
    cells = torch.linalg.solve(matrix[None], rhs[:, None, :, None].expand(-1, len(matrix), -1, -1)).reshape(-1, 2)
    cells = cells[((cells > 1 / 40**2) & (cells < 1 / 2**2)).all(1)]
    key = torch.round(cells * 1e7).long()  # duplicates: the same cell from other lines (1e-7 / Å^2 apart)
    _, first = np.unique((key[:, 0] * (1 << 21) + key[:, 1]).numpy(), return_index=True)
    return cells[torch.as_tensor(first)]


def _with_zero_trials(cells, zero, q0, slope, max_zero: float):
    """Cubic trial cells plus those that put two of the first three lines on two lines M <= 20 with a zero shift
    (|zero| <= max_zero): a shift large against the line widths (LBCO on HRPT) leaves one-line trials too far off
    for the first lines to index, and then a tetragonal sub-cell that absorbs it wins."""
    values = torch.as_tensor(lattice_integers("cubic", 5), dtype=torch.float64)
    values = values[values <= 20]
    i, j = torch.triu_indices(min(3, len(q0)), min(3, len(q0)), 1)
    mi, mj = torch.meshgrid(values, values, indexing="ij")
    mi, mj = mi.reshape(-1)[mi.reshape(-1) < mj.reshape(-1)], mj.reshape(-1)[mi.reshape(-1) < mj.reshape(-1)]
    # q0 = M A + slope z for both lines: [pairs, M pairs]
    si, sj, qi, qj = (v[:, None] for v in (slope[i], slope[j], q0[i], q0[j]))
    det = mi * sj - mj * si
    a = (qi * sj - qj * si) / det
    z = (mi * qj - mj * qi) / det
    ok = (det.abs() > 0) & (z.abs() <= max_zero) & (a > 1 / 40**2) & (a < 1 / 2**2)
    return torch.cat([cells, a[ok][:, None]]), torch.cat([zero, z[ok]])


def _orthorhombic_trials(q: torch.Tensor, forms: torch.Tensor) -> torch.Tensor:
    """(1/a^2, 1/b^2, 1/c^2) [K, 3], a <= b <= c between 2 and 30 Å, that put three of the first lines (one of the
    first two among them) on three small-index lines. Index triples that differ by a permutation of the axes give
    the same cells: only those with columns in increasing order are solved."""
    first = min(_FIRST_LINES, len(q))
    triples = torch.combinations(torch.arange(first), 3)
    triples = triples[triples[:, 0] < _ANCHOR_LINES]  # [R, 3]
    f = len(forms)
    grid = torch.cartesian_prod(torch.arange(f), torch.arange(f), torch.arange(f))
    matrix = forms[grid]  # [P, 3 lines, 3 axes]
    columns = matrix.transpose(1, 2) @ torch.tensor([81.0, 9.0, 1.0], dtype=matrix.dtype)  # [P, 3] a key per column
    matrix = matrix[(columns[:, 0] < columns[:, 1]) & (columns[:, 1] < columns[:, 2])]
    matrix = matrix[torch.linalg.det(matrix).abs() > 1e-9]
    rhs = q[triples]  # [R, 3]
    cells = torch.linalg.solve(matrix[None], rhs[:, None, :, None].expand(-1, len(matrix), -1, -1)).reshape(-1, 3)
    cells = cells[((cells > 1 / 30**2) & (cells < 1 / 2**2)).all(1)]
    cells = cells.sort(dim=1, descending=True).values  # a <= b <= c
    key = torch.round(cells * 1e6).long()
    _, unique = np.unique((key[:, 0] * (1 << 42) + key[:, 1] * (1 << 21) + key[:, 2]).numpy(), return_index=True)
    return cells[torch.as_tensor(unique)]


def _score_orthorhombic(cells, q, tol_q):
    """`_score` for orthorhombic cells (a <= b <= c): the nearest line over every (h, k) that fits below the last
    observed line, with l the integer nearest to the rest."""
    a, b, c = cells[:, 0], cells[:, 1], cells[:, 2]
    q_max = q.max(1).values  # [K]
    h2 = torch.arange(int(math.sqrt(float((q_max / a).max()))) + 2, dtype=q.dtype) ** 2
    k2 = torch.arange(int(math.sqrt(float((q_max / b).max()))) + 2, dtype=q.dtype) ** 2
    base = a[:, None, None] * h2[None, :, None] + b[:, None, None] * k2[None, None, :]  # [K, H, J]
    rest = (q[:, :, None, None] - base[:, None]) / c[:, None, None, None]  # [K, n, H, J]
    l_low = rest.clamp(min=0).sqrt().floor()
    # the nearest l^2 to rest: l_low^2 or (l_low + 1)^2, whichever side of their midpoint rest lies
    l2 = (l_low + (rest > l_low * (l_low + 1) + 0.5)) ** 2  # [K, n, H, J]
    l2 = torch.where((base[:, None] == 0) & (l2 == 0), 1.0, l2)  # (0, 0, 0) is no line: (0, 0, 1) is the nearest
    misfit, best = (base[:, None] + c[:, None, None, None] * l2 - q[..., None, None]).abs().flatten(2).min(-1)  # [K, n]
    j = k2.numel()
    rows = torch.stack([h2[best // j], k2[best % j], l2.flatten(2).gather(-1, best[..., None])[..., 0]], -1)
    room = (q_max[:, None, None] - base) / c[:, None, None]  # [K, H, J]
    n_calc = torch.where(room >= 0, room.clamp(min=0).sqrt().floor() + 1, 0).sum((1, 2)) - 1
    return misfit <= tol_q, misfit, rows, n_calc


def _score(cells, zero, system, q0, slope, tol_q):
    """For trial cells [K, p] and zero shifts [K]: indexed [K, n] (bool), misfit [K, n] in Q, the design rows of
    the nearest calculated lines [K, n, p] and the number of distinct calculated lines up to the last observed
    line [K] (every line of the lattice, none extinct: de Wolff's N20)."""
    q = q0[None, :] - slope[None, :] * zero[:, None]  # [K, n]
    if system == "orthorhombic":
        return _score_orthorhombic(cells, q, tol_q)
    if system == "monoclinic":
        from powdersym.refine.monoclinic import score_monoclinic  # it imports this module

        return score_monoclinic(cells, q, tol_q)
    if system == "triclinic":
        from powdersym.refine.triclinic import score_triclinic  # it imports this module

        return score_triclinic(cells, q, tol_q)
    q_max = q.max(1).values  # [K]
    a = cells[:, 0]
    lines = _lines_for(system, float((q_max / a).max()))
    if system == "cubic":
        n_value = lines.nearest(q / a[:, None])
        misfit = (a[:, None] * n_value - q).abs()
        return misfit <= tol_q, misfit, n_value[..., None], lines.up_to(q_max / a)
    c = cells[:, 1]
    l_max = int(math.sqrt(float((q_max / c).max()))) + 1
    l2 = torch.arange(l_max + 1, dtype=q.dtype) ** 2  # [L]
    target = (q[:, :, None] - c[:, None, None] * l2) / a[:, None, None]  # [K, n, L]: m that would fit exactly
    m = lines.nearest(target)
    m = torch.where((m == 0) & (l2 == 0), lines.scale, m)  # (0, 0) is no line: the nearest is M = 1
    calc = a[:, None, None] * m + c[:, None, None] * l2
    misfit, best_l = (calc - q[:, :, None]).abs().min(-1)
    rows = torch.stack([m.gather(-1, best_l[..., None])[..., 0], l2[best_l]], -1)  # [K, n, 2]
    n_calc = lines.up_to((q_max[:, None] - c[:, None] * l2) / a[:, None]).sum(1) - 1  # [K, L] summed; minus (0, 0)
    return misfit <= tol_q, misfit, rows, n_calc


def allowed_unindexed(n_lines: int) -> int:
    """Unindexed lines (impurities, artefacts) a cell may leave among n observed: none of 7 or fewer, one of 8-11,
    two of 12 or more (with few lines, a cell that misses some fits by chance)."""
    return min(MAX_UNINDEXED, max(0, (n_lines - 4) // 4))


def _m20(indexed, misfit, n_calc, q_max, unindexed: int | None = None) -> torch.Tensor:
    """de Wolff's M20 [K] (q_max [K]: Q of the last observed line); 0 for a cell that leaves more lines unindexed
    than `unindexed` (default: allowed_unindexed)."""
    n = indexed.shape[1]
    mean = torch.where(indexed, misfit, 0.0).sum(1) / indexed.sum(1).clamp(min=1)
    m20 = q_max / (2 * mean.clamp(min=1e-7 * q_max) * n_calc.clamp(min=1))
    limit = allowed_unindexed(n) if unindexed is None else unindexed
    return torch.where(indexed.sum(1) >= n - limit, m20, torch.zeros_like(m20))


def _least_squares(cells, zero, system, q0, slope, tol_q, fit_zero: bool):
    """One weighted least-squares step on the lines each cell indexes: Q_obs = rows . cell + slope * zero."""
    indexed, _, design, _ = _score(cells, zero, system, q0, slope, tol_q)
    if fit_zero:
        design = torch.cat([design, slope.expand(design.shape[:2])[..., None]], -1)
    weight = indexed.double() / tol_q**2
    normal = torch.einsum("kn,kna,knb->kab", weight, design, design)
    ridge = 1e-9 * normal.diagonal(dim1=1, dim2=2).mean() + 1e-300  # keeps cells that index nothing solvable
    normal = normal + ridge * torch.eye(design.shape[-1], dtype=design.dtype)
    rhs = torch.einsum("kn,kna,n->ka", weight, design, q0)
    solution = torch.linalg.solve_ex(normal, rhs)[0]
    new_cells = solution[:, : cells.shape[1]]
    new_zero = solution[:, -1] if fit_zero else zero
    positive = new_cells[:, :3] if system == "triclinic" else new_cells  # a triclinic cell's cross terms have a sign
    good = (indexed.sum(1) > design.shape[-1]) & (positive > 0).all(1) & torch.isfinite(solution).all(1)
    return torch.where(good[:, None], new_cells, cells), torch.where(good, new_zero, zero)


def index_cells(peaks: PeakPositions, systems: tuple[str, ...] = SYSTEMS) -> dict[str, IndexedCell | None]:
    """The best cell of each system by M20 (None: fewer than three lines, or no trial cell)."""
    out: dict[str, IndexedCell | None] = {}
    n = len(peaks)
    for system in systems:
        if system not in SPACE_GROUP_RANGES:
            raise ValueError(f"unknown system {system!r} (expected one of {', '.join(SPACE_GROUP_RANGES)})")
        if system == "monoclinic":
            from powdersym.refine.monoclinic import index_monoclinic  # it imports this module

            out[system] = index_monoclinic(peaks)
        elif system == "triclinic":  # not among SYSTEMS: searched only when asked for
            from powdersym.refine.triclinic import index_triclinic  # it imports this module

            out[system] = index_triclinic(peaks)
        else:
            out[system] = None if n < 3 else _index_system(peaks, system)
    return out


def _index_system(peaks: PeakPositions, system: str) -> IndexedCell | None:
    q0 = torch.as_tensor(peaks.q)
    slope = torch.as_tensor(peaks.slope)
    tol_q = torch.as_tensor(np.abs(peaks.slope) * peaks.tolerance).clamp(min=1e-9)
    cells = _trial_cells(q0, _small_forms(system), system)
    if len(cells) == 0:
        return None
    zero = torch.zeros(len(cells), dtype=torch.float64)
    fit_zero = peaks.max_zero > 0
    if system == "cubic" and fit_zero:
        cells, zero = _with_zero_trials(cells, zero, q0, slope, peaks.max_zero)
    for lines, keep in _COARSE_3 if system == "orthorhombic" else _COARSE:
        m = min(lines, len(q0))
        q, g, tol = (v[:m].float() for v in (q0, slope, tol_q))
        if cells.shape[1] >= 2:  # chunks of similar cells: each scores only the indices its own cells reach
            order = torch.argsort(cells[:, 0] * cells[:, 1] if system == "orthorhombic" else cells[:, 1], descending=True)
            cells, zero = cells[order], zero[order]
        scores = []
        for part, part_zero in zip(cells.float().split(_CHUNK), zero.float().split(_CHUNK)):
            indexed, misfit, _, n_calc = _score(part, part_zero, system, q, g, 2 * tol)
            q_max = (q[None, :] - g[None, :] * part_zero[:, None]).max(1).values
            scores.append(_m20(indexed, misfit, n_calc, q_max, unindexed=MAX_UNINDEXED))
        best = torch.topk(torch.cat(scores), min(keep, len(cells))).indices
        cells, zero = cells[best], zero[best]
    for widen in (2, 2, 1):
        cells, zero = _least_squares(cells, zero, system, q0, slope, widen * tol_q, fit_zero)
        zero = zero.clamp(-peaks.max_zero, peaks.max_zero)
    indexed, misfit, _, n_calc = _score(cells, zero, system, q0, slope, tol_q)
    m20 = _m20(indexed, misfit, n_calc, (q0[None, :] - slope[None, :] * zero[:, None]).max(1).values)
    # of the cells good enough to accept, the one that indexes the most lines (a sub-cell that leaves the odd lines
    # of a centred cell unindexed predicts fewer lines and can have the higher M20); else the best M20
    n_indexed = indexed.sum(1)
    good = (m20 >= MIN_M20) & (n_calc <= MAX_LINE_RATIO * n_indexed)
    k = int(torch.argmax(torch.where(good, n_indexed * (m20.max() + 1) + m20, m20 - m20.max() - 1)))
    lengths = sorted(1 / math.sqrt(float(v)) for v in cells[k]) if system == "orthorhombic" else None
    a = lengths[0] if lengths else 1 / math.sqrt(float(cells[k, 0]))
    c = lengths[2] if lengths else a if system == "cubic" else 1 / math.sqrt(float(cells[k, 1]))
    lines = indexed[k].numpy()
    q_indexed = (q0 - slope * zero[k]).numpy()[lines]
    return IndexedCell(system, a, c, float(zero[k]), float(m20[k]), int(indexed[k].sum()), len(q0), int(n_calc[k]),
                       b=lengths[1] if lengths else None, q_indexed=q_indexed, tol_indexed=tol_q.numpy()[lines])


def choose_cell(
    cells: dict[str, IndexedCell | None], min_m20: float = MIN_M20, min_lines: int = _MIN_LINES, min_cubic_lines: int = 6,
    max_line_ratio: float = MAX_LINE_RATIO, symmetry_factor: float = 0.5, few_lines: int = 12, min_m20_few: float = 50.0,
    short_lines: int = _SHORT_LINES, min_m20_short: float = _MIN_M20_SHORT,
) -> IndexedCell | None:
    """The cell a crystallographer would accept, or None.

    A cell qualifies with M20 >= min_m20 (>= min_m20_few from fewer than `few_lines` lines; `index_cells` sets M20
    to 0 when more lines are unindexed than `allowed_unindexed`), at most `max_line_ratio` calculated lines per indexed one (a cell that predicts far more
    lines than are seen is too large), at least `min_lines` observed lines for a cell of two or three parameters
    (with fewer, some large cell fits them) and M20 >= min_m20_short from fewer than `short_lines` (12-15 lines at
    M20 >= 20 accepted 2 more wrong cells than right ones on RRUFF; at M20 >= 100 they add 43 right and 3 wrong cells
    on the pymatgen X-ray set and none on RRUFF; 10-11 lines at M20 >= 100 another 28 right and 3 wrong there and 3
    right tetragonal cells on RRUFF, none from 200 patterns of 8-11 random lines), and `min_cubic_lines` indexed for a
    cubic one. Of those, the cells that index the most lines compete: the cubic one
    when its M20 is within `symmetry_factor` of the best (a cubic pattern also indexes, less well, as tetragonal),
    else the best M20. None whose indexed lines are the orders of one spacing (`one_spacing`).
    """
    accepted = [
        cell for system, cell in cells.items()
        if cell is not None and cell.m20 >= (min_m20 if cell.n_lines >= few_lines else max(min_m20, min_m20_few))
        and cell.n_calculated <= max_line_ratio * cell.n_indexed
        and (cell.n_indexed >= min_cubic_lines if system == "cubic" else cell.n_lines >= min_lines
             and (cell.n_lines >= short_lines or cell.m20 >= min_m20_short))
        and one_spacing(cell.q_indexed, cell.tol_indexed) is None
    ]  # fmt: skip
    if not accepted:
        return None
    most = max(cell.n_indexed for cell in accepted)
    accepted = [cell for cell in accepted if cell.n_indexed == most]
    best = max(accepted, key=lambda cell: cell.m20)
    cubic = [cell for cell in accepted if cell.system == "cubic"]
    return cubic[0] if cubic and cubic[0].m20 >= symmetry_factor * best.m20 else best


def one_spacing(q: np.ndarray, tol: np.ndarray) -> float | None:
    """The spacing d (Å) of the first or second of lines at Q [n] (tolerances tol [n]) when at least MIN_ORDERS of
    them, and ORDERS_FRACTION of all, are its orders n = 1, 2, 3 ... (d, d/2, d/3 ...); else None. Such lines are
    one reflection's series (the 00l lines of a layer silicate whose platelets lie flat), which any cell with that
    spacing indexes: they are no evidence of a lattice. A cubic P cell of a = 14.2 Å indexed two monoclinic
    chlorite-like RRUFF patterns from 001-007 at M20 94 and 120, and the network then called Pm-3m with 0.97 and
    0.98 certainty. A lattice's own lines are not orders of one line: a cubic P one shows 110 and 111."""
    order_by_q = np.argsort(q)
    q, tol = np.asarray(q)[order_by_q], np.asarray(tol)[order_by_q]
    for base in range(min(2, len(q))):
        order = np.round(np.sqrt(q / q[base]))
        window = tol + order**2 * tol[base]  # the base line's misfit grows with n^2
        # an order counts only where its window is narrow against the gap to the next order ((2n + 1) Q_base): on a
        # neutron pattern, n = 6-18 of a 20.8 Å line whose Q is known to ~10 % matched 15 of 20 unrelated lines
        distinct = window <= ORDER_WINDOW * (2 * order + 1) * q[base]
        on = (order >= 1) & distinct & (np.abs(order**2 * q[base] - q) <= window)
        if on.sum() >= max(MIN_ORDERS, ORDERS_FRACTION * len(q)):
            return float(1 / math.sqrt(q[base]))
    return None


def pattern_spacing(pattern: MeasuredPattern, doublet: tuple[float, float] | None = None,
                    threshold: float = 0.05) -> float | None:
    """`one_spacing` of a pattern's lines above `threshold`, found as `index_pattern` finds them: what to tell a user
    whose pattern gives no cell because its lines are one spacing's orders (a platy sample lying flat)."""
    quiet = denoised(pattern, threshold)
    peaks = find_peaks(pattern if quiet is None else quiet, threshold=threshold, doublet=doublet)
    return one_spacing(peaks.q, np.abs(peaks.slope) * peaks.tolerance)


def index_pattern(
    pattern: MeasuredPattern, doublet: tuple[float, float] | None = None, threshold: float = 0.05,
    systems: tuple[str, ...] = SYSTEMS, denoise: bool = True, **choose: float,
) -> IndexedCell | None:
    """The accepted cell of a measured pattern, or None (see the module docstring). An orthorhombic cell is searched
    only where no cubic, tetragonal or hexagonal one is accepted. `threshold`: the weakest line used, relative to
    the strongest (lower it only for clean data: on RRUFF 0.02 picked up noise). A pattern whose noise reaches the
    threshold is indexed from its `denoised` copy (`denoise=False`: as it is); one that is not and shows fewer than
    RETRY_LINES lines is indexed again from its lines down to RETRY_THRESHOLD (`_keeps` chooses between the two
    cells). The cell carries the weaker lines of its range (`weak_lines`) for `refine.extinction`, and is enlarged
    where weak lines it leaves unexplained are a superstructure's (`refine.supercell`)."""
    quiet = denoised(pattern, threshold) if denoise else None
    source = pattern if quiet is None else quiet
    # on RRUFF the denoised copy gives 11 more cells of the right lattice, 1 of a wrong one; none of the noisy
    # patterns indexes without it
    peaks = find_peaks(source, threshold=threshold, doublet=doublet)
    found = _index_peaks(peaks, systems, choose)
    if quiet is None and len(peaks) < RETRY_LINES and threshold > RETRY_THRESHOLD:  # not noise's lines: not denoised
        more = find_peaks(source, threshold=RETRY_THRESHOLD, doublet=doublet)
        again = _index_peaks(more, systems, choose) if len(more) > len(peaks) else None
        if found is None or again is not None and not _keeps(found, again, more, threshold):
            found = again
    if found is None and "triclinic" in systems:  # last: six parameters, from up to 30 lines
        from powdersym.refine.triclinic import MAX_LINES, index_triclinic  # it imports this module

        found = index_triclinic(find_peaks(source, max_peaks=MAX_LINES, threshold=threshold, doublet=doublet))
    if found is None:
        return None
    weak = weak_lines(source, found, doublet, WEAK_FRACTION * threshold)
    from powdersym.refine.supercell import superstructure  # it imports this module

    # weak lines the cell leaves unexplained may be a superstructure's: the larger cell that explains them
    return superstructure(replace(found, denoised=quiet is not None, q_weak=weak))


def weak_lines(pattern: MeasuredPattern, cell: IndexedCell, doublet: tuple[float, float] | None = None,
               threshold: float = 0.02) -> np.ndarray:
    """Q (the cell's zero shift removed) of the lines down to `threshold` of the strongest within the cell's indexed
    range: where a group allows a line too weak for the search, `refine.extinction` counts it as seen, not missing
    (the weak h+k odd lines of a Pnma olivine are what tell it from Cmcm)."""
    if len(cell.q_indexed) == 0:
        return np.zeros(0)
    q_max = np.max(cell.q_indexed) + np.max(cell.tol_indexed)
    # lines a little beyond the range are found too (the zero shift moves them), then cut at q_max
    d_min = 0.98 / math.sqrt(q_max)
    peaks = find_peaks(pattern, max_peaks=WEAK_MAX_LINES, threshold=threshold, doublet=doublet, d_min=d_min)
    q = peaks.q - peaks.slope * cell.zero
    return q[q <= q_max]


def _index_peaks(peaks: PeakPositions, systems: tuple[str, ...], choose: dict) -> IndexedCell | None:
    # cells of two or three parameters need min_lines lines to be accepted: do not search them with fewer
    enough = len(peaks) >= choose.get("min_lines", _MIN_LINES)
    high = index_cells(peaks, tuple(s for s in systems if s in HIGH_SYMMETRY and (enough or s == "cubic")))
    found = choose_cell(high, **choose)
    if found is None and "cubic" in systems:  # the main phase of a mixture, or few lines of a centred cell
        found = centred_cubic(peaks)
        found = None if found is not None and one_spacing(found.q_indexed, found.tol_indexed) else found
    low = index_cells(peaks, ("orthorhombic",)) if found is None and enough and "orthorhombic" in systems else {}
    if found is None and low:  # the higher symmetry wins where both index
        found = choose_cell(low, **choose)
    # last, the lines of each cell's group counted (DICVOL's M20 for an extinction symbol), higher symmetry first;
    # not cubic cells, whose centring `centred_cubic` counts: a large cubic cell counted with the few lines of
    # I-43d or Ia-3d placed a line near most lines of orthorhombic patterns (on RRUFF and the pymatgen sets 3 of
    # 8 such cells were right)
    for cells in (high, low):
        if found is None:
            recounted = {system: _group_counted(cell, choose) for system, cell in cells.items() if system != "cubic"}
            recounted = {system: cell for system, cell in recounted.items() if cell is not None and cell.lines_of}
            found = choose_cell(recounted, **({"min_m20": MIN_M20_GROUP} | choose))
    # last: four parameters fit more lines by chance. An orthorhombic cell accepted with its group's lines counted
    # (from M20 12), or one that leaves lines unindexed, is contested: a monoclinic cell indexing as many lines at
    # MONOCLINIC_FACTOR times its M20 wins (on the pymatgen X-ray patterns, P2 and P2_1 cells of M20 120 and 3,000 had
    # lost to such cells of M20 18 and 20; jadarite on 11-BM, its M20 609 cell from 20 of 20 lines to a cell of four
    # times its volume, M20 35 from 18; no cell of RRUFF or the pymatgen X-ray set changes)
    unindexed = found is not None and found.n_indexed < found.n_lines
    contested = found is not None and found.system == "orthorhombic" and (found.lines_of != 0 or unindexed)
    if (found is None or contested) and "monoclinic" in systems:
        mono = choose_cell(index_cells(peaks, ("monoclinic",)), **(MONOCLINIC_LIMITS | choose))
        if found is None or (mono is not None and mono.n_indexed >= found.n_indexed
                             and mono.m20 >= MONOCLINIC_FACTOR * found.m20):
            found = mono
    return found


def _group_counted(cell: IndexedCell | None, choose: dict) -> IndexedCell | None:
    """`refine.extinction.group_counted` for a cell that could reach the limit (no more lines unindexed than allowed,
    M20 >= MIN_M20_RECOUNT, scaled with a lower `min_m20`); the cell as it is otherwise."""
    from powdersym.refine.extinction import group_counted  # it imports this module

    if cell is None or cell.m20 < MIN_M20_RECOUNT * choose.get("min_m20", MIN_M20_GROUP) / MIN_M20_GROUP:
        return cell
    return group_counted(cell)


def _keeps(first: IndexedCell, again: IndexedCell, more: PeakPositions, threshold: float) -> bool:
    """Whether the cell of the lines above `threshold` stays against `again`, the cell of the `more` lines down to
    RETRY_THRESHOLD: where `again` is of the same system and indexes no more lines, or of a lower symmetry
    (later in SYSTEMS) while every line `first` leaves unexplained is weaker than the threshold (a weak impurity or
    artefact line does not outvote a higher-symmetry cell; a split strong line does)."""
    from powdersym.refine.extinction import lines_explained  # it imports this module

    rank, rank_again = SYSTEMS.index(first.system), SYSTEMS.index(again.system)
    if rank_again == rank:
        return again.n_indexed <= first.n_indexed
    unexplained = ~lines_explained(first, more.q - more.slope * first.zero)
    return rank_again > rank and bool(np.all(more.height[unexplained] < threshold))
