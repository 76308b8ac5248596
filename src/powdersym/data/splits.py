"""Seeded splits of a data set into index arrays: random, structure-disjoint, and the main paper's label fractions.

Label-fraction splits (the main paper's semi-supervised set-up): 10 % of the rows are the test set; of the rest
(the training part) a fraction f in LABEL_FRACTIONS = 5, 10, 25, 50 % keeps its labels and the remainder is used
unlabelled. With one seed the test set is the same for every f and the labelled sets are nested (5 % in 10 % in
25 % in 50 %), so results across fractions differ only by the labels added.

Structure-disjoint splits put whole groups on one side: group by reduced formula (the 'formula' label) or by
prototype (anonymous formula + space group + Wyckoff letters, the 'prototype' label of real structures).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LABEL_FRACTIONS: tuple[float, ...] = (0.05, 0.10, 0.25, 0.50)
TEST_FRACTION = 0.10


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def random_split(n: int, *, test_fraction: float = TEST_FRACTION, validation_fraction: float = 0.0, seed: int = 0) -> dict[str, np.ndarray]:
    """{'train', 'validation', 'test'} sorted index arrays of a seeded random permutation of n rows."""
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("validation_fraction", validation_fraction)
    if test_fraction + validation_fraction > 1:
        raise ValueError("test and validation fractions add up to more than 1")
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_validation = round(test_fraction * n), round(validation_fraction * n)
    return {
        "train": np.sort(order[n_test + n_validation :]),
        "validation": np.sort(order[n_test : n_test + n_validation]),
        "test": np.sort(order[:n_test]),
    }


def structure_disjoint_split(
    groups: Sequence[str] | np.ndarray,
    *,
    test_fraction: float = TEST_FRACTION,
    validation_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """{'train', 'validation', 'test'} index arrays such that no group (formula or prototype) is in two parts.

    Groups are taken in a seeded random order and filled into test, then validation, until each holds at least its
    fraction of the rows; the sizes are therefore approximate (by at most one group).
    """
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("validation_fraction", validation_fraction)
    keys, group_of_row, sizes = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(keys))
    n = len(group_of_row)
    part_of_group = np.zeros(len(keys), dtype=np.int8)  # 0 train, 1 validation, 2 test
    position = 0
    for part, fraction in ((2, test_fraction), (1, validation_fraction)):
        target, filled = round(fraction * n), 0
        while filled < target and position < len(order):
            part_of_group[order[position]] = part
            filled += sizes[order[position]]
            position += 1
    part_of_row = part_of_group[group_of_row]
    return {name: np.flatnonzero(part_of_row == part) for name, part in (("train", 0), ("validation", 1), ("test", 2))}


def label_fraction_split(
    n: int,
    labelled_fraction: float,
    *,
    test_fraction: float = TEST_FRACTION,
    groups: Sequence[str] | np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """{'test', 'labelled', 'unlabelled'} index arrays: test_fraction of the rows for testing (structure-disjoint
    from the rest when `groups` is given), labelled_fraction of the remaining training part with labels, the rest
    of it without. The same seed gives the same test set and nested labelled sets for every fraction."""
    _check_fraction("labelled_fraction", labelled_fraction)
    if groups is not None:
        if len(groups) != n:
            raise ValueError(f"{len(groups)} groups for {n} rows")
        parts = structure_disjoint_split(groups, test_fraction=test_fraction, seed=seed)
    else:
        parts = random_split(n, test_fraction=test_fraction, seed=seed)
    train = parts["train"]
    order = train[np.random.default_rng([seed, 1]).permutation(len(train))]
    n_labelled = round(labelled_fraction * len(train))
    return {"test": parts["test"], "labelled": np.sort(order[:n_labelled]), "unlabelled": np.sort(order[n_labelled:])}
