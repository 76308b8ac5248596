"""Where `powdersym predict` goes wrong on a set: crystal system per true system, space-group top-1 with and without
an indexed cell, and for the patterns whose cell has the right lattice, how the extinction group was lost.

    python benchmarks/error_breakdown.py                       # RRUFF, known prior, about 2 minutes on 2 CPU cores
    python benchmarks/error_breakdown.py --sets rruff spglib-pymatgen-xray --prior trained

For each pattern with a cell of the right lattice whose extinction group (argmax of the summed probabilities) is
wrong, the cause is one of:
- the true group forbids an indexed line (an impurity line, or a sub- or supercell);
- the true group allows more lines that are not seen than the chosen one (refine.extinction.MISSING decides);
- neither: the network's probabilities decide between groups with the same line evidence.
"SG top-1 if the extinction group were known": the best group within the true extinction group, which bounds what
a better reading of the positions could give.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from accuracy import SETS, _cells, evaluate  # benchmarks/ is on the path when a benchmark runs as a script
from powdersym.evaluate import marginalise
from powdersym.evaluate.labelsets import derived_index_of_sg
from powdersym.refine.extinction import line_evidence
from powdersym.refine.index import SYSTEMS as INDEXED

SYSTEMS = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "trigonal", "hexagonal", "cubic")
CELL_SYSTEM = {"triclinic": 0, "monoclinic": 1, "orthorhombic": 2, "tetragonal": 3, "hexagonal": 5, "cubic": 6}


def right_lattice(cell, true_system: int) -> bool:
    """The cell's lattice is the true one (a hexagonal lattice for trigonal groups too)."""
    if cell is None:
        return False
    found = CELL_SYSTEM[cell.system]
    return found == true_system or (found == 5 and true_system == 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=["rruff"], choices=list(SETS))
    parser.add_argument("--prior", default="known", choices=["known", "trained"])
    args = parser.parse_args()
    system_of, group_of = derived_index_of_sg("crystal_system"), derived_index_of_sg("extinction_group")
    for name in args.sets:
        _, data, probs = evaluate(name, SETS[name], prior=args.prior)
        cells = _cells(name, "cpu", SETS[name], INDEXED, True)  # as evaluate called it: cached, not indexed again
        sg = data.space_group
        top = probs.argmax(1) + 1
        system_true, system_found = system_of[sg], marginalise(probs, "crystal_system").argmax(1)
        indexed = np.array([c is not None for c in cells])
        right = np.array([right_lattice(c, s) for c, s in zip(cells, system_true)])
        print(f"\n**{name}** ({len(sg)} patterns, prior {args.prior})\n")
        print("| true system | n | crystal system right | SG top-1 right | indexed | right lattice |")
        print("|---|---|---|---|---|---|")
        for k, system in enumerate(SYSTEMS):
            m = system_true == k
            if m.any():
                print(f"| {system} | {m.sum()} | {(system_found[m] == k).sum()} | {(top[m] == sg[m]).sum()} | "
                      f"{indexed[m].sum()} | {right[m].sum()} |")
        print(f"\nSG top-1: indexed {(top == sg)[indexed].sum()} of {indexed.sum()}, not indexed "
              f"{(top == sg)[~indexed].sum()} of {(~indexed).sum()}")
        group_found = marginalise(probs, "extinction_group").argmax(1)
        same_group = group_of[np.arange(1, 231)][None, :] == group_of[sg][:, None]  # [N, 230]
        top_within = np.where(same_group, probs, -1.0).argmax(1) + 1
        causes = Counter()
        for i in np.flatnonzero(right & (group_found != group_of[sg])):
            forbidden, unseen = line_evidence(cells[i])
            truth, chosen = sg[i] - 1, top[i] - 1
            causes["the true group forbids an indexed line" if forbidden[truth] > 0 else
                   "the true group allows more unseen lines" if unseen[truth] > unseen[chosen] else
                   "the network"] += 1  # fmt: skip
        print(f"Right lattice: {right.sum()}; extinction group right {(group_found == group_of[sg])[right].sum()}, "
              f"SG top-1 right {(top == sg)[right].sum()}, SG top-1 if the extinction group were known "
              f"{(top_within == sg)[right].sum()}")
        print("Wrong extinction group on a right lattice: " + ", ".join(f"{n} {c}" for c, n in causes.most_common()))


if __name__ == "__main__":
    main()
