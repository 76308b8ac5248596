"""Refusal after Vecsei et al. and calibration, on constructed probabilities."""

import numpy as np
import pytest
import torch

from powdersym.evaluate import (
    apply_temperature,
    certainty_histograms,
    choose_refusal_threshold,
    expected_calibration_error,
    fit_temperature,
    refusal_curve,
    softmax,
)

# certainties 0.95 (right), 0.75 (wrong), 0.65 (right), 0.55 (right)
PROBS = np.array([[0.95, 0.05], [0.25, 0.75], [0.65, 0.35], [0.45, 0.55]])
TRUE = np.array([0, 0, 0, 1])


def test_refusal_curve_by_hand():
    curve = refusal_curve(PROBS, TRUE)
    np.testing.assert_allclose(curve.threshold, [0.95, 0.75, 0.65, 0.55])
    np.testing.assert_allclose(curve.coverage, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(curve.accuracy, [1.0, 0.5, 2 / 3, 0.75])
    half = curve.at_coverage(0.5)
    assert (half.threshold, half.coverage, half.accuracy) == (0.75, 0.5, 0.5)
    assert curve.at_coverage(0.6).threshold == 0.65  # the first point that classifies at least 60 %


def test_refusal_curve_keeps_ties_together():
    probs = np.array([[0.8, 0.2], [0.8, 0.2], [0.6, 0.4]])
    curve = refusal_curve(probs, np.array([0, 1, 0]))
    np.testing.assert_allclose(curve.threshold, [0.8, 0.6])
    np.testing.assert_allclose(curve.coverage, [2 / 3, 1.0])
    np.testing.assert_allclose(curve.accuracy, [0.5, 2 / 3])


def test_integer_weights_count_like_repeated_rows():
    weights = np.array([2, 0, 1, 3])
    weighted = refusal_curve(PROBS, TRUE, weights)
    repeated = refusal_curve(np.repeat(PROBS, weights, axis=0), np.repeat(TRUE, weights))
    for name in ("threshold", "coverage", "accuracy"):
        np.testing.assert_allclose(getattr(weighted, name)[weights[np.argsort(-PROBS.max(1))] > 0], getattr(repeated, name))
    assert choose_refusal_threshold(PROBS, TRUE, target_coverage=0.6, weights=weights).threshold == 0.55  # 2/6 at 0.65
    with pytest.raises(ValueError, match="weights"):
        refusal_curve(PROBS, TRUE, [1, 1, -1, 1])


def test_choose_refusal_threshold():
    by_accuracy = choose_refusal_threshold(PROBS, TRUE, target_accuracy=0.7)
    assert (by_accuracy.threshold, by_accuracy.coverage, by_accuracy.accuracy) == (0.55, 1.0, 0.75)
    assert choose_refusal_threshold(PROBS, TRUE, target_accuracy=0.8).threshold == 0.95
    impossible = choose_refusal_threshold(PROBS[1:2], TRUE[1:2], target_accuracy=0.5)
    assert impossible.threshold > 0.75 and impossible.coverage == 0.0
    assert choose_refusal_threshold(PROBS, TRUE, target_coverage=0.75).threshold == 0.65
    with pytest.raises(ValueError):
        choose_refusal_threshold(PROBS, TRUE)


def test_certainty_histograms():
    hist = certainty_histograms(PROBS, TRUE, bins=10)
    assert hist["right"] == [0, 0, 0, 0, 0, 1, 1, 0, 0, 1]
    assert hist["wrong"] == [0, 0, 0, 0, 0, 0, 0, 1, 0, 0]


def test_ece_by_hand():
    # 5 bins: (0.8, 1] holds 0.95 (right): gap 0.05; (0.6, 0.8] holds 0.75 (wrong) and 0.65 (right): mean
    # confidence 0.7, accuracy 0.5, gap 0.2; (0.4, 0.6] holds 0.55 (right): gap 0.45
    assert expected_calibration_error(PROBS, TRUE, n_bins=5) == pytest.approx((0.05 + 2 * 0.2 + 0.45) / 4)
    # 15 bins (default) put every row in its own bin: gaps 0.05, 0.75, 0.35, 0.45
    assert expected_calibration_error(PROBS, TRUE) == pytest.approx((0.05 + 0.75 + 0.35 + 0.45) / 4)


def test_temperature_scaling_recovers_known_temperature():
    rng = np.random.default_rng(1)
    true_logits = 2.0 * rng.normal(size=(20000, 10))
    p = softmax(true_logits)
    labels = (p.cumsum(axis=1) > rng.random((len(p), 1))).argmax(axis=1)  # one draw from each row's softmax
    over_confident = 2.5 * true_logits  # softmax(over_confident / 2.5) is the true distribution
    temperature = fit_temperature(over_confident, labels)
    assert temperature == pytest.approx(2.5, rel=0.05)
    before = expected_calibration_error(softmax(over_confident), labels)
    after = expected_calibration_error(softmax(apply_temperature(over_confident, temperature)), labels)
    assert after < 0.02 < before
    assert fit_temperature(0.5 * true_logits, labels) == pytest.approx(0.5, rel=0.05)  # under-confident too
    scaled = apply_temperature(torch.ones(2, 3), 2.0)
    assert isinstance(scaled, torch.Tensor) and float(scaled[0, 0]) == 0.5
    with pytest.raises(ValueError):
        apply_temperature(true_logits, 0.0)
