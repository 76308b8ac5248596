"""Classification metrics against small cases worked out by hand."""

import numpy as np
import pytest
import torch

from powdersym.evaluate import (
    balanced_accuracy,
    class_index,
    class_names,
    confusion_matrix,
    crystal_system_blocks,
    crystal_system_confusion,
    distance_histogram,
    marginalise,
    mcnemar_p,
    paired_cluster_p,
    merged_accuracy,
    n_classes,
    normalise_confusion,
    per_class_top_k,
    subgroup_distances,
    top_k_accuracy,
)
from powdersym.symmetry import BRAVAIS_LABELS, SG144, extinction_groups

# 7 patterns of 3 classes: true along rows, predicted along columns, counted by hand
TRUE = np.array([0, 0, 1, 1, 1, 2, 2])
PRED = np.array([0, 1, 1, 1, 0, 2, 0])
HAND = np.array([[1, 1, 0],
                 [1, 2, 0],
                 [1, 0, 1]])


def test_confusion_matrix_by_hand():
    np.testing.assert_array_equal(confusion_matrix(PRED, TRUE, 3), HAND)
    np.testing.assert_allclose(normalise_confusion(HAND, "true"),
                               [[50, 50, 0], [100 / 3, 200 / 3, 0], [50, 0, 50]])
    np.testing.assert_allclose(normalise_confusion(HAND, "all"), 100 * HAND / 7)
    empty_row = normalise_confusion(np.array([[0, 0], [1, 3]]), "true")
    np.testing.assert_allclose(empty_row, [[0, 0], [25, 75]])


def test_balanced_accuracy_by_hand():
    # recalls 1/2, 2/3, 1/2, while the plain accuracy is 4/7
    assert balanced_accuracy(PRED, TRUE, 3) == pytest.approx((1 / 2 + 2 / 3 + 1 / 2) / 3)
    # a class absent from the labels does not count
    assert balanced_accuracy(np.array([0, 0, 3]), np.array([0, 1, 1]), 4) == pytest.approx((1 + 0) / 2)


PROBS = np.array([
    [0.10, 0.20, 0.30, 0.40],  # true 3: rank 1
    [0.40, 0.30, 0.20, 0.10],  # true 1: rank 2
    [0.25, 0.35, 0.30, 0.10],  # true 2: rank 2
    [0.15, 0.60, 0.20, 0.05],  # true 0: rank 3
])
PROBS_TRUE = np.array([3, 1, 2, 0])


def test_top_k_on_constructed_ranks():
    assert top_k_accuracy(PROBS, PROBS_TRUE, 1) == 0.25
    assert top_k_accuracy(PROBS, PROBS_TRUE, 2) == 0.75
    assert top_k_accuracy(PROBS, PROBS_TRUE, 3) == 1.0
    assert top_k_accuracy(PROBS, PROBS_TRUE, 5) == 1.0  # k beyond the class count
    assert top_k_accuracy(torch.tensor(PROBS), torch.tensor(PROBS_TRUE), 2) == 0.75
    per_class = per_class_top_k(PROBS, PROBS_TRUE, ks=(1, 2))
    np.testing.assert_array_equal(per_class["count"], [1, 1, 1, 1])
    np.testing.assert_array_equal(per_class["top1"], [0, 0, 0, 1])
    np.testing.assert_array_equal(per_class["top2"], [0, 1, 1, 1])
    absent = per_class_top_k(PROBS[:1], PROBS_TRUE[:1], ks=(1,))
    assert np.isnan(absent["top1"][0]) and absent["top1"][3] == 1


def test_labels_out_of_range_raise():
    with pytest.raises(ValueError):
        top_k_accuracy(PROBS, np.array([3, 1, 2, 4]), 1)
    with pytest.raises(ValueError):
        class_index(np.array([0, 5]), "space_group")  # stored space-group labels are numbers 1-230
    np.testing.assert_array_equal(class_index(np.array([1, 230]), "space_group"), [0, 229])


