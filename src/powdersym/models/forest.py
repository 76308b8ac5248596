"""Random-forest baseline for lattice parameters (Garcia-Cardona et al. 2020: 250 trees of depth at most 50 for
their integrated model), on patterns averaged into a few hundred bins so that fitting stays fast.
scikit-learn is optional: it is imported only when a forest is fitted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def downsample_patterns(patterns: np.ndarray, n_bins: int) -> np.ndarray:
    """[N, P] -> [N, n_bins]: mean intensity over n_bins contiguous ranges of nearly equal width (any P >= n_bins)."""
    patterns = np.asarray(patterns, dtype=np.float64).reshape(len(patterns), -1)
    n_points = patterns.shape[1]
    if n_bins > n_points:
        raise ValueError(f"{n_bins} bins for {n_points} points")
    edges = np.linspace(0, n_points, n_bins + 1).round().astype(int)
    return np.add.reduceat(patterns, edges[:-1], axis=1) / np.diff(edges)


@dataclass
class ForestBaseline:
    """A fitted sklearn RandomForestRegressor and the binning it was fitted on."""

    forest: Any
    n_bins: int

    def predict(self, patterns: np.ndarray) -> np.ndarray:
        """Targets [N, K] (the same units/scaling as the fitted targets) for patterns [N, P]."""
        out = self.forest.predict(downsample_patterns(patterns, self.n_bins))
        return out.reshape(len(out), -1)


def random_forest_baseline(patterns: np.ndarray, targets: np.ndarray, n_bins: int = 256, n_estimators: int = 250,
                           max_depth: int | None = 50, seed: int = 0, n_jobs: int | None = None) -> ForestBaseline:
    """Fit a random forest from patterns [N, P] to targets [N, K] (e.g. LatticeScaler.transform of the lattice
    parameters). Needs scikit-learn."""
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("the random-forest baseline needs scikit-learn: pip install scikit-learn") from err
    forest = RandomForestRegressor(n_estimators=n_estimators, max_depth=max_depth, random_state=seed, n_jobs=n_jobs)
    forest.fit(downsample_patterns(patterns, n_bins), np.asarray(targets, dtype=np.float64))
    return ForestBaseline(forest, int(n_bins))
