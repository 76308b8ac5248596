"""The class priors behind `predict --prior`: what random crystals are drawn from, and how often known crystals
take each space group."""

import numpy as np
import pytest
import torch

from powdersym.structures.random import sample_space_groups, space_group_distribution
from powdersym.structures.statistics import known_space_group_frequencies


def test_distribution_is_what_the_sampler_draws():
    generator = torch.Generator().manual_seed(5)
    for label_set in ("crystal_system", "sg144"):
        drawn = sample_space_groups(200_000, label_set, generator=generator).numpy()
        counts = np.bincount(drawn - 1, minlength=230) / len(drawn)
        expected = space_group_distribution(label_set)
        assert abs(expected.sum() - 1) < 1e-12
        np.testing.assert_allclose(counts, expected, atol=0.0015)
    assert space_group_distribution("crystal_system")[0] == 1 / 14  # P1: half of the triclinic seventh
    assert np.allclose(space_group_distribution("sg"), 1 / 230)


def test_known_frequencies_rank_the_familiar_groups_first():
    """Materials Project's inorganic crystals: Fm-3m, P-1, P2_1/c, C2/m, Pnma among the commonest groups; every
    group possible; a sum of one."""
    known = known_space_group_frequencies()
    assert abs(known.sum() - 1) < 1e-12 and (known > 0).all()
    top = {int(n) + 1 for n in np.argsort(-known)[:12]}
    assert {225, 2, 14, 12, 62} <= top, top  # Fm-3m, P-1, P2_1/c, C2/m, Pnma
    assert known[0] < 1e-4  # P1 is missing from the table: as rare as the rarest group, not zero


def test_tempered_distribution_runs_from_balanced_to_known():
    """Exponent 0: the balanced draw; 1: known crystals' frequencies; 1/2: their normalised geometric mean (so
    P2_1/c sits between its two shares); groups the balanced draw excludes stay excluded; outside [0, 1] refused."""
    from powdersym.structures.statistics import tempered_space_group_distribution

    known, balanced = known_space_group_frequencies(), space_group_distribution("crystal_system")
    np.testing.assert_allclose(tempered_space_group_distribution(balanced, 0.0), balanced, rtol=1e-12)
    np.testing.assert_allclose(tempered_space_group_distribution(balanced, 1.0), known, rtol=1e-12)
    half = tempered_space_group_distribution(balanced, 0.5)
    geometric = np.sqrt(balanced * known)
    np.testing.assert_allclose(half, geometric / geometric.sum(), rtol=1e-12)
    assert min(balanced[13], known[13]) < half[13] < max(balanced[13], known[13])  # P2_1/c
    subset = space_group_distribution("sg144")
    assert (tempered_space_group_distribution(subset, 0.7)[subset == 0] == 0).all()
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="outside"):
            tempered_space_group_distribution(balanced, bad)


def test_shipped_site_statistics_are_pyxtal_table():
    """The package's copy (scripts/export_site_statistics.py) holds every row of pyxtal's spg_num_wps_mp.csv, read
    here independently, so `predict` needs no pyxtal at run time."""
    import csv
    from importlib import resources

    from powdersym.structures.statistics import materials_project_rows

    with resources.files("pyxtal.database").joinpath("spg_num_wps_mp.csv").open() as f:
        expected = [(int(r["spg"]), int(r["n_atoms"]), [int(i) for i in r["wps"].split("-")], int(r["count"])) for r in csv.DictReader(f)]
    assert list(materials_project_rows()) == expected
    assert sum(count for *_, count in expected) == 88_678
