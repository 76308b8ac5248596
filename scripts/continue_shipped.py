"""Continue training a shipped model on fresh synthetic data (the next leg of docs/models.md), on a GPU.

    python scripts/continue_shipped.py xray-cuka --minutes 8 --seed 28 --balance cs --lr-schedule cosine --out ship

Starts from src/powdersym/models/weights/NAME.safetensors with the training configuration stored in its JSON,
changing only the wall-clock limit, learning rate and its schedule, stream seed (a seed no earlier leg used, or the same patterns are
replayed), the label set the crystals are balanced over (tempered towards known crystals by --known-exponent) and,
if given, augmentation ranges. The new model lands in OUT/NAME/model.safetensors (+ .json);
calibrate it with `powdersym calibrate` before copying it over the shipped one. `--from` continues a candidate
of an earlier leg instead (legs chained within one session, before any is shipped).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from powdersym.augment.config import parse_ranges
from powdersym.predict import shipped_model
from powdersym.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="shipped model: xray-cuka or neutron-cw")
    parser.add_argument("--minutes", type=float, default=8.0)
    parser.add_argument("--seed", type=int, required=True, help="stream seed; earlier legs used 0 and 5-27 (docs/models.md, docs/results.md)")
    parser.add_argument("--lr", type=float, default=2.5e-4)
    parser.add_argument("--lr-schedule", default="constant", help="constant, or cosine: decay to zero over --minutes")
    parser.add_argument("--from", dest="start", type=Path, default=None,
                        help="a candidate model (.safetensors from an earlier leg) to continue instead of the shipped one")
    parser.add_argument("--balance", default=None, help="label set drawn equally often (default: the model's labels)")
    parser.add_argument("--known-exponent", type=float, default=0.0,
                        help="draw space groups tempered towards known crystals' frequencies (0: balanced, 1: as known)")
    parser.add_argument("--out", type=Path, default=Path("ship"))
    parser.add_argument("--stream-workers", type=int, default=0, help="processes generating the stream beside training")
    parser.add_argument("--augment-range", nargs="+", default=[], metavar="NAME=LOW:HIGH",
                        help="replace augmentation ranges, as `powdersym train --augment-range` (e.g. crystallite_size=1000:10000)")
    args = parser.parse_args()
    try:
        ranges = parse_ranges(args.augment_range)
    except ValueError as err:
        parser.error(f"--augment-range: {err}")
    weights = args.start or shipped_model(args.name)
    if not weights.is_file():
        parser.error(f"{weights}: no such model")
    config = TrainConfig.from_dict(json.loads(weights.with_suffix(".json").read_text())["training"]["config"])
    # init relative to the checkout: no machine paths in the exported JSON
    changes = dict(out=str(args.out / args.name), init=os.path.relpath(weights), max_minutes=args.minutes, lr=args.lr,
                   lr_schedule=args.lr_schedule, seed=args.seed, balance=args.balance, known_exponent=args.known_exponent, max_steps=1_000_000, stream_workers=args.stream_workers,
                   augment_ranges={**config.augment_ranges, **ranges})  # fmt: skip
    try:
        leg = TrainConfig(**{**config.as_dict(), **changes})
    except ValueError as err:
        parser.error(str(err))
    result = train(leg)
    metrics = {k: round(v, 4) for k, v in result.metrics.items() if k.startswith("val")}
    print(f"{args.name}: {result.steps} steps in {result.seconds:.0f} s; {metrics}", flush=True)


if __name__ == "__main__":
    main()
