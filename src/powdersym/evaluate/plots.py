"""The evaluation figures as PNG files (matplotlib with the Agg backend, no display needed).

Each function takes the JSON-ready numbers a Report holds (so figures can be redrawn from report.json), writes the
file through a temporary name and returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .metrics import ConfusionBlock, normalise_confusion

from powdersym.files import atomic_write


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a figure atomically (temporary file in the same folder, then rename) and close it."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"), suffix=".png")
    finally:
        plt.close(fig)
    return path


def _matrix_axes(ax: Any, values: np.ndarray, row_names: Sequence[str], col_names: Sequence[str],
                 annotate: bool, tick_labels: bool = True) -> Any:
    image = ax.imshow(values, cmap="Blues", vmin=0, aspect="auto", interpolation="nearest")
    if tick_labels:
        fontsize = 7 if max(len(row_names), len(col_names)) <= 40 else 5  # figures stop growing, labels shrink
        ax.set_xticks(range(len(col_names)), col_names, rotation=90, fontsize=fontsize)
        ax.set_yticks(range(len(row_names)), row_names, fontsize=fontsize)
    if annotate:
        top = values.max() if values.size else 0
        fmt = "{:.1f}" if top < 10 else "{:.0f}"
        for (i, j), v in np.ndenumerate(values):
            if float(fmt.format(v)) > 0:
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6,
                        color="white" if v > 0.6 * top else "black")
    return image


def plot_confusion(
    matrix: np.ndarray,
    class_names: Sequence[str],
    path: str | Path,
    *,
    normalise: str = "true",
    title: str = "",
    groups: Sequence[tuple[str, int]] = (),
) -> Path:
    """Confusion matrix in % (rows = true class): 'true' normalises each row, 'all' the whole matrix (Lolla et al.
    Fig. 8). Cells are annotated up to 20 classes. groups, (name, first class index) such as the crystal systems of
    the space groups, are drawn as blocks; beyond 60 classes their names replace the class names on the axes."""
    plt = _pyplot()
    values = normalise_confusion(np.asarray(matrix), by=normalise)
    n = len(class_names)
    size = min(4 + 0.35 * n, 20)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = _matrix_axes(ax, values, class_names, class_names, annotate=n <= 20, tick_labels=not groups or n <= 60)
    starts = [start for _, start in groups]
    for start in starts[1:]:
        ax.axhline(start - 0.5, color="grey", lw=0.5)
        ax.axvline(start - 0.5, color="grey", lw=0.5)
    if groups and n > 60:
        centres = [(a + b - 1) / 2 for a, b in zip(starts, [*starts[1:], n])]
        names = [name for name, _ in groups]
        ax.set_xticks(centres, names, rotation=90, fontsize=8)
        ax.set_yticks(centres, names, fontsize=8)
    fig.colorbar(image, ax=ax, label="% of true class" if normalise == "true" else "% of all patterns")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_confusion_block(block: ConfusionBlock | Mapping[str, Any], path: str | Path) -> Path:
    """Row-normalised confusion among the space groups of one crystal system, with a last column for predictions
    in another crystal system."""
    plt = _pyplot()
    if isinstance(block, ConfusionBlock):
        block = block.to_dict()
    counts = np.asarray(block["counts"], dtype=np.float64)
    names = list(block["class_names"])
    values = normalise_confusion(counts, by="true")
    n = len(names)
    size = min(3 + 0.3 * n, 22)
    fig, ax = plt.subplots(figsize=(size + 2, size))
    image = _matrix_axes(ax, values, names, [*names, "other system"], annotate=n <= 16)
    fig.colorbar(image, ax=ax, label="% of true class")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{block['crystal_system']} space groups")
    return save_figure(fig, path)


def plot_distance_histogram(histogram: Mapping[int | str, int], path: str | Path, title: str = "") -> Path:
    """Wrong predictions by maximal-subgroup distance from the true space group (Vecsei et al. Fig. 3c)."""
    plt = _pyplot()
    distance = np.array([int(k) for k in histogram], dtype=int)
    count = np.array(list(histogram.values()), dtype=float)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if len(count):
        ax.bar(distance, count / count.sum(), color="tab:blue")
        ax.set_xticks(range(1, int(distance.max()) + 1))
    else:
        ax.text(0.5, 0.5, "no wrong predictions", ha="center", transform=ax.transAxes)
    ax.set_xlabel("maximal-subgroup distance to the true space group")
    ax.set_ylabel("fraction of wrong predictions")
    ax.set_title(title)
    return save_figure(fig, path)


def plot_certainty(histograms: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Certainty of right and wrong predictions (Vecsei et al. Fig. 5 b, c)."""
    plt = _pyplot()
    edges = np.asarray(histograms["edges"])
    width = np.diff(edges)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar(edges[:-1], histograms["right"], width=width, align="edge", alpha=0.6, label="right", color="tab:green")
    ax.bar(edges[:-1], histograms["wrong"], width=width, align="edge", alpha=0.6, label="wrong", color="tab:red")
    ax.set_xlabel("certainty (max probability)")
    ax.set_ylabel("patterns")
    ax.legend()
    ax.set_title(title)
    return save_figure(fig, path)


