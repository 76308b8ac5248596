"""Fixtures for the symmetry tests: the reference tables beside the repository, and independent references
(operations, settings) taken straight from gemmi and spglib, never from powdersym's exported tables. The helpers
are handed out as fixtures because the tests run with --import-mode=importlib (no importable helper modules)."""

from functools import cache
from pathlib import Path

import gemmi
import numpy as np
import pytest
import spglib

@pytest.fixture(scope="session")
def reference_dir(shared_data: Path) -> Path:
    folder = shared_data / "reference"
    if not (folder / "canonical_extinction_to_space_group.csv").is_file():
        pytest.skip(f"extinction-group reference tables not found at {folder} (they live beside the repository)")
    return folder


def gemmi_operations(setting_symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """All operations of a gemmi setting as integer rotations [n, 3, 3] and fractional translations [n, 3]."""
    ops = list(gemmi.find_spacegroup_by_name(setting_symbol).operations())
    rotations = np.array([op.rot for op in ops]) // gemmi.Op.DEN
    translations = np.array([op.tran for op in ops]) / gemmi.Op.DEN
    return rotations, translations


@cache
def _spglib_hall_numbers() -> dict[str, int]:
    numbers: dict[str, int] = {}
    for hall_number in range(1, 531):
        numbers.setdefault(" ".join(spglib.get_spacegroup_type(hall_number).hall_symbol.split()), hall_number)
    return numbers


def spglib_hall_number(hall_symbol: str) -> int:
    """spglib's Hall number of a Hall symbol (spaces separate generators, so they are collapsed, not removed)."""
    return _spglib_hall_numbers()[" ".join(hall_symbol.split())]


def operation_set(rotations: np.ndarray, translations: np.ndarray) -> set[tuple[int, ...]]:
    """Operations as hashable tuples, translations reduced mod 1 and counted in 24ths."""
    t24 = np.rint(np.asarray(translations) * 24).astype(int) % 24
    rotations = np.asarray(rotations, int).reshape(-1, 9)
    return {tuple(r.tolist()) + tuple(t.tolist()) for r, t in zip(rotations, t24, strict=True)}


@pytest.fixture(scope="session")
def gemmi_ops():
    return gemmi_operations


@pytest.fixture(scope="session")
def hall_number():
    return spglib_hall_number


@pytest.fixture(scope="session")
def op_set():
    return operation_set
