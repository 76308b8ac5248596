"""Lattice-parameter metrics and the train/test overlap check, by hand."""

import numpy as np
import pytest

from powdersym.evaluate import lattice_metrics, split_overlap

PRED = np.array([[5.0, 5.0, 5.0, 90, 90, 90], [4.0, 4.0, 6.0, 90, 90, 120]])
TRUE = np.array([[4.0, 5.0, 5.0, 90, 90, 90], [4.0, 4.0, 5.0, 90, 90, 120]])


class HalfScaler:
    def transform(self, values):
        return np.asarray(values) / 2


def test_lattice_metrics_by_hand():
    m = lattice_metrics(PRED, TRUE, crystal_system=["cubic", "hexagonal"])
    assert m["mae"] == pytest.approx({"a": 0.5, "b": 0, "c": 0.5, "alpha": 0, "beta": 0, "gamma": 0})
    assert m["mape"]["a"] == pytest.approx(12.5) and m["mape"]["c"] == pytest.approx(10.0)
    # Garcia-Cardona eq. 1: squared errors summed over the parameters (1 per row), averaged over the rows
    assert m["mse"] == pytest.approx(1.0) and m["mse_on"] == "raw"
    assert set(m["per_crystal_system"]) == {"cubic", "hexagonal"}
    assert m["per_crystal_system"]["cubic"]["mae"]["a"] == pytest.approx(1.0)
    assert m["per_crystal_system"]["hexagonal"]["mape"]["c"] == pytest.approx(20.0)
    scaled = lattice_metrics(PRED, TRUE, scaler=HalfScaler())
    assert scaled["mse"] == pytest.approx(0.25) and scaled["mse_on"] == "scaled"
    assert scaled["mae"]["a"] == pytest.approx(0.5)  # MAE and MAPE stay in Å and degrees
    assert lattice_metrics(PRED, TRUE, scaler=lambda v: v / 2)["mse"] == pytest.approx(0.25)
    by_index = lattice_metrics(PRED, TRUE, crystal_system=np.array([6, 5]))
    assert set(by_index["per_crystal_system"]) == {"cubic", "hexagonal"}
    with pytest.raises(ValueError):
        lattice_metrics(PRED[:, :3], TRUE)


def test_split_overlap_counts():
    out = split_overlap(["NaCl", "KCl", "NaCl"], ["NaCl", "LiF", "NaCl", ""],
                        ["AB_Fm-3m", ""], ["AB_Fm-3m", "AB_Fm-3m", "AB2_P6/mmm", ""])
    assert out["n_test"] == 4
    assert out["formula"] == {"n_known": 3, "n_seen": 2, "fraction_seen": pytest.approx(2 / 3), "distinct": 2,
                              "distinct_seen": 1}
    assert out["prototype"]["n_seen"] == 2 and out["prototype"]["n_known"] == 3
    assert "2 of 3 test rows" in out["text"] and "prototype" in out["text"]
    assert "prototype" not in split_overlap(["A"], ["B"])
    assert split_overlap(["A"], ["B"])["formula"]["n_seen"] == 0