def plot_refusal(curve: Any, path: str | Path, title: str = "") -> Path:
    """Vecsei et al. Fig. 5 d, e: accuracy and unclassified fraction against the certainty threshold, and accuracy
    against the unclassified fraction with the 50 % point marked. curve: a RefusalCurve or its to_dict()."""
    plt = _pyplot()
    data = curve.to_dict() if hasattr(curve, "to_dict") else curve
    threshold, coverage, accuracy = (np.asarray(data[k], dtype=float) for k in ("threshold", "coverage", "accuracy"))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(threshold, accuracy, label="accuracy of classified")
    left.plot(threshold, 1 - coverage, label="unclassified fraction")
    left.set_xlabel("certainty threshold")
    left.set_xlim(0, 1)
    left.set_ylim(0, 1.02)
    left.legend()
    right.plot(1 - coverage, accuracy)
    if len(coverage):
        i = min(int(np.searchsorted(coverage, 0.5 - 1e-12)), len(coverage) - 1)
        right.axvline(1 - coverage[i], ls=":", color="grey")
        right.axhline(accuracy[i], ls=":", color="grey")
        right.annotate(f"{100 * accuracy[i]:.1f} % at {100 * (1 - coverage[i]):.0f} % unclassified",
                       (1 - coverage[i], accuracy[i]), xytext=(5, -15), textcoords="offset points", fontsize=8)
    right.set_xlabel("fraction left unclassified")
    right.set_ylabel("accuracy of classified")
    right.set_xlim(0, 1)
    right.set_ylim(0, 1.02)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_reliability(bins_before: Mapping[str, Sequence[float]], path: str | Path,
                     bins_after: Mapping[str, Sequence[float]] | None = None, title: str = "") -> Path:
    """Reliability diagram: accuracy against mean confidence per bin, before (and after) temperature scaling."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    for bins, label in ((bins_before, "before"), (bins_after, "after temperature scaling")):
        if bins is not None:
            confidence = np.asarray(bins["confidence"], dtype=float)
            accuracy = np.asarray(bins["accuracy"], dtype=float)
            used = np.asarray(bins["count"]) > 0
            ax.plot(confidence[used], accuracy[used], marker="o", label=label)
    ax.set_xlabel("mean confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title(title)
    return save_figure(fig, path)


def plot_label_fraction(results: Sequence[Mapping[str, Any]], path: str | Path = "label_fraction.png") -> Path:
    """Accuracy against the labelled fraction of the training data, one line per model (Lolla et al. Table 4 and
    Fig. 9: supervised vs SGAN). results: dicts with 'model', 'fraction', 'accuracy' and optionally 'label_set'
    (one panel per label set). Fractions and accuracies up to 1 are shown in %."""
    plt = _pyplot()
    if not results:
        raise ValueError("no results to plot")
    panels = sorted({str(r.get("label_set", "")) for r in results})
    as_percent = all(float(r["fraction"]) <= 1 for r in results), all(float(r["accuracy"]) <= 1 for r in results)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        rows = [r for r in results if str(r.get("label_set", "")) == panel]
        for model in sorted({str(r["model"]) for r in rows}):
            points = sorted((float(r["fraction"]), float(r["accuracy"])) for r in rows if str(r["model"]) == model)
            x, y = (np.array(v) * (100 if p else 1) for v, p in zip(zip(*points), as_percent))
            ax.plot(x, y, marker="o", label=model)
        ax.set_xlabel("labelled training data (%)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(panel)
        ax.legend()
    return save_figure(fig, path)
