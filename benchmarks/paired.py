"""Is a candidate model better than the shipped one on the same patterns? McNemar's exact test per metric: the
patterns only the candidate gets right against those only the shipped model gets right (the patterns both get
right or both miss say nothing about the difference). Shipping a leg needs a gain here, not just a higher total.
Where a set groups its patterns (RRUFF: runs of consecutive files of one space group, the same mineral measured
again; 158 runs in 289 patterns), the last column repeats the test counting each group once (`evaluate.
paired_cluster_p`): McNemar's test takes related patterns as independent evidence and overstates significance.

    python benchmarks/paired.py --weights ship                       # ship/INSTRUMENT/model.safetensors vs shipped
    python benchmarks/paired.py --weights ship --sets rruff --priors known
    python benchmarks/paired.py --weights ship_b --baseline ship_a   # two candidates
    python benchmarks/paired.py --index-effect                       # shipped model: network alone vs + indexing
    python benchmarks/paired.py --index-effect high                  # ... cubic/tetragonal/hexagonal cells only
    python benchmarks/paired.py --index-effect absences              # ... all cells, systematic absences ignored
    python benchmarks/paired.py --index-effect denoise               # ... noisy patterns indexed as they are
    python benchmarks/paired.py --index-effect missing               # ... allowed lines not seen ignored
    python benchmarks/paired.py --index-effect monoclinic            # ... no monoclinic cells
    python benchmarks/paired.py --index-effect penalty               # ... forbidden lines weighted 0.1, not PENALTY
    python benchmarks/paired.py --index-effect triclinic             # ... no triclinic cells

Metrics: space group top-1 and top-5 (230 classes), crystal system and Bravais lattice (probabilities summed from
the space groups), each under the class priors asked for (see benchmarks/accuracy.py).
"""

from __future__ import annotations

import argparse

import numpy as np

from accuracy import SETS, evaluate  # benchmarks/ is on the path when a benchmark runs as a script
from powdersym.evaluate import marginalise, mcnemar_p, paired_cluster_p, top_k_hits
from powdersym.evaluate.labelsets import derived_index_of_sg
from powdersym.refine.extinction import MISSING, PENALTY
from powdersym.refine.index import HIGH_SYMMETRY, SYSTEMS


def hits(probs: np.ndarray, space_group: np.ndarray) -> dict[str, np.ndarray]:
    """Per pattern, whether each metric is right [N] (bool)."""
    out = {f"SG top-{k}": top_k_hits(probs, space_group - 1, k) for k in (1, 5)}
    for to, name in (("crystal_system", "crystal system"), ("bravais", "Bravais")):
        out[name] = marginalise(probs, to).argmax(1) == derived_index_of_sg(to)[space_group]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="candidate folder INSTRUMENT/model.safetensors (default: shipped)")
    parser.add_argument("--baseline", default=None, help="folder of the model to compare with (default: shipped)")
    parser.add_argument("--sets", nargs="+", default=["rruff", "spglib-pymatgen-xray"], choices=list(SETS))
    parser.add_argument("--priors", nargs="+", default=["known", "trained"], choices=["known", "trained"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--index-effect", nargs="?", const="off",
                        choices=["off", "high", "absences", "denoise", "missing", "monoclinic", "penalty", "triclinic"],
                        help="one model, candidate indexing the peak positions as predict does; baseline without indexing "
                             "(off, the default), indexing cubic, tetragonal and hexagonal cells only, without absences "
                             "(high: predict before orthorhombic cells), all cells without absences (absences), or all cells "
                             "with noisy patterns indexed as they are, not from a smoothed copy (denoise), or all cells "
                             "without counting the lines a group allows that the pattern does not show (missing), or no "
                             "monoclinic cells (monoclinic), or each forbidden line weighted 0.1 (penalty, the factor "
                             "before 2026-12-06's third session), or no triclinic cells (triclinic)")
    args = parser.parse_args()
    if args.index_effect:
        args.baseline = args.weights
    elif args.weights is None:
        parser.error("--weights is required unless --index-effect")
    baseline_systems = {None: SYSTEMS, "off": (), "high": HIGH_SYMMETRY, "absences": SYSTEMS, "denoise": SYSTEMS,
                        "missing": SYSTEMS, "monoclinic": (*HIGH_SYMMETRY, "orthorhombic"), "penalty": SYSTEMS,
                        "triclinic": (*HIGH_SYMMETRY, "orthorhombic", "monoclinic")}[args.index_effect]
    penalty = {"high": 1.0, "absences": 1.0, "penalty": 0.1}.get(args.index_effect, PENALTY)
    denoise = args.index_effect != "denoise"
    missing = 1.0 if args.index_effect in ("high", "absences", "missing") else MISSING
    print(f"candidate {args.weights or 'shipped'}{' + indexing' if args.index_effect else ''} against {args.baseline or 'shipped'}"
          f"{' indexing ' + (', '.join(baseline_systems) or 'nothing') if args.index_effect else ''}"
          f"{', absences ignored' if penalty == 1.0 else f', forbidden lines weighted {penalty}' if penalty != PENALTY else ''}{', noisy patterns not denoised' if not denoise else ''}"
          f"{', allowed lines not seen ignored' if missing == 1.0 else ''}")
    print("| set | prior | metric | baseline | candidate | only baseline right | only candidate right | McNemar p | p, related patterns counted once |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.sets:
        for prior in args.priors:
            _, data, base = evaluate(name, SETS[name], args.device, args.baseline, prior, baseline_systems, penalty, denoise, missing)
            _, _, cand = evaluate(name, SETS[name], args.device, args.weights, prior)
            a, b = hits(base, data.space_group), hits(cand, data.space_group)
            for metric in a:
                only_a, only_b = int((a[metric] & ~b[metric]).sum()), int((b[metric] & ~a[metric]).sum())
                clustered = "—" if data.clusters is None else f"{paired_cluster_p(a[metric], b[metric], data.clusters):.3g}"
                print(f"| {name} | {prior} | {metric} | {a[metric].mean():.1%} | {b[metric].mean():.1%} | {only_a} | "
                      f"{only_b} | {mcnemar_p(only_a, only_b):.3g} | {clustered} |", flush=True)


if __name__ == "__main__":
    main()
