"""Classification metrics over arrays: probabilities or logits [N, C] and true class indices [N].

Nothing here knows how the numbers were produced. Class indices are model columns (use
`labelsets.class_index` to turn stored labels into them); functions about space groups take space-group numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
import torch

from powdersym.symmetry import CRYSTAL_SYSTEMS, subgroup_distance_matrix

from .labelsets import (
    SPACE_GROUP_SETS,
    class_names,
    derived_index_of_sg,
    enantiomorph_merged_number,
    n_classes,
    space_group_numbers,
)

Array = np.ndarray | torch.Tensor


def to_numpy(values: Array) -> np.ndarray:
    """A numpy view of an array or (CPU or GPU) tensor."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def softmax(logits: Array) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits."""
    z = to_numpy(logits).astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def is_probabilities(scores: Array, atol: float = 1e-3) -> bool:
    """True if every row is non-negative and sums to 1 (otherwise the scores are taken as logits)."""
    s = to_numpy(scores)
    return bool(s.size and (s >= 0).all() and np.allclose(s.sum(axis=1), 1.0, atol=atol))


def as_probabilities(scores: Array, logits: bool | None = None) -> np.ndarray:
    """Probabilities [N, C] from probabilities or logits (decided by `is_probabilities` when logits is None)."""
    if logits is None:
        logits = not is_probabilities(scores)
    return softmax(scores) if logits else to_numpy(scores).astype(np.float64)


def check_labels(labels: Array, n: int, n_cls: int | None = None) -> np.ndarray:
    """Class indices as int64 [n], checked against the row count and the range 0..n_cls-1."""
    labels = to_numpy(labels).astype(np.int64).reshape(-1)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} predictions")
    if len(labels) and (labels.min() < 0 or (n_cls is not None and labels.max() >= n_cls)):
        raise ValueError(f"class indices must lie in 0..{'C-1' if n_cls is None else n_cls - 1}, "
                         f"got {labels.min()}..{labels.max()}")
    return labels


def top_k_hits(probs: Array, labels: Array, k: int = 1) -> np.ndarray:
    """bool [N]: whether the true class is among the k highest scores (ties broken by column order)."""
    p = to_numpy(probs)
    labels = check_labels(labels, len(p), p.shape[1])
    k = min(k, p.shape[1])
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=1)


def top_k_accuracy(probs: Array, labels: Array, k: int = 1) -> float:
    """Fraction of rows whose true class is among the k most probable (Lolla et al.'s top-1 / top-5)."""
    hits = top_k_hits(probs, labels, k)
    return float(hits.mean()) if len(hits) else float("nan")


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value for two models scored on the same patterns: the patterns only model A gets
    right against those only B gets right, as a fair coin's Binomial(n, 1/2) (the concordant pairs say nothing
    about the difference)."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be >= 0, got {only_a}, {only_b}")
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def paired_cluster_p(hits_a: Array, hits_b: Array, clusters: Array | None = None) -> float:
    """Two-sided exact p-value that models A and B are equally good on the same patterns [N] (bool hits), counting
    each cluster of related patterns (the same sample or mineral measured several times) once: a sign-flip test on
    the per-cluster differences d_c = sum(b - a), under which each d_c is as likely to have the other sign; the
    distribution of sum(±|d_c|) is built exactly by convolution. With one pattern per cluster (None) it is McNemar's
    exact test (`mcnemar_p`); with repeated patterns it does not count one mineral's five patterns as five pieces of
    evidence."""
    a, b = np.asarray(hits_a, dtype=bool), np.asarray(hits_b, dtype=bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"hits must be two vectors of one length, got {a.shape} and {b.shape}")
    ids = np.arange(len(a)) if clusters is None else np.asarray(clusters)
    if ids.shape != a.shape:
        raise ValueError(f"clusters must give one id per pattern ({len(a)}), got shape {ids.shape}")
    _, index = np.unique(ids, return_inverse=True)
    per_cluster = np.rint(np.bincount(index, weights=b.astype(int) - a.astype(int))).astype(int)
    observed, d = abs(int(per_cluster.sum())), np.abs(per_cluster[per_cluster != 0])
    total = int(d.sum())
    probability = np.zeros(2 * total + 1)  # P(sum = s - total)
    probability[total] = 1.0
    for step in d:
        probability = 0.5 * (np.roll(probability, step) + np.roll(probability, -step))  # no wrap: |sum| <= total
    sums = np.abs(np.arange(-total, total + 1))
    return float(min(1.0, probability[sums >= observed].sum()))


