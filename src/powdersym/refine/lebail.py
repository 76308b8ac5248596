"""Le Bail-like whole-pattern cell refinement through the simulator's peak positions and profiles.

The calculated pattern is y_calc(x) = sum_k I_k P_k(x; p) + sum_j b_j T_j(x): one free intensity I_k per group of
always-coincident allowed reflections, a Chebyshev background b_j, and peak profiles P_k whose positions and
widths depend on the nonlinear parameters p (free lattice parameters, zero shift, optional sample displacement,
profile widths). For a given p the intensities and background are a linear least-squares problem, solved exactly
(with a non-negativity pass); p is refined by Levenberg-Marquardt on the variable-projection residual (Golub &
Pereyra 1973, with Kaufman's 1975 Jacobian), the Jacobian of the profiles taken by forward-mode autograd.
Uncertainties come from (J^T W J)^-1 of the projected Jacobian times the reduced chi^2, which equals the covariance
of p in the joint problem with the intensities free.

Starting far off (a network estimate, 1-2 % in the lengths), peaks of a fine pattern do not overlap their
calculated positions, and the fit would lock onto wrong neighbours. The fit therefore runs in stages from coarse to
fine (continuation): the observed and the calculated patterns are both blurred by a Gaussian as wide as the peak
shifts that the remaining cell error can cause, over the range of the first reflections; each stage shrinks the
assumed error, narrows the blur and admits more reflections, until the last fits the whole unblurred pattern.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sparse
import scipy.sparse.linalg as sparse_linalg
import torch

from powdersym.refine.cell import CellModel, ReflectionGroups, SpaceGroupSetting, allowed_reflections, d_spacings
from powdersym.refine.result import RefinementResult
from powdersym.simulate import profiles
from powdersym.simulate.instruments import CU_KA, Instrument, preset

CW_WIDTHS = ("U", "V", "W", "X", "Y")
TOF_WIDTHS = ("alpha", "beta_0", "sig_1", "sig_2")
_FWHM_PER_SIGMA = math.sqrt(8.0 * math.log(2.0))
_MAX_REACH_FWHM = 25.0  # profiles are cut at most this many FWHM from their centre (a Lorentzian keeps 97.5 % inside)


@dataclass
class _Parameters:
    """Names and current values of the nonlinear parameters p (cell first, then zero, displacement, widths)."""

    names: list[str]
    values: np.ndarray
    n_cell: int


@dataclass
class _Evaluation:
    """Everything one evaluation at p produced: the linear solution and what its Jacobian needs."""

    cost: float
    calculated: np.ndarray
    background: np.ndarray
    intensities: np.ndarray  # [K] per reflection group (0 for groups outside the range or dropped as negative)
    positions: np.ndarray  # [K] first-line position of each group
    active: np.ndarray  # [K] bool: group with a free intensity in this evaluation
    design: sparse.csc_matrix | None  # weighted design matrix of the active columns (peaks then background)
    factor: object | None  # sparse LU of design^T design (+ ridge)
    windows: tuple[np.ndarray, np.ndarray] | None  # (grid point, peak) of every profile sample of an active group


class _LeBailModel:
    """The calculated pattern as a function of the nonlinear parameters, over one x range with one blur."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        weight: np.ndarray,
        instrument: Instrument,
        cell_model: CellModel,
        groups: ReflectionGroups,
        names: Sequence[str],
        background_order: int,
        blur: float,
    ) -> None:
        self.x, self.y, self.weight = x, y, weight
        self.root_weight = np.sqrt(weight)
        self.instrument, self.cell_model, self.names = instrument, cell_model, list(names)
        self.blur = blur  # FWHM of the Gaussian blur: deg 2theta (CW) or relative Delta t / t (ToF)
        self.hkl = torch.as_tensor(groups.hkl, dtype=torch.float64)
        self.x_t = torch.as_tensor(x, dtype=torch.float64)
        s = 2.0 * (x - x[0]) / (x[-1] - x[0]) - 1.0
        self.background_basis = np.polynomial.chebyshev.chebvander(s, background_order)  # [N, order + 1]
        self.line_weights = torch.as_tensor(instrument.line_weights(torch.float64, torch.device("cpu")))

    # ---- differentiable part ------------------------------------------------------------------------------
    def _instrument(self, p: torch.Tensor) -> tuple[torch.Tensor, Instrument, torch.Tensor | None]:
        """Lattice [6], the instrument with p's zero and widths (tensors), and the displacement (or None)."""
        n_cell = self.cell_model.n_free
        lattice = self.cell_model.full(p[:n_cell])
        fields: dict[str, torch.Tensor] = {}
        displacement = None
        for i, name in enumerate(self.names[n_cell:], start=n_cell):
            if name == "displacement":
                displacement = p[i]
            else:
                fields[name] = p[i]
        if self.blur > 0:  # a Gaussian blur adds its FWHM^2 (CW: W term) or variance (ToF: the d^2 term)
            if self.instrument.geometry == "cw":
                fields["W"] = fields.get("W", p.new_tensor(self.instrument.W)) + self.blur**2
            else:
                extra = (self.blur * self.instrument.difc / _FWHM_PER_SIGMA) ** 2
                fields["sig_1"] = fields.get("sig_1", p.new_tensor(self.instrument.sig_1)) + extra
        return lattice, dataclasses.replace(self.instrument, **fields), displacement

    def peak_positions(self, p: torch.Tensor) -> tuple[torch.Tensor, Instrument]:
        """Positions [K, L] (x units) of every reflection group and line, and the instrument at p."""
        lattice, inst, displacement = self._instrument(p)
        d = d_spacings(lattice, self.hkl)
        positions = inst.peak_positions(d)
        if displacement is not None:  # Bragg-Brentano sample displacement: Delta 2theta proportional to cos theta
            theta = torch.deg2rad(positions - inst.zero) / 2
            positions = positions + displacement * torch.cos(theta)
        return positions, inst

    def peaks(self, p: torch.Tensor) -> torch.Tensor:
        """Per peak (group k, line l flattened to k L + l): centre and shape quantities [K L, 1 + Q] (differentiable).

        The shape quantities are those `Instrument.profile` evaluates at a peak (CW: FWHM and eta; ToF: alpha,
        beta, sigma^2); computing them once per peak, not per grid point, is what keeps the fit fast.
        """
        positions, inst = self.peak_positions(p)
        centre = positions.reshape(-1)
        safe = torch.where(torch.isfinite(centre), centre, torch.full_like(centre, float(self.x[0])))
        # Instrument's own per-peak shape functions (what Instrument.profile evaluates before the profile itself)
        shape = inst._cw_widths(safe) if inst.geometry == "cw" else inst._tof_parameters(safe)
        return torch.stack([centre, *shape], -1)

    def _profile(self, delta: torch.Tensor, quantities: torch.Tensor) -> torch.Tensor:
        """Unit-area profile at offsets delta [S] for per-sample peak quantities [S, 1 + Q] (as Instrument.profile)."""
        if self.instrument.geometry == "cw":
            return profiles.pseudo_voigt(delta, quantities[:, 1], quantities[:, 2])
        return profiles.back_to_back_exponential_gauss(delta, quantities[:, 1], quantities[:, 2], quantities[:, 3])

    def _reach(self, quantities: np.ndarray) -> np.ndarray:
        """How far (x units) each peak's profile is evaluated."""
        if self.instrument.geometry == "cw":
            fwhm, eta = quantities[:, 1], np.clip(quantities[:, 2], 1e-3, 1.0)
            lorentz = np.tan(np.pi / 2 * (1 - 1e-3 / eta)) / 2  # at most 1e-3 of a Lorentzian's area beyond
            return np.clip(lorentz, self.instrument.profile_cutoff, _MAX_REACH_FWHM) * fwhm
        alpha, beta, sigma2 = (torch.as_tensor(quantities[:, i]) for i in (1, 2, 3))
        return self.instrument.profile_cutoff * profiles.back_to_back_fwhm(alpha, beta, sigma2).numpy()

    def _samples(self, quantities: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(grid point, peak) of every point within reach of the given groups' peaks (all lines)."""
        n_lines = self.line_weights.numel()
        peak = (groups[:, None] * n_lines + np.arange(n_lines)).ravel()
        peak = peak[np.isfinite(quantities[peak, 0])]
        centre, reach = quantities[peak, 0], self._reach(quantities[peak])
        lo = np.searchsorted(self.x, centre - reach)
        counts = np.maximum(np.searchsorted(self.x, centre + reach) - lo, 0)
        offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(lo, counts) + offsets, np.repeat(peak, counts)

    def sample_values(self, quantities: torch.Tensor, point: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        """Line-weighted profile value of each (grid point, peak) sample; quantities [S, 1 + Q] per sample."""
        line = peak % self.line_weights.numel()
        return self._profile(self.x_t[point] - quantities[:, 0], quantities) * self.line_weights[line]

    # ---- linear part --------------------------------------------------------------------------------------
    def evaluate(self, values: np.ndarray, ridge: float = 1e-9) -> _Evaluation:
        """Solve for intensities and background at p = values; cost = sum w (y - y_calc)^2."""
        p = torch.as_tensor(values, dtype=torch.float64)
        with torch.no_grad():
            quantities = self.peaks(p)
        n_lines = self.line_weights.numel()
        first = quantities[::n_lines, 0].numpy()
        n_groups = len(first)
        in_range = np.isfinite(first) & (first >= self.x[0]) & (first <= self.x[-1])
        failed = _Evaluation(math.inf, np.zeros_like(self.y), np.zeros_like(self.y), np.zeros(n_groups), first,
                             np.zeros(n_groups, bool), None, None, None)
        if not np.all(np.isfinite(values)) or not in_range.any() or not torch.isfinite(quantities[:, 1:]).all():
            return failed
        point, peak = self._samples(quantities.numpy(), np.flatnonzero(in_range))
        with torch.no_grad():
            profile = self.sample_values(quantities[peak], torch.as_tensor(point), torch.as_tensor(peak)).numpy()
        if not np.all(np.isfinite(profile)):
            return failed
        group = peak // n_lines
        active = in_range.copy()
        for attempt in range(6):  # drop groups whose least-squares intensity is negative, then solve again
            use = active[group]
            columns = np.cumsum(active) - 1  # column of each active group
            n_active = int(active.sum())
            peaks = sparse.csc_matrix((profile[use], (point[use], columns[group[use]])), shape=(len(self.x), n_active))
            design = sparse.hstack([peaks, sparse.csc_matrix(self.background_basis)], format="csc")
            weighted = (sparse.diags(self.root_weight) @ design).tocsc()
            normal = (weighted.T @ weighted).tocsc()
            diagonal = normal.diagonal()
            normal = normal + sparse.diags(ridge * diagonal + 1e-12 * diagonal.max())
            factor = sparse_linalg.splu(normal.tocsc())
            solution = factor.solve(weighted.T @ (self.root_weight * self.y))
            negative = np.zeros(n_groups, bool)
            negative[np.flatnonzero(active)] = solution[:n_active] < 0
            if not negative.any() or attempt == 5:
                break
            active &= ~negative
        intensities = np.zeros(n_groups)
        intensities[np.flatnonzero(active)] = np.maximum(solution[:n_active], 0.0)
        background = self.background_basis @ solution[n_active:]
        calculated = peaks @ np.maximum(solution[:n_active], 0.0) + background
        cost = float(np.sum(self.weight * (self.y - calculated) ** 2))
        use = active[group]
        return _Evaluation(cost, calculated, background, intensities, first, active, weighted, factor, (point[use], peak[use]))

    def projected_jacobian(self, values: np.ndarray, ev: _Evaluation) -> np.ndarray:
        """Weighted Jacobian of y_calc in p at fixed intensities, projected off the span of the linear columns
        (Kaufman's variable-projection Jacobian) [N, P].

        Chain rule in two levels: per peak, d(centre, shape)/dp by forward-mode autograd (few peaks); per grid
        sample, d(profile)/d(centre, shape) by one reverse pass (each sample depends on its own peak only).
        """
        point, peak = (torch.as_tensor(a) for a in ev.windows)
        p = torch.as_tensor(values, dtype=torch.float64)
        peak_jacobian = torch.func.jacfwd(self.peaks)(p)  # [K L, 1 + Q, P]
        with torch.no_grad():
            quantities = self.peaks(p)[peak]
        quantities.requires_grad_(True)
        n_lines = self.line_weights.numel()
        intensity = torch.as_tensor(ev.intensities)[peak // n_lines]
        (intensity * self.sample_values(quantities, point, peak)).sum().backward()
        per_sample = torch.einsum("sq,sqp->sp", quantities.grad, peak_jacobian[peak])
        jacobian = torch.zeros(len(self.x), len(values), dtype=torch.float64).index_add(0, point, per_sample).numpy()
        weighted = self.root_weight[:, None] * jacobian
        return weighted - ev.design @ ev.factor.solve(np.asarray(ev.design.T @ weighted))


def _levenberg_marquardt(model: _LeBailModel, values: np.ndarray, max_iter: int) -> tuple[np.ndarray, _Evaluation, np.ndarray, bool]:
    """Minimise the variable-projection cost over p; returns p, its evaluation, the projected Jacobian at p and
    whether the cost converged (relative decrease below 1e-8, or a step too small to change it)."""
    ev = model.evaluate(values)
    if not math.isfinite(ev.cost):
        raise ValueError("the starting parameters give no peaks inside the fitted range")
    damping, converged = 1e-3, False
    jacobian = model.projected_jacobian(values, ev)
    for _ in range(max_iter):
        residual = model.root_weight * (model.y - ev.calculated)
        hessian = jacobian.T @ jacobian
        gradient = jacobian.T @ residual
        scale = np.maximum(np.diag(hessian), 1e-30 * max(np.diag(hessian).max(), 1e-300))
        improved = False
        while damping < 1e12:
            try:
                step = np.linalg.solve(hessian + damping * np.diag(scale), gradient)
            except np.linalg.LinAlgError:
                damping *= 10
                continue
            trial = model.evaluate(values + step)
            if trial.cost < ev.cost:
                decrease = (ev.cost - trial.cost) / ev.cost
                values, ev = values + step, trial
                damping = max(damping / 3, 1e-9)
                improved = True
                break
            damping *= 4
        if not improved:
            converged = True  # no step lowers the cost: a minimum to machine precision
            break
        jacobian = model.projected_jacobian(values, ev)
        if decrease < 1e-8:
            converged = True
            break
    return values, ev, jacobian, converged


def _blur(x: np.ndarray, y: np.ndarray, fwhm: float, geometry: str) -> np.ndarray:
    """y convolved with a unit-area Gaussian of the given FWHM in 2theta (CW) or in ln t (ToF, relative width)."""
    if fwhm <= 0:
        return y
    u = x if geometry == "cw" else np.log(x)
    step = float(np.median(np.diff(u)))
    uniform = np.arange(u[0], u[-1] + 0.5 * step, step)
    values = np.interp(uniform, u, y)
    sigma = fwhm / _FWHM_PER_SIGMA / step
    half = int(math.ceil(4 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    smoothed = np.convolve(values, kernel, mode="same") / np.convolve(np.ones_like(values), kernel, mode="same")
    return np.interp(u, uniform, smoothed)


def _estimate_fwhm(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(position, FWHM) of the strongest peak, measured on the data above a median background."""
    background = float(np.median(y))
    top = int(np.argmax(y))
    half = background + 0.5 * (y[top] - background)
    left, right = top, top
    while left > 0 and y[left] > half:
        left -= 1
    while right < len(y) - 1 and y[right] > half:
        right += 1
    return float(x[top]), float(x[right] - x[left])


def _matched_widths(inst: Instrument, x: np.ndarray, y: np.ndarray) -> Instrument:
    """The instrument with its widths scaled so that its FWHM matches the strongest measured peak's (when they
    differ by more than 1.5x: a preset's widths may not be the measuring instrument's)."""
    position, measured = _estimate_fwhm(x, y)
    model = float(inst.fwhm(torch.tensor([position], dtype=torch.float64))[0])
    ratio = measured / model if model > 0 else 1.0
    if 1 / 1.5 < ratio < 1.5 or not math.isfinite(ratio) or measured <= 0:
        return inst
    if inst.geometry == "cw":
        return dataclasses.replace(inst, U=inst.U * ratio**2, V=inst.V * ratio**2, W=inst.W * ratio**2,
                                   X=inst.X * ratio, Y=inst.Y * ratio)
    return dataclasses.replace(inst, sig_0=inst.sig_0 * ratio**2, sig_1=inst.sig_1 * ratio**2,
                               sig_2=inst.sig_2 * ratio**2, alpha=inst.alpha / ratio, beta_0=inst.beta_0 / ratio,
                               beta_1=inst.beta_1 / ratio)


def _d_range(inst: Instrument, x_lo: float, x_hi: float, margin: float) -> tuple[float, float]:
    """d-spacings whose peaks can fall in [x_lo, x_hi] when d changes by the relative margin."""
    if inst.geometry == "cw":
        theta_lo = math.radians(max(x_lo - inst.zero, 1e-3) / 2)
        theta_hi = math.radians(min(x_hi - inst.zero, 179.9) / 2)
        d_min, d_max = min(inst.wavelengths) / (2 * math.sin(theta_hi)), max(inst.wavelengths) / (2 * math.sin(theta_lo))
    else:
        d_min, d_max = inst.d_from_tof(x_lo), inst.d_from_tof(x_hi)
    return d_min * (1 - margin), d_max * (1 + margin)


def refine_cell(
    x: np.ndarray,
    y: np.ndarray,
    *,
    instrument: Instrument,
    space_group: int | str,
    cell: Sequence[float],
    sigma: np.ndarray | None = None,
    x_range: tuple[float, float] | None = None,
    background_order: int = 6,
    refine_widths: bool = True,
    refine_zero: bool = True,
    refine_displacement: bool = False,
    width_names: Sequence[str] | None = None,
    start_error: float = 0.02,
    max_iter: int = 60,
) -> RefinementResult:
    """Refine the lattice parameters (with zero shift and profile widths) against a measured pattern, Le Bail-like.

    x: 2theta (deg, CW) or time of flight (µs, ToF), as the instrument's geometry says; y: intensities; sigma:
    their standard uncertainties (default sqrt(y), counting statistics). instrument: wavelength(s) and line
    ratios or DIFC/DIFA, starting zero and widths (only the instrument's calibration is used, not its grid).
    space_group: ITA number (standard setting) or a Hermann-Mauguin symbol naming the cell's setting
    ('P 1 21/n 1'). cell: starting (a, b, c, alpha, beta, gamma) in Å and degrees, within about start_error
    (relative) of the answer; it is constrained to the group's crystal system. x_range: (lo, hi) to fit.
    width_names: which instrument width fields to refine (default U, V, W, X, Y for CW; alpha, beta_0, sig_1,
    sig_2 for ToF). refine_displacement: a Bragg-Brentano sample-displacement shift proportional to cos theta (CW).
    """
    x, y, sigma = _prepare(x, y, sigma, x_range)
    setting = SpaceGroupSetting.from_key(space_group)
    cell_model = CellModel.for_system(setting.crystal_system, cell)
    inst = _matched_widths(instrument, x, y)
    d_min, d_max = _d_range(inst, x[0], x[-1], margin=2 * start_error + 0.01)
    groups = allowed_reflections(cell_model, setting, d_min, d_max)
    if len(groups) == 0:
        raise ValueError("no allowed reflections in the fitted range for this cell and space group")
    if width_names is None:
        width_names = CW_WIDTHS if inst.geometry == "cw" else TOF_WIDTHS
    shifts = (["zero"] if refine_zero else []) + (["displacement"] if refine_displacement and inst.geometry == "cw" else [])
    names = list(cell_model.free_names) + shifts + (list(width_names) if refine_widths else [])
    start = [getattr(inst, n) if n != "displacement" else 0.0 for n in names[cell_model.n_free:]]
    values = np.concatenate([cell_model.initial(), np.array(start, dtype=np.float64)])
    threads = torch.get_num_threads()
    # the tensors here are small (<= 1e6 elements): more threads only add synchronisation, ten times over on a
    # loaded machine
    torch.set_num_threads(1)
    try:
        model, values, ev, jacobian, converged = _fit_in_stages(
            x, y, 1.0 / sigma**2, inst, cell_model, groups, names, values, background_order, start_error, max_iter
        )
    finally:
        torch.set_num_threads(threads)
    return _result(model, values, names, ev, jacobian, converged, cell_model, setting, groups)


def _prepare(x: np.ndarray, y: np.ndarray, sigma: np.ndarray | None, x_range: tuple[float, float] | None):
    """Sorted finite points inside x_range with positive sigma (default: counting statistics)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape or len(x) < 10:
        raise ValueError("x and y must be 1-d arrays of the same length (at least 10 points)")
    if sigma is None:  # counting statistics; the median floor keeps background-subtracted (net) points near 0
        # from weights of 1 / y
        sigma = np.sqrt(np.maximum(y, max(float(np.median(np.abs(y))), 1.0)))
    sigma = np.asarray(sigma, dtype=np.float64).ravel()
    if sigma.shape != x.shape:
        raise ValueError("sigma must have one value per point")
    order = np.argsort(x)
    x, y, sigma = x[order], y[order], sigma[order]
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(sigma) & (sigma > 0)  # sigma = inf: excluded point
    if x_range is not None:
        keep &= (x >= x_range[0]) & (x <= x_range[1])
    if keep.sum() < 10:
        raise ValueError("fewer than 10 usable points in the fitted range")
    return x[keep], y[keep], sigma[keep]


def _fit_in_stages(
    x: np.ndarray,
    y: np.ndarray,
    weight: np.ndarray,
    inst: Instrument,
    cell_model: CellModel,
    groups: ReflectionGroups,
    names: list[str],
    values: np.ndarray,
    background_order: int,
    start_error: float,
    max_iter: int,
) -> tuple[_LeBailModel, np.ndarray, _Evaluation, np.ndarray, bool]:
    """Coarse to fine: each stage assumes a relative cell error (start_error, /3, /9, ... then 0), admits the
    reflections of largest d (10 or 4 per cell parameter, 2.5 times more each stage) and blurs both patterns by
    the peak shift that error causes at the edge of their range. Coarse stages refine the cell, the zero and one
    width; the last refines everything on the whole unblurred pattern."""
    errors = [start_error / 3**k for k in range(4) if start_error / 3**k > 2e-4] + [0.0]
    n_first = max(10, 4 * cell_model.n_free)
    coarse = set(cell_model.free_names) | {"zero", "W" if inst.geometry == "cw" else "sig_1"}
    instrument_fields = {f.name for f in dataclasses.fields(Instrument)}
    for stage, error in enumerate(errors):
        final = error == 0.0
        stage_names = names if final else [n for n in names if n in coarse]
        index = [names.index(n) for n in stage_names]
        # parameters not refined in this stage stay at their current values
        stage_inst = dataclasses.replace(inst, **{n: v for n, v in zip(names, values) if n in instrument_fields})
        model = _LeBailModel(x, y, weight, stage_inst, cell_model, groups, stage_names, background_order, 0.0)
        lo, hi, blur = x[0], x[-1], 0.0
        n_groups = min(len(groups), int(n_first * 2.5**stage))
        if not final:
            with torch.no_grad():
                positions = model.peak_positions(torch.as_tensor(values[index]))[0][:, 0].numpy()
            positions = np.sort(positions[np.isfinite(positions)])
            if inst.geometry == "tof":
                positions = positions[::-1]  # largest d first
            if n_groups < len(positions):  # the range of the first n_groups reflections, with room for their peaks
                edge = positions[n_groups - 1]
                room = 4 * float(stage_inst.fwhm(torch.tensor([edge], dtype=torch.float64))[0]) + _shift(edge, error, stage_inst)
                lo, hi = (lo, min(hi, edge + room)) if inst.geometry == "cw" else (max(lo, edge - room), hi)
            blur = _shift(hi, error, stage_inst) if inst.geometry == "cw" else error
        window = (x >= lo) & (x <= hi)
        model = _LeBailModel(x[window], _blur(x[window], y[window], blur, inst.geometry), weight[window], stage_inst,
                             cell_model, groups, stage_names, background_order, blur)
        values[index], ev, jacobian, converged = _levenberg_marquardt(model, values[index], max_iter if final else 25)
    return model, values, ev, jacobian, converged


def _shift(x: float, error: float, inst: Instrument) -> float:
    """How far (x units) a peak at x moves when d changes by the relative error: 2 tan theta error (CW, in deg),
    error t (ToF)."""
    if inst.geometry == "cw":
        theta = math.radians(max(x - inst.zero, 1e-3) / 2)
        return math.degrees(2 * math.tan(min(theta, math.radians(85))) * error)
    return x * error


def _result(
    model: _LeBailModel,
    values: np.ndarray,
    names: list[str],
    ev: _Evaluation,
    jacobian: np.ndarray,
    converged: bool,
    cell_model: CellModel,
    setting: SpaceGroupSetting,
    groups: ReflectionGroups,
) -> RefinementResult:
    """Cell, uncertainties and agreement factors at the optimum."""
    n_linear = int(ev.active.sum()) + model.background_basis.shape[1]
    dof = max(len(model.x) - len(values) - n_linear, 1)
    chi2 = ev.cost / dof
    try:
        covariance = np.linalg.pinv(jacobian.T @ jacobian) * chi2
        sigma = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    except np.linalg.LinAlgError:
        sigma = np.full(len(values), np.nan)
    n_cell = cell_model.n_free
    lattice = cell_model.full(torch.as_tensor(values[:n_cell])).numpy()
    rwp = math.sqrt(ev.cost / float(np.sum(model.weight * model.y**2)))
    rexp = math.sqrt(dof / float(np.sum(model.weight * model.y**2)))
    named = dict(zip(names, values))
    named_sigma = dict(zip(names, sigma))
    width_names = [n for n in names[n_cell:] if n not in ("zero", "displacement")]
    in_range = ev.active | ((ev.positions >= model.x[0]) & (ev.positions <= model.x[-1]))
    return RefinementResult(
        cell=tuple(float(v) for v in lattice),
        cell_sigma=cell_model.full_sigma(sigma[:n_cell]),
        zero=float(named.get("zero", model.instrument.zero)),
        zero_sigma=float(named_sigma.get("zero", 0.0)),
        widths={n: float(named[n]) for n in width_names},
        widths_sigma={n: float(named_sigma[n]) for n in width_names},
        rwp=rwp,
        rexp=rexp,
        chi2=float(chi2),
        n_reflections=int(in_range.sum()),
        x=model.x,
        observed=model.y,
        calculated=ev.calculated,
        background=ev.background,
        converged=converged,
        space_group=setting.number,
        space_group_symbol=setting.symbol,
        crystal_system=setting.crystal_system,
        displacement=float(named["displacement"]) if "displacement" in named else None,
        displacement_sigma=float(named_sigma["displacement"]) if "displacement" in named else None,
        hkl=groups.hkl[in_range],
        peak_positions=ev.positions[in_range],
        x_label="2theta (deg)" if model.instrument.geometry == "cw" else "time of flight (µs)",
    )


def instrument_for(pattern, radiation: str | None = None, ka2: bool | None = None) -> Instrument:
    """An Instrument with a measured pattern's calibration (a `powdersym.io.MeasuredPattern`: unit, wavelength(s),
    K-alpha2 ratio, DIFC/DIFA/ZERO) and a preset's profile widths as the starting point (rescaled to the data by
    `refine_cell`).

    ka2: add Cu K-alpha2 (1.544414 Å, half the K-alpha1 intensity) to a lone 1.5405-1.5406 Å (Cu K-alpha1)
    wavelength; None adds it for X-rays only.
    """
    if pattern.unit == "two_theta":
        radiation = radiation or "xray"
        base = preset("xray-cuka" if radiation == "xray" else "neutron-cw")
        wavelengths, weights = (float(pattern.wavelength),), (1.0,)
        if pattern.wavelength2:
            wavelengths, weights = (wavelengths[0], float(pattern.wavelength2)), (1.0, float(pattern.ka2_ratio or 0.5))
        elif (radiation == "xray" if ka2 is None else ka2) and abs(wavelengths[0] - CU_KA[0][0]) < 2e-4:
            wavelengths, weights = (wavelengths[0], CU_KA[0][1]), CU_KA[1]
        return dataclasses.replace(base, radiation=radiation, wavelengths=wavelengths, wavelength_weights=weights,
                                   zero=float(pattern.zero or 0.0))
    if pattern.unit == "tof":
        return preset("neutron-tof", difc=float(pattern.difc), difa=float(pattern.difa or 0.0),
                      zero=float(pattern.zero or 0.0), x_min=float(pattern.x[0]), x_max=float(pattern.x[-1]))
    raise ValueError(f"cell refinement needs a 2theta or time-of-flight pattern, not {pattern.unit!r}")


def refine_pattern(pattern, *, space_group: int | str, cell: Sequence[float], radiation: str | None = None,
                   instrument: Instrument | None = None, **options) -> RefinementResult:
    """`refine_cell` on a measured pattern (`powdersym.io.read_pattern`), its calibration taken from the file
    unless an instrument is given; options as for `refine_cell`."""
    instrument = instrument or instrument_for(pattern, radiation)
    return refine_cell(pattern.x, pattern.y, instrument=instrument, space_group=space_group, cell=cell,
                       sigma=pattern.sigma, **options)
