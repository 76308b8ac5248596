"""The forward model: crystals in, powder patterns on an instrument's grid out (batched, CPU or CUDA)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from powdersym.simulate.instruments import Instrument, preset
from powdersym.simulate.perturb import Perturbation, intensity_factors, node_broadening, orientation_factors, shift_positions
from powdersym.simulate.reflections import Reflections, enumerate_reflections, reciprocal_metric, structure_factor_squared
from powdersym.simulate.render import render, render_plan
from powdersym.simulate.scattering import Neutron, XRay, radiation as default_radiation
from powdersym.structures.crystal import Crystal, CrystalBatch, lattice_matrix


@dataclass
class Sticks:
    """Integrated peak intensities before profiles: one stick per reflection and wavelength line.

    positions, intensities: [B, R, L] (x units; NaN position = none); reflections: the hkl list [B, R];
    f2: |F|^2 [B, R]; multiplicity 2 per half-sphere reflection (Friedel pair) is included in intensities.
    """

    positions: torch.Tensor
    intensities: torch.Tensor
    reflections: Reflections
    f2: torch.Tensor


def _as_batch(crystals: CrystalBatch | Crystal | Sequence[Crystal], device, dtype) -> CrystalBatch:
    if isinstance(crystals, CrystalBatch):
        return crystals if device is None else crystals.to(device)
    if isinstance(crystals, Crystal):
        crystals = [crystals]
    return CrystalBatch.from_crystals(list(crystals), device=device or "cpu", dtype=dtype)


def compute_sticks(
    batch: CrystalBatch,
    instrument: Instrument,
    radiation: XRay | Neutron | None = None,
    margin: float = 0.0,
    check: bool = True,
    perturbation: Perturbation | None = None,
) -> Sticks:
    """Reflections, |F|^2, Lorentz(-polarisation), multiplicity and line weights for a batch of crystals,
    with a perturbation's shifts and preferred orientation applied when given."""
    radiation = radiation or default_radiation(instrument.radiation)
    if isinstance(radiation, Neutron) and check:
        radiation.check(batch.species[batch.mask])
    d_min, d_max = instrument.d_spacing_range(margin)
    refl = enumerate_reflections(batch.lattice, d_min, d_max)
    f2 = structure_factor_squared(batch, refl, radiation)
    positions = instrument.peak_positions(refl.d)  # [B, R, L]
    lp = instrument.lorentz_polarisation(refl.d, positions, radiation.polarised)
    weights = instrument.line_weights(positions.dtype, positions.device)
    intensities = 2.0 * f2[..., None] * lp * weights  # 2: both members of the Friedel pair
    if perturbation is not None:
        positions = shift_positions(positions, instrument, perturbation)
        factors = orientation_factors(refl.hkl, refl.d, reciprocal_metric(batch.lattice), perturbation)
        if factors is not None:
            intensities = intensities * factors[..., None]
        jitter = intensity_factors(refl.d, perturbation)
        if jitter is not None:
            intensities = intensities * jitter[..., None]
    missing = ~refl.mask[..., None] | torch.isnan(positions)
    positions = torch.where(missing, torch.nan, positions)
    intensities = torch.where(missing, torch.zeros_like(intensities), intensities)
    return Sticks(positions=positions, intensities=intensities, reflections=refl, f2=f2)


def simulate(
    crystals: CrystalBatch | Crystal | Sequence[Crystal],
    instrument: Instrument | str = "neutron-cw",
    radiation: XRay | Neutron | None = None,
    *,
    normalise: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    chunk_size: int | None = None,
    perturbation: Perturbation | None = None,
) -> torch.Tensor:
    """Powder patterns [B, n_points] on the instrument's grid (`instrument.grid()`), max-normalised to 1.

    crystals: a CrystalBatch (any device) or Crystal objects. Differentiable with respect to the batch's
    lattice parameters and coordinates. perturbation: per-crystal sample effects (shifts, preferred
    orientation, broadening), for augmentation.
    """
    inst = preset(instrument) if isinstance(instrument, str) else instrument
    batch = _as_batch(crystals, device, dtype)
    plan = render_plan(inst, str(batch.device), batch.lattice.dtype)
    if chunk_size is None:  # small chunks keep the [chunk, reflections, atoms] arrays in a CPU's cache
        chunk_size = 1024 if batch.device.type == "cuda" else 4
    radiation = radiation or default_radiation(inst.radiation)
    if isinstance(radiation, Neutron):
        radiation.check(batch.species[batch.mask])
    # crystals of similar cell volume (hence number of reflections) share a chunk, so little is padding
    volume = torch.linalg.det(lattice_matrix(batch.lattice.detach()))
    order = torch.argsort(volume)
    patterns = []
    for index in _chunks(order, volume, batch.mask.sum(1), inst, plan.margin, chunk_size):
        part = batch[index]
        effects = None if perturbation is None else perturbation.select(index)
        sticks = compute_sticks(part, inst, radiation, margin=plan.margin, check=False, perturbation=effects)
        b = len(part)
        broadening = node_broadening(inst, plan.nodes, effects) if effects is not None and effects.broadens else None
        patterns.append(render(sticks.positions.reshape(b, -1), sticks.intensities.reshape(b, -1), inst, broadening))
    pattern = torch.cat(patterns)[torch.argsort(order)]  # back to the caller's order
    if normalise:
        pattern = pattern / pattern.amax(1, keepdim=True).clamp(min=torch.finfo(pattern.dtype).tiny)
    return pattern


