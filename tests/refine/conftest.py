"""Helpers of the refinement and indexing tests: reference cells from published refinements."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def _exp_reference(path: Path) -> list[float]:
    """Refined cell of phase 1 of a GSAS .EXP file (CRS1 ABC and ANGLES records)."""
    text = path.read_text(errors="replace")
    lengths = re.search(r"CRS1  ABC\s+(\S+)\s+(\S+)\s+(\S+)", text).groups()
    angles = re.search(r"CRS1  ANGLES\s+(\S+)\s+(\S+)\s+(\S+)", text).groups()
    return [float(v) for v in lengths + angles]


@pytest.fixture(scope="session")
def exp_reference():
    """exp_reference(path) -> [a, b, c, alpha, beta, gamma] of a GSAS .EXP refinement."""
    return _exp_reference
