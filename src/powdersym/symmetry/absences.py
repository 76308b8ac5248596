"""Systematic absences computed from the symmetry operations (no rule lists).

A reflection h is systematically absent iff some operation (R, t) leaves it fixed, h R = h (h as a row vector),
while shifting its phase, h . t not an integer: the structure factor then equals itself times exp(2 pi i h.t) != 1
and vanishes for every structure in the group (ITA Vol. A, Sect. 1.6.5). Translations are kept as integers in units
of 1/24, so the test is exact.

`is_systematically_absent` handles one group in numpy; `absence_table` and `is_systematically_absent_batch` handle
many groups at once in torch, testing each of the few hundred distinct operations of all 230 groups once.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from .tables import N_SPACE_GROUPS, TRANSLATION_DENOMINATOR, SpaceGroup, space_group
from .tensors import integer_operation_tensors


def absent_mask(rotations: np.ndarray, translations_24: np.ndarray, hkl: np.ndarray) -> np.ndarray:
    """bool [N]: which of hkl [N, 3] are absent for the operations rotations [n, 3, 3] and translations_24 [n, 3]
    (integer numerators over 24)."""
    hkl = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    rotations = np.asarray(rotations, dtype=np.int64)
    translations_24 = np.asarray(translations_24, dtype=np.int64)
    absent = np.zeros(len(hkl), dtype=bool)
    # operations sharing a rotation fix the same reflections; test each rotation once, its translations together
    unique_rotations, rotation_id = np.unique(rotations.reshape(-1, 9), axis=0, return_inverse=True)
    rotation_id = rotation_id.reshape(-1)
    for u, rotation in enumerate(unique_rotations.reshape(-1, 3, 3)):
        fixed = np.flatnonzero((hkl @ rotation == hkl).all(axis=1))
        if fixed.size:
            phase = hkl[fixed] @ translations_24[rotation_id == u].T
            absent[fixed] |= (phase % TRANSLATION_DENOMINATOR != 0).any(axis=1)
    return absent


def is_systematically_absent(sg: int | str | SpaceGroup, hkl: np.ndarray) -> np.ndarray:
    """bool [N]: True where the reflection hkl [N, 3] (integers) is systematically absent in space group sg."""
    group = space_group(sg)
    return absent_mask(group.rotations, group.translations_24, hkl)


@cache
def _distinct_operations(device: str) -> dict[str, torch.Tensor]:
    """The few hundred distinct operations of all 230 groups and which group has which: the absence test then runs
    once per distinct operation, and a group's absences are the OR over its operations (one matrix product)."""
    ops = integer_operation_tensors(device)
    flat = torch.cat([ops["rotations"].flatten(2), ops["translations_24"]], dim=-1)  # [231, 192, 12]
    distinct, operation_id = torch.unique(flat[ops["mask"]], dim=0, return_inverse=True)
    group_of_operation = torch.arange(N_SPACE_GROUPS + 1, device=flat.device)[:, None].expand_as(ops["mask"])
    membership = torch.zeros(N_SPACE_GROUPS + 1, len(distinct), device=flat.device)
    membership[group_of_operation[ops["mask"]], operation_id] = 1.0
    rotations = distinct[:, :9].reshape(-1, 3, 3)
    unique_rotations, rotation_id = torch.unique(rotations.flatten(1), dim=0, return_inverse=True)
    return {
        "unique_rotations": unique_rotations.reshape(-1, 3, 3),  # [U, 3, 3]
        "rotation_id": rotation_id,  # [K] index into unique_rotations
        "translations_24": distinct[:, 9:].to(torch.float32),  # [K, 3]
        "membership": membership,  # [231, K]
    }


def _absences(numbers: torch.Tensor, hkl: torch.Tensor) -> torch.Tensor:
    """bool [G, N] for space-group numbers [G] and hkl [N, 3]."""
    ops = _distinct_operations(str(hkl.device))
    fixed = (torch.einsum("nj,ujk->unk", hkl, ops["unique_rotations"]) == hkl).all(dim=-1)  # [U, N]: h R = h
    # float32 products are exact here: |h . t24| < 2**24 (checked in _as_hkl)
    phase = ops["translations_24"] @ hkl.to(torch.float32).T  # [K, N]
    extinguishes = fixed[ops["rotation_id"]] & (torch.remainder(phase, TRANSLATION_DENOMINATOR) != 0)
    return (ops["membership"][numbers] @ extinguishes.to(torch.float32)) > 0


def _as_hkl(hkl: torch.Tensor | np.ndarray) -> torch.Tensor:
    if not isinstance(hkl, torch.Tensor):
        hkl = torch.as_tensor(np.asarray(hkl))
    hkl = hkl.to(torch.int64).reshape(-1, 3)
    if hkl.numel() and hkl.abs().max() * 3 * TRANSLATION_DENOMINATOR >= 2**24:
        raise ValueError("Miller indices too large for exact float32 phases (|h| must stay below ~230000)")
    return hkl


def absence_table(hkl: torch.Tensor | np.ndarray) -> torch.Tensor:
    """bool [231, N]: row n says which of hkl [N, 3] are absent in space group n (row 0, unused, all False).

    Compute it once per hkl list and index it with a batch of space-group numbers: table[numbers] -> [B, N].
    Runs on hkl's device.
    """
    hkl = _as_hkl(hkl)
    numbers = torch.arange(N_SPACE_GROUPS + 1, device=hkl.device)
    return _absences(numbers, hkl)  # row 0 has no operations, hence no absences


def is_systematically_absent_batch(numbers: torch.Tensor, hkl: torch.Tensor | np.ndarray) -> torch.Tensor:
    """bool [B, N]: absences of hkl [N, 3] for a batch of space-group numbers [B]."""
    hkl = _as_hkl(hkl)
    numbers = torch.as_tensor(numbers, dtype=torch.int64, device=hkl.device).reshape(-1)
    if numbers.numel() and (numbers.min() < 1 or numbers.max() > N_SPACE_GROUPS):
        raise ValueError(f"unknown space group in batch: numbers run from 1 to {N_SPACE_GROUPS}")
    return _absences(numbers, hkl)
