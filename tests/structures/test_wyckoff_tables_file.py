"""The shipped Wyckoff tables (package data) must be what the generator would derive from this package's symmetry
data; a file made from other data is ignored."""

from __future__ import annotations

import numpy as np

from powdersym.structures import random as generator


def test_shipped_tables_equal_a_fresh_derivation():
    assert generator.WYCKOFF_TABLES_FILE.is_file(), "run scripts/export_wyckoff_tables.py"
    with np.load(generator.WYCKOFF_TABLES_FILE, allow_pickle=False) as stored:
        assert str(stored["key"]) == generator.wyckoff_tables_key(), "stale file: run scripts/export_wyckoff_tables.py"
        shipped = {name: stored[name] for name in stored.files if name != "key"}
    fresh = generator.compute_wyckoff_tables()
    assert shipped.keys() == fresh.keys()
    for name, table in fresh.items():
        assert shipped[name].dtype == table.dtype and np.array_equal(shipped[name], table), name


def test_a_file_from_other_symmetry_data_is_ignored(tmp_path, monkeypatch):
    stale = tmp_path / "wyckoff_tables.npz"
    np.savez(stale, key=np.array("another fingerprint"), offset=np.zeros(3))
    monkeypatch.setattr(generator, "WYCKOFF_TABLES_FILE", stale)
    generator._wyckoff_tables.cache_clear()
    try:
        tables = generator._wyckoff_tables()
        assert tables["offset"].shape == (231, tables["multiplicity"].shape[1])  # derived, not the stale zeros
    finally:
        generator._wyckoff_tables.cache_clear()
