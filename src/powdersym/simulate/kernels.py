"""|F(hkl)|^2 in one GPU kernel (Triton): phases, cos/sin and the sums over atoms without writing the [B, r, N]
arrays of the matrix-product form in `reflections`, which is bound by memory traffic on a GPU (issue 3).

Used by `structure_factor_squared` on CUDA in float32 when no gradient is needed and Triton is installed (it comes
with PyTorch's CUDA builds); everywhere else the matrix-product form runs. `ENABLED = False` switches it off.
"""

from __future__ import annotations

import contextlib
import os

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # CPU-only installs
    triton = None

ENABLED = True
BLOCK_R = 128  # reflections per program


def usable(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernel can compute |F|^2 from these inputs (CUDA or the Triton interpreter, float32, no
    gradient wanted)."""
    if not ENABLED or triton is None:
        return False
    interpreted = os.environ.get("TRITON_INTERPRET") == "1"
    if not all((t.is_cuda or interpreted) and t.dtype == torch.float32 for t in tensors):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


if triton is not None:

    # R, N, T vary from chunk to chunk: without do_not_specialize Triton compiles a variant (seconds each) for every
    # combination of "== 1" and "divisible by 16" among them that a stream meets. They only bound loops and masks,
    # so one compiled variant serves all.
    @triton.jit(do_not_specialize=["R", "N", "T"])
    def _structure_factor_kernel(hkl_ptr, coords_ptr, occupancy_ptr, type_ptr, factors_ptr, out_ptr, R, N, T,
                                 BLOCK: tl.constexpr):  # fmt: skip
        crystal = tl.program_id(0)
        rows = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        valid = rows < R
        row = crystal * R + rows
        h = tl.load(hkl_ptr + row * 3, mask=valid, other=0.0)
        k = tl.load(hkl_ptr + row * 3 + 1, mask=valid, other=0.0)
        l = tl.load(hkl_ptr + row * 3 + 2, mask=valid, other=0.0)
        real = tl.zeros([BLOCK], dtype=tl.float32)
        imag = tl.zeros([BLOCK], dtype=tl.float32)
        for n in range(0, N):
            atom = crystal * N + n
            weight = tl.load(occupancy_ptr + atom)
            kind = tl.load(type_ptr + atom)
            x = tl.load(coords_ptr + crystal * 3 * N + n)
            y = tl.load(coords_ptr + (crystal * 3 + 1) * N + n)
            z = tl.load(coords_ptr + (crystal * 3 + 2) * N + n)
            f = tl.load(factors_ptr + row * T + kind, mask=valid, other=0.0) * weight
            phase = h * x + k * y + l * z
            real += f * tl.cos(phase)
            imag += f * tl.sin(phase)
        tl.store(out_ptr + row, real * real + imag * imag, mask=valid)


def structure_factor_squared_fused(hkl: torch.Tensor, coords: torch.Tensor, members: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """|F|^2 [B, r] from hkl [B, r, 3], 2 pi x [B, 3, N], occupancy-weighted one-hot scatterer types [B, N, T] and
    scattering x Debye-Waller factors [B, r, T] — the inputs of the matrix-product form, the same result."""
    b, r, _ = hkl.shape
    n, t = coords.shape[2], factors.shape[2]
    occupancy = members.sum(-1).contiguous()  # [B, N]; padding atoms 0
    types = members.argmax(-1).to(torch.int32).contiguous()  # [B, N]
    out = torch.empty(b, r, device=hkl.device, dtype=torch.float32)
    if b and r and n:
        grid = (b, triton.cdiv(r, BLOCK_R))
        # Triton launches on the current CUDA device, not the tensors' (e.g. cuda:1 in a spawned stream worker)
        with torch.cuda.device(hkl.device) if hkl.is_cuda else contextlib.nullcontext():
            _structure_factor_kernel[grid](hkl.contiguous(), coords.contiguous(), occupancy, types, factors.contiguous(),
                                           out, r, n, t, BLOCK=BLOCK_R)  # fmt: skip
    else:
        out.zero_()
    return out
