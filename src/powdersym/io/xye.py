"""Three-column pattern files (x, intensity, sigma), written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from powdersym.files import atomic_write


def write_xye(path: str | Path, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, header: str = "") -> None:
    """Write x, y, sigma columns to `path` via a temporary file renamed into place (never half-written)."""
    path = Path(path)
    data = np.column_stack([np.asarray(x, float), np.asarray(y, float), np.asarray(sigma, float)])
    comment = "".join(f"# {line}\n" for line in header.splitlines())

    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            handle.write(comment)
            np.savetxt(handle, data, fmt="%.6f %.8e %.8e")

    atomic_write(path, write)
