"""The outcome of a cell refinement: refined cell with uncertainties, agreement factors and the fitted curves."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from powdersym.refine.cell import CELL_NAMES
from powdersym.files import atomic_write


def format_uncertain(value: float, sigma: float) -> str:
    """value(sigma) in the crystallographer's notation, e.g. 5.43102(4); plain value when sigma is 0 or unknown."""
    if not np.isfinite(sigma) or sigma <= 0:
        return f"{value:.6f}"
    digits = max(0, min(8, 1 - int(np.floor(np.log10(sigma)))))  # two significant digits of sigma
    scaled = int(round(sigma * 10**digits))
    if scaled >= 20 and digits > 0:  # one digit of sigma when it would read 20 or more
        digits -= 1
        scaled = int(round(sigma * 10**digits))
    return f"{value:.{digits}f}({scaled})"


@dataclass
class RefinementResult:
    """Refined cell (Å, degrees) with standard uncertainties, zero shift (x units), profile widths (instrument
    field names and units), Rwp / Rexp / reduced chi^2 of the final fit, and the curves it fitted (x, observed,
    calculated, background) with the allowed reflections' hkl and positions for tick marks."""

    cell: tuple[float, ...]
    cell_sigma: tuple[float, ...]
    zero: float
    zero_sigma: float
    widths: dict[str, float]
    widths_sigma: dict[str, float]
    rwp: float
    rexp: float
    chi2: float
    n_reflections: int
    x: np.ndarray = field(repr=False)
    observed: np.ndarray = field(repr=False)
    calculated: np.ndarray = field(repr=False)
    background: np.ndarray = field(repr=False)
    converged: bool
    space_group: int
    space_group_symbol: str
    crystal_system: str
    displacement: float | None = None
    displacement_sigma: float | None = None
    hkl: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), int), repr=False)
    peak_positions: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    x_label: str = "2theta (deg)"

    @property
    def volume(self) -> float:
        """Cell volume (Å^3)."""
        a, b, c = self.cell[:3]
        ca, cb, cg = np.cos(np.radians(self.cell[3:]))
        return float(a * b * c * np.sqrt(max(1 - ca**2 - cb**2 - cg**2 + 2 * ca * cb * cg, 0.0)))

    def relative_error(self, reference: tuple[float, ...]) -> np.ndarray:
        """Relative differences of a, b, c from a reference cell [3] (e.g. the published refinement)."""
        return np.asarray(self.cell[:3]) / np.asarray(reference[:3], dtype=float) - 1.0

    def to_dict(self, curves: bool = False) -> dict:
        """Plain JSON-ready values; curves=True adds the fitted x / observed / calculated / background lists."""
        out = {
            "space_group": self.space_group,
            "space_group_symbol": self.space_group_symbol,
            "crystal_system": self.crystal_system,
            "cell": dict(zip(CELL_NAMES, self.cell)),
            "cell_sigma": dict(zip(CELL_NAMES, self.cell_sigma)),
            "volume": self.volume,
            "zero": self.zero,
            "zero_sigma": self.zero_sigma,
            "displacement": self.displacement,
            "displacement_sigma": self.displacement_sigma,
            "widths": dict(self.widths),
            "widths_sigma": dict(self.widths_sigma),
            "rwp": self.rwp,
            "rexp": self.rexp,
            "chi2": self.chi2,
            "n_reflections": self.n_reflections,
            "n_points": int(len(self.x)),
            "converged": self.converged,
        }
        if curves:
            out |= {name: np.asarray(getattr(self, name)).tolist() for name in ("x", "observed", "calculated", "background")}
        return json.loads(json.dumps(out, default=float))

    def __str__(self) -> str:
        cell = "  ".join(f"{n} = {format_uncertain(v, s)}" for n, v, s in zip(CELL_NAMES, self.cell, self.cell_sigma))
        lines = [
            f"Le Bail cell refinement, {self.space_group_symbol} (No. {self.space_group}, {self.crystal_system})",
            f"  {cell}",
            f"  V = {self.volume:.3f} Å^3   zero = {format_uncertain(self.zero, self.zero_sigma)}",
        ]
        if self.displacement is not None:
            lines[-1] += f"   displacement = {format_uncertain(self.displacement, self.displacement_sigma or 0.0)}"
        if self.widths:
            lines.append("  widths: " + "  ".join(f"{n} = {format_uncertain(v, self.widths_sigma.get(n, 0.0))}"
                                                   for n, v in self.widths.items()))
        lines.append(f"  Rwp = {100 * self.rwp:.2f} %   Rexp = {100 * self.rexp:.2f} %   chi2 = {self.chi2:.3g}   "
                     f"{self.n_reflections} reflections, {len(self.x)} points"
                     + ("" if self.converged else "   (NOT converged)"))
        return "\n".join(lines)

    def plot(self, path: str | Path, title: str | None = None) -> Path:
        """Observed (points), calculated and difference curves with a tick per allowed reflection, as an image
        (matplotlib Agg; written to a temporary file renamed into place)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        path = Path(path)
        fig, (ax, ticks, diff) = plt.subplots(
            3, 1, figsize=(11, 6), sharex=True, gridspec_kw={"height_ratios": [6, 0.6, 2], "hspace": 0.05}
        )
        ax.plot(self.x, self.observed, "o", ms=1.5, color="tab:red", label="observed")
        ax.plot(self.x, self.calculated, lw=0.8, color="k", label="calculated")
        ax.plot(self.x, self.background, lw=0.6, color="tab:green", label="background")
        ax.set_ylabel("intensity")
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(title or f"{self.space_group_symbol}   a, b, c = "
                     + ", ".join(f"{v:.5f}" for v in self.cell[:3]) + f"   Rwp = {100 * self.rwp:.2f} %")
        ticks.vlines(self.peak_positions, 0, 1, color="tab:blue", lw=0.6)
        ticks.set_yticks([])
        diff.plot(self.x, self.observed - self.calculated, lw=0.6, color="tab:blue")
        diff.axhline(0, color="0.6", lw=0.5)
        diff.set_ylabel("obs - calc")
        diff.set_xlabel(self.x_label)
        try:
            atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"), suffix=path.suffix or ".png")
        finally:
            plt.close(fig)
        return path
