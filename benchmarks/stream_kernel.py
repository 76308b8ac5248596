"""Synthetic stream on a GPU with variants of the structure-factor step, alternating, in one run.

    python benchmarks/stream_kernel.py --instrument neutron-cw --seconds 6
    python benchmarks/stream_kernel.py --variants fused specialised    # is do_not_specialize a cost?

Patterns/s of the whole SyntheticStream (random crystals -> simulate -> realistic augmentation, labels) in batches
of --batch, after --warmup batches, pools of --pool crystals. Variants: `matrix` (the matrix-product form,
`powdersym.simulate.kernels.ENABLED = False`), `fused` (the shipped Triton kernel, compiled once for all reflection,
atom and scatterer counts) and `specialised` (the same kernel jitted the Triton default way, which compiles a
variant per combination of "== 1" / "divisible by 16" among those counts).
"""

from __future__ import annotations

import argparse
import time

import torch

from powdersym.data import SyntheticStream
from powdersym.simulate import kernels


def rate(instrument: str, seconds: float, batch: int, warmup: int, pool: int) -> float:
    stream = iter(SyntheticStream(instrument, batch, seed=3, device="cuda", label_set="space_group", augment="realistic",
                                  pool_size=pool))  # fmt: skip
    for _ in range(warmup):
        next(stream)
    torch.cuda.synchronize()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        n += len(next(stream)[0])
    torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instrument", default="neutron-cw")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=60, help="batches before timing")
    parser.add_argument("--pool", type=int, default=65536, help="crystals drawn at a time")
    parser.add_argument("--variants", nargs="+", default=["matrix", "fused"], choices=["matrix", "fused", "specialised"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device (the kernel is GPU-only)")
    if kernels.triton is None:
        raise SystemExit("needs Triton (installed with PyTorch's CUDA builds)")
    shipped = kernels._structure_factor_kernel
    kernel = {"matrix": shipped, "fused": shipped, "specialised": kernels.triton.jit(shipped.fn)}
    for _ in range(args.repeats):
        for variant in args.variants:
            kernels.ENABLED = variant != "matrix"
            kernels._structure_factor_kernel = kernel[variant]
            patterns = rate(args.instrument, args.seconds, args.batch, args.warmup, args.pool)
            print(f"{args.instrument} {variant}: {patterns:,.0f} patterns/s", flush=True)


if __name__ == "__main__":
    main()
