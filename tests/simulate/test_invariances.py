"""Physics invariances of the simulator: what must not change the pattern, and absences against the tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from powdersym.simulate import simulate
from powdersym.simulate.reflections import enumerate_reflections, structure_factor_squared
from powdersym.simulate.scattering import Neutron
from powdersym.structures import Crystal, CrystalBatch
from powdersym.symmetry import enantiomorphic_partner, is_systematically_absent, space_group

TOL = 1e-5  # relative to the strongest point (patterns are max-normalised)


def pattern(crystal: Crystal, instrument: str = "neutron-cw") -> np.ndarray:
    return simulate(crystal, instrument, dtype=torch.float64)[0].numpy()


def lattice_for(system: str, rng: np.random.Generator) -> list[float]:
    a, b, c = rng.uniform(4, 9, 3)
    return {
        "triclinic": [a, b, c, *rng.uniform(75, 105, 3)],
        "monoclinic": [a, b, c, 90, rng.uniform(95, 115), 90],
        "orthorhombic": [a, b, c, 90, 90, 90],
        "tetragonal": [a, a, c, 90, 90, 90],
        "trigonal": [a, a, c, 90, 90, 120],
        "hexagonal": [a, a, c, 90, 90, 120],
        "cubic": [a, a, a, 90, 90, 90],
    }[system]


def general_position_crystal(number: int, rng: np.random.Generator, n_sites: int = 2) -> Crystal:
    """A crystal of space group `number`: atoms on random general positions, expanded by the group's operations."""
    group = space_group(number)
    coords, species = [], []
    for element in ("Fe", "O", "Si")[:n_sites]:
        point = rng.random(3)
        images = (group.rotations @ point + group.translations) % 1.0
        coords.append(images)
        species += [element] * len(images)
    return Crystal(lattice_for(group.crystal_system, rng), np.concatenate(coords), species, space_group=number)


@pytest.fixture(scope="module")
def crystals() -> list[Crystal]:
    rng = np.random.default_rng(7)
    return [general_position_crystal(n, rng) for n in (2, 14, 62, 139, 167, 194, 227)]


def test_origin_shift_leaves_pattern_unchanged(crystals):
    rng = np.random.default_rng(1)
    for c in crystals:
        shifted = Crystal(c.lattice, (c.frac_coords + rng.random(3)) % 1.0, c.species)
        assert np.abs(pattern(c) - pattern(shifted)).max() < TOL


def test_supercell_leaves_pattern_unchanged(crystals):
    for c in crystals[:4]:
        n = c.n_atoms
        images = np.concatenate([c.frac_coords + [i, j, 0] for i in range(2) for j in range(3)]) / [2, 3, 1]
        lattice = c.lattice * [2, 3, 1, 1, 1, 1]
        supercell = Crystal(lattice, images, c.species * 6)
        assert supercell.n_atoms == 6 * n
        assert np.abs(pattern(c) - pattern(supercell)).max() < TOL


def test_other_setting_leaves_pattern_unchanged(crystals):
    """Relabelled axes (a, b, c) -> (b, c, a), and an F-centred cubic cell against its rhombohedral primitive cell."""
    for c in crystals:
        a, b, cc, al, be, ga = c.lattice
        cyclic = Crystal([b, cc, a, be, ga, al], c.frac_coords[:, [1, 2, 0]], c.species)
        assert np.abs(pattern(c) - pattern(cyclic)).max() < TOL
    fcc = crystals[-1]  # Fd-3m, F-centred cubic
    a = fcc.lattice[0]
    to_primitive = np.array([[0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])  # primitive vectors in conventional units
    frac = fcc.frac_coords @ np.linalg.inv(to_primitive)
    frac = frac - np.floor(frac + 1e-9)
    unique = np.unique(np.round(frac, 8) % 1.0, axis=0, return_index=True)[1]
    species = [fcc.species[i] for i in unique]
    primitive = Crystal([a / np.sqrt(2)] * 3 + [60.0] * 3, frac[unique], species)
    assert primitive.n_atoms * 4 == fcc.n_atoms
    assert np.abs(pattern(fcc) - pattern(primitive)).max() < TOL


def test_enantiomorphic_pairs_give_identical_patterns():
    rng = np.random.default_rng(3)
    pairs = [(n, enantiomorphic_partner(n)) for n in range(1, 231) if (enantiomorphic_partner(n) or 0) > n]
    assert len(pairs) == 11
    for number, partner in pairs:
        c = general_position_crystal(number, rng)
        mirror = Crystal(c.lattice, (-c.frac_coords) % 1.0, c.species)  # inversion turns P4_1 into P4_3 etc.
        assert np.abs(pattern(c) - pattern(mirror)).max() < TOL, (number, partner)


@pytest.mark.parametrize("chunk", [range(1, 116), range(116, 231)])
def test_absences_emerge_from_structure_factors_for_every_space_group(chunk):
    """Reflections with |F|^2 = 0 for atoms on general positions are exactly the tables' systematic absences."""
    rng = np.random.default_rng(11)
    for number in chunk:
        c = general_position_crystal(number, rng, n_sites=3)
        batch = CrystalBatch.from_crystals([c], dtype=torch.float64)
        refl = enumerate_reflections(batch.lattice, d_min=1.0)
        f2 = structure_factor_squared(batch, refl, Neutron())[0].numpy()
        hkl = refl.hkl[0].numpy().astype(int)
        zero = f2 < 1e-12 * f2.max()
        expected = is_systematically_absent(number, hkl)
        assert np.array_equal(zero, expected), f"space group {number}: {np.sum(zero != expected)} reflections differ"


def test_batch_of_mixed_sizes_equals_one_by_one(crystals):
    batch = simulate(crystals, "xray-cuka", dtype=torch.float64).numpy()
    for i, c in enumerate(crystals):
        assert np.abs(batch[i] - pattern(c, "xray-cuka")).max() < 1e-9


def test_gradients_match_finite_differences():
    """The forward model is differentiable in lattice parameters and coordinates (used by cell refinement)."""
    rng = np.random.default_rng(5)
    c = general_position_crystal(14, rng)
    batch = CrystalBatch.from_crystals([c], dtype=torch.float64)
    weights = torch.as_tensor(rng.random(3041))

    def loss(lattice: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        b = CrystalBatch(lattice, coords, batch.species, batch.occupancy, batch.b_iso, batch.mask)
        return (simulate(b, "neutron-cw", normalise=False) * weights).sum()

    lattice = batch.lattice.clone().requires_grad_(True)
    coords = batch.frac_coords.clone().requires_grad_(True)
    loss(lattice, coords).backward()
    eps = 1e-6
    for index, tensor, grad in (((0, 1), lattice, lattice.grad), ((0, 3, 2), coords, coords.grad)):
        plus, minus = tensor.detach().clone(), tensor.detach().clone()
        plus[index] += eps
        minus[index] -= eps
        args_plus = (plus, batch.frac_coords) if tensor is lattice else (batch.lattice, plus)
        args_minus = (minus, batch.frac_coords) if tensor is lattice else (batch.lattice, minus)
        numeric = (loss(*args_plus) - loss(*args_minus)) / (2 * eps)
        assert torch.isclose(grad[index], numeric, rtol=1e-3), (index, float(grad[index]), float(numeric))

