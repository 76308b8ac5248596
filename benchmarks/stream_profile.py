"""Where the GPU synthetic stream spends its time: stage timings and a torch.profiler table.

    python benchmarks/stream_profile.py --instrument neutron-cw --pool 65536 --render 4096

Stages, each timed alone after a warm-up (CUDA synchronised): drawing a pool of random crystals, simulating a
block of `--render` of them with and without the realistic per-crystal effects, the pattern-level augmentation,
then the whole stream (patterns/s into batches of `--batch`) for each --stream-pools size: the first pool is the
warm-up (kernels compiled, caches filled), the figure is one whole pool cycle after it, its crystal draw included.
With --chunks, the simulation is repeated at other chunk sizes; --stream-only skips everything but the whole stream;
--workers 0 2 times the stream in the main process and from two DataLoader worker processes (spawned on a GPU) generating beside it;
--stream-renders / --stream-chunks sweep the stream's render block and simulate chunk sizes; --profile-stream runs the
timed cycle of the first whole-stream configuration under torch.profiler (GPU busy share of the whole cycle).
The profiler tables list the operations of one augmented block and of one crystal draw by GPU and CPU time, and the
share of wall time the GPU was busy (a low share means the stream waits on Python and kernel launches).
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from powdersym.data import SyntheticStream
from powdersym.data.generate import SyntheticSettings, augment_config, make_generator, render, synthetic_crystals
from powdersym.simulate import preset, simulate


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int = 3) -> float:
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync()
    return (time.perf_counter() - start) / repeats


def profiled(label: str, fn, rows: int, sorts: tuple[str, ...]) -> None:
    """Run fn once under torch.profiler; print wall time, the GPU's busy share and the top operations."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    sync()
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        sync()
    wall = time.perf_counter() - start
    events = prof.key_averages()
    # kernels only: operator rows repeat their kernels' time, and annotations span the whole run
    busy = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA and not e.is_user_annotation) / 1e6
    print(f"profiled {label}: wall {wall:.3f} s (profiler on), GPU busy {busy:.3f} s ({100 * busy / wall:.0f} %)")
    for key in sorts:
        print(events.table(sort_by=key, row_limit=rows, max_name_column_width=60))


def stages(args: argparse.Namespace, device: torch.device) -> None:
    """Each stage of the stream timed alone, the chunk sizes, and the profiler tables."""
    inst = preset(args.instrument)
    aug = augment_config("realistic", inst)
    settings = SyntheticSettings("sg", None, None, aug)
    gen = make_generator(1, device)
    n = args.render

    t_pool = timed(lambda: synthetic_crystals(args.pool, settings, gen, device), repeats=2)
    print(f"random crystals, pool of {args.pool}: {t_pool:.2f} s = {args.pool / t_pool:,.0f} crystals/s", flush=True)
    pool = synthetic_crystals(args.pool, settings, gen, device)
    block = pool.batch[torch.arange(n, device=device)]

    with torch.no_grad():
        t_clean = timed(lambda: simulate(block, inst, device=device, chunk_size=1024))
        t_aug = timed(lambda: render(block, inst, aug, gen, device, chunk_size=1024))
        clean = simulate(block, inst, device=device, chunk_size=1024)
        from powdersym.augment import augment

        impurity = clean.roll(1, 0)
        t_pattern = timed(lambda: augment(clean, inst, aug, generator=gen, impurity=impurity))
        print(f"simulate {n} clean: {t_clean:.3f} s = {n / t_clean:,.0f}/s; with sample effects + augmentation: "
              f"{t_aug:.3f} s = {n / t_aug:,.0f}/s; pattern-level augmentation alone: {n / t_pattern:,.0f}/s", flush=True)  # fmt: skip
        for chunk in args.chunks:
            t = timed(lambda: render(block, inst, aug, gen, device, chunk_size=chunk))
            print(f"  chunk {chunk}: {n / t:,.0f} patterns/s", flush=True)

        profiled(f"block of {n}", lambda: render(block, inst, aug, gen, device), args.rows,
                 ("self_cuda_time_total", "self_cpu_time_total"))  # fmt: skip
        profiled(f"pool of {args.pool} crystals", lambda: synthetic_crystals(args.pool, settings, gen, device), args.rows,
                 ("self_cuda_time_total", "self_cpu_time_total"))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instrument", default="neutron-cw")
    parser.add_argument("--pool", type=int, default=65536)
    parser.add_argument("--render", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--chunks", type=int, nargs="*", default=[])
    parser.add_argument("--stream-pools", type=int, nargs="*", default=None,
                        help="pool sizes of the whole-stream runs (none: skip; default 262144 on a GPU, 4 batches on the CPU)")
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--stream-only", action="store_true", help="only the whole-stream measurements")
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="DataLoader processes of the whole-stream runs (0: the main process; >0: spawned workers)")
    parser.add_argument("--stream-renders", type=int, nargs="+", default=[None],
                        help="patterns simulated per call in the whole-stream runs (default: the stream's)")
    parser.add_argument("--stream-chunks", type=int, nargs="+", default=[None],
                        help="crystals per simulate chunk in the whole-stream runs (default: the stream's)")
    parser.add_argument("--profile-stream", action="store_true",
                        help="profile the timed cycle of the first whole-stream configuration")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the CPU: only a check of the script
    if args.stream_pools is None:
        args.stream_pools = [262144 if device.type == "cuda" else 4 * args.batch]
    if not args.stream_only:
        stages(args, device)
    configurations = itertools.product(args.stream_pools, args.workers, args.stream_renders, args.stream_chunks)
    for index, (pool_size, workers, render_size, chunk) in enumerate(configurations):
        whole_stream(args, device, pool_size, workers, render_size, chunk, profile=args.profile_stream and index == 0)


