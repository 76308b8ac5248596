"""Figure of what preprocessing did to a measured pattern: raw and background, then the model input."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_preprocessing(prepared, path: str | Path, title: str | None = None, lines: np.ndarray | None = None,
                       lines_label: str = "indexed cell") -> Path:
    """Write a PNG: top, the measurement on the model grid with the subtracted background and the uncovered
    parts shaded; bottom, the model input (max-normalised, zero outside the measured range) and, if given, tick
    marks at `lines` (positions on the grid, e.g. an indexed cell's lines)."""
    from matplotlib.figure import Figure  # Agg canvas, without touching pyplot's global backend

    path = Path(path)
    x = prepared.x
    fig = Figure(figsize=(10, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    covered = prepared.covered
    raw = np.where(covered, prepared.raw_on_grid, np.nan)
    top.plot(x, raw, lw=0.7, color="0.2", label="measured (on grid)")
    if prepared.background_method is not None:
        top.plot(x, np.where(covered, prepared.background, np.nan), lw=1.2, color="tab:red",
                 label=f"background ({prepared.background_method})")
    top.set_ylabel("intensity (file units)")
    bottom.plot(x, prepared.y, lw=0.7, color="tab:blue", label="model input")
    if lines is not None and len(lines):
        bottom.plot(lines, np.full(len(lines), -0.04), "|", color="tab:green", ms=7, label=lines_label)
    bottom.set_ylabel("normalised intensity")
    bottom.set_xlabel(prepared.x_label)
    for axis in (top, bottom):
        axis.fill_between(x, 0, 1, where=~covered, transform=axis.get_xaxis_transform(), color="0.9",
                          label="not measured")
        axis.legend(loc="upper right", fontsize=8)
    fig.suptitle(title or f"{Path(prepared.source).name} on {prepared.instrument}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