def per_class_top_k(probs: Array, labels: Array, ks: tuple[int, ...] = (1, 3, 5)) -> dict[str, np.ndarray]:
    """'count' [C] and 'top{k}' [C] accuracy per true class (NaN for classes absent from the labels)."""
    p = to_numpy(probs)
    labels = check_labels(labels, len(p), p.shape[1])
    count = np.bincount(labels, minlength=p.shape[1])
    out: dict[str, np.ndarray] = {"count": count}
    with np.errstate(invalid="ignore", divide="ignore"):
        for k in ks:
            hits = np.bincount(labels, weights=top_k_hits(p, labels, k), minlength=p.shape[1])
            out[f"top{k}"] = np.where(count > 0, hits / np.maximum(count, 1), np.nan)
    return out


def balanced_accuracy(predicted: Array, labels: Array, n_cls: int | None = None) -> float:
    """Mean over the classes present in labels of their recall (each class weighs the same, whatever its size)."""
    predicted = to_numpy(predicted).astype(np.int64).reshape(-1)
    labels = check_labels(labels, len(predicted))
    n_cls = n_cls or int(max(predicted.max(initial=-1), labels.max(initial=-1)) + 1)
    count = np.bincount(labels, minlength=n_cls)
    correct = np.bincount(labels, weights=predicted == labels, minlength=n_cls)
    present = count > 0
    return float((correct[present] / count[present]).mean()) if present.any() else float("nan")


def confusion_matrix(predicted: Array, labels: Array, n_cls: int) -> np.ndarray:
    """int [C, C]: counts with the true class along rows and the predicted class along columns."""
    predicted = to_numpy(predicted).astype(np.int64).reshape(-1)
    labels = check_labels(labels, len(predicted), n_cls)
    if len(predicted) and (predicted.min() < 0 or predicted.max() >= n_cls):
        raise ValueError(f"predicted classes must lie in 0..{n_cls - 1}")
    return np.bincount(labels * n_cls + predicted, minlength=n_cls * n_cls).reshape(n_cls, n_cls)


def normalise_confusion(matrix: np.ndarray, by: Literal["true", "all"] = "true") -> np.ndarray:
    """Confusion matrix in %: each row sums to 100 ('true', recall per class; empty rows stay 0) or the whole
    matrix does ('all', the main paper's Fig. 8)."""
    m = np.asarray(matrix, dtype=np.float64)
    if by == "true":
        total = m.sum(axis=1, keepdims=True)
    elif by == "all":
        total = np.full((1, 1), m.sum())
    else:
        raise ValueError(f"by must be 'true' or 'all', not {by!r}")
    return np.divide(100.0 * m, total, out=np.zeros_like(m), where=total > 0)


# --- space-group models -----------------------------------------------------------------------------------------


def _source_set(n_columns: int) -> str:
    for label_set in SPACE_GROUP_SETS:
        if n_classes(label_set) == n_columns:
            return label_set
    raise ValueError(f"{n_columns} columns are neither 230 space groups nor the 144 of Lolla et al.")


@cache
def _membership(source: str, to: str) -> np.ndarray:
    """float [C_source, C_to]: 1 where the source space group belongs to the target class."""
    target = derived_index_of_sg(to)[space_group_numbers(source)]
    if (target < 0).any():
        raise ValueError(f"the classes of {source!r} are not all in a class of {to!r}")
    membership = np.zeros((len(target), n_classes(to)))
    membership[np.arange(len(target)), target] = 1.0
    membership.flags.writeable = False
    return membership


def marginalise(probs: Array, to: str) -> Array:
    """Probabilities over the classes of `to` ('bravais', 'crystal_system', 'extinction_group', ...) from
    probabilities over space groups [N, 230] (or the 144 of 'sg144'): each class gets the sum of its member
    groups. Returns the input's type (a tensor stays on its device and dtype)."""
    membership = _membership(_source_set(probs.shape[-1]), to)
    if isinstance(probs, torch.Tensor):
        return probs @ torch.tensor(membership, dtype=probs.dtype, device=probs.device)
    return np.asarray(probs) @ membership


