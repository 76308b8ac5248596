"""The fused structure-factor kernel (Triton) against the matrix-product form it replaces on GPUs. Runs on a CUDA
machine, or on the CPU through Triton's interpreter (`TRITON_INTERPRET=1 pytest tests/simulate/test_kernels.py`
with triton installed); skipped elsewhere, since CPU installs never use the kernel."""

from __future__ import annotations

import os

import pytest
import torch

from powdersym.simulate import Neutron, XRay, kernels
from powdersym.simulate.reflections import enumerate_reflections, structure_factor_squared
from powdersym.structures.random import random_crystals

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
pytestmark = pytest.mark.skipif(
    kernels.triton is None or (DEVICE == "cpu" and os.environ.get("TRITON_INTERPRET") != "1"),
    reason="needs Triton and a CUDA device (or TRITON_INTERPRET=1)",
)


@pytest.mark.parametrize("radiation", [Neutron(), XRay()], ids=["neutron", "xray"])
def test_fused_kernel_equals_the_matrix_product_form(radiation, monkeypatch):
    generator = torch.Generator(DEVICE).manual_seed(5)
    groups = torch.tensor([1, 2, 14, 62, 139, 166, 194, 225, 227, 230], device=DEVICE)
    batch = random_crystals(groups, generator=generator, device=DEVICE).batch
    refl = enumerate_reflections(batch.lattice, d_min=1.2)
    with torch.no_grad():
        assert kernels.usable(refl.hkl, refl.d)
        fused = structure_factor_squared(batch, refl, radiation)
        monkeypatch.setattr(kernels, "ENABLED", False)
        reference = structure_factor_squared(batch, refl, radiation)
    assert fused.shape == reference.shape and fused.dtype == reference.dtype
    scale = reference.amax(1, keepdim=True).clamp(min=1e-30)  # per crystal
    assert torch.allclose(fused / scale, reference / scale, atol=2e-5), (fused / scale - reference / scale).abs().max()
    assert (reference[~refl.mask] == 0).all() and (fused[~refl.mask] == 0).all()


def test_gradients_and_float64_take_the_matrix_product_form():
    x = torch.zeros(2, 3, device=DEVICE, requires_grad=True)
    assert not kernels.usable(x)  # a gradient is wanted
    with torch.no_grad():
        assert kernels.usable(x)
    assert not kernels.usable(torch.zeros(2, 3, device=DEVICE, dtype=torch.float64))
