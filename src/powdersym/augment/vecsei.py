"""Noise and background of Vecsei, Choo, Chang & Neupert, "Neural network-based classification of crystal
symmetries from X-ray diffraction patterns" (Phys. Rev. B 99, 245120, 2019), exactly as their appendix
"Data preparation" (eqs. 14-18) specifies.

Their theory pattern f_theory lies in [0, 1] (its maximum is 1), so every amplitude below is a fraction of the
pattern's maximum; here it is multiplied by `scale` (default: each pattern's own maximum), which is the same
thing for max-normalised input. All terms are >= 0, so the augmented pattern stays >= 0.

How the text is read where it leaves room:
- Noise: "a random signal drawn from a uniform distribution U(0.002, 0.02)" is read literally: every point gets
  its own independent value from U(0.002, 0.02), i.e. a positive noise floor of mean 0.011 (not a symmetric
  noise, and not a per-pattern amplitude).
- T = 0.1 / (number of background functions chosen) counts the four functions (step-up, step-down,
  polynomial, bump), each chosen with probability 1/2; with none chosen there is no background.
- theta_rel = (theta - theta_min) / (theta_max - theta_min) is the same whether the grid is theta or 2theta;
  it is taken over the pattern's x axis (2theta for CW; for ToF the time axis, where the "low-angle" bump has
  no physical counterpart and is just a shape).
- "f_stepup" as printed, h / (1 + exp[a (theta_rel - theta_rel,step)]), falls from h to 0 around
  theta_rel,step in U(0, 1/7): a shelf at the left edge. "f_stepdown" = h - f_stepup rises from 0 to h around
  theta_rel,step in U(6/7, 1): a shelf at the right edge. The formulas and positions are followed as printed;
  the names describe the step seen from the edge it sits at.
- Polynomial (eq. 15-16): n_max uniform on {0, 1, 2, 3, 4} ("a random integer between 0 and 4", both ends
  included); each a_n for n <= n_max is independently 0 with probability 1/2, otherwise
  3T / (2 (n_max + 1)) U(-1, 1); the polynomial's |.| is taken after summing.
- Truncated normals: the normal N(mu, sigma) restricted to the interval and renormalised (not clipped).
- The sum (eq. 18) is not renormalised by the paper; `powdersym.augment.augment` max-normalises afterwards,
  as the main paper (and Vecsei's section II, "largest value is one") normalise their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from powdersym.augment import sampling

NOISE_RANGE = (0.002, 0.02)  # Vecsei appendix: noise ~ U(0.002, 0.02)
THRESHOLD = 0.1  # Vecsei appendix: T = 0.1 / number of background functions chosen
STEP_WINDOW = 1.0 / 7.0  # Vecsei eq. 14: step position ~ U(0, W) (up) or U(1 - W, 1) (down), W = 1/7
STEP_STEEPNESS = (10.0, 60.0)  # Vecsei eq. 14: a ~ U(10, 60)
BUMP_STEEPNESS = (40.0, 70.0)  # Vecsei eq. 17: n ~ U(40, 70)
MAX_POLYNOMIAL_DEGREE = 4  # Vecsei eq. 15: n_max a random integer between 0 and 4
FUNCTIONS = ("step_up", "step_down", "polynomial", "bump")


@dataclass
class VecseiBackground:
    """Sampled parameters of Vecsei's background for a batch; tensors [B] unless noted.

    chosen [B, 4]: which of (step-up, step-down, polynomial, bump) are present. threshold: T.
    Heights (and polynomial coefficients [B, 5], a_0 ... a_4) of functions not chosen are 0.
    """

    chosen: torch.Tensor
    threshold: torch.Tensor
    step_up_height: torch.Tensor
    step_up_steepness: torch.Tensor
    step_up_position: torch.Tensor
    step_down_height: torch.Tensor
    step_down_steepness: torch.Tensor
    step_down_position: torch.Tensor
    polynomial_degree: torch.Tensor
    polynomial_coefficients: torch.Tensor
    bump_height: torch.Tensor
    bump_steepness: torch.Tensor

    def components(self, theta_rel: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each background function [B, n] at relative angles theta_rel [n] (in units of the pattern maximum)."""
        t = theta_rel[None, :]

        def col(v: torch.Tensor) -> torch.Tensor:
            return v[:, None]

        # Vecsei eq. 14: f_stepup = h / (1 + exp[a (theta_rel - theta_rel,step)]), f_stepdown = h (1 - that)
        step_up = col(self.step_up_height) * torch.sigmoid(
            -col(self.step_up_steepness) * (t - col(self.step_up_position))
        )
        step_down = col(self.step_down_height) * torch.sigmoid(
            col(self.step_down_steepness) * (t - col(self.step_down_position))
        )
        # Vecsei eq. 15: f_p = |sum_{n=0}^{n_max} a_n theta_rel^n| (Horner; a_n = 0 above n_max)
        coefficients = self.polynomial_coefficients
        polynomial = torch.zeros_like(step_up)
        for n in range(coefficients.shape[1] - 1, -1, -1):
            polynomial = polynomial * t + coefficients[:, n : n + 1]
        polynomial = polynomial.abs()
        # Vecsei eq. 17: f_bump = h (n theta_rel)^2 exp(-n theta_rel)
        n_theta = col(self.bump_steepness) * t
        bump = col(self.bump_height) * n_theta**2 * torch.exp(-n_theta)
        return {"step_up": step_up, "step_down": step_down, "polynomial": polynomial, "bump": bump}

    def curve(self, theta_rel: torch.Tensor) -> torch.Tensor:
        """The whole background [B, n]: the sum of the chosen functions (Vecsei eq. 18 without f_theory, noise)."""
        return sum(self.components(theta_rel).values())


