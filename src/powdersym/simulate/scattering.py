"""Radiations: what scatters, and how strongly, for X-rays and neutrons.

A radiation turns species indices and s^2 = (sin(theta)/lambda)^2 = 1/(4 d^2) into scattering factors. The
instrument (geometry, profile, grid) is a separate piece (instruments.py), so any radiation composes with any
geometry. Tables are package data with their sources named (scripts/export_scattering_tables.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
import torch

from powdersym.structures.species import SPECIES


@lru_cache(maxsize=1)
def _tables() -> dict:
    return json.loads(resources.files("powdersym.simulate").joinpath("data/scattering_factors.json").read_text())


def xray_it92_coefficients() -> np.ndarray:
    """[n_species, 9] International Tables four-Gaussian coefficients a1..a4, b1..b4, c (s in 1/Å)."""
    return np.asarray(_tables()["xray_it92"], dtype=np.float64)


def neutron_scattering_lengths() -> np.ndarray:
    """[n_species] bound coherent scattering lengths b_c (fm); NaN where no value is tabulated."""
    return np.asarray([np.nan if b is None else b for b in _tables()["neutron_b_c_fm"]], dtype=np.float64)


_DEVICE_TABLES: dict[tuple[int, torch.dtype, torch.device], tuple[np.ndarray, torch.Tensor]] = {}


def _on_device(table: np.ndarray, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A table as a tensor on a device, copied there once (not once per batch)."""
    key = (id(table), dtype, device)
    if key not in _DEVICE_TABLES or _DEVICE_TABLES[key][0] is not table:
        _DEVICE_TABLES[key] = (table, torch.as_tensor(table, dtype=dtype, device=device))
    return _DEVICE_TABLES[key][1]


class MissingScatteringDataError(ValueError):
    """A species has no scattering factor for this radiation (e.g. neutron b_c of astatine)."""


@dataclass(frozen=True)
class XRay:
    """X-ray scattering: atomic form factors f0(s) = sum_i a_i exp(-b_i s^2) + c (IT92 by default).

    coefficients: [n_species, 9] table; pass another one (same layout) to match another code's conventions.
    """

    coefficients: np.ndarray = field(default_factory=xray_it92_coefficients, repr=False)
    name: str = "xray"
    polarised: bool = True

    def scattering_factors(self, species: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """species [B, S] long, s2 [B, R] -> f [B, R, S]."""
        table = _on_device(self.coefficients, s2.dtype, s2.device)[species]  # [B, S, 9]
        a, b, c = table[..., 0:4], table[..., 4:8], table[..., 8]
        gauss = torch.exp(-b[:, None, :, :] * s2[:, :, None, None])  # [B, R, S, 4]
        return (a[:, None] * gauss).sum(-1) + c[:, None, :]


@dataclass(frozen=True)
class Neutron:
    """Neutron nuclear scattering: constant coherent scattering lengths b_c (fm; periodictable's table by default)."""

    lengths: np.ndarray = field(default_factory=neutron_scattering_lengths, repr=False)
    name: str = "neutron"
    polarised: bool = False

    def scattering_factors(self, species: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
        """species [B, S] long, s2 [B, R] -> b [B, R, S] (independent of s)."""
        b = _on_device(self.lengths, s2.dtype, s2.device)[species]  # [B, S]
        return b[:, None, :].expand(-1, s2.shape[1], -1)

    def check(self, species: torch.Tensor) -> None:
        """Raise for species without a tabulated scattering length (one device sync)."""
        lengths = _on_device(self.lengths, torch.float64 if species.device.type == "cpu" else torch.float32, species.device)
        missing = torch.isnan(lengths[species])
        if bool(missing.any()):
            names = sorted({SPECIES[i] for i in species[missing].cpu().tolist()})
            raise MissingScatteringDataError(f"no neutron scattering length tabulated for {', '.join(names)}")


def radiation(name: str) -> XRay | Neutron:
    """The default radiation of a name ('xray' or 'neutron')."""
    if name == "xray":
        return XRay()
    if name == "neutron":
        return Neutron()
    raise ValueError(f"unknown radiation {name!r} (expected 'xray' or 'neutron')")
