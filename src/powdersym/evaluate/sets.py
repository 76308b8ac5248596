"""Evaluation sets as MeasuredPattern lists with space-group labels: the shared sets
beside the repository (../shared/data): measured RRUFF X-ray patterns, and the spglib structures simulated by
pymatgen (an independent simulator) for X-ray and neutron."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from powdersym.io import MeasuredPattern

SHARED_NAMES = ("rruff", "spglib-pymatgen-xray", "spglib-pymatgen-neutron")
CU_KA1 = 1.540593  # Å: RRUFF's Cu K-alpha data are mapped through d with the K-alpha1 line of the model's grid


@dataclass
class EvaluationSet:
    """Patterns with their space-group numbers, a description for reports, and groups of rows that are the same
    material (for an honest count of distinct samples)."""

    name: str
    description: str
    patterns: list[MeasuredPattern]
    space_group: np.ndarray  # [N] 1-230
    lattice: np.ndarray | None = None  # [N, 6]
    formula: np.ndarray | None = None


def shared_data_folder() -> Path:
    """../shared/data beside the checkout, or $POWDERSYM_SHARED_DATA."""
    env = os.environ.get("POWDERSYM_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def load_evaluation_set(name: str | os.PathLike) -> EvaluationSet:
    """A shared set by name (see SHARED_NAMES); FileNotFoundError with what is missing. (Pattern files are read
    by `powdersym.data.PatternDataset`.)"""
    root = shared_data_folder()
    if str(name) == "rruff":
        path = root / "measured" / "rruff_dev" / "rruff_dev.npz"
        data = _npz(path)
        x = data["two_theta_deg"].astype(np.float64)
        patterns = [MeasuredPattern(x, row.astype(np.float64), None, "two_theta", wavelength=CU_KA1, source=f"rruff:{f}")
                    for row, f in zip(data["intensity"], data["source_file"])]  # fmt: skip
        return EvaluationSet("rruff", f"{len(patterns)} measured RRUFF Cu K-alpha patterns ({path})", patterns, data["sg_number"].astype(int))
    if str(name).startswith("spglib-pymatgen-"):
        kind = str(name).rsplit("-", 1)[1]
        path = root / "simulated" / "spglib_pymatgen.npz"
        data = _npz(path)
        x = data[f"{kind}_two_theta"].astype(np.float64)
        wavelength = 1.54184 if kind == "xray" else 1.5403  # pymatgen's weighted Cu K-alpha; the neutron set's
        patterns = [MeasuredPattern(x, row.astype(np.float64), None, "two_theta", wavelength=wavelength, source=f"spglib:{n}")
                    for row, n in zip(data[kind], data["name"])]  # fmt: skip
        return EvaluationSet(name=str(name), description=f"{len(patterns)} spglib test structures simulated by pymatgen ({kind}; {path})",
                             patterns=patterns, space_group=data["sg_number"].astype(int), lattice=data["lattice"],
                             formula=data["formula"])  # fmt: skip
    raise FileNotFoundError(f"unknown evaluation set {name!r} (shared sets: {', '.join(SHARED_NAMES)}; or an .h5 pattern file)")


def _npz(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shared evaluation data not found (it lives in ../shared/data beside the checkout)")
    return np.load(path, allow_pickle=False)