def _chunks(order: torch.Tensor, volume: torch.Tensor, n_atoms: torch.Tensor, inst: Instrument, margin: float, size: int):
    """Index chunks of at most `size` crystals (in order of cell volume) whose work stays within two memory budgets
    on a GPU, so that large random cells do not exhaust its memory: [reflections x atoms] of the structure factors
    (about 2^28 elements) and the peaks rendered, padded to the chunk's largest cell (2^25 sticks, ~8 GB at the
    peak of `render`)."""
    if order.device.type != "cuda":
        yield from order.split(size)
        return
    d_min = inst.d_spacing_range(margin)[0]
    # half the reflections in the sphere of radius 1/d_min: (2 pi / 3) V / d_min^3
    reflections = (2.1 * volume[order] / d_min**3).clamp(min=1)
    lines = 1 if inst.geometry == "tof" else len(inst.wavelengths)
    work = torch.stack([reflections * n_atoms[order].clamp(min=1), reflections * lines]).cpu()
    start, total = 0, 0.0
    for i, (w, sticks) in enumerate(zip(*work.tolist())):
        if i > start and (i - start >= size or total + w > 2**28 or (i - start + 1) * sticks > 2**25):
            yield order[start:i]
            start, total = i, 0.0
        total += w
    yield order[start:]


@dataclass
class PeakList:
    """Peaks of one crystal for one wavelength line, reflections of equal d merged.

    position: x (2theta deg or ToF µs); d (Å); intensity: integrated, relative (strongest = 100);
    multiplicity: number of hkl merged into the peak; hkl: one representative (largest h, k, l) per peak.
    """

    position: np.ndarray
    d: np.ndarray
    intensity: np.ndarray
    multiplicity: np.ndarray
    hkl: np.ndarray


def peak_list(
    crystal: Crystal,
    instrument: Instrument | str = "neutron-cw",
    radiation: XRay | Neutron | None = None,
    *,
    line: int = 0,
    d_tolerance: float = 1e-5,
    min_intensity: float = 1e-3,
) -> PeakList:
    """Merged peaks inside the instrument's range (float64), e.g. for tick marks or a comparison with a peak table.

    Peaks weaker than min_intensity (percent of the strongest) are dropped, like pymatgen's SCALED_INTENSITY_TOL.
    """
    inst = preset(instrument) if isinstance(instrument, str) else instrument
    batch = CrystalBatch.from_crystals([crystal], dtype=torch.float64)
    sticks = compute_sticks(batch, inst, radiation)
    pos = sticks.positions[0, :, line].numpy()
    inten = sticks.intensities[0, :, line].numpy()
    d = sticks.reflections.d[0].numpy()
    hkl = sticks.reflections.hkl[0].numpy().astype(int)
    grid = inst.grid()
    keep = np.isfinite(pos) & (pos >= grid[0]) & (pos <= grid[-1])
    pos, inten, d, hkl = pos[keep], inten[keep], d[keep], hkl[keep]
    order = np.argsort(-d, kind="stable")
    pos, inten, d, hkl = pos[order], inten[order], d[order], hkl[order]
    group = np.concatenate([[0], np.cumsum(np.diff(d) < -d_tolerance * d[1:])]) if len(d) else np.zeros(0, int)
    n = int(group[-1]) + 1 if len(group) else 0
    total = np.bincount(group, weights=inten, minlength=n)
    count = np.bincount(group, minlength=n) * 2  # Friedel mates
    first = np.searchsorted(group, np.arange(n))
    # representative hkl of a peak: the largest |h|, |k|, |l| (in that order of priority), e.g. 200 not 00-2
    a = np.abs(hkl)
    best = np.lexsort((-a[:, 2], -a[:, 1], -a[:, 0], group))
    rep = a[best[first]]
    relative = 100.0 * total / total.max() if n else total
    strong = relative >= min_intensity
    return PeakList(pos[first][strong], d[first][strong], relative[strong], count[strong], rep[strong])
