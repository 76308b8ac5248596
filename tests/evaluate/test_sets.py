"""The shared evaluation sets added for the accuracy benchmark load with valid labels and skip what the metadata
says (the powdersym-simulated sets are checked on their structures and a few patterns: the full simulation is
the benchmark's)."""

from __future__ import annotations

import numpy as np
import pytest

from powdersym.evaluate.sets import (XRAY_RADIATIONS, load_evaluation_set, measured_rows, simulate_realistic,
                                     spglib_structures)

# What metadata.csv's notes and the collections' MANIFESTs say is no single-phase nuclear pattern.
SKIPPED = {
    "measured-neutron": {
        "gsas2_tutorials/LaMnO3_BT1_50K": "magnetic", "gsas2_tutorials/La07Ca03MnO3_BT1_50K": "magnetic",
        "gsas2_tutorials/Cr2WO6_HB2A_4K": "magnetic", "gsas2_tutorials/Ba6Co6ClO15.5_D1B": "magnetic",
        "gsas2_tutorials/PrSrMnO3_3T2": "magnetic", "gsas2_tutorials/Er2Ge2O7_HB2A_0.5K": "magnetic",
        "easydiffraction/Si3N4_3T2": "multi-phase", "easydiffraction/PbSO4_D1A": "duplicate",
    },
    "measured-neutron-tof": {
        "gsas2_tutorials/Mn3O4_POWGEN_20254-2_10K": "magnetic", "gsas2_tutorials/Mn3O4_POWGEN_20255-4_10K": "magnetic",
        "gsas2_tutorials/NAC_POWGEN_22048": "multi-phase", "gsas2_tutorials/NAC_POWGEN_22049": "multi-phase",
    },
    "measured-xray": {
        "gsas2_tutorials/NAC_11BM": "multi-phase", "gsas2_tutorials/alphaSi3N4_lab": "multi-phase",
        "easydiffraction/PbSO4_lab": "duplicate", "iucr_pdcif_cdvae_xrd/av5088sup4": "no single space group",
        "iucr_pdcif_cdvae_xrd/ck5030Vsup6": "no single space group",
    },
}  # fmt: skip
RADIATIONS = {"measured-neutron": ("neutron_cw",), "measured-neutron-tof": ("neutron_tof",),
              "measured-xray": XRAY_RADIATIONS}


@pytest.mark.parametrize("name", ["measured-neutron", "measured-neutron-tof", "measured-xray"])
def test_measured_sets_load_and_skip_what_the_metadata_says(shared_data, monkeypatch, name):
    monkeypatch.setenv("POWDERSYM_SHARED_DATA", str(shared_data))
    data = load_evaluation_set(name)
    assert len(data) == len(data.patterns) == len(data.names) >= 8
    assert np.all((data.space_group >= 1) & (data.space_group <= 230))
    assert {key: reason.split(":")[0] for key, reason in data.skipped} == SKIPPED[name]
    rows = measured_rows(shared_data, RADIATIONS[name])
    assert sorted(data.names + list(SKIPPED[name])) == sorted(row["key"] for row in rows)
    for row in rows:  # every magnetic or multi-phase skip is stated in the row's notes
        reason = SKIPPED[name].get(row["key"], "")
        if reason == "magnetic":
            assert "magnetic" in row["notes"].lower() or "FM order" in row["notes"]
        elif reason == "multi-phase":
            assert "phase" in row["notes"].lower() or "impurity" in row["notes"]
        elif reason == "no single space group":
            assert not row["sg_number"].isdigit()
    assert all(p.unit == ("tof" if name.endswith("tof") else "two_theta") for p in data.patterns)
    if name == "measured-xray":  # every pattern states its wavelength (pdCIF, instrument file or metadata)
        assert all(p.wavelength and 0.1 < p.wavelength < 2.3 for p in data.patterns)


def test_spglib_structures_carry_the_pymatgen_sets_labels(shared_data):
    crystals, groups, names, skipped = spglib_structures(shared_data)
    assert [name for name, _ in skipped] == ["spglib_data/tetragonal/POSCAR-111", "spglib_data/tetragonal/POSCAR-125-2"]
    assert len(crystals) == len(groups) == len(names) == 467
    assert np.all((groups >= 1) & (groups <= 230))
    reference = np.load(shared_data / "simulated" / "spglib_pymatgen.npz")
    assert dict(zip(names, groups.tolist())) == dict(zip(reference["name"].tolist(), reference["sg_number"].tolist()))


@pytest.mark.parametrize("instrument, n_points", [("xray-cuka", 8501), ("neutron-cw", 3041)])
def test_realistic_simulation_is_on_the_grid_and_seeded(shared_data, instrument, n_points):
    crystals = spglib_structures(shared_data)[0]
    small = sorted(crystals, key=lambda c: c.n_atoms)[:3]
    first, again = simulate_realistic(small, instrument, 7), simulate_realistic(small, instrument, 7)
    assert first.shape == (3, n_points) and np.allclose(first.max(1), 1.0) and first.min() >= 0
    assert np.array_equal(first, again)


def test_rruff_clusters_are_runs_of_consecutive_files_of_one_space_group(shared_data, monkeypatch):
    """Patterns of one RRUFF mineral (consecutive source files, one space group) share a cluster id: 158 runs in
    the 289 development patterns, each run one space group and a block of consecutive file numbers; a hand-made
    example splits where the numbering jumps or the group changes, in any input order."""
    from powdersym.evaluate.sets import consecutive_runs

    monkeypatch.setenv("POWDERSYM_SHARED_DATA", str(shared_data))
    data = load_evaluation_set("rruff")
    numbers = np.array([int(name.split(":")[1].split(".")[0]) for name in data.names])
    assert len(np.unique(data.clusters)) == 158
    for c in np.unique(data.clusters):
        members = np.sort(numbers[data.clusters == c])
        assert len(set(data.space_group[data.clusters == c])) == 1 and np.all(np.diff(members) == 1)
    ids = consecutive_runs(np.array(["12.npy", "10.npy", "11.npy", "14.npy", "15.npy", "16.npy"]), np.array([5, 5, 5, 5, 5, 7]))
    assert ids[1] == ids[2] == ids[0] and len({ids[0], ids[3], ids[5]}) == 3 and ids[3] == ids[4]
