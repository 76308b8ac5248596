"""Random crystals of any of the 230 space groups, generated as batched tensors (CPU or CUDA) for training.

    groups = sample_space_groups(4096, label_set="bravais", generator=g)   # balanced over the 14 Bravais lattices
    crystals = random_crystals(groups, RandomCrystalConfig(max_atoms=48), generator=g)
    simulate(crystals.batch, "xray-cuka")

How one crystal is made (every step is tensor indexing over the whole batch; Python loops run over sites, candidate
rounds and attempts only):

1. Wyckoff sites. The number of sites is drawn from `n_sites_weights`; the sites are drawn one after another among
   the group's Wyckoff positions that still fit the atom budget (`max_atoms`, raised for the few groups whose
   smallest combination with exactly their symmetry is larger: `minimum_atoms()`), weighted by their degrees of
   freedom (`dof_weights`). A position without free parameters is used at most once.
2. Exact symmetry. A set of atoms can have more symmetry than the group it was built in (one atom in P1 is
   centrosymmetric; 2f of P4/mmm alone is C-centred...). For a generic point every Wyckoff orbit has a symmetry
   group of its own, its eigensymmetry, and the crystal's group is the intersection of those of its sites. That is
   computed exactly, once per process (about 1.5 s), for all 1731 positions (`_orbit_symmetry`: an operation of the
   lattice's holohedry maps the orbit onto itself for all values of its free parameters iff it maps the orbit's
   affine rows, rotation and translation in 24ths, onto each other), and stored per group as bit sets of the
   operations beyond the group's own. A site combination is kept only if the bit sets of its sites have an empty
   intersection (one site alone: only if its orbit has no extra symmetry at all). The last site is preferably
   chosen to close the intersection; a combination that still fails is redrawn, and after `max_site_attempts` one
   of the cheapest valid combinations of up to three sites is taken. Two sites of one element could still swap
   into each other: this happens only for rigid sites (orbits whose free parameters move all atoms together: fixed
   points, atoms on polar axes), so each rigid site gets an element of its own.
3. Elements: the number of elements from `n_elements_weights`, the elements from `species` by `species_weights`
   (without replacement), every element used at least once.
4. Lattice: ratios b/a, c/a log-uniform in `axis_ratio`, angles in `monoclinic_beta` / `triclinic_angles`, the cell
   reduced (|x.y| <= min(|x|, |y|)^2 / 2 for each pair of axes) and kept `metric_gap` (relative) and `angle_gap`
   (degrees) away from values where the lattice itself has a higher symmetry (tetragonal c/a = 1; orthorhombic
   a = b, b = c, a = c; C- or A-centred face edges in ratio sqrt 3 (hexagonal); I-tetragonal c/a = sqrt 2 (cubic F);
   rhombohedral c/a = sqrt(3/8), sqrt(3/2), sqrt 6 (cubic I, P, F); monoclinic beta = 90, triclinic angles = 90).
   Cell volume = volume_factor * sum of atomic volumes, v = 4/3 pi (r_cov^3 + r_vdW^3) / 2 (gemmi's covalent radii,
   Cordero et al. 2008, and van der Waals radii; the mean of the two spheres is pyxtal's choice too).
5. Coordinates: sites are placed one after another (fixed points first, then the largest orbits); each takes the
   first of up to `candidates` random draws whose atoms are at least max(min_distance_factor * (r_cov,i + r_cov,j),
   min_distance) from every atom placed before and from each other (distances from the site's first atom to all
   atoms, nearest periodic image; this covers every pair because the group's operations are isometries), or the
   draw that comes closest. Free coordinates stay `special_margin` Å away from multiples of 1/24, where supergroup
   symmetry elements sit. A crystal whose closest pair is still too close is scaled up (fractional coordinates, so
   symmetry, unchanged) if its volume factor stays within range, otherwise drawn again from step 1 (up to
   `max_attempts` times; the last draw is scaled whatever its volume, and `RandomCrystals.attempts` says so).

Speed (balanced groups; `benchmarks/crystal_generation.py`): about 2,700 crystals/s in one CPU process (batches of
4000), 4,300-5,100 in two, against 8-20 for pyxtal on one core; on one H100 28k / 62k / 87k crystals/s for batches of
20k / 50k / 100k (kernel launches dominate: use large batches). Intra-op threads do not help (the tensors are
small), so the CPU path runs on one; use DataLoader workers for more cores.

Exact symmetry, measured with spglib on 230 x 20 crystals (CPU) and 230 x 10 (CUDA): all but one have the
requested group at symprec 1e-3 (the one: a coordinate 4e-5 Å from 1/2); at symprec 0.01 about 0.2 % and at 0.1
about 2 % come out higher (coincidences between coordinates of different sites along polar axes, or between x and y,
which a tolerance of 0.1 Å makes likely in small cells). Re-check with spglib where labels must hold at a loose
tolerance.

Default distributions and where they come from (approximate, not fitted):
- `max_atoms` 64 atoms in the conventional cell, `n_sites_weights`, `n_elements_weights`, `dof_weights`: the 460
  undistorted spglib test structures in ../shared/data (real compounds, one or more per space group, so biased to
  high symmetry): median 32 atoms in the conventional cell, 75 % have <= 64; of those, 1/2/3/4/5 elements in
  1/31/51/16/2 %; 2..10 sites (15, 13, 16, 16, 12, 10, 4, 3, 2 %), 8 % with more; sites with 0/1/2/3 free
  parameters 19/28/19/34 %. The dof weights were tuned so that generated sites come out near that split
  (19/28/18/35 %). Rejections favour combinations that are easy to place, so the realised distributions lean
  slightly to fewer atoms than the weights alone give (median 24 atoms).
- `species`, `species_weights`: symmetrically distinct sites per element in the ICSD frequency analysis shipped with
  pymatgen (core/icsd_bv.yaml, 'occurrence', summed over oxidation states; 75 elements; ionic compounds, so
  intermetallics are under-represented): O 30 % of sites, S and F 5 %, ...
- `volume_factor` 0.6-1.8: cell volume / sum of atomic volumes of the 288 AFLOW prototypes shipped with pymatgen
  and the 31 ordered refined structures of ../shared/data/measured: median 1.02, 5-95 % 0.53-1.85 (this volume
  model has the narrowest spread: log-std 0.36, against 0.60 for covalent spheres alone). Random atoms cannot pack
  as densely as real ones, so dense draws are often scaled up: the realised median is about 1.3.
- `min_distance_factor` 0.75: nearest neighbours in those refined structures are >= 0.78 of the sum of covalent
  radii.
- `b_iso` 0.3-1.5 Å^2: U_iso 0.004-0.02 Å^2, typical of inorganic structures at room temperature.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import signal
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from contextlib import contextmanager
from typing import Iterator, Mapping, Sequence

import gemmi
import numpy as np
import torch

from powdersym.structures.crystal import Crystal, CrystalBatch
from powdersym.structures.species import SPECIES, element_number, species_index
from powdersym import symmetry
from powdersym.symmetry import labels, tables
from powdersym.symmetry.tables import N_SPACE_GROUPS, TRANSLATION_DENOMINATOR, space_group, space_groups
from powdersym.symmetry.tensors import label_tables

# Symmetrically distinct sites per element in pymatgen's ICSD frequency analysis (core/icsd_bv.yaml, 'occurrence',
# summed over oxidation states).
ICSD_SITE_COUNTS: dict[str, int] = {
    "H": 3103, "Li": 1925, "Be": 267, "B": 2676, "C": 3057, "N": 3099, "O": 45275, "F": 7548, "Na": 3183,
    "Mg": 621, "Al": 1368, "Si": 3564, "P": 4638, "S": 7757, "Cl": 4609, "K": 3215, "Ca": 1463, "Sc": 437,
    "Ti": 1038, "V": 1077, "Cr": 808, "Mn": 1246, "Fe": 1402, "Co": 1029, "Ni": 1206, "Cu": 1906, "Zn": 1465,
    "Ga": 766, "Ge": 944, "As": 1616, "Se": 3678, "Br": 1793, "Rb": 1620, "Sr": 1541, "Y": 583, "Zr": 596,
    "Nb": 923, "Mo": 941, "Ru": 223, "Rh": 150, "Pd": 305, "Ag": 1072, "Cd": 1128, "In": 643, "Sn": 721,
    "Sb": 1821, "Te": 2065, "I": 2809, "Cs": 1277, "Ba": 2534, "La": 1082, "Ce": 393, "Pr": 586, "Nd": 694,
    "Sm": 454, "Eu": 218, "Gd": 283, "Tb": 391, "Dy": 378, "Ho": 373, "Er": 449, "Tm": 237, "Yb": 362, "Lu": 283,
    "Hf": 230, "Ta": 668, "W": 511, "Re": 295, "Ir": 144, "Hg": 708, "Tl": 876, "Pb": 701, "Bi": 948, "Th": 186,
    "U": 565,
}  # fmt: skip

LABEL_SETS = {
    "sg": "sg", "space_group": "sg", "sg144": "sg144", "bravais": "bravais", "crystal_system": "crystal_system",
    "lattice_system": "lattice_system", "laue_class": "laue_class", "point_group": "point_group",
    "extinction": "extinction_group", "extinction_group": "extinction_group",
}  # fmt: skip

# Lattice holohedries as integer rotations of the conventional basis: the general positions of these groups.
_HOLOHEDRY_GROUP = {
    "triclinic": 2, "monoclinic": 10, "orthorhombic": 47, "tetragonal": 123, "rhombohedral": 166,
    "hexagonal": 191, "cubic": 221,
}  # fmt: skip
_FALLBACK_COMBINATIONS = 64  # cheapest valid site combinations kept per group
# bound on crystals x candidates x atoms per chunk of the placement (about 80 bytes each at the peak)
_PLACEMENT_CHUNK = {"cpu": 1 << 24, "cuda": 1 << 26}
_MAX_DRAFTS = 8  # drafts per leftover crystal in later passes on a GPU
_MAX_SITE_DRAFTS = 32  # drafts per leftover site combination (cheap: no placement)
_IMAGES = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), dtype=torch.float64)  # 27 neighbour cells


@dataclass(frozen=True)
class RandomCrystalConfig:
    """Distributions of random crystals; the module docstring says where the defaults come from.

    n_sites_weights[k]: relative probability of k + 1 Wyckoff sites (its length is the most sites a crystal has).
    dof_weights[d]: relative weight of a Wyckoff position with d free coordinates when a site is drawn.
    n_elements_weights[k]: relative probability of k + 1 distinct elements (raised where sites need their own).
    species, species_weights: the element pool and the weights that elements are drawn with.
    volume_factor: range of cell volume / sum of atomic volumes 4/3 pi (r_cov^3 + r_vdW^3) / 2.
    axis_ratio: range of b/a and c/a (log-uniform) where the crystal system leaves them free.
    metric_gap, angle_gap: how far (relative; degrees) ratios and angles stay from values of higher lattice symmetry.
    min_distance_factor, min_distance: atoms are at least max(factor * (r_cov,i + r_cov,j), min_distance) apart (Å).
    special_margin: free coordinates stay this far (Å) from multiples of 1/24.
    b_iso: range of isotropic B (Å^2), drawn per site.
    candidates: random draws tried per site; max_attempts: draws of a whole crystal; max_site_attempts: draws of a
    site combination before one of the precomputed valid combinations is taken.
    real_site_fraction: fraction of crystals whose Wyckoff site combination is drawn, as often as it occurs, from
    those of the group in the Materials Project (`real_site_combinations`) instead of site by site; elements,
    lattice and coordinates stay random. Real crystals have more sites (5.8 against 4.5 on average, crystal
    systems balanced) with about the same share on general positions; the shipped X-ray model scores the same on
    both kinds (benchmarks/sensitivity.py, docs/results.md).
    """

    max_atoms: int = 64
    n_sites_weights: tuple[float, ...] = (1.0, 15.0, 13.0, 16.0, 16.0, 12.0, 10.0, 5.0, 4.0, 3.0, 2.0, 2.0)
    dof_weights: tuple[float, float, float, float] = (1.1, 1.0, 1.8, 0.8)
    n_elements_weights: tuple[float, ...] = (0.02, 0.30, 0.46, 0.18, 0.04)
    species: tuple[str, ...] = tuple(ICSD_SITE_COUNTS)
    species_weights: tuple[float, ...] = tuple(float(n) for n in ICSD_SITE_COUNTS.values())
    volume_factor: tuple[float, float] = (0.6, 1.8)
    axis_ratio: tuple[float, float] = (0.4, 2.5)
    monoclinic_beta: tuple[float, float] = (92.0, 122.0)
    triclinic_angles: tuple[float, float] = (70.0, 110.0)
    metric_gap: float = 0.03
    angle_gap: float = 2.0
    min_distance_factor: float = 0.75
    min_distance: float = 0.9
    special_margin: float = 0.01
    b_iso: tuple[float, float] = (0.3, 1.5)
    candidates: int = 8
    max_attempts: int = 10
    max_site_attempts: int = 8
    real_site_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.max_atoms < 1 or not self.n_sites_weights or not self.n_elements_weights:
            raise ValueError("max_atoms, n_sites_weights and n_elements_weights must be positive and non-empty")
        if len(self.species) != len(self.species_weights) or not self.species:
            raise ValueError("species and species_weights differ in length or are empty")
        for name in ("n_sites_weights", "dof_weights", "n_elements_weights", "species_weights"):
            weights = getattr(self, name)
            if min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"{name} must be non-negative with a positive sum")
        for name in ("volume_factor", "axis_ratio", "monoclinic_beta", "triclinic_angles", "b_iso"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise ValueError(f"{name} must be a range (low, high) with 0 <= low <= high")
        if not 0 < self.volume_factor[0] or self.axis_ratio[0] <= 0:
            raise ValueError("volume_factor and axis_ratio must be positive")
        if not 0 <= self.real_site_fraction <= 1:
            raise ValueError("real_site_fraction must lie in [0, 1]")
        if self.max_attempts < 1 or self.candidates < 1 or self.max_site_attempts < 1:
            raise ValueError("max_attempts, max_site_attempts and candidates must be >= 1")
        for symbol in self.species:
            species_index(symbol)

    @property
    def max_sites(self) -> int:
        return len(self.n_sites_weights)


@dataclass
class RandomCrystals:
    """A batch of random crystals: the atoms of the conventional cells (`batch`, space group P1 after expansion) and
    how they were built.

    space_group [B]; n_atoms [B]; wyckoff [B, S]: index of each site's Wyckoff position in
    `space_group(n).wyckoff_positions` (-1 for no site); site_species [B, S] (index into SPECIES, 0 for no site);
    site_coords [B, S, 3]: the free parameters x, y, z of each site (only the free ones matter); volume_factor [B]:
    cell volume / sum of atomic volumes; attempts [B]: how many times the crystal was drawn (config.max_attempts + 1
    marks one scaled beyond the volume_factor range on the last draw).
    """

    batch: CrystalBatch
    space_group: torch.Tensor
    n_atoms: torch.Tensor
    wyckoff: torch.Tensor
    site_species: torch.Tensor
    site_coords: torch.Tensor
    volume_factor: torch.Tensor
    attempts: torch.Tensor

    def __len__(self) -> int:
        return len(self.space_group)

    def wyckoff_labels(self, index: int) -> list[str]:
        """ITA labels of the sites of crystal `index`, e.g. ['4a', '8c', '24e']."""
        positions = space_group(int(self.space_group[index])).wyckoff_positions
        return [positions[int(w)].label for w in self.wyckoff[index] if w >= 0]

    def to_crystals(self) -> list[Crystal]:
        """One `Crystal` (numpy, float64) per crystal of the batch, with its space group and Wyckoff labels."""
        batch = self.batch.to("cpu")
        out = []
        for i in range(len(self)):
            n = int(self.n_atoms[i])
            out.append(
                Crystal(
                    batch.lattice[i].double().numpy(),
                    batch.frac_coords[i, :n].double().numpy(),
                    [SPECIES[int(s)] for s in batch.species[i, :n]],
                    batch.occupancy[i, :n].double().numpy(),
                    batch.b_iso[i, :n].double().numpy(),
                    space_group=int(self.space_group[i]),
                    name=f"random-{i}",
                    metadata={"wyckoff": self.wyckoff_labels(i)},
                )
            )
        return out


# ----------------------------------------------------------------------------------------------------------------
# Space-group sampling


def sample_space_groups(
    n: int,
    label_set: str = "sg",
    prior: Mapping[int | str, float] | torch.Tensor | Sequence[float] | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Space-group numbers [n] (long), uniform over the classes of `label_set`, then uniform over the groups of the
    drawn class.

    label_set: 'sg' (230 groups), 'sg144' (Lolla et al.'s 144), 'bravais' (14), 'extinction' (powder extinction
    groups), 'crystal_system' (7), also 'lattice_system', 'laue_class', 'point_group'.
    prior: class weights instead of uniform: a tensor/sequence over the classes in label order, or a dict from class
    to weight (classes left out get weight 0). Classes are named by space-group number for 'sg' and 'sg144', by
    index or label (e.g. 'cubic (F)', 'monoclinic', 'P 1 21/c 1') for the others.
    """
    device = _device(device, generator)
    membership = _class_members(_label_set(label_set), str(device))
    weights = _class_weights(label_set, prior, membership["n_per_class"].shape[0], device)
    cdf = torch.cumsum(weights / weights.sum(), 0)
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    classes = torch.searchsorted(cdf, u, right=True).clamp(max=len(cdf) - 1)
    counts = membership["n_per_class"][classes]
    pick = (torch.rand(n, generator=generator, device=device, dtype=torch.float64) * counts).long()
    return membership["members"][classes, pick.clamp(max=membership["members"].shape[1] - 1)]