def whole_stream(args: argparse.Namespace, device: torch.device, pool_size: int, workers: int, render_size: int | None,
                 chunk: int | None, profile: bool = False) -> None:
    """Patterns/s of the whole stream over pool cycles; with workers, each process generates its own pools on the
    device and hands the batches over (`SyntheticStream.loader`), so generation runs beside the consumer."""
    source = SyntheticStream(args.instrument, args.batch, seed=3, device=device, label_set="sg", augment="realistic",
                             pool_size=pool_size, render_size=render_size, chunk_size=chunk)  # fmt: skip
    stream = iter(source.loader(workers))
    cycle = source.batches_per_pool * max(workers, 1)  # every worker draws its own pools
    checksum = torch.zeros((), device=device)

    def take() -> int:
        nonlocal checksum
        patterns = next(stream)[0]
        checksum = checksum + patterns[:, 0].sum()  # the consumer touches every batch
        return len(patterns)

    # warm-up: the first pool of every worker (kernels compiled, caches filled); then exactly one pool cycle of every
    # worker, its crystal draws included, so the figure is what training sees on average
    start = time.perf_counter()
    take()
    sync()
    first = time.perf_counter() - start
    for _ in range(cycle - 1):
        take()
    sync()
    warm = time.perf_counter() - start
    count = 0

    def one_cycle() -> None:
        nonlocal count
        for _ in range(cycle):
            count += take()

    blocks = f"render {source.batches_per_render * args.batch}, chunk {chunk or 'default'}"
    if profile:  # the profiler's own overhead makes this cycle's rate no figure to quote
        label = f"one pool cycle of the stream ({cycle} batches of {args.batch}, pool {pool_size}, {blocks})"
        profiled(label, one_cycle, args.rows, ("self_cuda_time_total",))
        return
    start = time.perf_counter()
    one_cycle()
    sync()
    seconds = time.perf_counter() - start
    print(f"whole stream, batches of {args.batch}, pool {pool_size}, {blocks}, {workers} workers: "
          f"{count / seconds:,.0f} patterns/s "
          f"over one pool cycle ({count:,} patterns in {seconds:.1f} s, crystal draws included); first pools "
          f"{count / warm:,.0f}/s (first batch after {first:.1f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