def predicted_numbers(probs: Array, label_set: str) -> np.ndarray:
    """Space-group numbers of the most probable class, for 'space_group' or 'sg144' models."""
    return space_group_numbers(label_set)[to_numpy(probs).argmax(axis=1)]


def merged_accuracy(
    predicted: Array, labels: Array, label_set: str, merge: Literal["strict", "enantiomorph", "extinction_group"]
) -> float:
    """Accuracy of a space-group model when some groups count as one: 'enantiomorph' joins the 11 enantiomorphic
    pairs (P41/P43, P3121/P3221, ...), which diffraction cannot tell apart; 'extinction_group' counts a prediction
    right when it has the true group's powder extinction group; 'strict' joins nothing."""
    predicted = to_numpy(predicted).astype(np.int64).reshape(-1)
    labels = check_labels(labels, len(predicted), n_classes(label_set))
    if merge == "strict":
        same = predicted == labels
    elif merge == "enantiomorph":
        merged = enantiomorph_merged_number(label_set)
        same = merged[predicted] == merged[labels]
    elif merge == "extinction_group":
        group = derived_index_of_sg("extinction_group")[space_group_numbers(label_set)]
        same = group[predicted] == group[labels]
    else:
        raise ValueError(f"merge must be 'strict', 'enantiomorph' or 'extinction_group', not {merge!r}")
    return float(same.mean()) if len(same) else float("nan")


def subgroup_distances(predicted_numbers: Array, true_numbers: Array) -> np.ndarray:
    """int [N]: maximal-subgroup graph distance between predicted and true space group (Vecsei et al. Sect. III C;
    0 where right)."""
    distance = subgroup_distance_matrix()
    return distance[to_numpy(predicted_numbers).astype(np.int64), to_numpy(true_numbers).astype(np.int64)]


def distance_histogram(distances: Array) -> dict[int, int]:
    """{distance: count} for distances >= 1 (the wrong predictions), as in Vecsei et al. Fig. 3c."""
    d = to_numpy(distances).astype(np.int64)
    values, counts = np.unique(d[d > 0], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


@dataclass
class ConfusionBlock:
    """The confusion among the space groups of one crystal system: true groups along rows, predicted groups of the
    same system along columns, and a last column for predictions in any other crystal system."""

    crystal_system: str
    class_names: list[str]
    counts: np.ndarray  # [n, n + 1]

    def to_dict(self) -> dict:
        return {"crystal_system": self.crystal_system, "class_names": self.class_names, "counts": self.counts.tolist()}


def crystal_system_of_classes(label_set: str) -> np.ndarray:
    """int [C]: crystal-system index (CRYSTAL_SYSTEMS) of every class of a space-group label set."""
    return derived_index_of_sg("crystal_system")[space_group_numbers(label_set)]


def crystal_system_confusion(matrix: np.ndarray, label_set: str) -> np.ndarray:
    """int [7, 7]: a space-group confusion matrix summed into crystal-system blocks (true system along rows)."""
    system = crystal_system_of_classes(label_set)
    one_hot = np.eye(len(CRYSTAL_SYSTEMS), dtype=np.int64)[system]
    return one_hot.T @ np.asarray(matrix, dtype=np.int64) @ one_hot


def crystal_system_blocks(matrix: np.ndarray, label_set: str) -> list[ConfusionBlock]:
    """One readable sub-matrix per crystal system of a space-group confusion matrix (see ConfusionBlock)."""
    matrix = np.asarray(matrix, dtype=np.int64)
    system = crystal_system_of_classes(label_set)
    names = class_names(label_set)
    blocks = []
    for index, name in enumerate(CRYSTAL_SYSTEMS):
        members = np.flatnonzero(system == index)
        rows = matrix[members]
        inside = rows[:, members]
        outside = rows.sum(axis=1) - inside.sum(axis=1)
        blocks.append(ConfusionBlock(name, [names[i] for i in members], np.column_stack([inside, outside])))
    return blocks