def space_group_distribution(
    label_set: str = "sg", prior: Mapping[int | str, float] | torch.Tensor | Sequence[float] | None = None
) -> np.ndarray:
    """The probability [230] (index = number - 1) with which sample_space_groups draws each group: the class
    prior of the crystals a model balanced over `label_set` was trained on."""
    membership = _class_members(_label_set(label_set), "cpu")
    weights = _class_weights(label_set, prior, membership["n_per_class"].shape[0], torch.device("cpu"))
    weights = (weights / weights.sum()).numpy()
    out = np.zeros(N_SPACE_GROUPS)
    for c, (members, n) in enumerate(zip(membership["members"].numpy(), membership["n_per_class"].numpy())):
        out[members[:n] - 1] += weights[c] / n
    return out


def label_set_classes(label_set: str) -> list[int | str]:
    """The class names of a label set in label order (space-group numbers for 'sg' and 'sg144')."""
    key = _label_set(label_set)
    if key == "sg":
        return list(range(1, N_SPACE_GROUPS + 1))
    if key == "sg144":
        return list(labels.SG144)
    if key == "extinction_group":
        return list(symmetry.EXTINCTION_GROUP_SYMBOLS)
    return list(
        {
            "bravais": labels.BRAVAIS_LABELS,
            "crystal_system": labels.CRYSTAL_SYSTEMS,
            "lattice_system": labels.LATTICE_SYSTEMS,
            "laue_class": labels.LAUE_CLASSES,
            "point_group": labels.POINT_GROUPS,
        }[key]
    )


