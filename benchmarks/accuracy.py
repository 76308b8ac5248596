"""Accuracy of the shipped models on data they never saw: the spglib structures simulated by pymatgen (X-ray and
neutron) and by powdersym itself with realistic augmentation, the measured RRUFF X-ray patterns, and the measured
neutron and X-ray patterns of the GSAS-II tutorials, EasyDiffraction and the IUCr Rietveld pdCIFs with known space
groups. Prints a Markdown table (append it to docs/results.md), then per-file top-5 groups of the small measured
sets and what they skip.

    python benchmarks/accuracy.py                 # about 10 minutes on 2 CPU cores (simulation: 5 of them)
    python benchmarks/accuracy.py --sets rruff measured-neutron --json out.json
    python benchmarks/accuracy.py --device cuda   # simulation and network on the GPU
    python benchmarks/accuracy.py --weights ship  # candidates ship/xray-cuka/model.safetensors, ... instead

Measured and pymatgen-simulated patterns go through `Predictor.prepare`, as `powdersym predict` does: d-mapping
onto the model's grid, Chebyshev background, max-normalisation; the time-of-flight patterns are mapped onto the
constant-wavelength neutron model's grid through d the same way. The powdersym-simulated sets are already on
the model's grid (max-normalised) and go to the network as they are. Columns: space group top-1 / top-5 (230
classes), the same with enantiomorphic pairs merged, crystal system and Bravais lattice (probabilities summed
from the space groups), and space-group top-1 on the most certain half (Vecsei et al.'s refusal at 50 %
coverage). Each set is scored twice: with the probabilities `powdersym predict` reports (re-weighted from the
model's training balance to the space-group frequencies of known crystals, prior "known") and as trained
(prior "trained", the better choice for sets spread evenly over the groups, such as the spglib ones). Sets of
patterns (not the powdersym-simulated ones) are also indexed as `predict` does (`--no-index` skips it): where a
cubic, tetragonal, hexagonal or orthorhombic cell fits the peak positions, only that lattice's groups keep their
probability, and groups whose systematic absences forbid indexed lines are down-weighted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import time
from functools import cache

import numpy as np

from powdersym.evaluate import marginalise, merged_accuracy, refusal_curve, top_k_accuracy
from powdersym.evaluate.labelsets import derived_index_of_sg
from powdersym.evaluate.sets import EvaluationSet, load_evaluation_set
from powdersym.predict import Predictor, restrict_to_cells
from powdersym.refine.extinction import MISSING, PENALTY
from powdersym.refine.index import SYSTEMS
from powdersym.symmetry import space_group

SETS = {
    "spglib-pymatgen-xray": "xray-cuka", "spglib-pymatgen-neutron": "neutron-cw",
    "spglib-powdersym-xray": "xray-cuka", "spglib-powdersym-neutron": "neutron-cw",
    "rruff": "xray-cuka", "measured-neutron": "neutron-cw", "measured-neutron-tof": "neutron-cw",
    "measured-xray": "xray-cuka",
}  # fmt: skip
PER_FILE = ("measured-neutron", "measured-neutron-tof", "measured-xray")  # small sets: every file's top 5 is printed


@cache
def _load_set(set_name: str, device: str) -> EvaluationSet:
    return load_evaluation_set(set_name, device=device)  # simulated once for both priors


@cache
def _cells(set_name: str, device: str, instrument: str, systems: tuple[str, ...] = SYSTEMS, denoise: bool = True) -> tuple:
    """The indexed cell (or None) of every pattern of a set, as `powdersym predict` finds them (once per set)."""
    data = _load_set(set_name, device)
    predictor = Predictor.for_instrument(instrument, index_systems=systems, index_denoise=denoise)
    return tuple(predictor.index_patterns(data.patterns, jobs=0)) if data.patterns else ()  # a process per core


def model_for(instrument: str, device: str = "cpu", weights: str | None = None, prior: str = "known") -> Predictor:
    """The shipped model of an instrument, or the candidate WEIGHTS/INSTRUMENT/model.safetensors."""
    if weights:
        return Predictor.load(f"{weights}/{instrument}/model.safetensors", device=device, prior=prior)
    return Predictor.for_instrument(instrument, device=device, prior=prior)


def evaluate(
    set_name: str, instrument: str, device: str = "cpu", weights: str | None = None, prior: str = "known",
    systems: tuple[str, ...] = SYSTEMS, penalty: float = PENALTY, denoise: bool = True, missing: float = MISSING,
) -> tuple[dict, EvaluationSet, np.ndarray]:
    """(summary row, the set, calibrated probabilities [N, 230] under `prior`, as `powdersym predict`); weights: a
    folder of candidate models (INSTRUMENT/model.safetensors) to use instead of the shipped ones; systems: the
    cells indexed (restricting to their lattices as `predict` does; none: the network alone); penalty: the factor
    per indexed line a group's systematic absences forbid (1: absences ignored); denoise: noisy patterns indexed
    from a smoothed copy; missing: the factor per line a group allows that the pattern does not show (1: ignored)."""
    start = time.perf_counter()
    data = _load_set(set_name, device)
    loading = time.perf_counter() - start
    predictor = model_for(instrument, device, weights, prior)
    start = time.perf_counter()
    logits, _ = predictor.logits(data.model_inputs(predictor))
    seconds = time.perf_counter() - start
    probs = predictor.probabilities(logits)
    cells = _cells(set_name, device, instrument, systems, denoise) if systems else ()
    probs = restrict_to_cells(probs, list(cells), penalty=penalty, missing=missing)
    labels = data.space_group - 1
    row = {"set": set_name, "model": instrument, "prior": predictor.prior_used, "indexed": sum(c is not None for c in cells), "n": len(labels), "distinct_groups": int(len(np.unique(labels))),
           "skipped": len(data.skipped), "sg_top1": top_k_accuracy(probs, labels, 1), "sg_top5": top_k_accuracy(probs, labels, 5),
           "sg_top1_enantiomorph_merged": merged_accuracy(probs.argmax(1), labels, "space_group", "enantiomorph"),
           "sg_top1_at_50pct": refusal_curve(probs, labels).at_coverage(0.5).accuracy, "seconds": seconds,
           "loading_seconds": loading}  # fmt: skip
    for to in ("crystal_system", "bravais"):
        p = marginalise(probs, to)
        row[f"{to}_top1"] = top_k_accuracy(p, derived_index_of_sg(to)[data.space_group], 1)
    return row, data, probs


def per_file_table(data: EvaluationSet, probs: np.ndarray) -> list[str]:
    """Markdown rows: file, true group, rank of the true group, top 5 with probabilities."""
    lines = [f"**{data.name}** ({data.description})", "",
             "| file | true group | rank of true | top 5 (probability) |", "|---|---|---|---|"]  # fmt: skip
    for name, truth, p in zip(data.names, data.space_group, probs):
        order = np.argsort(-p)
        rank = int(np.flatnonzero(order == truth - 1)[0]) + 1
        top = ", ".join(f"{k + 1} {space_group(int(k + 1)).hm_symbol} ({p[k]:.0%})" for k in order[:5])
        lines.append(f"| {name} | {truth} {space_group(int(truth)).hm_symbol} | {rank} | {top} |")
    if data.skipped:
        lines += ["", "Skipped:", ""] + [f"- {name}: {reason}" for name, reason in data.skipped]
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--device", default="cpu", help="cpu or cuda (simulation of the powdersym sets and the network)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--weights", default=None, help="folder of candidate models INSTRUMENT/model.safetensors (default: shipped)")
    parser.add_argument("--priors", nargs="+", default=["known", "trained"], choices=["known", "trained"], help="class priors to score")
    parser.add_argument("--no-index", dest="index", action="store_false", help="the network alone, without indexing the peak positions")
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"date {datetime.date.today()}, commit {commit}, device {args.device}, models {args.weights or 'shipped'}, indexing {'on' if args.index else 'off'}")
    print("| set | model | prior | n (indexed) | SG top-1 | SG top-5 | SG top-1 (enantiomorphs merged) | crystal system | Bravais | SG top-1 on the most certain 50 % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows, details = [], []
    for name, prior in ((n, p) for n in args.sets for p in args.priors):
        row, data, probs = evaluate(name, SETS[name], args.device, args.weights, prior, SYSTEMS if args.index else ())
        rows.append(row)
        print(f"| {name} | {row['model']} | {row['prior']} | {row['n']} ({row['indexed']}) | {row['sg_top1']:.1%} | {row['sg_top5']:.1%} | {row['sg_top1_enantiomorph_merged']:.1%} | "
              f"{row['crystal_system_top1']:.1%} | {row['bravais_top1']:.1%} | {row['sg_top1_at_50pct']:.1%} |", flush=True)  # fmt: skip
        if name in PER_FILE and prior == args.priors[0]:
            details += per_file_table(data, probs)
            row["files"] = [{"file": f, "true": int(t), "top5": [int(k + 1) for k in np.argsort(-p)[:5]]}
                            for f, t, p in zip(data.names, data.space_group, probs)]  # fmt: skip
        row["skipped_files"] = [list(s) for s in data.skipped]
    if details:
        print("\n" + "\n".join(details))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"commit": commit, "device": args.device, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
