"""Peak positions and integrated intensities against pymatgen (an independent simulator): every spglib structure
(X-ray), and those of at most 100 atoms in the cell (neutron).

Conventions matched to pymatgen's: a single wavelength (no K-alpha2), no Debye-Waller factor, pymatgen's X-ray
form factors f = Z - 41.78214 s^2 sum a_i exp(-b_i s^2) (its ATOMIC_SCATTERING_PARAMS; powdersym's default
is International Tables IT92), Lorentz-polarisation (1 + cos^2 2theta) / (sin^2 theta cos theta) for X-rays
and 1 / (sin^2 theta cos theta) for neutrons, and pymatgen's neutron scattering lengths (they differ from
powdersym's Sears/periodictable values by up to ~5 % for a few elements, e.g. He 3.26 vs 3.10 fm).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pymatgen_core = pytest.importorskip("pymatgen.core")
from pymatgen.analysis.diffraction.neutron import ATOMIC_SCATTERING_LEN, NDCalculator  # noqa: E402
from pymatgen.analysis.diffraction.xrd import ATOMIC_SCATTERING_PARAMS, XRDCalculator  # noqa: E402

from powdersym.simulate import Neutron, XRay, peak_list, preset  # noqa: E402
from powdersym.structures import SPECIES, Crystal  # noqa: E402

WAVELENGTH = 1.5406
POSITION_TOL = 1e-3  # deg 2theta
INTENSITY_TOL = 0.02  # relative, for peaks above 1 % of the strongest
# neutron: cells of at most this many atoms (403 of 469 structures, every element of the set). The structure-factor
# sum is the X-ray test's, which takes every structure; pymatgen's neutron patterns over 3-155 deg of the 66 larger
# cells took 110 of the test's 170 s here (its time grows with atoms x cell volume)
NEUTRON_MAX_ATOMS = 100


class PymatgenFormFactors(XRay):
    """X-ray form factors in pymatgen's parametrisation, to compare like with like."""

    def scattering_factors(self, species: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        table = np.zeros((len(SPECIES), 5, 2))
        z = np.zeros(len(SPECIES))
        for i, symbol in enumerate(SPECIES[1:], start=1):
            if symbol in ATOMIC_SCATTERING_PARAMS:
                coeffs = np.asarray(ATOMIC_SCATTERING_PARAMS[symbol])
                table[i, : len(coeffs)] = coeffs
                z[i] = i
        coeffs = torch.as_tensor(table, dtype=s2.dtype)[species]  # [B, S, 5, 2]
        gauss = coeffs[:, None, :, :, 0] * torch.exp(-coeffs[:, None, :, :, 1] * s2[:, :, None, None])
        return torch.as_tensor(z, dtype=s2.dtype)[species][:, None, :] - 41.78214 * s2[..., None] * gauss.sum(-1)


def to_crystal(structure) -> Crystal:
    return Crystal(list(structure.lattice.parameters), structure.frac_coords, [s.symbol for s in structure.species])


def clusters(positions: np.ndarray, gap: float) -> np.ndarray:
    """Cluster index of each sorted position: a new cluster wherever two neighbours are > gap apart."""
    return np.concatenate([[0], np.cumsum(np.diff(positions) > gap)])


def compare(ours_x, ours_y, ref_x, ref_y) -> str | None:
    """None when the peak lists agree, else a description of the first disagreement."""
    ref_y = 100 * ref_y / ref_y.max()
    strong_ref = ref_y >= 1.0
    nearest = np.abs(ours_x[None, :] - ref_x[strong_ref, None]).min(1)
    if nearest.max() > POSITION_TOL:
        i = int(np.argmax(nearest))
        return f"peak at {ref_x[strong_ref][i]:.4f} deg: nearest powdersym peak {nearest[i]:.2e} deg away"
    # integrated intensities of groups of coincident peaks (either code may merge near-coincident reflections)
    x = np.concatenate([ours_x, ref_x])
    order = np.argsort(x)
    group = np.empty(len(x), dtype=int)
    group[order] = clusters(x[order], 2e-3)
    n = group.max() + 1
    ours = np.bincount(group[: len(ours_x)], weights=ours_y, minlength=n)
    ref = np.bincount(group[len(ours_x) :], weights=ref_y, minlength=n)
    ours, ref = 100 * ours / ours.max(), 100 * ref / ref.max()
    strong = (ref >= 1.0) | (ours >= 1.0)
    err = np.abs(ours - ref)[strong] / np.maximum(ours, ref)[strong]
    if err.max() > INTENSITY_TOL:
        i = int(np.argmax(err))
        where = x[group == np.flatnonzero(strong)[i]].mean()
        return f"peak(s) at {where:.3f} deg: intensity {ours[strong][i]:.2f} vs pymatgen {ref[strong][i]:.2f} (%)"
    return None


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("radiation", ["xray", "neutron"])
def test_spglib_structures_match_pymatgen(spglib_poscars, radiation):
    if radiation == "xray":
        inst = preset("xray-cuka", wavelengths=(WAVELENGTH,), wavelength_weights=(1.0,))
        calc, rad = XRDCalculator(wavelength=WAVELENGTH), PymatgenFormFactors()
    else:
        inst = preset("neutron-cw")
        lengths = [ATOMIC_SCATTERING_LEN.get(symbol, np.nan) for symbol in SPECIES]
        calc, rad = NDCalculator(wavelength=inst.wavelengths[0]), Neutron(lengths=np.asarray(lengths, dtype=float))
    failures, compared = [], 0
    for name, text, _ in spglib_poscars:
        structure = pymatgen_core.Structure.from_str(text, fmt="poscar")
        if radiation == "neutron" and len(structure) > NEUTRON_MAX_ATOMS:
            continue
        ref = calc.get_pattern(structure, scaled=True, two_theta_range=(inst.x_min, inst.x_max))
        ours = peak_list(to_crystal(structure), inst, rad, d_tolerance=1e-9, min_intensity=1e-4)
        problem = compare(ours.position, ours.intensity, np.asarray(ref.x), np.asarray(ref.y))
        compared += 1
        if problem:
            failures.append(f"{name}: {problem}")
    assert compared == (len(spglib_poscars) if radiation == "xray" else 403) and len(spglib_poscars) == 469
    assert not failures, f"{len(failures)} of {compared} disagree: " + "; ".join(failures[:10])