def test_class_counts_follow_the_tables():
    assert n_classes("space_group") == 230 and n_classes("sg144") == 144 and n_classes("bravais") == 14
    assert n_classes("extinction_group") == len(extinction_groups())
    assert class_names("space_group")[75] == "76 P41"
    assert class_names("sg144")[0] == "1 P1"


def test_subgroup_distance_known_pairs():
    # ITA maximal subgroups: P1 (1) is the maximal t-subgroup of P-1 (2); P2/m (10) has the
    # maximal t-subgroups P2 (3), Pm (6), P-1 (2), so P1 is two steps away; Fm-3m (225) has I4/mmm (139, index 3)
    # and R-3m (166, index 4) among its maximal t-subgroups
    d = subgroup_distances(np.array([1, 10, 10, 10, 225, 225, 2]), np.array([2, 3, 2, 1, 139, 166, 2]))
    np.testing.assert_array_equal(d, [1, 1, 1, 2, 1, 1, 0])
    np.testing.assert_array_equal(subgroup_distances(np.array([139, 1]), np.array([225, 10])), [1, 2])
    assert distance_histogram(d) == {1: 5, 2: 1}


def test_enantiomorph_and_extinction_merging():
    sg = lambda *numbers: class_index(np.array(numbers), "space_group")  # noqa: E731
    true = sg(76, 78, 76, 75, 92)
    pred = sg(78, 76, 77, 81, 96)  # P41<->P43 twice, P41->P42, P4->P-4, P41212->P43212
    assert merged_accuracy(pred, true, "space_group", "strict") == 0
    assert merged_accuracy(pred, true, "space_group", "enantiomorph") == pytest.approx(3 / 5)
    # P41 and P43 share 00l: l = 4n, P4 and P-4 have no condition; P42 (00l: l = 2n) does not join P41
    assert merged_accuracy(pred, true, "space_group", "extinction_group") == pytest.approx(4 / 5)
    s144 = np.array([SG144.index(92), SG144.index(96)])
    assert merged_accuracy(s144[::-1], s144, "sg144", "enantiomorph") == 1.0
    assert merged_accuracy(s144[::-1], s144, "sg144", "strict") == 0.0


