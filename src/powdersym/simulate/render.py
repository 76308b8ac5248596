"""Turn peak lists (sticks) into patterns on an instrument's grid.

`render` is the fast path used for training data: sticks are spread onto the grid with cubic B-spline weights
(the gridding step of a non-uniform FFT; its blur is divided out in Fourier space), and convolved with peak
profiles by FFT. The profile changes along the pattern (Caglioti widths, ToF exponentials), so profiles are
tabulated at a few nodes spaced by how fast the shape changes, and each stick is shared between its two
neighbouring nodes. Error against exact evaluation: below 0.5 % of a peak's height for the presets
(tests/simulate/test_render.py). `render_direct` evaluates every profile exactly; it is slow and serves as
the reference and for small peak lists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from powdersym.simulate.instruments import Instrument


@dataclass(frozen=True)
class RenderPlan:
    """Everything `render` precomputes for one instrument, device and dtype."""

    u_start: float  # u of fine index 0
    step: float  # grid step in u
    n_fft: int
    out_offset: int  # fine index of the first grid point
    n_points: int
    margin: float  # sticks further than this (u) outside the grid are dropped
    nodes: torch.Tensor  # [M] node positions (u)
    node_widths: torch.Tensor  # [M] FWHM^2 (u units) at the nodes
    widths: torch.Tensor  # [n_fft] FWHM^2 (u units) at each fine point, clamped to the grid's ends
    kernels_hat: torch.Tensor  # [M, n_fft // 2 + 1] complex: rfft of each node's profile / B-spline transfer


def _fast_length(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (fast FFT sizes)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _place_nodes(inst: Instrument, u_lo: float, u_hi: float, tolerance: float) -> torch.Tensor:
    """Nodes where the shape parameters have changed by at most `tolerance` since the previous node, plus the
    extrema of the peak width (so that every peak's width lies between those of its two nodes)."""
    u = torch.linspace(u_lo, u_hi, 4001, dtype=torch.float64)
    shape = inst.shape_parameters(inst.from_u(u))  # [4001, k]
    change = (shape[1:] - shape[:-1]).abs().amax(-1)
    travelled = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(change, 0)])
    n_nodes = max(2, int(math.ceil(float(travelled[-1]) / tolerance)) + 1)
    targets = torch.linspace(0, float(travelled[-1]), n_nodes, dtype=torch.float64)
    idx = torch.searchsorted(travelled, targets).clamp(max=len(u) - 1)
    slope = torch.sign(torch.diff(_width_u(inst, u)))
    extrema = torch.nonzero(slope[1:] * slope[:-1] < 0).flatten() + 1
    # at most 1/16 of the range apart, so that sample broadening (tan theta, 1 / cos theta) is followed too
    regular = torch.linspace(u_lo, u_hi, 17, dtype=torch.float64)
    return torch.unique(torch.cat([u[idx], u[extrema], regular]))


def _width_u(inst: Instrument, u: torch.Tensor) -> torch.Tensor:
    """Peak FWHM in the render coordinate u at positions u."""
    x = inst.from_u(u)
    return inst.fwhm(x) / (1.0 if inst.geometry == "cw" else x)


@lru_cache(maxsize=32)
def render_plan(inst: Instrument, device: str = "cpu", dtype: torch.dtype = torch.float32, tolerance: float = 0.1) -> RenderPlan:
    """Precompute node profiles and FFT sizes for an instrument (cached)."""
    h = inst.u_step
    n = inst.n_points
    u_lo, u_hi = inst.u_min, inst.u_min + h * (n - 1)
    x_dense = inst.from_u(torch.linspace(u_lo, u_hi, 512, dtype=torch.float64))
    margin = float((inst.reach(x_dense) / (1.0 if inst.geometry == "cw" else x_dense)).max())
    pad = int(math.ceil(margin / h)) + 4
    n_fft = _fast_length(n + 2 * pad + 4)
    u_start = u_lo - pad * h
    # peaks outside the grid only reach in with their tails: they take the shape of the nearest grid end
    nodes = _place_nodes(inst, u_lo, u_hi, tolerance)

    offsets = torch.arange(n_fft, dtype=torch.float64)
    offsets = torch.where(offsets < n_fft / 2, offsets, offsets - n_fft) * h  # circular offsets in u
    centres = inst.from_u(nodes)  # [M]
    delta_x = inst.from_u(nodes[:, None] + offsets[None, :]) - centres[:, None]  # [M, n_fft]
    kernels = inst.profile(centres, delta_x)
    within = offsets.abs()[None, :] <= margin + 2 * h
    kernels = torch.where(within, kernels, torch.zeros_like(kernels))
    freq = torch.fft.rfftfreq(n_fft, dtype=torch.float64)
    bspline = torch.sinc(freq) ** 4  # transfer function of cubic B-spline gridding
    kernels_hat = torch.fft.rfft(kernels, dim=-1) / bspline
    complex_dtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    return RenderPlan(
        u_start=u_start, step=h, n_fft=n_fft, out_offset=pad, n_points=n, margin=margin,
        nodes=nodes.to(device=device, dtype=dtype), node_widths=(_width_u(inst, nodes) ** 2).to(device=device, dtype=dtype),
        widths=(_width_u(inst, (u_start + h * torch.arange(n_fft, dtype=torch.float64)).clamp(u_lo, u_hi)) ** 2).to(
            device=device, dtype=dtype
        ),
        kernels_hat=kernels_hat.to(device=device, dtype=complex_dtype),
    )


