"""Synthetic stream on a GPU with the fused structure-factor kernel off and on, alternating, in one run.

    python benchmarks/stream_kernel.py --instrument neutron-cw --seconds 6

Patterns/s of the whole SyntheticStream (random crystals -> simulate -> realistic augmentation, labels) in batches
of --batch, after 10 warm-up batches; `powdersym.simulate.kernels.ENABLED` switches the kernel.
"""

from __future__ import annotations

import argparse
import time

import torch

from powdersym.data import SyntheticStream
from powdersym.simulate import kernels


def rate(instrument: str, enabled: bool, seconds: float, batch: int) -> float:
    kernels.ENABLED = enabled
    stream = iter(SyntheticStream(instrument, batch, seed=3, device="cuda", label_set="space_group", augment="realistic"))
    for _ in range(10):
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
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device (the kernel is GPU-only)")
    if kernels.triton is None:
        raise SystemExit("needs Triton (installed with PyTorch's CUDA builds)")
    for enabled in (False, True, False, True):
        print(f"{args.instrument} fused={enabled}: {rate(args.instrument, enabled, args.seconds, args.batch):,.0f} patterns/s", flush=True)


if __name__ == "__main__":
    main()
