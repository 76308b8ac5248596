"""Export the Materials Project space-group and Wyckoff-site statistics that pyxtal ships (database/
spg_num_wps_mp.csv, 88,678 structures) as package data: src/powdersym/structures/data/materials_project_sites.npz.

`predict`'s known-crystal prior and the random crystals' real site combinations read it, so a plain `pip install
powdersym` needs no pyxtal (which brings pymatgen, pandas and ase). Run from the repository root when pyxtal's table
changes:

    PYTHONPATH=src python scripts/export_site_statistics.py

tests/structures/test_space_group_statistics.py checks that the shipped file holds pyxtal's rows.
"""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np

from powdersym.files import atomic_write
from powdersym.structures.statistics import SITES_FILE


def main() -> None:
    with resources.files("pyxtal.database").joinpath("spg_num_wps_mp.csv").open() as f:
        rows = [(int(r["spg"]), int(r["n_atoms"]), [int(i) for i in r["wps"].split("-")], int(r["count"])) for r in csv.DictReader(f)]
    sites = [s for _, _, s, _ in rows]
    arrays = {
        "space_group": np.array([r[0] for r in rows], dtype=np.int16),
        "n_atoms": np.array([r[1] for r in rows], dtype=np.int32),
        "count": np.array([r[3] for r in rows], dtype=np.int32),
        "sites": np.concatenate(sites).astype(np.int16),  # Wyckoff indices of all rows, one after another
        "offsets": np.cumsum([0] + [len(s) for s in sites]).astype(np.int64),  # row i: sites[offsets[i]:offsets[i + 1]]
    }
    atomic_write(SITES_FILE, lambda tmp: np.savez_compressed(tmp, **arrays))
    print(f"wrote {SITES_FILE} ({len(rows)} rows, {SITES_FILE.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
