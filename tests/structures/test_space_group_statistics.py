"""The class priors behind `predict --prior`: what random crystals are drawn from, and how often known crystals
take each space group."""

import numpy as np
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