def render(
    positions: torch.Tensor,
    intensities: torch.Tensor,
    inst: Instrument,
    broadening: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Patterns [B, n_points] from peak positions [B, P] (x units; NaN = no peak) and integrated intensities [B, P].

    broadening: optional per-pattern extra Gaussian variance and Lorentzian FWHM [B, M] (u units) at the
    plan's nodes, convolved with the instrument profile (sample broadening, resolution jitter).
    Values are intensity densities per x unit (integrated intensity / FWHM scale), not yet normalised.
    """
    b, p = positions.shape
    plan = render_plan(inst, str(positions.device), positions.dtype)
    u = inst.to_u(positions)
    valid = torch.isfinite(u) & (u >= plan.u_start + plan.out_offset * plan.step - plan.margin)
    valid &= u <= plan.u_start + (plan.out_offset + plan.n_points - 1) * plan.step + plan.margin
    u = torch.where(valid, u, torch.full_like(u, plan.u_start + 2 * plan.step))
    weight = torch.where(valid, intensities, torch.zeros_like(intensities))

    # cubic B-spline gridding weights over the four nearest fine points
    f = (u - plan.u_start) / plan.step
    j0 = torch.floor(f)
    t = f - j0
    spline = torch.stack([(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1, t**3], -1) / 6
    index = (j0.long()[..., None] + torch.arange(-1, 3, device=u.device)).clamp(0, plan.n_fft - 1)  # [B, P, 4]

    # share between the two neighbouring profile nodes chosen so that the mixture has the peak's own second
    # moment (exact for Gaussians to first order in the width change; linear in u where the width is flat)
    m = len(plan.nodes)
    k = (torch.searchsorted(plan.nodes, u.contiguous()) - 1).clamp(0, m - 2)
    lo, hi = plan.node_widths[k], plan.node_widths[k + 1]
    linear = (u - plan.nodes[k]) / (plan.nodes[k + 1] - plan.nodes[k])
    flat = (hi - lo).abs() < 0.02 * hi  # width-matched shares only where the width really changes
    if inst.geometry == "tof":  # the ToF shape (exponential tails) does not follow its FWHM alone
        flat = torch.ones_like(flat)
    width2 = plan.widths[j0.long().clamp(0, plan.n_fft - 1)]  # FWHM^2 at the stick (to within a grid step)
    share = torch.where(flat, linear, (width2 - lo) / torch.where(flat, torch.ones_like(hi), hi - lo))
    share = share.clamp(0, 1)
    node_weight = torch.stack([1 - share, share], -1)  # [B, P, 2]
    node = torch.stack([k, k + 1], -1)

    values = weight[..., None, None] * node_weight[..., :, None] * spline[..., None, :]  # [B, P, 2, 4]
    batch = torch.arange(b, device=u.device)[:, None, None, None]
    flat = (batch * m + node[..., :, None]) * plan.n_fft + index[..., None, :]
    grid = torch.zeros(b * m * plan.n_fft, dtype=positions.dtype, device=positions.device)
    grid = grid.index_add(0, flat.reshape(-1), values.reshape(-1)).view(b, m, plan.n_fft)
    node_spectra = torch.fft.rfft(grid, dim=-1) * plan.kernels_hat  # [B, M, n_fft // 2 + 1]
    if broadening is not None:  # Fourier transforms of a Gaussian (variance) and a Lorentzian (FWHM)
        variance, lorentz = broadening
        freq = torch.fft.rfftfreq(plan.n_fft, d=plan.step, device=u.device).to(positions.dtype)  # cycles per u
        exponent = 2 * math.pi**2 * variance[..., None] * freq**2 + math.pi * lorentz[..., None] * freq
        node_spectra = node_spectra * torch.exp(-exponent)
    spectrum = node_spectra.sum(1)  # [B, n_fft // 2 + 1]
    fine = torch.fft.irfft(spectrum, n=plan.n_fft, dim=-1)
    # round-off of the FFT leaves ~1e-11 negative values where there is no peak
    return fine[:, plan.out_offset : plan.out_offset + plan.n_points].clamp(min=0.0)


def render_direct(positions: torch.Tensor, intensities: torch.Tensor, inst: Instrument, chunk: int = 256) -> torch.Tensor:
    """Exact evaluation of every profile at every grid point (reference for `render`; O(B P n))."""
    x = torch.as_tensor(inst.grid(), dtype=positions.dtype, device=positions.device)
    out = torch.zeros(positions.shape[0], len(x), dtype=positions.dtype, device=positions.device)
    for i in range(positions.shape[0]):
        keep = torch.isfinite(positions[i])
        centres, weights = positions[i][keep], intensities[i][keep]
        for s in range(0, len(centres), chunk):
            c = centres[s : s + chunk]
            out[i] += (weights[s : s + chunk, None] * inst.profile(c, x[None, :] - c[:, None])).sum(0)
    return out
