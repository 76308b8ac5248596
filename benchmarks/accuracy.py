"""Accuracy of the shipped models on data they never saw: the spglib structures simulated by pymatgen (X-ray and
neutron), and the measured RRUFF X-ray patterns. Prints a Markdown table (append it to docs/results.md).

    python benchmarks/accuracy.py                 # about 3-5 minutes on 2 CPU cores
    python benchmarks/accuracy.py --sets rruff --json out.json

Every pattern goes through `Predictor.predict_patterns`, as `powdersym predict` does: d-mapping onto the model's
grid, Chebyshev background, max-normalisation. Columns: space group top-1 / top-5 (230 classes), the same with
enantiomorphic pairs merged, crystal system and Bravais lattice (probabilities summed from the space groups),
and space-group top-1 on the most certain half (Vecsei et al.'s refusal at 50 % coverage).
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import time

import numpy as np

from powdersym.evaluate import marginalise, merged_accuracy, refusal_curve, top_k_accuracy
from powdersym.evaluate.labelsets import derived_index_of_sg
from powdersym.evaluate.sets import load_evaluation_set
from powdersym.predict import Predictor

SETS = {"spglib-pymatgen-xray": "xray-cuka", "spglib-pymatgen-neutron": "neutron-cw", "rruff": "xray-cuka"}


def evaluate(set_name: str, instrument: str) -> dict:
    data = load_evaluation_set(set_name)
    predictor = Predictor.for_instrument(instrument)
    start = time.perf_counter()
    prepared = predictor.prepare(data.patterns)
    x = np.stack([p.y for p in prepared])
    logits, _ = predictor.logits(x)
    seconds = time.perf_counter() - start
    probs = np.exp(logits / predictor.saved.temperature - (logits / predictor.saved.temperature).max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = data.space_group - 1
    row = {"set": set_name, "model": instrument, "n": len(labels), "distinct_groups": int(len(np.unique(labels))),
           "sg_top1": top_k_accuracy(probs, labels, 1), "sg_top5": top_k_accuracy(probs, labels, 5),
           "sg_top1_enantiomorph_merged": merged_accuracy(probs.argmax(1), labels, "space_group", "enantiomorph"),
           "sg_top1_at_50pct": refusal_curve(probs, labels).at_coverage(0.5).accuracy, "seconds": seconds}  # fmt: skip
    for to in ("crystal_system", "bravais"):
        p = marginalise(probs, to)
        row[f"{to}_top1"] = top_k_accuracy(p, derived_index_of_sg(to)[data.space_group], 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"date {datetime.date.today()}, commit {commit}")
    print("| set | model | n | SG top-1 | SG top-5 | SG top-1 (enantiomorphs merged) | crystal system | Bravais | SG top-1 on the most certain 50 % |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.sets:
        row = evaluate(name, SETS[name])
        rows.append(row)
        print(f"| {name} | {row['model']} | {row['n']} | {row['sg_top1']:.1%} | {row['sg_top5']:.1%} | {row['sg_top1_enantiomorph_merged']:.1%} | "
              f"{row['crystal_system_top1']:.1%} | {row['bravais_top1']:.1%} | {row['sg_top1_at_50pct']:.1%} |", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"commit": commit, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