def test_marginalise_sums_member_groups():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(230), size=5)
    systems = marginalise(probs, "crystal_system")
    # ITA ranges: triclinic 1-2, monoclinic 3-15, orthorhombic 16-74, tetragonal 75-142, trigonal 143-167,
    # hexagonal 168-194, cubic 195-230
    edges = [1, 3, 16, 75, 143, 168, 195, 231]
    by_hand = np.stack([probs[:, a - 1:b - 1].sum(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    np.testing.assert_allclose(systems, by_hand)
    bravais = marginalise(probs, "bravais")
    face_centred_cubic = [196, 202, 203, 209, 210, 216, 219, 225, 226, 227, 228]
    np.testing.assert_allclose(bravais[:, BRAVAIS_LABELS.index("cubic (F)")],
                               probs[:, np.array(face_centred_cubic) - 1].sum(axis=1))
    extinction = marginalise(probs, "extinction_group")
    assert extinction.shape == (5, len(extinction_groups()))
    np.testing.assert_allclose(extinction.sum(axis=1), 1.0)
    tensor = marginalise(torch.tensor(probs, dtype=torch.float32), "bravais")
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    np.testing.assert_allclose(tensor.numpy(), bravais, rtol=1e-5)
    p144 = rng.dirichlet(np.ones(144), size=3)
    np.testing.assert_allclose(marginalise(p144, "crystal_system")[:, 0], p144[:, 0] + p144[:, 1])  # P1, P-1
    np.testing.assert_allclose(marginalise(p144, "crystal_system").sum(axis=1), 1.0)
    with pytest.raises(ValueError):
        marginalise(rng.dirichlet(np.ones(14), size=2), "crystal_system")


def test_crystal_system_blocks():
    true = class_index(np.array([1, 2, 225, 225, 221]), "space_group")
    pred = class_index(np.array([2, 2, 225, 166, 3]), "space_group")
    matrix = confusion_matrix(pred, true, 230)
    blocked = crystal_system_confusion(matrix, "space_group")
    expected = np.zeros((7, 7), dtype=int)
    expected[0, 0] = 2  # P1 -> P-1, P-1 -> P-1
    expected[6, 6] = 1  # Fm-3m -> Fm-3m
    expected[6, 4] = 1  # Fm-3m -> R-3m (trigonal)
    expected[6, 1] = 1  # Pm-3m -> P2
    np.testing.assert_array_equal(blocked, expected)
    blocks = {b.crystal_system: b for b in crystal_system_blocks(matrix, "space_group")}
    assert blocks["triclinic"].counts.tolist() == [[0, 1, 0], [0, 1, 0]]
    cubic = blocks["cubic"]
    assert len(cubic.class_names) == 36 and cubic.counts.shape == (36, 37)
    row = cubic.class_names.index("225 Fm-3m")
    assert cubic.counts[row, row] == 1 and cubic.counts[row, -1] == 1
    assert cubic.counts[cubic.class_names.index("221 Pm-3m"), -1] == 1


@pytest.mark.parametrize("only_a, only_b", [(10, 1), (1, 10), (39, 22), (16, 10), (5, 5), (0, 3), (0, 0), (120, 80)])
def test_mcnemar_p_equals_scipy_binomial_test(only_a, only_b):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    assert mcnemar_p(only_a, only_b) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_p_by_hand():
    # 3 discordant pairs all one way: 2 * (1/2)**3
    assert mcnemar_p(3, 0) == pytest.approx(0.25)
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_p(-1, 2)


@pytest.mark.parametrize("only_a, only_b", [(10, 1), (1, 10), (39, 22), (5, 5), (0, 3), (0, 0), (120, 80)])
def test_paired_cluster_p_with_one_pattern_per_cluster_is_mcnemar(only_a, only_b):
    """Singleton clusters: the sign-flip test is McNemar's exact test; concordant patterns change nothing."""
    a = np.r_[np.ones(only_a), np.zeros(only_b), np.ones(7), np.zeros(4)].astype(bool)
    b = np.r_[np.zeros(only_a), np.ones(only_b), np.ones(7), np.zeros(4)].astype(bool)
    assert paired_cluster_p(a, b) == pytest.approx(mcnemar_p(only_a, only_b), rel=1e-9)


def test_paired_cluster_p_counts_a_repeated_sample_once():
    """Each pattern measured five times (five copies in one cluster) gives the p-value of the patterns alone, where
    McNemar on the copies would claim far more; by hand: cluster differences +2 and +1 give sums +-3 and +-1, so
    P(|sum| >= 3) = 1/2; a cluster whose differences cancel adds nothing."""
    a = np.r_[np.zeros(9), np.ones(2)].astype(bool)
    b = np.r_[np.ones(9), np.zeros(2)].astype(bool)
    single = paired_cluster_p(a, b)
    copies = np.repeat(np.arange(11), 5)
    assert paired_cluster_p(np.repeat(a, 5), np.repeat(b, 5), copies) == pytest.approx(single, rel=1e-9)
    assert mcnemar_p(10, 45) < single / 1000
    hand_a, hand_b = np.array([0, 0, 0, 1, 0], bool), np.array([1, 1, 1, 0, 1], bool)
    assert paired_cluster_p(hand_a, hand_b, [0, 0, 1, 2, 2]) == pytest.approx(0.5)  # +2, +1, and 0 (+1 -1)
    with pytest.raises(ValueError, match="one id per pattern"):
        paired_cluster_p(hand_a, hand_b, [0, 1])
