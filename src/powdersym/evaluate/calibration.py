"""Calibration: expected calibration error and temperature scaling (Guo et al., ICML 2017).

A network trained with cross-entropy is usually over-confident; one temperature T fitted on validation logits
(softmax(z / T)) fixes most of it without changing any prediction, so refusal thresholds mean what they say.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import Array, check_labels, to_numpy

N_BINS = 15


def reliability_bins(probs: Array, labels: Array, n_bins: int = N_BINS) -> dict[str, list]:
    """Top-1 confidence split into n_bins equal bins (lo, hi] over [0, 1]: per bin 'count', mean 'confidence' and
    'accuracy' (NaN where empty), plus 'edges'."""
    p = to_numpy(probs).astype(np.float64)
    labels = check_labels(labels, len(p), p.shape[1])
    confidence, right = p.max(axis=1), p.argmax(axis=1) == labels
    bin_index = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(bin_index, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(bin_index, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bin_index, weights=right, minlength=n_bins) / count
    return {"edges": np.linspace(0, 1, n_bins + 1).tolist(), "count": count.tolist(),
            "confidence": mean_confidence.tolist(), "accuracy": accuracy.tolist()}


def expected_calibration_error(probs: Array, labels: Array, n_bins: int = N_BINS) -> float:
    """ECE = sum over bins of (rows in bin / N) * |accuracy - mean confidence| (Guo et al. eq. 3)."""
    bins = reliability_bins(probs, labels, n_bins)
    count = np.asarray(bins["count"], dtype=np.float64)
    gap = np.abs(np.asarray(bins["accuracy"]) - np.asarray(bins["confidence"]))
    used = count > 0
    return float((count[used] * gap[used]).sum() / count.sum()) if count.sum() else float("nan")


def fit_temperature(logits: Array, labels: Array, max_iter: int = 200) -> float:
    """Temperature T > 0 minimising the negative log-likelihood of softmax(logits / T) on held-out data (LBFGS on
    log T, so T stays positive)."""
    z = torch.as_tensor(to_numpy(logits), dtype=torch.float64)
    y = torch.as_tensor(check_labels(labels, len(z), z.shape[1]))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimiser.step(closure)
    return float(log_t.detach().exp())


def apply_temperature(logits: Array, temperature: float) -> Array:
    """Logits divided by the temperature (same type as the input); softmax of it gives calibrated probabilities."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature}")
    if isinstance(logits, torch.Tensor):
        return logits / temperature
    return np.asarray(logits, dtype=np.float64) / temperature


def negative_log_likelihood(probs: Array, labels: Array) -> float:
    """Mean -log p(true class), with p clipped at 1e-12."""
    p = to_numpy(probs)
    labels = check_labels(labels, len(p), p.shape[1])
    return float(-np.log(np.clip(p[np.arange(len(p)), labels], 1e-12, None)).mean())
