"""Lattice-parameter regression metrics: MAE and MAPE per parameter, overall and per crystal system, and the MSE of
Garcia-Cardona et al. (2020, eq. 1): the squared error summed over the parameters, averaged over the samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from powdersym.symmetry import CRYSTAL_SYSTEMS

from .metrics import Array, to_numpy

LATTICE_PARAMETERS = ("a", "b", "c", "alpha", "beta", "gamma")  # Å and degrees, as stored in the pattern files


def _scale(values: np.ndarray, scaler: Any) -> np.ndarray:
    if hasattr(scaler, "transform"):
        return np.asarray(scaler.transform(values), dtype=np.float64)
    if callable(scaler):
        return np.asarray(scaler(values), dtype=np.float64)
    raise TypeError("scaler must have a transform(array) method or be a callable")


def _errors(predicted: np.ndarray, true: np.ndarray, scaled_pred: np.ndarray, scaled_true: np.ndarray,
            names: Sequence[str]) -> dict[str, Any]:
    absolute = np.abs(predicted - true)
    nonzero = true != 0
    with np.errstate(invalid="ignore", divide="ignore"):
        percent = np.where(nonzero, 100.0 * absolute / np.abs(true), np.nan)
        mae = absolute.mean(axis=0) if len(true) else np.full(len(names), np.nan)
        mape = np.nanmean(percent, axis=0) if len(true) else np.full(len(names), np.nan)
    mse = float(((scaled_pred - scaled_true) ** 2).sum(axis=1).mean()) if len(true) else float("nan")
    return {
        "n": int(len(true)),
        "mae": {name: float(v) for name, v in zip(names, mae)},
        "mape": {name: float(v) for name, v in zip(names, mape)},
        "mse": mse,
    }


def lattice_metrics(
    predicted: Array,
    true: Array,
    crystal_system: Array | Sequence[str] | None = None,
    scaler: Any | Callable[[np.ndarray], np.ndarray] | None = None,
    parameter_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """MAE, MAPE (%) per parameter and Garcia-Cardona's MSE for predicted vs true parameters [N, P] (P = 6: a, b, c
    in Å, alpha, beta, gamma in degrees, unless parameter_names says otherwise).

    MAPE skips zero true values. The MSE is on scaler.transform(...) (or scaler(...)) of both arrays when a scaler
    is given, on the raw values otherwise ('mse_on' says which). crystal_system ([N] indices into CRYSTAL_SYSTEMS
    or names) adds the same numbers per crystal system present."""
    predicted = to_numpy(predicted).astype(np.float64)
    true = to_numpy(true).astype(np.float64)
    if predicted.shape != true.shape or predicted.ndim != 2:
        raise ValueError(f"predicted {predicted.shape} and true {true.shape} must both be [N, P]")
    names = tuple(parameter_names or (LATTICE_PARAMETERS if true.shape[1] == 6 else
                                      [f"p{i}" for i in range(true.shape[1])]))
    if len(names) != true.shape[1]:
        raise ValueError(f"{len(names)} parameter names for {true.shape[1]} columns")
    scaled_pred, scaled_true = (predicted, true)
    if scaler is not None:
        scaled_pred, scaled_true = _scale(predicted, scaler), _scale(true, scaler)
    out = {"parameters": list(names), "mse_on": "raw" if scaler is None else "scaled",
           **_errors(predicted, true, scaled_pred, scaled_true, names)}
    if crystal_system is not None:
        systems = np.asarray(crystal_system if isinstance(crystal_system, Sequence) else to_numpy(crystal_system))
        if systems.dtype.kind in "iu":
            systems = np.asarray(CRYSTAL_SYSTEMS)[systems]
        if len(systems) != len(true):
            raise ValueError(f"{len(systems)} crystal systems for {len(true)} rows")
        out["per_crystal_system"] = {
            name: _errors(predicted[rows], true[rows], scaled_pred[rows], scaled_true[rows], names)
            for name in CRYSTAL_SYSTEMS
            if (rows := systems == name).any()
        }
    return out
