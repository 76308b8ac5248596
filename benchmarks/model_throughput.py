"""Model throughput: training steps and inference of each network, on fixed batches (the model step alone) and
end to end from the synthetic stream, CPU or CUDA.

    python benchmarks/model_throughput.py --models resnet1d convnext1d --instrument xray-cuka --json out.json

Prints patterns/s for: inference (no grad, bf16 autocast on CUDA, batch 1024 / 1 on CPU: ms per pattern),
a training step (forward + backward + Adam, batch --batch), and training from SyntheticStream (realistic augment)
over whole pool cycles, with the stream generated in the training process or by --stream-workers spawned processes:

    python benchmarks/model_throughput.py --models resnet1d --instrument xray-cuka --batch 512 --compile --stream --stream-workers 0 2
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from powdersym.models import build_model
from powdersym.simulate import preset


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step, device: torch.device, seconds: float, warmup: int = 3) -> tuple[int, float]:
    for _ in range(warmup):
        step()
    sync(device)
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or n < 3:
        step()
        n += 1
    sync(device)
    return n, time.perf_counter() - start


def bench_model(name: str, n_classes: int, n_points: int, batch: int, device: torch.device, seconds: float, compile_: bool) -> dict:
    net = build_model(name, n_classes, n_points).to(device)
    params = sum(p.numel() for p in net.parameters())
    run = torch.compile(net) if compile_ else net
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    out = {"model": name, "parameters": params}
    net.eval()
    infer_batch = 1024 if device.type == "cuda" else 1
    x = torch.rand(infer_batch, n_points, device=device)
    with torch.no_grad(), autocast:
        n, t = timed(lambda: run(x), device, seconds)
    out["inference_patterns_per_s"] = n * infer_batch / t
    out["inference_ms_per_batch"] = 1000 * t / n
    net.train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4)
    x = torch.rand(batch, n_points, device=device)
    y = torch.randint(0, n_classes, (batch,), device=device)

    def step():
        with autocast:
            loss = F.cross_entropy(run(x).float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    n, t = timed(step, device, seconds)
    out["train_patterns_per_s"] = n * batch / t
    return out


def bench_stream(name: str, instrument: str, batch: int, device: torch.device, pool: int, workers: int, compile_: bool) -> float:
    """Training patterns/s from the synthetic stream over one pool cycle of every generating process, after a
    warm-up cycle (crystal draws included); workers > 0: that many spawned processes generate beside training."""
    from powdersym.data import SyntheticStream

    inst = preset(instrument)
    net = build_model(name, 230, len(inst.grid())).to(device)
    run = torch.compile(net) if compile_ else net
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-4)
    source = SyntheticStream(inst, batch, device=device, augment="realistic", target="space_group", pool_size=pool)
    stream = iter(source.loader(workers))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        x, groups = next(stream)
        with autocast:
            loss = F.cross_entropy(run(x).float(), groups - 1)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()

    cycle = source.batches_per_pool * max(workers, 1)
    for _ in range(cycle):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(cycle):
        step()
    sync(device)
    return cycle * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["resnet1d", "resnet1d_wide", "convnext1d"])
    parser.add_argument("--instrument", default="neutron-cw")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--stream", action="store_true", help="also time training from the synthetic stream")
    parser.add_argument("--stream-pool", type=int, default=None, help="crystals per draw of the stream runs (65536 on a GPU, 4 batches on the CPU)")
    parser.add_argument("--stream-workers", type=int, nargs="+", default=[0], help="generating processes of the stream runs (0: the training process)")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n_points = len(preset(args.instrument).grid())
    hardware = torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()} threads"
    print(f"{hardware}; {args.instrument} ({n_points} points); training batch {args.batch}")
    rows = []
    pool = args.stream_pool or (65536 if device.type == "cuda" else 4 * args.batch)
    for name in args.models:
        row = bench_model(name, 230, n_points, args.batch, device, args.seconds, args.compile)
        if args.stream:
            for workers in args.stream_workers:
                row[f"stream_train_patterns_per_s_{workers}_workers"] = bench_stream(
                    name, args.instrument, args.batch, device, pool, workers, args.compile)
        rows.append(row)
        cells = ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v:,}" for k, v in row.items() if k != "model")
        print(f"{name}: {cells}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"hardware": hardware, "instrument": args.instrument, "batch": args.batch, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
