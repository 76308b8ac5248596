"""Which differences between training data and real data a model is sensitive to: its accuracy on synthetic patterns
drawn as it was trained (the baseline row) and with one thing changed per row: augmentation ranges (as `powdersym
train --augment-range`), `real_sites=F`, the fraction of random crystals whose Wyckoff site combinations are drawn
as real materials have them (Materials Project statistics shipped with pyxtal; `RandomCrystalConfig.
real_site_fraction`), or another number of `RandomCrystalConfig` (e.g. `max_atoms=160`: larger cells). Same
crystal-system-balanced groups, seed 424243 (no training stream uses it) in every row.

    python benchmarks/sensitivity.py                          # xray-cuka: baseline, real sites, sharp, strong PO
    python benchmarks/sensitivity.py --variants "real_sites=1" "march_dollase=0.5:1.5 displacement=-0.3:0.3" "max_atoms=160"
    python benchmarks/sensitivity.py --weights DIR --n 3072 --device cuda

A change that costs the model much accuracy is a realism gap worth training on (widen that range); one that costs
nothing is not why the model fails on measured data.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from accuracy import model_for  # benchmarks/ is on the path when a benchmark runs as a script
from powdersym.augment.config import parse_ranges
from powdersym.data.generate import SyntheticSettings, augment_config, make_generator, synthetic_block
from powdersym.evaluate import marginalise, top_k_accuracy
from powdersym.evaluate.labelsets import derived_index_of_sg
from powdersym.structures.random import RandomCrystalConfig

SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
DEFAULT_VARIANTS = ("", "real_sites=1", "crystallite_size=2000:20000 microstrain=0:3e-4 resolution_jitter=0:0.1",
                    "march_dollase=0.5:0.6")  # fmt: skip


def variant_settings(variant: str, training: dict, instrument) -> SyntheticSettings:
    """The model's training distribution (crystal systems balanced) with the variant's changes."""
    numbers = {f.name: f.type for f in dataclasses.fields(RandomCrystalConfig) if f.type in ("int", "float")}
    crystal, ranges = {}, []
    for item in variant.split():
        name, _, value = item.partition("=")
        name = "real_site_fraction" if name == "real_sites" else name
        if name in numbers:
            crystal[name] = int(value) if numbers[name] == "int" else float(value)
        else:
            ranges.append(item)
    augment = augment_config(training.get("augment", "realistic"), instrument, {**(training.get("augment_ranges") or {}), **parse_ranges(ranges)})
    return SyntheticSettings("crystal_system", None, dataclasses.replace(RandomCrystalConfig(), **crystal), augment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instrument", default="xray-cuka")
    parser.add_argument("--weights", default=None, help="candidate model INSTRUMENT/model.safetensors under this folder (default: shipped)")
    parser.add_argument("--n", type=int, default=1536, help="patterns per row")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), help="one row each; '' is the baseline")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=424243)
    args = parser.parse_args()
    predictor = model_for(args.instrument, args.device, args.weights)
    training = predictor.saved.meta.get("training", {})
    system_of = derived_index_of_sg("crystal_system")
    print(f"model {args.weights or 'shipped'} {args.instrument} (augmentation {training.get('augment', 'realistic')}, "
          f"ranges {training.get('augment_ranges') or 'default'}), {args.n} patterns per row, crystal systems balanced")  # fmt: skip
    print("| variant | atoms (median) | sites (mean) | SG top-1 | SG top-5 | crystal system | "
          + " | ".join(f"recall {s[:4]}" for s in SYSTEMS) + " |")  # fmt: skip
    print("|---" * (6 + len(SYSTEMS)) + "|")
    for variant in args.variants:
        try:
            settings = variant_settings(variant, training, predictor.instrument)
        except ValueError as err:
            parser.error(f"variant {variant!r}: {err}")
        generator = make_generator(args.seed, args.device)
        xs, groups, atoms, sites = [], [], [], []
        for start in range(0, args.n, 512):
            x, crystals = synthetic_block(min(512, args.n - start), predictor.instrument, settings, generator, args.device)
            xs.append(x.cpu().numpy())
            groups.append(crystals.space_group.cpu().numpy())
            atoms.append(crystals.n_atoms.cpu().numpy())
            sites.append((crystals.wyckoff >= 0).sum(1).cpu().numpy())
        g = np.concatenate(groups)
        logits, _ = predictor.logits(np.concatenate(xs))
        probs = torch.softmax(torch.from_numpy(logits) / predictor.saved.temperature, 1).numpy()
        truth, cs = system_of[g], marginalise(probs, "crystal_system").argmax(1)
        recall = [float((cs[truth == k] == k).mean()) if (truth == k).any() else float("nan") for k in range(len(SYSTEMS))]
        print(f"| {variant or 'baseline (as trained)'} | {np.median(np.concatenate(atoms)):.0f} | {np.concatenate(sites).mean():.1f} | "
              f"{top_k_accuracy(probs, g - 1, 1):.1%} | {top_k_accuracy(probs, g - 1, 5):.1%} | {(cs == truth).mean():.1%} | "
              + " | ".join(f"{r:.2f}" for r in recall) + " |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
