"""Export the Wyckoff tables of the random-crystal generator (orbits, their exact symmetry, valid site
combinations), which take seconds to derive, as package data: src/powdersym/structures/data/wyckoff_tables.npz.

Run from the repository root after scripts/export_symmetry_tables.py, or after changing
`compute_wyckoff_tables` (then raise WYCKOFF_TABLES_VERSION first):

    PYTHONPATH=src python scripts/export_wyckoff_tables.py

The file records a fingerprint of the symmetry data and the derivation's version; a file that does not match is
ignored at run time (the tables are derived again), and tests/structures check that the shipped file equals a
fresh derivation.
"""

from __future__ import annotations

import numpy as np

from powdersym.files import atomic_write
from powdersym.structures.random import WYCKOFF_TABLES_FILE, compute_wyckoff_tables, wyckoff_tables_key


def main() -> None:
    derived = compute_wyckoff_tables()
    WYCKOFF_TABLES_FILE.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(WYCKOFF_TABLES_FILE, lambda tmp: np.savez_compressed(tmp, key=np.array(wyckoff_tables_key()), **derived))
    print(f"wrote {WYCKOFF_TABLES_FILE} ({WYCKOFF_TABLES_FILE.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