def sample_vecsei_background(
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    threshold: float = THRESHOLD,
) -> VecseiBackground:
    """Draw the parameters of Vecsei's background for each pattern (appendix, eqs. 14-17).

    threshold: the numerator of T (0.1 in the paper).
    """
    b = (batch_size,)
    draw = dict(generator=generator, device=device)
    # Vecsei appendix: "These four functions are selected with a 50% probability each"
    chosen = sampling.bernoulli(0.5, (batch_size, len(FUNCTIONS)), **draw)
    # Vecsei appendix: T = 0.1 / number of different background functions chosen
    threshold_t = threshold / chosen.sum(1).clamp(min=1).to(dtype)
    # Vecsei eq. 14: h ~ N(T/3, T/7) truncated to [0, T]; a ~ U(10, 60); position ~ U(0, W) or U(1 - W, 1)
    step_up_h = threshold_t * sampling.truncated_normal(1 / 3, 1 / 7, 0.0, 1.0, b, **draw, dtype=dtype)
    step_up_a = sampling.uniform(*STEP_STEEPNESS, b, **draw, dtype=dtype)
    step_up_pos = sampling.uniform(0.0, STEP_WINDOW, b, **draw, dtype=dtype)
    step_down_h = threshold_t * sampling.truncated_normal(1 / 3, 1 / 7, 0.0, 1.0, b, **draw, dtype=dtype)
    step_down_a = sampling.uniform(*STEP_STEEPNESS, b, **draw, dtype=dtype)
    step_down_pos = sampling.uniform(1.0 - STEP_WINDOW, 1.0, b, **draw, dtype=dtype)
    # Vecsei eqs. 15-16: n_max ~ {0..4}; a_n = 0 (prob 1/2) or 3T / (2 (n_max + 1)) U(-1, 1) (prob 1/2)
    n_terms = MAX_POLYNOMIAL_DEGREE + 1
    degree = sampling.integers(0, MAX_POLYNOMIAL_DEGREE, b, **draw)
    present = sampling.bernoulli(0.5, (batch_size, n_terms), **draw)
    present &= torch.arange(n_terms, device=present.device)[None, :] <= degree[:, None]
    magnitude = (3 * threshold_t / (2 * (degree + 1).to(dtype)))[:, None]
    coefficients = magnitude * sampling.uniform(-1.0, 1.0, (batch_size, n_terms), **draw, dtype=dtype)
    coefficients = torch.where(present, coefficients, torch.zeros_like(coefficients))
    # Vecsei eq. 17: h ~ N(2T/5, 3T/35) truncated to [0, 3T/5]; n ~ U(40, 70)
    bump_h = threshold_t * sampling.truncated_normal(2 / 5, 3 / 35, 0.0, 3 / 5, b, **draw, dtype=dtype)
    bump_n = sampling.uniform(*BUMP_STEEPNESS, b, **draw, dtype=dtype)

    on = chosen.to(dtype)
    return VecseiBackground(
        chosen=chosen,
        threshold=threshold_t,
        step_up_height=step_up_h * on[:, 0],
        step_up_steepness=step_up_a,
        step_up_position=step_up_pos,
        step_down_height=step_down_h * on[:, 1],
        step_down_steepness=step_down_a,
        step_down_position=step_down_pos,
        polynomial_degree=degree,
        polynomial_coefficients=coefficients * on[:, 2:3],
        bump_height=bump_h * on[:, 3],
        bump_steepness=bump_n,
    )


def vecsei_background(
    patterns: torch.Tensor,
    x=None,
    generator: torch.Generator | None = None,
    threshold: float = THRESHOLD,
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """patterns [B, n] + Vecsei's background (appendix eqs. 14-17), a fresh draw per pattern.

    x: the grid [n] (`instrument.grid()`; None = uniform); scale [B]: the intensity that the paper's
    amplitudes refer to (default: each pattern's maximum).
    """
    params = sample_vecsei_background(patterns.shape[0], generator, patterns.device, patterns.dtype, threshold)
    curve = params.curve(sampling.relative_coordinate(x, patterns))
    return patterns + sampling.per_pattern_scale(patterns, scale) * curve


def vecsei_noise(
    patterns: torch.Tensor,
    generator: torch.Generator | None = None,
    low: float = NOISE_RANGE[0],
    high: float = NOISE_RANGE[1],
    scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """patterns [B, n] + an independent U(low, high) value at every point (Vecsei appendix: U(0.002, 0.02)),
    in units of scale [B] (default: each pattern's maximum)."""
    noise = sampling.uniform(low, high, tuple(patterns.shape), generator, patterns.device, patterns.dtype)
    return patterns + sampling.per_pattern_scale(patterns, scale) * noise
