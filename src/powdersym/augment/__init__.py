"""Augmentation: per-crystal effects drawn for the simulator, and pattern-level noise, backgrounds and impurities.

    perturbation = sample_perturbation(len(crystals), instrument, config, generator)
    clean = simulate(crystals, instrument, perturbation=perturbation)
    impurity = simulate(other_crystals, instrument)            # only when config.impurity_fraction is set
    patterns = augment(clean, instrument, config, generator, impurity=impurity)
"""

from powdersym.augment.background import chebyshev_background
from powdersym.augment.config import AugmentConfig
from powdersym.augment.mixing import integrated_intensity, mix_impurity
from powdersym.augment.noise import poisson_noise
from powdersym.augment.perturbation import LOW_INDEX_AXES, sample_perturbation
from powdersym.augment.pipeline import augment, max_normalise
from powdersym.augment.vecsei import VecseiBackground, sample_vecsei_background, vecsei_background, vecsei_noise

__all__ = [
    "AugmentConfig", "augment", "max_normalise", "sample_perturbation", "LOW_INDEX_AXES", "vecsei_noise",
    "vecsei_background", "sample_vecsei_background", "VecseiBackground", "poisson_noise", "chebyshev_background",
    "mix_impurity", "integrated_intensity",
]
