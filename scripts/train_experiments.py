"""Issue 4's experiments: several training runs on one stored data set at once (one process each, sharing a GPU),
each evaluated on the data set's recorded test split; a summary table and the main paper's Table 4 plot.

    python scripts/train_experiments.py table4 --out runs/table4   # supervised vs SGAN, 5/10/25/50/100 % labels
    python scripts/train_experiments.py full --out runs/full       # 230 SGs and extinction groups; resnet1d vs resnet1d_wide

The data set is simulated first (`build_dataset`, realistic augmentation, seeded, so a rerun builds the same
file); every run uses the same random split (seed 0: 10 % test, 5 % validation), early stopping on the validation
loss and a wall-clock limit, so runs of one call have the same budget. `--smoke` shrinks everything for a CPU check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# what the two experiments run: name -> TrainConfig fields (on top of COMMON)
COMMON = dict(model="resnet1d", model_kwargs={"norm": "batch"}, batch_size=128, lr=5e-4, discriminator_lr=5e-4,
              generator_lr=1e-4, validate_every=250, checkpoint_every=1_000_000, patience=6, max_steps=100_000,
              num_workers=1, progress=False, seed=0, split="random")  # fmt: skip
FRACTIONS = (0.05, 0.1, 0.25, 0.5)


def experiment_runs(name: str) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    if name == "table4":
        for labels in ("bravais", "sg144"):
            for fraction in FRACTIONS:
                for sgan in (False, True):
                    runs[f"{labels}_{'sgan' if sgan else 'sup'}_{int(100 * fraction)}"] = dict(labels=labels, labelled_fraction=fraction, sgan=sgan)
            runs[f"{labels}_sup_100"] = dict(labels=labels)
    elif name == "full":
        runs["sg_resnet1d"] = dict(labels="sg")
        runs["sg_resnet1d_wide"] = dict(labels="sg", model="resnet1d_wide")  # 'strong' at the same data and budget
        runs["eg_resnet1d"] = dict(labels="eg")
    else:
        raise SystemExit(f"unknown experiment {name!r} (table4, full)")
    return runs


def build(out: Path, experiment: str, n: int, smoke: bool) -> Path:
    import torch

    from powdersym.data import build_dataset
    from powdersym.simulate import preset

    path = out / "data.h5"
    if path.is_file():  # a finished build (unfinished ones live under another name and are resumed)
        return path
    instrument = preset("neutron-cw", x_step=0.4) if smoke else preset("neutron-cw")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    label_set = "sg144" if experiment == "table4" else "sg"  # Table 4: all 144 groups of the paper, balanced
    start = time.perf_counter()
    build_dataset(path, "synthetic", instrument, n, seed=2026, block_size=min(n, 8192), device=device,
                  augment="realistic", label_set=label_set, chunk_size=None if device == "cpu" else 1024)  # fmt: skip
    print(f"built {n} patterns ({label_set}-balanced, neutron-cw, realistic) in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def one(spec_path: Path) -> None:
    """Train one run and evaluate it on its test split (runs in its own process)."""
    import torch

    torch.set_num_threads(1)
    from powdersym.evaluate import write_report
    from powdersym.evaluate.run import evaluate_model
    from powdersym.predict import Predictor
    from powdersym.train import TrainConfig, train

    spec = json.loads(spec_path.read_text())
    config = TrainConfig(**spec["config"])
    result = train(config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    predictor = Predictor.load(result.model_path, device, any_label_set=True)
    report = evaluate_model(predictor, spec["config"]["data"], spec["name"], validation_size=256 if spec["smoke"] else 512)
    write_report(report, Path(spec["config"]["out"]) / "report", figures=False)
    summary = {"name": spec["name"], **{k: getattr(config, k) for k in ("labels", "model", "labelled_fraction", "sgan")},
               "steps": result.steps, "seconds": round(result.seconds, 1), "test_n": report.n_samples,
               "top1": report.accuracy["top1"], "top5": report.accuracy["top5"], "balanced": report.accuracy["balanced"],
               "val": {k: v for k, v in result.metrics.items() if k.startswith("val_")}}  # fmt: skip
    (Path(spec["config"]["out"]) / "summary.json").write_text(json.dumps(summary, indent=1))


def launch(out: Path, data: Path, experiment: str, minutes: float, smoke: bool, only: list[str]) -> list[dict]:
    runs = experiment_runs(experiment)
    if only:
        runs = {k: v for k, v in runs.items() if k in only}
    processes = {}
    for name, changes in runs.items():
        config = {**COMMON, **changes, "data": str(data), "out": str(out / name), "max_minutes": minutes}
        if smoke:
            config.update(batch_size=8, validate_every=4, max_steps=8, num_workers=0)
        (out / name).mkdir(parents=True, exist_ok=True)
        spec = out / name / "spec.json"
        spec.write_text(json.dumps({"name": name, "config": config, "smoke": smoke}))
        log = open(out / name / "log.txt", "w")
        processes[name] = subprocess.Popen([sys.executable, __file__, "one", str(spec)], stdout=log, stderr=subprocess.STDOUT)
    start = time.perf_counter()
    while any(p.poll() is None for p in processes.values()):
        time.sleep(5)
        if int(time.perf_counter() - start) % 60 < 5:
            running = [k for k, p in processes.items() if p.poll() is None]
            print(f"{time.perf_counter() - start:.0f} s: {len(running)} running", flush=True)
    summaries = []
    for name, process in processes.items():
        path = out / name / "summary.json"
        if process.returncode != 0 or not path.is_file():
            print(f"{name}: failed (exit {process.returncode}); last lines of its log:", flush=True)
            print("\n".join((out / name / "log.txt").read_text().splitlines()[-15:]), flush=True)
            continue
        summaries.append(json.loads(path.read_text()))
    return summaries


def write_summary(out: Path, summaries: list[dict], experiment: str) -> None:
    from powdersym.evaluate import plot_label_fraction

    lines = ["| run | labels | model | labelled | SGAN | steps | minutes | test n | top-1 | top-5 |", "|" + "---|" * 10]
    for s in sorted(summaries, key=lambda s: s["name"]):
        lines.append(f"| {s['name']} | {s['labels']} | {s['model']} | {100 * s['labelled_fraction']:.0f} % | {'yes' if s['sgan'] else 'no'} | "
                     f"{s['steps']} | {s['seconds'] / 60:.1f} | {s['test_n']} | {100 * s['top1']:.1f} % | {100 * s['top5']:.1f} % |")  # fmt: skip
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(summaries, indent=1))
    print("\n".join(lines), flush=True)
    if experiment == "table4" and summaries:
        points = [{"model": "SGAN" if s["sgan"] else "supervised", "fraction": s["labelled_fraction"], "accuracy": s["top1"],
                   "label_set": s["labels"]} for s in summaries]  # fmt: skip
        plot_label_fraction(points, out / "label_fraction.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", help="table4, full (or 'one SPEC', used internally)")
    parser.add_argument("spec", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=Path("runs/experiment"))
    parser.add_argument("--n", type=int, default=131_072, help="patterns in the data set (the paper: 138k)")
    parser.add_argument("--minutes", type=float, default=5.5, help="wall-clock limit of every run's training")
    parser.add_argument("--only", nargs="*", default=[], help="run only these runs")
    parser.add_argument("--smoke", action="store_true", help="tiny data, few steps, coarse grid (a CPU check)")
    args = parser.parse_args()
    if args.experiment == "one":
        return one(Path(args.spec))
    args.out.mkdir(parents=True, exist_ok=True)
    data = build(args.out, args.experiment, 256 if args.smoke else args.n, args.smoke)
    summaries = launch(args.out, data, args.experiment, args.minutes, args.smoke, args.only)
    write_summary(args.out, summaries, args.experiment)


if __name__ == "__main__":
    main()
