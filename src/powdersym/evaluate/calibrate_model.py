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


def calibrate_saved_model(path: str | os.PathLike, n: int = 2048, coverage: float = 0.5, seed: int = VALIDATION_SEED,
                          index: bool = True, progress: bool = False, jobs: int = 1) -> dict[str, Any]:
    """Temperature (NLL on the validation logits) and the certainty threshold that keeps `coverage` of the
    validation patterns, as trained and (refusal_threshold_known) for probabilities re-weighted to known crystals'
    frequencies, the patterns then weighted by the same Bayes factors so that they stand for known crystals;
    written into the model's JSON (atomically). Returns what was stored.

    index: the thresholds are chosen on the probabilities `powdersym predict` reports, each validation pattern
    indexed and its groups restricted to the cell's lattice and absences (`restrict_to_cells`): an indexed pattern's
    probabilities are more concentrated than the network's, so a threshold chosen without indexing flags fewer
    patterns than `coverage` says (about 0.5 s a pattern on one CPU core; `jobs` processes, 0 one per core)."""
    from powdersym.evaluate import choose_refusal_threshold, expected_calibration_error, fit_temperature, top_k_accuracy
    from powdersym.data.generate import augment_config
    from powdersym.models.saved import meta_path
    from powdersym.predict import Predictor, prior_ratio, restrict_to_cells, training_balance, training_distribution

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
    ratio = prior_ratio(predictor.saved.meta)
    known = None
    if ratio is not None:
        known = calibrated * ratio
        known /= known.sum(axis=1, keepdims=True)
    cells = indexed_cells(predictor, patterns, progress, jobs) if index else []
    reported = restrict_to_cells(calibrated, cells)  # as predict reports them (all rows unchanged without cells)
    point = choose_refusal_threshold(reported, labels, target_coverage=coverage)
    if known is not None:
        known = restrict_to_cells(known, cells)
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
            "indexed": (f"{sum(c is not None for c in cells)} of {n} patterns indexed (refine.index); thresholds on the "
                        "probabilities restricted to their cells") if index else "not indexed",
        },
    }
    if ratio is not None:
        stored["refusal_threshold_known"] = float(known_point.threshold)
        stored["calibration"]["refusal_known"] = {"coverage": float(known_point.coverage), "accuracy_kept": float(known_point.accuracy),
                                                  "top1": float(np.average(known.argmax(1) == labels, weights=ratio[labels]))}  # fmt: skip
    file = meta_path(Path(path).with_suffix(".safetensors"))
    atomic_write_text(file, json.dumps(json.loads(file.read_text()) | stored, indent=1))
    return stored


def indexed_cells(predictor: Any, patterns: np.ndarray, progress: bool = False, jobs: int = 1) -> list:
    """The cell `predictor.index_patterns` accepts (or None) for each pattern on the model's grid [n, P], read as a
    measurement of the model's instrument (2theta at its first wavelength, the doublet from the instrument; ToF with
    its DIFC, DIFA, ZERO)."""
    from powdersym.io import MeasuredPattern

    instrument = predictor.instrument
    x = instrument.grid()
    if instrument.geometry == "tof":
        measured = [MeasuredPattern(x, row.astype(np.float64), None, "tof", difc=instrument.difc, difa=instrument.difa,
                                    zero=instrument.zero) for row in patterns]  # fmt: skip
    else:
        measured = [MeasuredPattern(x, row.astype(np.float64), None, "two_theta", wavelength=instrument.wavelengths[0])
                    for row in patterns]  # fmt: skip
    return predictor.index_patterns(measured, jobs=jobs, progress="indexing validation patterns" if progress else None)
