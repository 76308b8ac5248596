"""Fit a saved model's temperature and refusal threshold on fresh synthetic validation patterns and store both in
its JSON, so `predict` reports calibrated probabilities and an 'uncertain' flag chosen on validation data."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from powdersym.files import atomic_write_text

VALIDATION_SEED = 424242  # no training stream (seeds 0 / 10 000 / 20 000 + run seed) uses it


def synthetic_validation(
    instrument: Any, n: int, seed: int = VALIDATION_SEED, augment: Any = "realistic", balance: str = "space_group",
    prior: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """n synthetic patterns [n, P] (realistic augmentation by default; a name or an AugmentConfig) and their
    space-group numbers [n], balanced over the classes of `balance` (the 230 groups by default; a model's own
    training balance when calibrating it) or drawn with `prior` over its classes."""
    from powdersym.data import SyntheticStream

    batch = min(n, 512)
    stream = SyntheticStream(instrument, batch, seed=seed, label_set=balance, prior=prior, augment=augment, target="space_group",
                             max_batches=-(-n // batch))  # fmt: skip
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in stream])
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def calibrate_saved_model(path: str | os.PathLike, n: int = 2048, coverage: float = 0.5, seed: int = VALIDATION_SEED) -> dict[str, Any]:
    """Temperature (NLL on the validation logits) and the certainty threshold that keeps `coverage` of the
    validation patterns, as trained and (refusal_threshold_known) for probabilities re-weighted to known crystals'
    frequencies, the patterns then weighted by the same Bayes factors so that they stand for known crystals;
    written into the model's JSON (atomically). Returns what was stored."""
    from powdersym.evaluate import choose_refusal_threshold, expected_calibration_error, fit_temperature, top_k_accuracy
    from powdersym.data.generate import augment_config
    from powdersym.models.saved import meta_path
    from powdersym.predict import Predictor, prior_ratio, training_balance, training_distribution

    predictor = Predictor.load(path)
    # the distribution the model was trained on (older models: realistic augmentation, balanced over the 230 groups)
    training = predictor.saved.meta.get("training", {})
    balance = training_balance(predictor.saved.meta) or "space_group"
    exponent = float(training.get("known_exponent") or 0.0)
    drawn = dict(balance="space_group", prior=training_distribution(predictor.saved.meta)) if exponent else dict(balance=balance)
    augment_name = training.get("augment", "realistic")
    augment = augment_config(augment_name, predictor.instrument, training.get("augment_ranges"))
    patterns, groups = synthetic_validation(predictor.instrument, n, seed, augment=augment, **drawn)
    logits, _ = predictor.logits(patterns)
    labels = groups - 1
    temperature = float(fit_temperature(logits, labels))
    calibrated = torch.softmax(torch.from_numpy(logits) / temperature, 1).numpy()
    raw = torch.softmax(torch.from_numpy(logits), 1).numpy()
    point = choose_refusal_threshold(calibrated, labels, target_coverage=coverage)
    ratio = prior_ratio(predictor.saved.meta)
    if ratio is not None:
        known = calibrated * ratio
        known /= known.sum(axis=1, keepdims=True)
        known_point = choose_refusal_threshold(known, labels, target_coverage=coverage, weights=ratio[labels])
    stored = {
        "temperature": temperature,
        "refusal_threshold": float(point.threshold),
        "calibration": {
            "data": f"{n} synthetic patterns ({augment_name} augmentation{' with the training ranges' if training.get('augment_ranges') else ''}, "
                    f"seed {seed}), balanced over {balance}" + (f", tempered towards known crystals (exponent {exponent})" if exponent else ""),
            "ece_before": float(expected_calibration_error(raw, labels)),
            "ece_after": float(expected_calibration_error(calibrated, labels)),
            "top1": float(top_k_accuracy(calibrated, labels, 1)),
            "top5": float(top_k_accuracy(calibrated, labels, 5)),
            "refusal": {"coverage": float(point.coverage), "accuracy_kept": float(point.accuracy)},
        },
    }
    if ratio is not None:
        stored["refusal_threshold_known"] = float(known_point.threshold)
        stored["calibration"]["refusal_known"] = {"coverage": float(known_point.coverage), "accuracy_kept": float(known_point.accuracy),
                                                  "top1": float(np.average(known.argmax(1) == labels, weights=ratio[labels]))}  # fmt: skip
    file = meta_path(Path(path).with_suffix(".safetensors"))
    atomic_write_text(file, json.dumps(json.loads(file.read_text()) | stored, indent=1))
    return stored
