"""Fixtures shared by all test folders: the read-only evaluation data beside the repository (../shared/data)."""

from __future__ import annotations

import csv
import io
import re
import tarfile
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require_shared(relative: str) -> Path:
    """Path to a file or folder under ../shared/data, or skip the test saying what is missing."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared evaluation data not found: {path} (it lives beside the repository)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (the test is skipped where it is missing)."""
    return require_shared("")


@pytest.fixture(scope="session")
def spglib_poscars() -> list[tuple[str, str, dict]]:
    """(file name, POSCAR text, index.csv row) for the 469 spglib test structures."""
    folder = require_shared("structures/spglib_testdata")
    with open(folder / "index.csv") as handle:
        rows = {row["file"].split("/", 1)[1]: row for row in csv.DictReader(handle)}
    out = []
    with tarfile.open(folder / "spglib_poscars.tar.gz") as tar:
        for member in tar.getmembers():
            if not member.isfile():
                continue
            key = member.name.split("/", 1)[1] if "/" in member.name else member.name
            text = tar.extractfile(member).read().decode()
            out.append((key, text, rows.get(key, {})))
    return sorted(out)


def _exp_reference(path: Path) -> list[float]:
    """Refined cell of phase 1 of a GSAS .EXP file (CRS1 ABC and ANGLES records)."""
    text = path.read_text(errors="replace")
    lengths = re.search(r"CRS1  ABC\s+(\S+)\s+(\S+)\s+(\S+)", text).groups()
    angles = re.search(r"CRS1  ANGLES\s+(\S+)\s+(\S+)\s+(\S+)", text).groups()
    return [float(v) for v in lengths + angles]


@pytest.fixture(scope="session")
def exp_reference():
    """exp_reference(path) -> [a, b, c, alpha, beta, gamma] of a GSAS .EXP refinement (a published cell)."""
    return _exp_reference


def _general_crystal(number: int, lattice: list[float], n_sites: int = 2, seed: int = 0):
    """A Crystal with atoms on the general position of a space group (so every allowed reflection has some
    intensity, and the atoms add no symmetry of their own)."""
    import numpy as np

    from powdersym.structures.crystal import Crystal
    from powdersym.symmetry import space_group

    rng = np.random.default_rng(seed)
    general = max(space_group(number).wyckoff_positions, key=lambda w: w.multiplicity)
    coords, species = [], []
    for i in range(n_sites):
        orbit = general.orbit(rng.random(3))
        coords.append(orbit)
        species += [("Fe", "O", "Ca")[i % 3]] * len(orbit)
    return Crystal(lattice, np.concatenate(coords), species, b_iso=np.full(len(species), 0.5), space_group=number)


@pytest.fixture(scope="session")
def general_crystal():
    """general_crystal(number, lattice, n_sites=2, seed=0) -> Crystal on the general position."""
    return _general_crystal


@pytest.fixture
def recorded_pools(monkeypatch) -> list[int]:
    """The worker count of every process pool `Predictor.index_patterns` starts during the test (in order)."""
    import powdersym.predict as predict_module

    pools: list[int] = []

    class Recorded(predict_module.ProcessPoolExecutor):
        def __init__(self, *args, **kwargs) -> None:
            pools.append(args[0])
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(predict_module, "ProcessPoolExecutor", Recorded)
    return pools
