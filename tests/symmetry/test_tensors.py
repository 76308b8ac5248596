"""Cached training tensors: shapes, padding and agreement with gemmi and the label vocabularies."""

from collections import Counter

import gemmi
import torch

from powdersym import symmetry
from powdersym.symmetry import label_tables, operation_tensors, space_group


def test_label_tables():
    tables = label_tables()
    assert set(tables) == {"bravais", "crystal_system", "lattice_system", "laue_class", "point_group",
                           "extinction_group", "sg144"}
    for name, table in tables.items():
        assert table.dtype == torch.int64 and table.shape == (231,) and table[0] == -1, name
    assert Counter(tables["crystal_system"][1:].tolist()) == {0: 2, 1: 13, 2: 59, 3: 68, 4: 25, 5: 27, 6: 36}
    assert symmetry.BRAVAIS_LABELS[tables["bravais"][225]] == "cubic (F)"
    assert symmetry.LATTICE_SYSTEMS[tables["lattice_system"][166]] == "rhombohedral"
    assert symmetry.LAUE_CLASSES[tables["laue_class"][62]] == "mmm"
    assert (tables["sg144"] >= 0).sum() == 144 and tables["sg144"][3] == -1
    assert int(tables["extinction_group"].max()) == 98
    assert label_tables() is tables  # cached


def test_operation_tensors(op_set):
    ops = operation_tensors()
    assert ops["rotations"].shape == (231, 192, 3, 3) and ops["translations"].shape == (231, 192, 3)
    assert ops["rotations"].dtype == torch.float32 and ops["n_ops"].dtype == torch.int64
    for number in (1, 14, 166, 225, 227, 230):
        n = int(ops["n_ops"][number])
        assert n == len(gemmi.find_spacegroup_by_name(space_group(number).setting_symbol).operations())
        assert ops["mask"][number].sum() == n
        padded = op_set(ops["rotations"][number, :n].int().numpy(), ops["translations"][number, :n].numpy())
        assert padded == op_set(space_group(number).rotations, space_group(number).translations)
        assert not ops["rotations"][number, n:].any() and not ops["translations"][number, n:].any()
    assert int(ops["n_ops"].max()) == 192 and ops["n_ops"][0] == 0
    assert operation_tensors() is ops
    assert operation_tensors(torch.float64)["translations"].dtype == torch.float64
