"""Space-group tables for all 230 groups and the labels powdersym classifies into.

- `space_group(number_or_symbol)`: symbols, operations, Wyckoff positions, point group, Laue class, crystal and
  lattice system, Bravais lattice, extinction group (tables).
- `is_systematically_absent`, `absence_table`: absences computed from the operations (absences).
- `extinction_groups`, `extinction_group_of_sg`: the 99 extinction groups (ITA convention), derived by computation
  from the absences; `powder_extinction_classes`, `powder_class_of_extinction_group`: the 97 classes a powder
  pattern can separate (two pairs of extinction groups merged) (extinction).
- `maximal_subgroups`, `subgroup_distance`: the maximal-subgroup graph of Vecsei et al. (subgroups).
- `BRAVAIS_LABELS`, `SG144`, `CRYSTAL_SYSTEMS`, ... and `label_tables()`, `operation_tensors()` for training
  (labels, tensors).

The per-space-group index arrays [231] (`bravais_index_of_sg`, `crystal_system_index_of_sg`, `sg144_index_of_sg`,
`extinction_group_of_sg`, ...) and `EXTINCTION_GROUP_SYMBOLS` are read from the package data on first access.
"""

from . import extinction, tables
from .absences import absence_table, absent_mask, is_systematically_absent, is_systematically_absent_batch
from .extinction import (
    ExtinctionGroup,
    derive_extinction_partition,
    derive_powder_extinction_partition,
    extinction_group,
    extinction_groups,
    powder_class_of_extinction_group,
    powder_extinction_classes,
)
from .labels import (
    BRAVAIS_LABELS,
    CRYSTAL_SYSTEMS,
    LATTICE_SYSTEMS,
    LAUE_CLASSES,
    POINT_GROUPS,
    SG144,
    bravais_label,
    lattice_system_of,
)
from .subgroups import (
    MaximalSubgroup,
    maximal_subgroups,
    subgroup_adjacency,
    subgroup_distance,
    subgroup_distance_matrix,
)
from .tables import (
    SpaceGroup,
    WyckoffPosition,
    enantiomorphic_partner,
    space_group,
    space_group_number,
    space_groups,
)
from .tensors import integer_operation_tensors, label_tables, operation_tensors

_LAZY = {name: tables for name in tables.INDEX_ARRAYS} | {"EXTINCTION_GROUP_SYMBOLS": extinction}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(_LAZY[name], name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BRAVAIS_LABELS", "CRYSTAL_SYSTEMS", "LATTICE_SYSTEMS", "LAUE_CLASSES", "POINT_GROUPS", "SG144",
    "EXTINCTION_GROUP_SYMBOLS", *tables.INDEX_ARRAYS,
    "ExtinctionGroup", "MaximalSubgroup", "SpaceGroup", "WyckoffPosition",
    "absence_table", "absent_mask", "bravais_label", "derive_extinction_partition",
    "derive_powder_extinction_partition", "enantiomorphic_partner", "extinction_group", "extinction_groups",
    "integer_operation_tensors", "is_systematically_absent", "is_systematically_absent_batch", "label_tables",
    "lattice_system_of", "maximal_subgroups", "operation_tensors", "powder_class_of_extinction_group",
    "powder_extinction_classes",
    "space_group", "space_group_number", "space_groups", "subgroup_adjacency", "subgroup_distance",
    "subgroup_distance_matrix",
]
