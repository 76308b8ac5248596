"""What the classes of each label set are: their number, their names, and the space groups behind them.

Label sets are named as everywhere in powdersym ('space_group', 'sg144', 'bravais', 'crystal_system',
'extinction_group', and the other `label_tables` names). Stored labels are what the pattern files hold: the
space-group number (1-230) for 'space_group', a class index for every other set (-1 where a row has no class, e.g.
a group outside the 144 of Lolla et al.). A model's output column k is class k, so a 230-way model's column k is
space group k + 1; `class_index` turns stored labels into column indices.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from powdersym.symmetry import (
    BRAVAIS_LABELS,
    CRYSTAL_SYSTEMS,
    LATTICE_SYSTEMS,
    LAUE_CLASSES,
    POINT_GROUPS,
    SG144,
    enantiomorphic_partner,
    extinction_groups,
    label_tables,
    space_group,
)

N_SPACE_GROUPS = 230
# label sets whose classes are single space groups (merging, subgroup distances and marginalising apply)
SPACE_GROUP_SETS = ("space_group", "sg144")
DERIVED_SETS = ("bravais", "crystal_system", "lattice_system", "laue_class", "point_group", "extinction_group")
LABEL_SETS = (*SPACE_GROUP_SETS, *DERIVED_SETS)


def _check(label_set: str) -> None:
    if label_set not in LABEL_SETS:
        raise ValueError(f"unknown label set {label_set!r}; expected one of {', '.join(LABEL_SETS)}")


@cache
def class_names(label_set: str) -> tuple[str, ...]:
    """Readable name of every class, in column order ('76 P41' for space groups, 'cubic (F)', ...)."""
    _check(label_set)
    if label_set in SPACE_GROUP_SETS:
        return tuple(f"{n} {space_group(n).hm_compact}" for n in space_group_numbers(label_set))
    if label_set == "extinction_group":
        return tuple(group.label for group in extinction_groups())
    fixed = {"bravais": BRAVAIS_LABELS, "crystal_system": CRYSTAL_SYSTEMS, "lattice_system": LATTICE_SYSTEMS,
             "laue_class": LAUE_CLASSES, "point_group": POINT_GROUPS}
    return tuple(fixed[label_set])


def n_classes(label_set: str) -> int:
    """Number of output columns of a model for this label set (extinction groups read from the tables)."""
    return len(class_names(label_set))


@cache
def space_group_numbers(label_set: str) -> np.ndarray:
    """int [C]: the space-group number of every class of 'space_group' (1..230) or 'sg144' (SG144)."""
    if label_set == "space_group":
        numbers = np.arange(1, N_SPACE_GROUPS + 1)
    elif label_set == "sg144":
        numbers = np.asarray(SG144)
    else:
        raise ValueError(f"classes of {label_set!r} are not single space groups")
    numbers.flags.writeable = False
    return numbers


@cache
def derived_index_of_sg(to: str) -> np.ndarray:
    """int [231]: the class of label set `to` for every space-group number (-1 at 0 and where undefined)."""
    _check(to)
    if to == "space_group":
        table = np.arange(-1, N_SPACE_GROUPS)
    else:
        table = label_tables("cpu")[to].numpy().copy()
    table.flags.writeable = False
    return table


@cache
def enantiomorph_merged_number(label_set: str = "space_group") -> np.ndarray:
    """int [C]: per class, the lower number of its enantiomorphic pair (P41 76 and P43 78 both give 76), so that
    equal values mean 'the same up to handedness', which a powder pattern cannot see."""
    numbers = space_group_numbers(label_set)
    merged = np.array([min(n, enantiomorphic_partner(int(n)) or n) for n in numbers])
    merged.flags.writeable = False
    return merged


def class_index(labels: np.ndarray, label_set: str) -> np.ndarray:
    """Stored labels [N] -> model column indices [N] (space-group number - 1 for 'space_group'; unchanged otherwise).
    Rows without a class stay negative."""
    _check(label_set)
    labels = np.asarray(labels).astype(np.int64)
    if label_set == "space_group":
        if len(labels) and (labels.min() < 1 or labels.max() > N_SPACE_GROUPS):
            raise ValueError("'space_group' labels are space-group numbers 1-230 (as stored), "
                             f"got {labels.min()}..{labels.max()}")
        return labels - 1
    if len(labels) and labels.max() >= n_classes(label_set):
        raise ValueError(f"label {labels.max()} out of range for {label_set!r} ({n_classes(label_set)} classes)")
    return labels
