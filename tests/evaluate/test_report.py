"""evaluate_predictions end to end, the figures, and write_report's files."""

import json

import numpy as np
import pytest

from powdersym.evaluate import (
    Report,
    evaluate_predictions,
    plot_certainty,
    plot_confusion,
    plot_distance_histogram,
    plot_label_fraction,
    plot_refusal,
    plot_reliability,
    refusal_curve,
    reliability_bins,
    split_overlap,
    write_report,
)
from powdersym.symmetry import SG144

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_SIGNATURE) and len(data) > 2000


def _sg144_outputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a 144-way model and the stored labels (indices into SG144)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 144, n)
    logits = rng.normal(size=(n, 144))
    logits[np.arange(n), labels] += 3.0
    return logits, labels


def test_one_hot_predictions_score_everything_right():
    numbers = np.array([1, 76, 78, 225, 194])
    report = evaluate_predictions(np.eye(230)[numbers - 1], numbers, "space_group", commit="", model="oracle")
    assert report.accuracy["top1"] == 1 and report.accuracy["balanced"] == 1
    assert report.merged_accuracy == {"strict": 1, "enantiomorph": 1, "extinction_group": 1}
    assert report.derived_accuracy == {"bravais": 1, "crystal_system": 1, "extinction_group": 1}
    assert report.subgroup_distance["histogram"] == {}
    assert report.refusal_at_half["accuracy"] == 1


def test_enantiomorph_swap_is_strictly_wrong_but_merged_right():
    numbers = np.array([76, 78, 91, 95])
    swapped = np.array([78, 76, 95, 91])
    report = evaluate_predictions(np.eye(230)[swapped - 1], numbers, "space_group", commit="")
    assert report.accuracy["top1"] == 0
    assert report.merged_accuracy["enantiomorph"] == 1
    assert report.derived_accuracy["bravais"] == 1  # the marginals cannot tell the pair apart either


def test_rows_without_a_class_are_left_out():
    labels = np.array([0, 5, -1, 143])  # -1: a space group outside the 144
    probs = np.eye(144)[[0, 5, 7, 143]]
    report = evaluate_predictions(probs, labels, "sg144", commit="")
    assert report.n_samples == 3 and report.n_excluded == 1 and report.accuracy["top1"] == 1
    assert report.class_names[143] == "230 Ia-3d" == f"{SG144[143]} Ia-3d"


def test_write_report_writes_every_file(tmp_path):
    logits, labels = _sg144_outputs(400)
    val_logits, val_labels = _sg144_outputs(400, seed=1)
    rng = np.random.default_rng(2)
    lattice_true = rng.uniform(3, 12, size=(400, 6))
    overlap = split_overlap(["NaCl", "KCl"], ["NaCl"] * 100 + ["LiF"] * 300)
    report = evaluate_predictions(
        2.0 * logits, labels, "sg144", val_logits=2.0 * val_logits, val_labels=val_labels,
        refusal_target_accuracy=0.9, lattice_pred=lattice_true * 1.01, lattice_true=lattice_true,
        model="resnet1d-test", training_data="synthetic test rows", split="test", test_data="constructed logits",
        overlap=overlap, commit="abc123",
    )
    assert report.calibration["temperature"] > 0 and report.calibration["nll_after"] < report.calibration["nll_before"]
    assert report.calibration["ece_after"] < report.calibration["ece_before"]
    assert report.lattice["mape"]["a"] == pytest.approx(1.0)
    assert report.refusal_chosen["validation"]["accuracy"] >= 0.9
    assert report.overlap.startswith("100 of 400 test rows")

    written = write_report(report, tmp_path / "out")
    names = {p.name for p in written}
    assert {"report.json", "report.md", "confusion.png", "confusion_all.png", "confusion_crystal_system.png",
            "confusion_cubic.png", "certainty.png", "refusal.png", "reliability.png",
            "subgroup_distance.png"} <= names
    assert all(_is_png(p) for p in written if p.suffix == ".png")
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary files left
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["model"] == "resnet1d-test" and data["commit"] == "abc123"
    assert data["accuracy"]["top1"] == pytest.approx(report.accuracy["top1"])
    assert Report.from_dict(data).merged_accuracy == pytest.approx(report.merged_accuracy)
    markdown = (tmp_path / "out" / "report.md").read_text()
    for text in ("top-1", "balanced accuracy", "accuracy at 50 % coverage", "ECE (15 bins)", "same up to enantiomorph",
                 "## Per-class accuracy", "92 P41212", "## Lattice parameters", "100 of 400 test rows", "abc123"):
        assert text in markdown, text


def test_bravais_report_without_figures(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 14, 300)
    probs = rng.dirichlet(np.ones(14), 300)
    probs[np.arange(300), labels] += 1.0
    probs /= probs.sum(axis=1, keepdims=True)
    report = evaluate_predictions(probs, labels, "bravais", commit="")
    assert report.merged_accuracy is None and report.subgroup_distance is None
    assert np.isnan(report.calibration["ece_after"])
    written = write_report(report, tmp_path, figures=False)
    assert sorted(p.name for p in written) == ["report.json", "report.md"]
    assert json.loads((tmp_path / "report.json").read_text())["calibration"]["ece_after"] is None
    assert "cubic (F)" in (tmp_path / "report.md").read_text()


def test_plots_are_non_empty_pngs(tmp_path):
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([0, 0, 0])
    paths = [
        plot_confusion(np.array([[3, 1], [0, 2]]), ["A", "B"], tmp_path / "c.png", normalise="all"),
        plot_certainty({"edges": [0, 0.5, 1], "right": [1, 2], "wrong": [2, 0]}, tmp_path / "h.png"),
        plot_refusal(refusal_curve(probs, labels), tmp_path / "r.png"),
        plot_reliability(reliability_bins(probs, labels), tmp_path / "rel.png"),
        plot_distance_histogram({1: 5, 2: 3, 4: 1}, tmp_path / "d.png"),
        # Lolla et al. Table 4
        plot_label_fraction([
            {"model": model, "fraction": f, "accuracy": a, "label_set": label_set}
            for label_set, model, values in (
                ("bravais", "supervised", (61, 68, 76, 82)), ("bravais", "SGAN", (70, 74, 80, 85)),
                ("sg144", "supervised", (54, 61, 68, 75)), ("sg144", "SGAN", (60, 65, 72, 78)))
            for f, a in zip((5, 10, 25, 50), values)
        ], tmp_path / "fraction.png"),
    ]
    assert all(_is_png(p) for p in paths)
    with pytest.raises(ValueError):
        plot_label_fraction([], tmp_path / "none.png")
