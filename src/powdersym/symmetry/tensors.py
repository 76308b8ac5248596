"""Cached torch tensors over all space groups, indexed by space-group number (row 0 unused), for training loops.

Built once per (dtype, device) and shared: treat them as read-only.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from . import tables
from .tables import MAX_OPERATIONS, N_SPACE_GROUPS, TRANSLATION_DENOMINATOR

LABEL_ARRAYS = {
    "bravais": "bravais_index_of_sg",
    "crystal_system": "crystal_system_index_of_sg",
    "lattice_system": "lattice_system_index_of_sg",
    "laue_class": "laue_class_index_of_sg",
    "point_group": "point_group_index_of_sg",
    "extinction_group": "extinction_group_of_sg",
    "sg144": "sg144_index_of_sg",
}


@cache
def _label_tables(device: str) -> dict[str, torch.Tensor]:
    return {name: torch.tensor(getattr(tables, array), device=device) for name, array in LABEL_ARRAYS.items()}


def label_tables(device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """LongTensors [231] mapping a space-group number to each label index ('bravais', 'crystal_system',
    'lattice_system', 'laue_class', 'point_group', 'extinction_group', 'sg144'); -1 at 0 and for groups outside
    SG144. Use as labels = label_tables()['bravais'][numbers]."""
    return _label_tables(str(torch.device(device)))


@cache
def _padded_operations() -> dict[str, np.ndarray]:
    rotations = np.zeros((N_SPACE_GROUPS + 1, MAX_OPERATIONS, 3, 3), dtype=np.int64)
    translations_24 = np.zeros((N_SPACE_GROUPS + 1, MAX_OPERATIONS, 3), dtype=np.int64)
    n_ops = np.zeros(N_SPACE_GROUPS + 1, dtype=np.int64)
    for sg in tables.space_groups():
        n = sg.n_ops
        rotations[sg.number, :n] = sg.rotations
        translations_24[sg.number, :n] = sg.translations_24
        n_ops[sg.number] = n
    mask = np.arange(MAX_OPERATIONS) < n_ops[:, None]
    return {"rotations": rotations, "translations_24": translations_24, "n_ops": n_ops, "mask": mask}


@cache
def _integer_operation_tensors(device: str) -> dict[str, torch.Tensor]:
    return {name: torch.as_tensor(array).to(device) for name, array in _padded_operations().items()}


def integer_operation_tensors(device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Exact padded operations: 'rotations' [231, 192, 3, 3] and 'translations_24' [231, 192, 3] (numerators over
    24) as int64, 'n_ops' [231] and 'mask' [231, 192] (True for real operations; padding is all zeros)."""
    return _integer_operation_tensors(str(torch.device(device)))


@cache
def _operation_tensors(dtype: torch.dtype, device: str) -> dict[str, torch.Tensor]:
    ops = _integer_operation_tensors(device)
    return {
        "rotations": ops["rotations"].to(dtype),
        "translations": ops["translations_24"].to(dtype) / TRANSLATION_DENOMINATOR,
        "n_ops": ops["n_ops"],
        "mask": ops["mask"],
    }


def operation_tensors(
    dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Padded operations for batched structure-factor code: 'rotations' [231, 192, 3, 3] and 'translations'
    [231, 192, 3] (fractions) in dtype, 'n_ops' [231] and 'mask' [231, 192]. Padding rows are zeros, so weight
    sums over operations by 'mask'."""
    return _operation_tensors(dtype, str(torch.device(device)))
