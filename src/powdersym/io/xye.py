"""Three-column pattern files (x, intensity, sigma), written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np


def write_xye(path: str | Path, x: np.ndarray, y: np.ndarray, sigma: np.ndarray, header: str = "") -> None:
    """Write x, y, sigma columns to `path` via a temporary file renamed into place (never half-written)."""
    path = Path(path)
    data = np.column_stack([np.asarray(x, float), np.asarray(y, float), np.asarray(sigma, float)])
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(comment)
            np.savetxt(handle, data, fmt="%.6f %.8e %.8e")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
