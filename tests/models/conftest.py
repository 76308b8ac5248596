"""A tiny separable problem for the models' training tests: 64 patterns of 1000 points, two classes told apart
by whether they have peaks, and six lattice parameters that follow the class."""

from __future__ import annotations

import pytest
import torch


def peak_patterns(n: int = 64, n_points: int = 1000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(patterns [n, P] max-normalised, classes [n], lattice [n, 6]): class 0 has thirty Gaussian peaks at random
    positions on a flat background, class 1 the background alone. Every network
    here can tell them apart, including those that pool globally over positions."""
    g = torch.Generator().manual_seed(seed)
    classes = torch.arange(n) % 2
    grid = torch.arange(n_points, dtype=torch.float32)
    centres = torch.rand(n, 30, generator=g) * (n_points * 0.8) + n_points * 0.1
    peaks = torch.exp(-0.5 * ((grid[None, None] - centres[..., None]) / 3.0) ** 2).sum(1)
    x = (1 - classes[:, None].float()) * peaks + 0.2
    x = x / x.amax(1, keepdim=True)
    a = 4.0 + 2.0 * classes.float() + 0.1 * torch.rand(n, generator=g)
    right = torch.full_like(a, 90.0)
    lattice = torch.stack([a, a, a * 1.5, right, 90.0 + 10 * classes.float(), right], 1)
    return x, classes, lattice


@pytest.fixture(autouse=True)
def one_thread():
    """Run each model test on one intra-op thread: these networks are small, and on a shared or busy machine two
    spinning threads are many times slower than one. The previous setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def separable() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return peak_patterns()
