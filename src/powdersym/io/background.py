"""Background estimates under a powder pattern: an iteratively clipped Chebyshev fit and SNIP.

Both take intensities on a uniform coordinate (the model grid's u: 2theta, or ln t for ToF) and return a
background of the same length that peaks do not lift.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.polynomial import chebyshev


def chebyshev_background(y: np.ndarray, degree: int = 12, clip: float = 2.0, max_iterations: int = 50) -> np.ndarray:
    """Chebyshev polynomial through the background points only (Garcia-Cardona et al. 2019 model the
    background as a Chebyshev series; GSAS-II's default background function).

    Iteratively reweighted: points more than `clip` noise-sigmas above the current fit get weight zero and the
    fit is repeated until the set of background points stops changing, so peaks do not lift the curve. The
    noise sigma is the RMS of the residuals below the fit (peaks only ever sit above it).
    """
    y = np.asarray(y, dtype=np.float64)
    degree = int(min(degree, max(len(y) // 4, 0)))
    keep = np.ones(len(y), dtype=bool)
    fit = np.full_like(y, np.median(y))
    # Least squares through the normal equations of the Chebyshev basis (well conditioned on [-1, 1]): a (d+1)^2
    # solve per iteration instead of a threaded lstsq of the whole pattern, which was 10-30x slower on 2 cores.
    # The equations start from those of all points (the same for every pattern on a grid, cached) and follow
    # only the points that change side between iterations, a few hundred of thousands; they are summed afresh
    # whenever the points changed since the last fresh sum outnumber the points kept, which bounds the rounding.
    basis = chebyshev_basis(len(y), degree)  # [n, d + 1]
    gram, rhs = chebyshev_gram(len(y), degree), basis.T @ y
    changed_since_sum = 0
    for _ in range(max_iterations):
        if keep.sum() <= degree + 1:
            break
        fit = basis @ np.linalg.solve(gram, rhs)
        residual = y - fit
        below = residual[keep & (residual <= 0)]
        noise = np.sqrt(np.mean(below**2)) if len(below) else 0.0
        new_keep = residual <= clip * max(noise, 1e-12 * max(np.max(np.abs(y)), 1e-300))
        changed = np.flatnonzero(new_keep != keep)
        if len(changed) == 0:
            break
        keep = new_keep
        changed_since_sum += len(changed)
        if changed_since_sum > keep.sum():
            kept = basis[keep]
            gram, rhs, changed_since_sum = kept.T @ kept, kept.T @ y[keep], 0
        else:
            rows = basis[changed]
            signed = rows * np.where(keep[changed], 1.0, -1.0)[:, None]  # +1 joins the background, -1 leaves it
            gram, rhs = gram + signed.T @ rows, rhs + signed.T @ y[changed]
    return fit


@functools.lru_cache(maxsize=16)
def chebyshev_basis(n: int, degree: int) -> np.ndarray:
    """Chebyshev polynomials T_0..T_degree at n points spread evenly over [-1, 1] [n, degree + 1], read-only; kept
    for the last few lengths, since every pattern on one grid asks for the same one."""
    basis = chebyshev.chebvander(np.linspace(-1.0, 1.0, n), degree)
    basis.flags.writeable = False
    return basis


@functools.lru_cache(maxsize=16)
def chebyshev_gram(n: int, degree: int) -> np.ndarray:
    """basis.T @ basis of `chebyshev_basis(n, degree)` [degree + 1, degree + 1], read-only."""
    basis = chebyshev_basis(n, degree)
    gram = basis.T @ basis
    gram.flags.writeable = False
    return gram


def snip_background(y: np.ndarray, half_width: np.ndarray | int, iterations: int | None = None) -> np.ndarray:
    """SNIP (Ryan et al. 1988; Morhac et al. 1997): repeated clipping of each point to the mean of its
    neighbours p points away, p = 1 .. half_width, on the log-log-sqrt transformed intensities.

    `half_width` may vary along the pattern (one value per point, in points): it should exceed the half base
    width of the peaks there, so peaks are clipped away while the smooth background survives unchanged.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    widths = np.broadcast_to(np.asarray(half_width, dtype=np.int64), (n,))
    widths = np.clip(widths, 1, max(n - 1, 1))
    offset = min(float(np.min(y)), 0.0)
    v = np.log(np.log(np.sqrt(y - offset + 1.0) + 1.0) + 1.0)  # LLS operator: compresses peaks, keeps shape
    pad = int(widths.max()) if n > 1 else 0
    v = np.pad(v, pad, mode="reflect") if pad else v  # mirrored ends: a peak at the edge is clipped too
    widths = np.pad(widths, pad, mode="edge") if pad else widths
    last = pad if iterations is None else min(int(iterations), pad)
    for p in range(1, last + 1):
        index = np.flatnonzero(widths[p:len(v) - p] >= p) + p
        v[index] = np.minimum(v[index], 0.5 * (v[index - p] + v[index + p]))
    v = v[pad:pad + n]
    return (np.exp(np.exp(v) - 1.0) - 1.0) ** 2 - 1.0 + offset
