"""A pattern with hkl tick marks, as a PNG (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from powdersym.simulate.instruments import Instrument
from powdersym.simulate.pattern import PeakList
from powdersym.files import atomic_write


def plot_pattern(path: str | Path, x: np.ndarray, y: np.ndarray, peaks: PeakList, inst: Instrument, title: str = "") -> None:
    """Pattern on top, a tick per reflection below; the strongest peaks labelled with their hkl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ticks) = plt.subplots(2, 1, figsize=(10, 4.5), sharex=True, gridspec_kw={"height_ratios": [5, 1]})
    ax.plot(x, y, lw=0.8, color="k")
    ax.set_ylabel("intensity (max = 1)")
    ax.set_title(title)
    ticks.vlines(peaks.position, 0, 1, color="tab:blue", lw=0.6)
    ticks.set_yticks([])
    ticks.set_xlabel(inst.x_label)
    for i in np.argsort(-peaks.intensity)[:12]:
        top = float(np.interp(peaks.position[i], x, y))
        ax.annotate("".join(str(v) for v in peaks.hkl[i]), (peaks.position[i], top), fontsize=7, ha="center",
                    xytext=(0, 3), textcoords="offset points")
    fig.tight_layout()
    path = Path(path)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"), suffix=".png")
    finally:
        plt.close(fig)
