"""Prediction throughput of the shipped models: patterns/s and ms per pattern through `Predictor.predict_files`
(read + preprocess + model + probabilities), stage by stage, on real files; and the model step alone.

    python benchmarks/predict_throughput.py                    # CPU (and CUDA when present), about 2 minutes
    python benchmarks/predict_throughput.py --files 400 --compile --json out.json

Files, written to a temporary folder: xray-cuka: N xye files of the shared RRUFF patterns (2theta, Cu K-alpha1
wavelength in the header); neutron-cw: N xye files of the shared pymatgen-simulated neutron patterns (as counts on a
flat background) and the measured constant-wavelength GSAS/column files of the 'measured-neutron' set as they are.
Stages: read (`read_pattern`), preprocess (`Predictor.prepare`: d-mapping, Chebyshev background, normalisation),
index (`Predictor.index_patterns`: peak positions against cubic to triclinic cells; --jobs processes, 1 by default,
0 one per core as `powdersym predict` does), model (`Predictor.logits` at its default batch: CPU_BATCH_POINTS input
points on the CPU, 256 patterns on a GPU) and the end-to-end `predict_files` call, timed on its own, with indexing
(the default) and without (`index=False`: the network path alone). The model step alone: the network on random
inputs, CPU at batch 1, the CPU default and 256; on CUDA at --gpu-batch in fp32 and under bf16 autocast (optionally
torch.compile). Targets (issue 6): <= 20 ms per pattern end to end on the CPU, >= 20,000 patterns/s for the model
step on a GPU. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from powdersym.evaluate.sets import CU_KA1, load_evaluation_set, shared_data_folder
from powdersym.io import read_pattern, write_xye
from powdersym.predict import CPU_BATCH_POINTS, Predictor

CPU_TARGET_MS, GPU_TARGET = 20.0, 20_000.0


def write_rruff_files(folder: Path, n: int) -> list[Path]:
    """n xye files of the shared RRUFF patterns (cycled), the wavelength in the header."""
    data = np.load(shared_data_folder() / "measured" / "rruff_dev" / "rruff_dev.npz")
    x, rows = data["two_theta_deg"], data["intensity"]
    paths = []
    for i in range(n):
        y = rows[i % len(rows)].astype(np.float64)
        path = folder / f"rruff_{i:04d}.xye"
        write_xye(path, x, y, np.sqrt(np.maximum(y, 1.0)), header=f"RRUFF {data['source_file'][i % len(rows)]}\nwavelength = {CU_KA1}")
        paths.append(path)
    return paths


def write_neutron_files(folder: Path, n: int) -> list[Path]:
    """n xye files of the pymatgen-simulated neutron patterns as counts (peak 1e4 on a background of 200)."""
    data = np.load(shared_data_folder() / "simulated" / "spglib_pymatgen.npz")
    x, rows = data["neutron_two_theta"], data["neutron"]
    paths = []
    for i in range(n):
        y = 200.0 + 1e4 * rows[i % len(rows)].astype(np.float64)
        path = folder / f"neutron_{i:04d}.xye"
        write_xye(path, x, y, np.sqrt(y), header=f"spglib {data['name'][i % len(rows)]}\nwavelength = 1.5403")
        paths.append(path)
    return paths


def clock(step: Callable[[], object], device: str = "cpu") -> tuple[object, float]:
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = step()
    if device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def stages(predictor: Predictor, label: str, files: list[Path], options: list[dict], device: str) -> dict:
    """Per-stage and end-to-end seconds for one list of files (each with its read options)."""
    predictor.predict_files(files[:2], **options[0])  # warm up (imports, allocator)
    patterns, read = clock(lambda: [read_pattern(f, **o) for f, o in zip(files, options)])
    prepared, prep = clock(lambda: predictor.prepare(patterns))
    _, index = clock(lambda: predictor.index_patterns(patterns))
    x = np.stack([p.y for p in prepared])
    _, model = clock(lambda: predictor.logits(x), device)
    _, post = clock(lambda: predictor.predict_arrays(x), device)  # model again + probabilities and derived labels
    def end_to_end() -> float:
        if all(o == options[0] for o in options):
            return clock(lambda: predictor.predict_files(files, **options[0]), device)[1]
        return clock(lambda: [predictor.predict_file(f, **o) for f, o in zip(files, options)], device)[1]

    total = end_to_end()
    predictor.index = False
    network_path = end_to_end()
    predictor.index = True
    n = len(files)
    return {"files": label, "model": predictor.name, "device": device, "n": n, "read_ms": 1e3 * read / n,
            "preprocess_ms": 1e3 * prep / n, "index_ms": 1e3 * index / n, "model_ms": 1e3 * model / n, "predict_arrays_ms": 1e3 * post / n,
            "end_to_end_ms": 1e3 * total / n, "patterns_per_s": n / total, "without_index_ms": 1e3 * network_path / n}  # fmt: skip


def model_step(predictor: Predictor, device: str, batch: int, bf16: bool, compile_: bool, seconds: float) -> dict:
    """The network alone on random inputs on the model's grid: patterns/s."""
    net = predictor.saved.net.to(device).eval()
    run = torch.compile(net) if compile_ else net
    x = torch.rand(batch, len(predictor.instrument.grid()), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=bf16)
    with torch.inference_mode(), autocast:
        for _ in range(3 if not compile_ else 5):
            run(x)
        n, elapsed = 0, 0.0
        while elapsed < seconds or n < 3:
            _, t = clock(lambda: run(x), device)
            n, elapsed = n + 1, elapsed + t
    return {"model": predictor.name, "device": device, "batch": batch, "precision": "bf16 autocast" if bf16 else "fp32",
            "compiled": compile_, "patterns_per_s": n * batch / elapsed, "ms_per_pattern": 1e3 * elapsed / (n * batch)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200, help="xye files written per model")
    parser.add_argument("--gpu-batch", type=int, default=4096)
    parser.add_argument("--compile", action="store_true", help="also time the model step under torch.compile (CUDA)")
    parser.add_argument("--seconds", type=float, default=3.0, help="time per model-step measurement")
    parser.add_argument("--json", default=None)
    parser.add_argument("--jobs", type=int, default=1, help="processes that index (0: one per core; predict's default)")
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, indexing jobs {args.jobs}"
          + (f", {torch.cuda.get_device_name()}" if "cuda" in devices else ", no CUDA"))

    measured = load_evaluation_set("measured-neutron")
    rows, steps = [], []
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        xray_files, neutron_files = write_rruff_files(folder, args.files), write_neutron_files(folder, args.files)
        gsas_files = [Path(p.metadata["path"]) for p in measured.patterns]
        gsas_options = [_read_options(p) for p in measured.patterns]
        for device in devices:
            xray, neutron = (Predictor.for_instrument(name, device, jobs=args.jobs)
                             for name in ("xray-cuka", "neutron-cw"))
            rows.append(stages(xray, f"RRUFF xye x {args.files}", xray_files, [{}] * len(xray_files), device))
            rows.append(stages(neutron, f"pymatgen neutron xye x {args.files}", neutron_files, [{}] * len(neutron_files), device))
            rows.append(stages(neutron, f"measured CW neutron (GSAS, xye, dat) x {len(gsas_files)}", gsas_files, gsas_options, device))
            for predictor in (xray, neutron):
                if device == "cpu":
                    default = CPU_BATCH_POINTS // len(predictor.instrument.grid())
                    steps += [model_step(predictor, "cpu", b, False, False, args.seconds) for b in (1, default, 256)]
                else:
                    steps += [model_step(predictor, "cuda", args.gpu_batch, bf16, False, args.seconds) for bf16 in (False, True)]
                    if args.compile:
                        steps.append(model_step(predictor, "cuda", args.gpu_batch, True, True, args.seconds))

    print("\n| files | model | device | n | read ms | preprocess ms | index ms | model ms | predict_arrays ms | predict_files ms/pattern | patterns/s | without indexing ms/pattern |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        flags = ["" if r["device"] != "cpu" or r[k] <= CPU_TARGET_MS else " (above the 20 ms target)" for k in ("end_to_end_ms", "without_index_ms")]
        print(f"| {r['files']} | {r['model']} | {r['device']} | {r['n']} | {r['read_ms']:.2f} | {r['preprocess_ms']:.2f} | {r['index_ms']:.2f} | "
              f"{r['model_ms']:.2f} | {r['predict_arrays_ms']:.2f} | {r['end_to_end_ms']:.2f}{flags[0]} | {r['patterns_per_s']:.0f} | "
              f"{r['without_index_ms']:.2f}{flags[1]} |")  # fmt: skip
    print("\nModel step alone (random inputs):\n")
    print("| model | device | batch | precision | compiled | patterns/s | ms/pattern |")
    print("|---|---|---|---|---|---|---|")
    for s in steps:
        flag = " (below the 20,000/s target)" if s["device"] == "cuda" and s["patterns_per_s"] < GPU_TARGET else ""
        print(f"| {s['model']} | {s['device']} | {s['batch']} | {s['precision']} | {s['compiled']} | {s['patterns_per_s']:.0f}{flag} | {s['ms_per_pattern']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"stages": rows, "model_step": steps}, f, indent=1)


def _read_options(pattern) -> dict:
    """The read options that give a measured pattern again: its instrument file, bank or wavelength."""
    meta = pattern.metadata
    if "instrument" in meta:
        return {"instrument_file": meta["instrument"]["source"], "bank": meta.get("bank")}
    return {"wavelength": pattern.wavelength}


if __name__ == "__main__":
    main()
