"""Certainty and refusal (Vecsei et al., Sect. III E, Fig. 5): certainty = max_i y_i (their eq. 13); a prediction
below a threshold is left unclassified, trading coverage for accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .metrics import Array, check_labels, to_numpy


def certainty(probs: Array) -> np.ndarray:
    """float [N]: the probability of the predicted class (Vecsei eq. 13)."""
    return to_numpy(probs).max(axis=1).astype(np.float64)


def certainty_histograms(probs: Array, labels: Array, bins: int = 20) -> dict[str, list]:
    """Counts of certainty in `bins` equal bins over [0, 1], separately for right and wrong top-1 predictions
    (Vecsei Fig. 5 b, c): {'edges', 'right', 'wrong'}."""
    p = to_numpy(probs)
    labels = check_labels(labels, len(p), p.shape[1])
    value, right = certainty(p), p.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    return {
        "edges": edges.tolist(),
        "right": np.histogram(value[right], edges)[0].tolist(),
        "wrong": np.histogram(value[~right], edges)[0].tolist(),
    }


@dataclass
class RefusalPoint:
    """Classify only rows with certainty >= threshold: the fraction classified (coverage) and their accuracy."""

    threshold: float
    coverage: float
    accuracy: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RefusalCurve:
    """Coverage and accuracy for every distinct certainty used as threshold, threshold decreasing (coverage
    increasing to 1). The fraction left unclassified is 1 - coverage."""

    threshold: np.ndarray
    coverage: np.ndarray
    accuracy: np.ndarray

    def at_coverage(self, coverage: float = 0.5) -> RefusalPoint:
        """The highest threshold that classifies at least `coverage` of the rows (ties may take a little more);
        Vecsei et al. quote the accuracy at 50 %."""
        if not len(self.threshold):
            return RefusalPoint(float("nan"), 0.0, float("nan"))
        i = min(int(np.searchsorted(self.coverage, coverage - 1e-12, side="left")), len(self.coverage) - 1)
        return RefusalPoint(float(self.threshold[i]), float(self.coverage[i]), float(self.accuracy[i]))

    def to_dict(self, max_points: int = 501) -> dict:
        """JSON-ready; a long curve is thinned to at most max_points (first and last kept)."""
        keep = np.unique(np.linspace(0, len(self.threshold) - 1, min(max_points, len(self.threshold))).astype(int))
        return {name: getattr(self, name)[keep].tolist() for name in ("threshold", "coverage", "accuracy")}


def refusal_curve(probs: Array, labels: Array, weights: Array | None = None) -> RefusalCurve:
    """Accuracy on the rows kept as the certainty threshold moves down through every distinct certainty.
    weights: per-row importance weights (e.g. validation patterns re-weighted to another class prior), by which
    coverage and accuracy are then counted."""
    p = to_numpy(probs)
    labels = check_labels(labels, len(p), p.shape[1])
    w = np.ones(len(p)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != len(p) or not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError("weights must be one finite non-negative number per row")
    value = certainty(p)
    order = np.argsort(-value, kind="stable")
    value, right, w = value[order], (p.argmax(axis=1) == labels)[order], w[order]
    kept = np.cumsum(w)
    last_of_tie = np.append(value[1:] != value[:-1], True) if len(value) else np.zeros(0, dtype=bool)
    correct = np.cumsum(w * right)
    return RefusalCurve(
        threshold=value[last_of_tie],
        coverage=kept[last_of_tie] / max(float(w.sum()), 1e-300),
        accuracy=correct[last_of_tie] / np.maximum(kept[last_of_tie], 1e-300),
    )


def choose_refusal_threshold(
    probs: Array, labels: Array, *, target_accuracy: float | None = None, target_coverage: float | None = None,
    weights: Array | None = None,
) -> RefusalPoint:
    """Refusal threshold chosen on validation data: the lowest threshold whose kept rows reach target_accuracy
    (most coverage at that accuracy), or the highest one that still classifies target_coverage of the rows.
    If no threshold reaches the accuracy, the threshold lies just above every certainty (refuse all). weights:
    per-row importance weights, as refusal_curve."""
    if (target_accuracy is None) == (target_coverage is None):
        raise ValueError("give exactly one of target_accuracy and target_coverage")
    curve = refusal_curve(probs, labels, weights)
    if target_coverage is not None:
        return curve.at_coverage(target_coverage)
    good = np.flatnonzero(curve.accuracy >= target_accuracy - 1e-12)
    if not len(good):
        top = float(curve.threshold[0]) if len(curve.threshold) else 1.0
        return RefusalPoint(float(np.nextafter(top, np.inf)), 0.0, float("nan"))
    i = good[-1]
    return RefusalPoint(float(curve.threshold[i]), float(curve.coverage[i]), float(curve.accuracy[i]))