def _label_set(label_set: str) -> str:
    if label_set not in LABEL_SETS:
        raise ValueError(f"unknown label set {label_set!r}; use one of {sorted(LABEL_SETS)}")
    return LABEL_SETS[label_set]


@cache
def _class_members(key: str, device: str) -> dict[str, torch.Tensor]:
    numbers = torch.arange(1, N_SPACE_GROUPS + 1)
    classes = numbers - 1 if key == "sg" else label_tables("cpu")[key][1:]
    keep = classes >= 0
    numbers, classes = numbers[keep], classes[keep]
    n_classes = int(classes.max()) + 1
    n_per_class = torch.bincount(classes, minlength=n_classes)
    members = torch.zeros(n_classes, int(n_per_class.max()), dtype=torch.long)
    rank = torch.zeros_like(classes)
    for c in range(n_classes):
        where = classes == c
        rank[where] = torch.arange(int(where.sum()))
    members[classes, rank] = numbers
    return {"members": members.to(device), "n_per_class": n_per_class.to(device)}


def _class_weights(label_set: str, prior, n_classes: int, device: torch.device) -> torch.Tensor:
    if prior is None:
        return torch.ones(n_classes, dtype=torch.float64, device=device)
    if isinstance(prior, Mapping):
        names = label_set_classes(label_set)
        by_name = {name: i for i, name in enumerate(names)}
        weights = torch.zeros(n_classes, dtype=torch.float64)
        key = _label_set(label_set)
        for name, weight in prior.items():
            if key in ("sg", "sg144"):
                index = by_name.get(tables.space_group_number(name))
            elif isinstance(name, (int, np.integer)):
                index = int(name) if 0 <= int(name) < n_classes else None
            else:
                index = by_name.get(name)
            if index is None:
                raise ValueError(f"{name!r} is not a class of label set {label_set!r}")
            weights[index] = float(weight)
    else:
        weights = torch.as_tensor(prior, dtype=torch.float64).reshape(-1)
        if weights.shape[0] != n_classes:
            raise ValueError(f"prior has {weights.shape[0]} weights, label set {label_set!r} has {n_classes} classes")
    if (weights < 0).any() or not weights.sum() > 0:
        raise ValueError("prior weights must be non-negative with a positive sum")
    return weights.to(device)


# ----------------------------------------------------------------------------------------------------------------
# Wyckoff tables: orbits, eigensymmetry bit sets, valid site combinations (built once, cached per device)


def _orbit_symmetry(
    rotations: np.ndarray, translations_24: np.ndarray, holohedry: np.ndarray
) -> tuple[set[int], bool]:
    """The symmetry of a Wyckoff orbit for generic free parameters, exactly.

    The orbit's sites are x_i = A_i xi + b_i (A_i integer [3, 3], b_i in 24ths). An operation (R, t) of the lattice's
    holohedry maps the orbit onto itself for all xi iff for every i there is a k with R A_i + D = A_k and
    R b_i + t = b_k (mod 24), where R x_0 + t = x_j fixes D = A_j - R A_0 and t = b_j - R b_0. D = 0 gives operations
    that do not depend on xi (returned as codes r * 24^3 + t); D != 0 gives families that move with xi (an
    inversion centre at the atom in P1), which a second site with other coordinates never shares (returned as a flag).
    """
    m = len(rotations)
    keys = np.sort(_row_keys(rotations, translations_24))
    rot_a = np.einsum("rxy,iyz->rixz", holohedry, rotations)  # [H, M, 3, 3]
    rot_b = np.einsum("rxy,iy->rix", holohedry, translations_24)  # [H, M, 3]
    r, j = (x.reshape(-1) for x in np.meshgrid(np.arange(len(holohedry)), np.arange(m), indexing="ij"))
    shift_a = rotations[j] - rot_a[r, 0]  # D
    shift_b = (translations_24[j] - rot_b[r, 0]) % TRANSLATION_DENOMINATOR  # t
    for rows in (np.arange(min(m, 4)), np.arange(m)):  # a few rows rule out most candidates; then all rows
        image_keys = _row_keys(rot_a[r][:, rows] + shift_a[:, None], (rot_b[r][:, rows] + shift_b[:, None]) % 24)
        found = keys[np.searchsorted(keys, image_keys).clip(max=m - 1)] == image_keys
        keep = found.all(axis=1)
        r, j, shift_a, shift_b = r[keep], j[keep], shift_a[keep], shift_b[keep]
    rigid = ~shift_a.any(axis=(1, 2))
    codes = set((r[rigid] * 24**3 + (shift_b[rigid] * np.array([576, 24, 1])).sum(1)).tolist())
    return codes, bool((~rigid).any())


def _row_keys(rotations: np.ndarray, translations_24: np.ndarray) -> np.ndarray:
    """One int64 per affine row (A [..., 3, 3] with entries in -15..16, b [..., 3] in 0..23)."""
    key = np.zeros(rotations.shape[:-2], dtype=np.int64)
    for entry in (rotations.reshape(*rotations.shape[:-2], 9) + 15).transpose(-1, *range(rotations.ndim - 2)):
        key = key * 32 + entry
    for entry in np.moveaxis(translations_24, -1, 0):
        key = key * 24 + entry
    return key


def _operation_code(rotation_index: int, translation_24: np.ndarray) -> int:
    """One integer for (rotation of the holohedry, translation in 24ths mod 1), as `_orbit_symmetry` returns them."""
    return rotation_index * 24**3 + int((np.asarray(translation_24) % 24) @ [576, 24, 1])


@cache
def _holohedry(lattice_system: str) -> np.ndarray:
    rotations = space_group(_HOLOHEDRY_GROUP[lattice_system]).rotations
    return np.unique(rotations.reshape(-1, 9), axis=0).reshape(-1, 3, 3)


# The tables below take seconds to derive; a copy ships as package data (scripts/export_wyckoff_tables.py) and is
# used when it was made from the same symmetry data and the same derivation (WYCKOFF_TABLES_VERSION).
WYCKOFF_TABLES_FILE = Path(__file__).with_name("data") / "wyckoff_tables.npz"
WYCKOFF_TABLES_VERSION = 1  # raise when compute_wyckoff_tables changes what it returns


def wyckoff_tables_key() -> str:
    """Fingerprint of what the Wyckoff tables derive from: the symmetry data files and the derivation's version."""
    digest = hashlib.sha256(str(WYCKOFF_TABLES_VERSION).encode())
    for name in ("space_groups.json", "symmetry_operations.npz"):
        digest.update((tables.DATA_DIR / name).read_bytes())
    return digest.hexdigest()


