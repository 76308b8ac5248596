"""Splits: the main paper's label fractions (sizes, disjointness, nesting), structure-disjoint and random splits."""

from __future__ import annotations

import numpy as np
import pytest

from powdersym.data import LABEL_FRACTIONS, PatternDataset, label_fraction_split, random_split, structure_disjoint_split


@pytest.mark.parametrize("fraction", LABEL_FRACTIONS)
def test_label_fraction_sizes_and_disjointness(fraction: float):
    n = 10_000
    parts = label_fraction_split(n, fraction, seed=3)
    assert len(parts["test"]) == 1000
    assert len(parts["labelled"]) == round(fraction * 9000)
    assert len(parts["labelled"]) + len(parts["unlabelled"]) == 9000
    together = np.concatenate(list(parts.values()))
    assert len(np.unique(together)) == n  # every row exactly once


def test_label_fractions_share_the_test_set_and_nest():
    splits = [label_fraction_split(5000, f, seed=7) for f in LABEL_FRACTIONS]
    for smaller, larger in zip(splits, splits[1:]):
        assert np.array_equal(smaller["test"], larger["test"])
        assert set(smaller["labelled"]) < set(larger["labelled"])
    assert not np.array_equal(splits[0]["test"], label_fraction_split(5000, 0.05, seed=8)["test"])
    assert np.array_equal(splits[0]["labelled"], label_fraction_split(5000, 0.05, seed=7)["labelled"])


def test_structure_disjoint_split_shares_no_formula():
    rng = np.random.default_rng(0)
    formulas = np.array([f"A{k}B" for k in rng.integers(0, 300, size=6000)], dtype=object)
    parts = structure_disjoint_split(formulas, test_fraction=0.1, validation_fraction=0.1, seed=1)
    sets = {name: set(formulas[index]) for name, index in parts.items()}
    assert not sets["train"] & sets["test"] and not sets["train"] & sets["validation"] and not sets["validation"] & sets["test"]
    assert sum(len(index) for index in parts.values()) == 6000
    assert 550 <= len(parts["test"]) <= 700 and 550 <= len(parts["validation"]) <= 700
    fractions = label_fraction_split(6000, 0.25, groups=formulas, seed=1)
    assert not set(formulas[fractions["test"]]) & set(formulas[np.concatenate([fractions["labelled"], fractions["unlabelled"]])])


def test_structure_disjoint_split_of_a_data_set(pattern_file):
    dataset = PatternDataset(pattern_file)
    formulas = dataset.strings("formula")
    parts = structure_disjoint_split(formulas, test_fraction=0.2, seed=0)
    assert parts["test"].size and not set(formulas[parts["train"]]) & set(formulas[parts["test"]])
    # the two NaCl cells are one group
    nacl = np.flatnonzero(formulas == "ClNa")
    assert len(nacl) == 2 and len({("test" if i in parts["test"] else "train") for i in nacl}) == 1


def test_random_split_sizes_and_seed():
    parts = random_split(1001, test_fraction=0.1, validation_fraction=0.2, seed=5)
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [701, 200, 100]
    assert len(np.unique(np.concatenate(list(parts.values())))) == 1001
    assert np.array_equal(parts["test"], random_split(1001, test_fraction=0.1, validation_fraction=0.2, seed=5)["test"])
    with pytest.raises(ValueError):
        random_split(10, test_fraction=0.8, validation_fraction=0.3)