@cache
def _wyckoff_tables() -> dict[str, np.ndarray]:
    """The shipped tables when they match this package's symmetry data, else derived (`compute_wyckoff_tables`)."""
    if WYCKOFF_TABLES_FILE.is_file():
        with np.load(WYCKOFF_TABLES_FILE, allow_pickle=False) as stored:
            if str(stored["key"]) == wyckoff_tables_key():
                return {name: stored[name] for name in stored.files if name != "key"}
    return compute_wyckoff_tables()


def compute_wyckoff_tables() -> dict[str, np.ndarray]:
    """numpy tables over groups [231] and Wyckoff positions [231, W] (row 0 unused), orbit rows flat [T]."""
    groups = space_groups()
    n_w = max(len(g.wyckoff_positions) for g in groups)
    shape = (N_SPACE_GROUPS + 1, n_w)
    offset, mult, dof = np.zeros(shape, np.int64), np.zeros(shape, np.int64), np.zeros(shape, np.int64)
    exists, rigid, alone = np.zeros(shape, bool), np.zeros(shape, bool), np.zeros(shape, bool)
    orbit_rotations, orbit_translations, extras, group_extras = [], [], {}, {}
    start = 0
    for g in groups:
        holohedry = _holohedry(g.lattice_system)
        index = {tuple(r.ravel()): i for i, r in enumerate(holohedry)}
        own = {_operation_code(index[tuple(r.ravel())], t) for r, t in zip(g.rotations, g.translations_24)}
        group_extras[g.number] = set()
        for w, position in enumerate(g.wyckoff_positions):
            rotations = position.orbit_rotations
            translations_24 = np.rint(position.orbit_translations * TRANSLATION_DENOMINATOR).astype(np.int64) % 24
            codes, moving = _orbit_symmetry(rotations, translations_24, holohedry)
            if not own <= codes:
                raise AssertionError(f"orbit {position.label} of group {g.number} lacks operations of its group")
            extras[g.number, w] = codes - own
            group_extras[g.number] |= extras[g.number, w]
            offset[g.number, w], mult[g.number, w] = start, position.multiplicity
            dof[g.number, w], exists[g.number, w] = position.degrees_of_freedom, True
            rigid[g.number, w] = bool((rotations == rotations[0]).all())
            alone[g.number, w] = not extras[g.number, w] and not moving
            orbit_rotations.append(rotations)
            orbit_translations.append(position.orbit_translations)
            start += position.multiplicity
    # bit k of a position's set: the group's k-th operation (beyond its own) under which the orbit is invariant
    bit_of = {n: {code: k for k, code in enumerate(sorted(codes))} for n, codes in group_extras.items()}
    n_words = max(1, max(math.ceil(len(codes) / 64) for codes in group_extras.values()))
    bits = np.zeros((*shape, n_words), dtype=np.uint64)
    for (number, w), codes in extras.items():
        for k in (bit_of[number][code] for code in codes):
            bits[number, w, k // 64] |= np.uint64(1) << np.uint64(k % 64)
    tables_ = {
        "offset": offset, "multiplicity": mult, "dof": dof, "exists": exists, "rigid": rigid, "alone": alone,
        "bits": bits.view(np.int64), "free": dof > 0,
        "orbit_rotations": np.concatenate(orbit_rotations).astype(np.float64),
        "orbit_translations": np.concatenate(orbit_translations),
        "lattice_system": np.array([-1] + [labels.LATTICE_SYSTEMS.index(g.lattice_system) for g in groups]),
        "centring": np.array([-1] + ["PABCIFR".index(g.centring) for g in groups]),
    }  # fmt: skip
    tables_.update(_valid_combinations(tables_))
    return tables_


def _valid_combinations(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The cheapest site combinations (up to 3 sites) with exactly the group's symmetry, per group."""
    combos = np.full((N_SPACE_GROUPS + 1, _FALLBACK_COMBINATIONS, 3), -1, dtype=np.int64)
    totals = np.full((N_SPACE_GROUPS + 1, _FALLBACK_COMBINATIONS), np.iinfo(np.int64).max // 4, dtype=np.int64)
    minimum = np.zeros(N_SPACE_GROUPS + 1, dtype=np.int64)
    for number in range(1, N_SPACE_GROUPS + 1):
        n = int(t["exists"][number].sum())
        bits, mult, free = t["bits"][number, :n], t["multiplicity"][number, :n], t["free"][number, :n]
        found = [(int(mult[w]), (w, -1, -1)) for w in range(n) if t["alone"][number, w]]
        for p, q in itertools.combinations_with_replacement(range(n), 2):
            if (p != q or free[p]) and not (bits[p] & bits[q]).any():
                found.append((int(mult[p] + mult[q]), (p, q, -1)))
        pair = (bits[:, None] & bits[None]).any(-1)  # a pair that already closes needs no third site
        for p, q, r in itertools.combinations_with_replacement(range(n), 3):
            if pair[p, q] and pair[p, r] and pair[q, r] and (p != q or free[p]) and (q != r or free[q]):
                if not (bits[p] & bits[q] & bits[r]).any():
                    found.append((int(mult[p] + mult[q] + mult[r]), (p, q, r)))
        if not found:
            raise AssertionError(f"no site combination of up to 3 sites has exactly the symmetry of group {number}")
        found.sort()
        found = found[:_FALLBACK_COMBINATIONS]
        minimum[number] = found[0][0]
        for i, (total, combo) in enumerate(found):
            combos[number, i], totals[number, i] = combo, total
    return {"fallback_sites": combos, "fallback_atoms": totals, "minimum_atoms": minimum}


@cache
def _device_tables(device: str) -> dict[str, torch.Tensor]:
    out = {}
    for name, array in _wyckoff_tables().items():
        tensor = torch.as_tensor(array)
        out[name] = (tensor.float() if tensor.is_floating_point() else tensor).to(device)
    return out


def minimum_atoms(space_group_number: int) -> int:
    """Atoms in the conventional cell of the smallest site combination (up to 3 sites) with exactly the symmetry of
    the group: the atom budget of a group is max(config.max_atoms, this)."""
    return int(_wyckoff_tables()["minimum_atoms"][space_group_number])


_REAL_COMBINATIONS = 512  # most frequent real site combinations kept per group


def real_site_combinations(max_sites: int) -> dict[str, np.ndarray]:
    """Wyckoff site combinations of real materials per group, from the Materials Project statistics shipped with
    pyxtal (database/spg_num_wps_mp.csv, a copy in the package: structures.statistics; group, atoms in the conventional cell, pyxtal's Wyckoff indices, number of
    structures; 88,678 structures). Kept: combinations of at most `max_sites` sites with exactly the group's
    symmetry for generic coordinates (the eigensymmetry rule of the site-by-site draw), the 512 most frequent per
    group. Returns sites [231, K, max_sites] (our Wyckoff indices, -1 padded), atoms [231, K] and log_count
    [231, K] (-inf where no combination)."""
    from powdersym.structures.statistics import materials_project_rows

    t = _wyckoff_tables()
    found: dict[int, list[tuple[int, list[int]]]] = {}
    for number, n_atoms, pyxtal_sites, count in materials_project_rows():
        n_positions = int(t["exists"][number].sum())
        # pyxtal lists a group's positions from the general one down (letters reversed); ours run from 'a'
        sites = [n_positions - 1 - i for i in pyxtal_sites]
        if int(t["multiplicity"][number, sites].sum()) != n_atoms:
            raise AssertionError(f"group {number}: pyxtal's Wyckoff order differs from ours ({pyxtal_sites})")
        fixed_twice = len(set(w for w in sites if not t["free"][number, w])) < sum(not t["free"][number, w] for w in sites)
        if len(sites) > max_sites or fixed_twice:
            continue
        mask = np.bitwise_and.reduce(t["bits"][number, sites], axis=0)
        if (t["alone"][number, sites[0]] if len(sites) == 1 else not mask.any()):
            found.setdefault(number, []).append((count, sites))
    k = max(1, min(_REAL_COMBINATIONS, max((len(v) for v in found.values()), default=1)))
    sites = np.full((N_SPACE_GROUPS + 1, k, max_sites), -1, dtype=np.int64)
    atoms = np.zeros((N_SPACE_GROUPS + 1, k), dtype=np.int64)
    log_count = np.full((N_SPACE_GROUPS + 1, k), -np.inf)
    for number, combos in found.items():
        for i, (count, combo) in enumerate(sorted(combos, key=lambda c: -c[0])[:k]):
            sites[number, i, : len(combo)] = combo
            atoms[number, i] = t["multiplicity"][number, combo].sum()
            log_count[number, i] = math.log(count)
    return {"sites": sites, "atoms": atoms, "log_count": log_count}


@cache
def _device_real_sites(max_sites: int, device: str) -> dict[str, torch.Tensor]:
    return {name: torch.as_tensor(a).to(device) for name, a in real_site_combinations(max_sites).items()}


# ----------------------------------------------------------------------------------------------------------------
# Random crystals


def random_crystals(
    space_groups: torch.Tensor | Sequence[int],
    config: RandomCrystalConfig | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> RandomCrystals:
    """Random crystals [B] with exactly the requested space groups (ITA numbers, standard settings).

    generator: a torch.Generator on `device` (same seed, device and batch: same crystals). device defaults to the
    generator's, else the space_groups tensor's, else CPU. On CPU the call runs on one intra-op thread (restored
    afterwards): its tensors are small, and more threads only wait on each other (2 threads: 350-1,050 crystals/s
    here, 1 thread: 1,300-2,500). Use worker processes to use more cores.
    """
    if device is None and generator is None and isinstance(space_groups, torch.Tensor):
        device = space_groups.device
    device = _device(device, generator)
    with _one_cpu_thread(device):
        return _random_crystals(space_groups, config or RandomCrystalConfig(), generator, device, dtype)


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _random_crystals(space_groups, config, generator, device, dtype) -> RandomCrystals:
    groups = torch.as_tensor(space_groups, device=device).long().reshape(-1)
    if len(groups) and (groups.min() < 1 or groups.max() > N_SPACE_GROUPS):
        raise ValueError("space-group numbers run from 1 to 230")
    t = _device_tables(str(device))
    chem = _chemistry(config, str(device))
    rand = _Random(generator, device)
    b, s = len(groups), config.max_sites
    wyckoff = torch.full((b, s), -1, dtype=torch.long, device=device)
    site_species = torch.zeros((b, s), dtype=torch.long, device=device)
    coords = torch.zeros((b, s, 3), device=device)
    lattice = torch.zeros((b, 6), device=device)
    volume_factor = torch.zeros(b, device=device)
    attempts = torch.zeros(b, dtype=torch.long, device=device)
    todo = torch.arange(b, device=device)
    for attempt in range(config.max_attempts):
        if len(todo) == 0:
            break
        drafts = _drafts(device, b, len(todo), _MAX_DRAFTS)
        last = attempt == config.max_attempts - 1
        part = _attempt(groups[todo].repeat_interleave(drafts), config, t, chem, rand, accept_any=last)
        good = part["ok"].view(len(todo), drafts)
        ok = good.any(1)
        pick = (torch.arange(len(todo), device=device) * drafts + good.float().argmax(1))[ok]
        attempts[todo] += 1
        done = todo[ok]
        wyckoff[done], site_species[done] = part["wyckoff"][pick], part["species"][pick]
        coords[done] = part["coords"][pick]
        lattice[done], volume_factor[done] = part["lattice"][pick], part["volume_factor"][pick]
        attempts[done] += part["rescaled"][pick].long()
        todo = todo[~ok]
    if len(todo):
        raise ValueError(
            f"{len(todo)} crystals need more distinct elements than config.species has (each site on a fixed point or "
            "a polar axis takes an element of its own): add species"
        )
    b_iso = config.b_iso[0] + (config.b_iso[1] - config.b_iso[0]) * rand.uniform(b, s)
    frac, atom_site, mask = _expand(groups, wyckoff, coords, t)
    gather = atom_site.clamp(min=0)
    species = torch.where(mask, torch.gather(site_species, 1, gather), 0)
    batch = CrystalBatch(
        lattice.to(dtype),
        frac.to(dtype),
        species,
        mask.to(dtype),
        torch.where(mask, torch.gather(b_iso, 1, gather), 0).to(dtype),
        mask,
    )
    return RandomCrystals(batch, groups, mask.sum(1), wyckoff, site_species, coords, volume_factor, attempts)


class _Random:
    """Uniform and Gumbel draws from one generator on one device."""

    def __init__(self, generator: torch.Generator | None, device: torch.device):
        self.generator, self.device = generator, device

    def uniform(self, *shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, device=self.device)

    def gumbel(self, *shape: int) -> torch.Tensor:
        return -torch.log(-torch.log(self.uniform(*shape).clamp(1e-12, 1 - 1e-7)))

    def categorical(self, weights: torch.Tensor, n: int) -> torch.Tensor:
        """n draws of 0..len(weights)-1 with the given relative weights."""
        cdf = torch.cumsum(weights / weights.sum(), 0)
        return torch.searchsorted(cdf, self.uniform(n).to(cdf.dtype), right=True).clamp(max=len(cdf) - 1)


@cache
def _chemistry(config: RandomCrystalConfig, device: str) -> dict[str, torch.Tensor]:
    elements = [gemmi.Element(element_number(i)) for i in range(1, len(SPECIES))]
    radii = torch.tensor([0.0] + [e.covalent_r for e in elements])
    vdw = torch.tensor([0.0] + [e.vdw_r for e in elements])
    return {
        "pool": torch.tensor([species_index(s) for s in config.species], device=device),
        "log_weights": torch.log(torch.tensor(config.species_weights, dtype=torch.float32)).to(device),
        "radius": radii.to(device),
        "volume": (4 / 3 * math.pi * (radii**3 + vdw**3) / 2).to(device),
        "n_sites_weights": torch.tensor(config.n_sites_weights, dtype=torch.float64, device=device),
        "n_elements_weights": torch.tensor(config.n_elements_weights, dtype=torch.float64, device=device),
        "log_dof_weights": torch.log(torch.tensor(config.dof_weights, dtype=torch.float32)).to(device),
    }


def _attempt(groups, config, t, chem, rand: _Random, accept_any: bool) -> dict[str, torch.Tensor]:
    """One try at a crystal for each group: sites, elements, lattice, then sites placed one by one."""
    cap = t["minimum_atoms"][groups].clamp(min=config.max_atoms)
    wyckoff = _placement_order(groups, _choose_sites(groups, cap, config, t, chem, rand), t)
    species, feasible = _assign_species(groups, wyckoff, config, t, chem, rand)
    shape = _lattice_shape(groups, config, t, rand)
    mult = _site_multiplicity(groups, wyckoff, t)
    atom_volume = (mult * chem["volume"][species]).sum(1)
    low, high = config.volume_factor
    factor = low + (high - low) * rand.uniform(len(groups))
    lattice = _scale_to_volume(shape, atom_volume * factor)
    coords, ratio = _place_sites_in_chunks(groups, wyckoff, species, lattice, mult.sum(1), config, t, chem, rand)
    # still too close: scale the cell up, which keeps the fractional coordinates and so the symmetry
    scale = torch.where(ratio < 1, 1.0001 / ratio.clamp(min=1e-3), 1.0)
    factor = factor * scale**3
    lattice = torch.cat([lattice[:, :3] * scale[:, None], lattice[:, 3:]], 1)
    ok = feasible & ((factor <= high) | accept_any)
    rescaled = factor > high
    return {"ok": ok, "wyckoff": wyckoff, "species": species, "coords": coords, "lattice": lattice,
            "volume_factor": factor, "rescaled": rescaled}  # fmt: skip


def _drafts(device: torch.device, total: int, left: int, most: int) -> int:
    """Draws per leftover item in a redraw pass: on a GPU every pass costs the same few thousand kernel launches
    however few items it carries, so leftovers draw several drafts at once (the first good one is kept, which has the
    distribution of redrawing until one is good) and the passes end sooner; on a CPU drafts cost compute, so one."""
    return 1 if device.type == "cpu" else max(1, min(most, total // max(left, 1)))


def _placement_order(groups, wyckoff, t) -> torch.Tensor:
    """Sites reordered so that fixed points come first (they cannot move out of the way), then the free sites with
    the largest orbits; empty slots last."""
    active = wyckoff >= 0
    free = t["free"][groups[:, None], wyckoff.clamp(min=0)]
    mult = _site_multiplicity(groups, wyckoff, t)
    key = torch.where(active, free.long() * 100_000 - mult, 1_000_000)
    return torch.gather(wyckoff, 1, torch.argsort(key, dim=1, stable=True))


def _site_multiplicity(groups, wyckoff, t) -> torch.Tensor:
    return torch.where(wyckoff >= 0, t["multiplicity"][groups[:, None], wyckoff.clamp(min=0)], 0)


def _choose_sites(groups, cap, config, t, chem, rand: _Random) -> torch.Tensor:
    """Wyckoff positions [B, S] (-1: no site) whose intersection of eigensymmetries is the group itself."""
    b, device = len(groups), groups.device
    wyckoff = torch.full((b, config.max_sites), -1, dtype=torch.long, device=device)
    todo = torch.arange(b, device=device)
    if config.real_site_fraction > 0:
        real = _real_sites(groups, cap, config, rand)
        taken = real[:, 0] >= 0
        wyckoff[taken] = real[taken]
        todo = todo[~taken]
    for _ in range(config.max_site_attempts):
        if len(todo) == 0:
            return wyckoff
        drafts = _drafts(device, b, len(todo), _MAX_SITE_DRAFTS)
        sites, valid = _draw_sites(groups[todo].repeat_interleave(drafts), cap[todo].repeat_interleave(drafts), config,
                                   t, chem, rand)  # fmt: skip
        good = valid.view(len(todo), drafts)
        ok = good.any(1)
        pick = (torch.arange(len(todo), device=device) * drafts + good.float().argmax(1))[ok]
        wyckoff[todo[ok]] = sites[pick]
        todo = todo[~ok]
    if len(todo) == 0:
        return wyckoff
    # fallback: one of the cheapest valid combinations that fit the budget
    fits = (t["fallback_atoms"][groups[todo]] <= cap[todo, None]).sum(1)
    pick = (rand.uniform(len(todo)) * fits).long().clamp(max=t["fallback_sites"].shape[1] - 1)
    wyckoff[todo, :3] = t["fallback_sites"][groups[todo], pick]
    return wyckoff


def _real_sites(groups, cap, config, rand: _Random) -> torch.Tensor:
    """Real site combinations [B, S] for a `real_site_fraction` of the rows, drawn by frequency among those of the
    group that fit the atom budget; -1 rows: drawn site by site (not chosen, or no real combination fits)."""
    real = _device_real_sites(config.max_sites, str(groups.device))
    b = len(groups)
    chosen = rand.uniform(b) < config.real_site_fraction
    log_count = torch.where(real["atoms"][groups] <= cap[:, None], real["log_count"][groups], -torch.inf)
    score = log_count + rand.gumbel(*log_count.shape)
    pick = score.argmax(1)
    usable = chosen & torch.isfinite(log_count).any(1)
    return torch.where(usable[:, None], real["sites"][groups, pick], -1)


def _draw_sites(groups, cap, config, t, chem, rand: _Random) -> tuple[torch.Tensor, torch.Tensor]:
    """One draw of Wyckoff sites [B, S] (-1: no site) and whether they have exactly the group's symmetry [B]."""
    b, n_w = len(groups), t["exists"].shape[1]
    rows = torch.arange(b, device=groups.device)
    n_sites = rand.categorical(chem["n_sites_weights"], b) + 1
    exists, mult, free, alone = t["exists"][groups], t["multiplicity"][groups], t["free"][groups], t["alone"][groups]
    dof = t["dof"][groups]
    dof_one_hot = torch.nn.functional.one_hot(dof, 4).bool()  # [B, W, 4]
    wyckoff = torch.full((b, config.max_sites), -1, dtype=torch.long, device=groups.device)
    remaining = cap.clone()
    mask = torch.full((b, t["bits"].shape[-1]), -1, dtype=torch.long, device=groups.device)
    used = torch.zeros(b, n_w, dtype=torch.bool, device=groups.device)
    rigid = t["rigid"][groups]
    n_rigid = torch.zeros(b, dtype=torch.long, device=groups.device)
    any_other = torch.zeros(b, dtype=torch.bool, device=groups.device)
    n_pool = len(chem["pool"])
    for s in range(config.max_sites):
        allowed = exists & (mult <= remaining[:, None]) & ~(used & ~free) & (s < n_sites)[:, None]
        # each rigid site needs an element of its own, the other sites at least one more
        allowed &= torch.where(rigid, (n_rigid + 1 + any_other.long() <= n_pool)[:, None], (n_rigid < n_pool)[:, None])
        if not allowed.any():
            break
        # the last site goes, where it can, to a position that leaves no operation beyond the group's
        last = torch.nonzero(s == n_sites - 1).squeeze(1)
        closes = alone[last] if s == 0 else ((mask[last, None, :] & t["bits"][groups[last]]) == 0).all(-1)
        preferred = allowed[last] & closes
        allowed[last] = torch.where(preferred.any(1)[:, None], preferred, allowed[last])
        # the weight of a class of positions (same number of free parameters) is shared by its members, so that a
        # group with eight inversion centres (P-1) does not get eight times as many atoms on them
        per_class = (dof_one_hot & allowed[..., None]).sum(1).clamp(min=1)  # [B, 4]
        log_weight = chem["log_dof_weights"][dof] - torch.log(torch.gather(per_class, 1, dof).float())
        score = torch.where(allowed, log_weight + rand.gumbel(b, n_w), -torch.inf)
        choice = score.argmax(1)
        has = allowed.any(1)
        wyckoff[:, s] = torch.where(has, choice, -1)
        remaining = remaining - torch.where(has, mult[rows, choice], 0)
        mask = torch.where(has[:, None], mask & t["bits"][groups, choice], mask)
        used[rows, choice] |= has
        n_rigid += (has & rigid[rows, choice]).long()
        any_other |= has & ~rigid[rows, choice]
    n_chosen = (wyckoff >= 0).sum(1)
    first = alone[rows, wyckoff[:, 0].clamp(min=0)]
    valid = torch.where(n_chosen == 1, first, (mask == 0).all(-1)) & (n_chosen >= 1)
    return wyckoff, valid


def _assign_species(groups, wyckoff, config, t, chem, rand: _Random) -> tuple[torch.Tensor, torch.Tensor]:
    """Elements per site [B, S]: rigid sites get an element of their own, every drawn element is used."""
    b, s = wyckoff.shape
    active = wyckoff >= 0
    rigid = active & t["rigid"][groups[:, None], wyckoff.clamp(min=0)]
    n_sites, n_rigid = active.sum(1), rigid.sum(1)
    n_pool = len(chem["pool"])
    needed = n_rigid + (n_sites > n_rigid).long()
    drawn = rand.categorical(chem["n_elements_weights"], b) + 1
    k = torch.maximum(drawn, needed).minimum(n_sites).clamp(max=n_pool)
    feasible = needed <= n_pool
    top = min(s, n_pool)
    # weighted draw without replacement (Gumbel top-k), then shuffled so that rank does not follow weight
    order = (chem["log_weights"] + rand.gumbel(b, n_pool)).topk(top, dim=1).indices
    keys = torch.where(torch.arange(top, device=groups.device) < k[:, None], rand.uniform(b, top), 2.0)
    elements = chem["pool"][torch.gather(order, 1, keys.argsort(1))]
    rigid_rank = torch.cumsum(rigid.long(), 1) - 1
    other_rank = torch.cumsum((active & ~rigid).long(), 1) - 1
    n_other = (k - n_rigid).clamp(min=1)
    spare = (rand.uniform(b, s) * n_other[:, None]).long()
    other_slot = n_rigid[:, None] + torch.where(other_rank < n_other[:, None], other_rank, spare)
    slot = torch.where(rigid, rigid_rank, other_slot).clamp(0, top - 1)
    species = torch.where(active, torch.gather(elements, 1, slot), 0)
    return species, feasible


def _lattice_shape(groups, config, t, rand: _Random) -> torch.Tensor:
    """Lattice parameters [B, 6] with a = 1, ratios and angles drawn for each lattice system."""
    b, device = len(groups), groups.device
    system, centring = t["lattice_system"][groups], t["centring"][groups]
    tri, mono, ortho, tetra, rhombo, hexa, cubic = range(7)
    out = torch.zeros(b, 6, device=device)
    todo = torch.arange(b, device=device)
    log_low, log_high = math.log(config.axis_ratio[0]), math.log(config.axis_ratio[1])
    gap = math.log1p(config.metric_gap)
    proposals = 8  # per crystal and round; the first acceptable one is kept
    for _ in range(20):
        n = len(todo) * proposals
        sys, cen = system[todo].repeat_interleave(proposals), centring[todo].repeat_interleave(proposals)
        ratio = torch.exp(log_low + (log_high - log_low) * rand.uniform(n, 2))
        b_a, c_a = ratio[:, 0], ratio[:, 1]
        beta = config.monoclinic_beta[0] + (config.monoclinic_beta[1] - config.monoclinic_beta[0]) * rand.uniform(n)
        low, high = config.triclinic_angles
        angles = low + (high - low) * rand.uniform(n, 3)
        square = (sys == tetra) | (sys == rhombo) | (sys == hexa) | (sys == cubic)
        b_a = torch.where(square, 1.0, b_a)
        c_a = torch.where(sys == cubic, 1.0, c_a)
        right = torch.full((n,), 90.0, device=device)
        alpha = torch.where(sys == tri, angles[:, 0], right)
        beta = torch.where(sys == tri, angles[:, 1], torch.where(sys == mono, beta, right))
        gamma = torch.where(sys == tri, angles[:, 2], torch.where((sys == rhombo) | (sys == hexa), 120.0, right))
        candidate = torch.stack([torch.ones(n, device=device), b_a, c_a, alpha, beta, gamma], 1)

        def near(x: torch.Tensor, value: float) -> torch.Tensor:
            return (torch.log(x) - math.log(value)).abs() < gap

        bad = torch.zeros(n, dtype=torch.bool, device=device)
        bad |= (sys == ortho) & (near(b_a, 1) | near(c_a, 1) | near(c_a / b_a, 1))
        # a centred face with edges in ratio sqrt 3 is a hexagonal net (C: a-b face, A: b-c face)
        bad |= (sys == ortho) & (cen == 3) & (near(b_a, 3**0.5) | near(b_a, 3**-0.5))
        bad |= (sys == ortho) & (cen == 1) & (near(c_a / b_a, 3**0.5) | near(c_a / b_a, 3**-0.5))
        bad |= (sys == tetra) & (near(c_a, 1) | ((cen == 4) & (near(c_a, 2**0.5) | near(c_a, 2**-0.5))))
        bad |= (sys == rhombo) & (near(c_a, 1.5**0.5) | near(c_a, 6**0.5) | near(c_a, 0.375**0.5))
        bad |= (sys == tri) & ((candidate[:, 3:] - 90).abs() < config.angle_gap).any(1)
        bad |= (sys == mono) & ((beta - 90).abs() < config.angle_gap)
        bad |= (sys == tri) & (_volume_factor(candidate) < 0.5)
        bad |= ~_is_reduced(candidate)
        good = ~bad.view(-1, proposals)
        found = good.any(1)
        first = torch.arange(len(todo), device=device) * proposals + good.float().argmax(1)
        out[todo[found]] = candidate[first[found]]
        todo = todo[~found]
        if len(todo) == 0:
            return out
    raise ValueError("could not draw lattices away from higher metric symmetry: widen axis_ratio or angle ranges")


def _is_reduced(lattice: torch.Tensor) -> torch.Tensor:
    """|x.y| <= min(|x|, |y|)^2 / 2 for each pair of axes (the Buerger conditions on the cell's angles)."""
    lengths, cosines = lattice[:, :3], torch.cos(torch.deg2rad(lattice[:, 3:]))
    ok = torch.ones(len(lattice), dtype=torch.bool, device=lattice.device)
    for (i, j), cos in zip(((1, 2), (0, 2), (0, 1)), cosines.unbind(1)):
        x, y = lengths[:, i], lengths[:, j]
        ok &= (x * y * cos).abs() <= torch.minimum(x, y) ** 2 / 2 + 1e-6
    return ok


def _volume_factor(lattice: torch.Tensor) -> torch.Tensor:
    """V / (a b c) of lattice parameters [B, 6]."""
    cosines = torch.cos(torch.deg2rad(lattice[:, 3:]))
    root = 1 - (cosines**2).sum(1) + 2 * cosines.prod(1)
    return torch.sqrt(root.clamp(min=0))


def _scale_to_volume(shape: torch.Tensor, volume: torch.Tensor) -> torch.Tensor:
    unit = shape[:, :3].prod(1) * _volume_factor(shape)
    scale = (volume / unit) ** (1 / 3)
    return torch.cat([shape[:, :3] * scale[:, None], shape[:, 3:]], 1)


def _expand(groups, wyckoff, coords, t) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fractional coordinates [B, N, 3] of all atoms, the site of each atom [B, N] (-1: padding) and the mask."""
    mult = _site_multiplicity(groups, wyckoff, t)
    end = torch.cumsum(mult, 1)
    n_atoms = end[:, -1]
    n = max(int(n_atoms.max()) if len(groups) else 1, 1)
    slot = torch.arange(n, device=groups.device).expand(len(groups), n).contiguous()
    mask = slot < n_atoms[:, None]
    site = torch.searchsorted(end, slot, right=True).clamp(max=wyckoff.shape[1] - 1)
    start = torch.gather(end - mult, 1, site)
    row = torch.gather(t["offset"][groups[:, None], wyckoff.clamp(min=0)], 1, site) + slot - start
    row = torch.where(mask, row, 0)
    xyz = torch.gather(coords, 1, site[..., None].expand(-1, -1, 3))
    frac = (t["orbit_rotations"][row] * xyz[..., None, :]).sum(-1) + t["orbit_translations"][row]
    frac = torch.where(mask[..., None], frac - torch.floor(frac), 0.0)
    return frac, torch.where(mask, site, -1), mask


def _place_sites_in_chunks(groups, wyckoff, species, lattice, n_atoms, config, t, chem, rand: _Random):
    """`_place_sites` over chunks of crystals of similar size (padding to the chunk's largest crystal)."""
    b = len(groups)
    coords = torch.zeros(b, wyckoff.shape[1], 3, device=groups.device)
    ratio = torch.full((b,), torch.inf, device=groups.device)
    # right-angled cells apart (their nearest images need no corner search), each part sorted by size
    right_angled = (lattice[:, 3:] == 90).all(1)
    order = torch.argsort(n_atoms + torch.where(right_angled, 0, 1 << 20))
    sizes = n_atoms[order].tolist()
    n_right = int(right_angled.sum())
    budget = _PLACEMENT_CHUNK.get(groups.device.type, 1 << 24)
    bounds = []
    for part_lo, part_hi in ((0, n_right), (n_right, b)):
        lo = part_lo
        while lo < part_hi:
            hi = part_hi
            while hi > lo + 1 and (hi - lo) * config.candidates * 2 * max(sizes[hi - 1], 1) > budget:
                hi = lo + (hi - lo) // 2
            bounds.append((lo, hi))
            lo = hi
    for lo, hi in bounds:
        index = order[lo:hi]
        coords[index], ratio[index] = _place_sites(
            groups[index], wyckoff[index], species[index], lattice[index], config, t, chem, rand
        )
    return coords, ratio


def _place_sites(groups, wyckoff, species, lattice, config, t, chem, rand: _Random):
    """Free coordinates [B, S, 3] placed site after site, and per crystal the smallest distance / allowed distance
    [B] (>= 1: all distances allowed).

    Each site takes the first of up to `config.candidates` random draws (tried in rounds of growing size, so that an
    easy site costs one or two) whose atoms keep the allowed distances to the atoms already placed and to the other
    atoms of their own orbit; where none does, the draw that comes closest. Distances go from the site's first atom
    to every atom: that covers all pairs, because the group's operations are isometries that carry the first atom to
    every other atom of its site.
    """
    b, n_sites = wyckoff.shape
    device = groups.device
    mult = _site_multiplicity(groups, wyckoff, t)
    start = torch.cumsum(mult, 1) - mult
    n_max = max(int(mult.sum(1).max()) if b else 1, 1)
    frac = torch.zeros(b, n_max, 3, device=device)
    atom_radius = torch.zeros(b, n_max, device=device)
    metric = _metric(lattice)
    images = _IMAGES.to(device=device, dtype=metric.dtype)
    image_norm = torch.einsum("kx,bxy,ky->bk", images, metric, images)
    shortest = image_norm.masked_fill(torch.arange(27, device=device) == 13, torch.inf).min(1).values
    radius = chem["radius"][species]  # [B, S]
    coords = torch.zeros(b, n_sites, 3, device=device)
    worst = torch.full((b,), torch.inf, device=device)
    # on CPU, easy sites are settled by one or two draws; on a GPU the draws cost less than the extra launches
    rounds = _candidate_rounds(config.candidates) if device.type == "cpu" else [config.candidates]
    for s in range(n_sites):
        a = torch.nonzero(wyckoff[:, s] >= 0).squeeze(1)
        if len(a) == 0:
            break
        m_s, first = mult[a, s], start[a, s]
        m_max, placed = int(m_s.max()), int(first.max())
        orbit_index = torch.arange(m_max, device=device)
        in_orbit = orbit_index < m_s[:, None]  # [A, M]
        rows = t["offset"][groups[a], wyckoff[a, s]][:, None] + torch.where(in_orbit, orbit_index, 0)
        rotations, translations = t["orbit_rotations"][rows], t["orbit_translations"][rows]  # [A, M, 3, 3], [A, M, 3]
        own = radius[a, s]
        # 1 / allowed distance^2 to each atom already placed [A, P] and to the site's own atoms [A, M]
        allowed = config.min_distance_factor * (own[:, None] + atom_radius[a, :placed])
        allowed = torch.clamp(allowed, min=config.min_distance)
        placed_inverse_allowed2, is_placed = allowed**-2, torch.arange(placed, device=device) < first[:, None]
        own_inverse_allowed2 = torch.clamp(config.min_distance_factor * 2 * own, min=config.min_distance) ** -2
        best_ratio2 = torch.full((len(a),), -1.0, device=device)
        best = torch.zeros(len(a), 3, device=device)
        pending = torch.arange(len(a), device=device)
        for k in rounds:
            p = pending
            candidates = _away_from_special(rand.uniform(len(p), k, 3), lattice[a[p], None, :3], config.special_margin)
            orbit = torch.einsum("pmij,pkj->pkmi", rotations[p], candidates) + translations[p][:, None]  # [p, K, M, 3]
            origin = orbit[:, :, :1]
            d2 = _nearest_image_distance2(orbit - origin, metric[a[p]])  # [p, K, M]
            d2[:, :, 0] = shortest[a[p]][:, None]  # the first atom itself: only its lattice translates count
            ratio2 = torch.where(in_orbit[p][:, None], d2, torch.inf).amin(-1) * own_inverse_allowed2[p][:, None]
            if placed:
                d2 = _nearest_image_distance2(frac[a[p], None, :placed] - origin, metric[a[p]])  # [p, K, P]
                d2 = torch.where(is_placed[p][:, None], d2 * placed_inverse_allowed2[p][:, None], torch.inf)
                ratio2 = torch.minimum(ratio2, d2.amin(-1))
            good = ratio2 >= 1
            choice = torch.where(good.any(1), good.float().argmax(1), ratio2.argmax(1))
            pick = torch.arange(len(p), device=device)
            chosen_ratio2 = ratio2[pick, choice]
            better = chosen_ratio2 > best_ratio2[p]
            best_ratio2[p] = torch.where(better, chosen_ratio2, best_ratio2[p])
            best[p] = torch.where(better[:, None], candidates[pick, choice], best[p])
            pending = p[best_ratio2[p] < 1]
            if len(pending) == 0:
                break
        coords[a, s] = best
        worst[a] = torch.minimum(worst[a], best_ratio2.clamp(min=0).sqrt())
        chosen = (rotations * best[:, None, None, :]).sum(-1) + translations  # [A, M, 3]
        slot = (first[:, None] + orbit_index).clamp(max=n_max - 1)
        rows_a = a[:, None].expand(-1, m_max)
        frac[rows_a[in_orbit], slot[in_orbit]] = (chosen - torch.floor(chosen))[in_orbit]
        atom_radius[rows_a[in_orbit], slot[in_orbit]] = own[:, None].expand(-1, m_max)[in_orbit]
    return coords, worst


def _away_from_special(u: torch.Tensor, lengths: torch.Tensor, margin: float) -> torch.Tensor:
    """Uniform [0, 1) draws mapped uniformly onto the coordinates at least `margin` Å (along each axis) from every
    multiple of 1/24, where symmetry elements of the supergroups sit: a coordinate there by chance would give the
    crystal more symmetry at a tolerance of `margin`."""
    if margin <= 0:
        return u
    gap = (TRANSLATION_DENOMINATOR * margin / lengths).clamp(max=0.45)  # the margin in units of 1/24
    cell = torch.floor(u * TRANSLATION_DENOMINATOR)
    inside = u * TRANSLATION_DENOMINATOR - cell
    return (cell + gap + inside * (1 - 2 * gap)) / TRANSLATION_DENOMINATOR


def _candidate_rounds(candidates: int) -> list[int]:
    """Round sizes 1, 2, 4, ... adding up to `candidates`."""
    rounds, size = [], 1
    while sum(rounds) < candidates:
        rounds.append(min(size, candidates - sum(rounds)))
        size *= 2
    return rounds


# corner (e0, e1, e2) of the cell around a difference vector adds e.u + 2 e_i e_j s_i s_j G_ij (see below)
_CORNERS = torch.tensor(
    [[e0, e1, e2, e0 * e1, e0 * e2, e1 * e2] for e0, e1, e2 in itertools.product((0, 1), repeat=3)], dtype=torch.float64
).T  # [6, 8]


def _nearest_image_distance2(delta: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """Squared distance (Å^2) of the nearest periodic image of fractional differences delta [B, ..., 3], metric
    [B, 3, 3].

    With delta wrapped to [-1/2, 1/2), the nearest image in a reduced cell (|a.b| <= min(a, b)^2 / 2 for each pair
    of axes, as `_lattice_shape` draws them) is delta - e * sign(delta) for one corner e in {0, 1}^3 (checked
    numerically against 125 images). |d - e s|^2_G = |d|^2_G + sum_i e_i (G_ii - 2 s_i (G d)_i)
    + 2 sum_i<j e_i e_j s_i s_j G_ij; for a cell with right angles every corner term is >= 0, so delta is nearest.
    """
    shape = delta.shape
    d = (delta - torch.round(delta)).reshape(shape[0], -1, 3)
    g_d = torch.bmm(d, metric)  # G is symmetric: the rows of d G are (G d)^T
    d2 = (d * g_d).sum(-1)
    off = metric[:, [0, 0, 1], [1, 2, 2]]  # G_01, G_02, G_12 [B, 3]
    if bool((off == 0).all()):
        return d2.reshape(shape[:-1])
    sign = torch.sign(d)
    linear = (torch.diagonal(metric, dim1=1, dim2=2)[:, None] - 2 * sign * g_d).unbind(-1)
    s0, s1, s2 = sign.unbind(-1)
    pair = (2 * s0 * s1 * off[:, 0, None], 2 * s0 * s2 * off[:, 1, None], 2 * s1 * s2 * off[:, 2, None])
    terms = torch.stack([*linear, *pair], -1)  # [B, X, 6]
    corners = terms @ _CORNERS.to(device=d.device, dtype=d.dtype)  # [B, X, 8]
    d2 = d2 + corners.amin(-1).clamp(max=0)
    return d2.clamp(min=0).reshape(shape[:-1])


def _metric(lattice: torch.Tensor) -> torch.Tensor:
    """Metric tensors G [B, 3, 3] (Å^2) of lattice parameters [B, 6]."""
    a, b, c = lattice[:, 0], lattice[:, 1], lattice[:, 2]
    angles = lattice[:, 3:]
    cos_a, cos_b, cos_g = torch.where(angles == 90, 0.0, torch.cos(torch.deg2rad(angles))).unbind(1)  # exact zeros
    rows = [
        torch.stack([a * a, a * b * cos_g, a * c * cos_b], 1),
        torch.stack([a * b * cos_g, b * b, b * c * cos_a], 1),
        torch.stack([a * c * cos_b, b * c * cos_a, c * c], 1),
    ]
    return torch.stack(rows, 1)


def _device(device, generator: torch.Generator | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return generator.device if generator is not None else torch.device("cpu")


# ----------------------------------------------------------------------------------------------------------------
# pyxtal backend (slow; a reference for the benchmark)


class _Timeout(Exception):
    pass


def pyxtal_crystals(
    space_groups: Sequence[int],
    compositions: Sequence[tuple[Sequence[str], Sequence[int]]] | None = None,
    config: RandomCrystalConfig | None = None,
    timeout_s: float = 5.0,
    seed: int = 0,
) -> list[Crystal | None]:
    """pyxtal's random_crystal for each group (None where it failed or ran past `timeout_s`).

    compositions: (elements, atoms per element in the conventional cell) per crystal; by default those of
    `random_crystals` for the same groups, so both generators are asked for the same chemistry. The hard per-crystal
    timeout uses SIGALRM, so call this from the main thread (Unix).
    """
    from pyxtal import pyxtal

    from powdersym.structures.readers import from_pymatgen

    groups = [int(g) for g in space_groups]
    if compositions is None:
        compositions = random_compositions(groups, config, seed=seed)
    rng = np.random.default_rng(seed)
    out: list[Crystal | None] = []

    def alarm(signum, frame):
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    try:
        for group, (elements, counts) in zip(groups, compositions):
            crystal = None
            try:
                signal.setitimer(signal.ITIMER_REAL, timeout_s)
                generated = pyxtal()
                generated.from_random(3, group, list(elements), list(counts), random_state=int(rng.integers(2**31)))
                if generated.valid:
                    crystal = from_pymatgen(generated.to_pymatgen())
                    crystal.space_group = group
            except Exception:  # _Timeout, and the many kinds of errors pyxtal raises for what it cannot place
                crystal = None
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            out.append(crystal)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return out


def random_compositions(
    space_groups: Sequence[int], config: RandomCrystalConfig | None = None, seed: int = 0
) -> list[tuple[list[str], list[int]]]:
    """(elements, atoms per element in the conventional cell) of `random_crystals` for these groups."""
    generator = torch.Generator().manual_seed(seed)
    crystals = random_crystals(torch.as_tensor(list(space_groups)), config, generator=generator)
    out = []
    for i in range(len(crystals)):
        species = crystals.batch.species[i, : int(crystals.n_atoms[i])]
        values, counts = torch.unique(species, return_counts=True)
        out.append(([SPECIES[int(v)] for v in values], [int(c) for c in counts]))
    return out
