"""Export the space-group tables that `powdersym.symmetry` loads at run time.

Run once, from the repository root, whenever gemmi or pyxtal change:

    PYTHONPATH=src python scripts/export_symmetry_tables.py

pyxtal is needed only here (Wyckoff positions and maximal subgroups, from the Bilbao Crystallographic Server tables
it ships); the package itself needs only numpy, torch and gemmi. Writes into src/powdersym/symmetry/data/:

- space_groups.json: symbols, point group, Laue class, crystal system, Wyckoff letters, maximal subgroups,
  enantiomorphic partners and the extinction groups (99, ITA convention, each with its powder class of the 97
  that powder data can separate), with the sources and their versions;
- symmetry_operations.npz: the operations of every group and the orbit maps of every Wyckoff position, as int8
  rotations and int8 translations in units of 1/24 (gemmi's denominator), so the file stays small and exact.

Setting: the ITA standard setting that pyxtal (Bilbao) uses, i.e. unique axis b and cell choice 1 for monoclinic
groups, hexagonal axes for R groups, origin choice 2 for the 24 groups with two origins. gemmi's operations are
taken from the gemmi setting with the same Hall symbol, so operations and Wyckoff positions agree.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from importlib.metadata import version
from pathlib import Path

import gemmi
import numpy as np
import spglib
from pyxtal.symmetry import Group

spglib.error.OLD_ERROR_HANDLING = False  # raise SpglibError instead of returning None

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from powdersym.symmetry.extinction import extinction_keys, partition_by  # noqa: E402
from powdersym.symmetry.labels import lattice_system_of  # noqa: E402
from powdersym.symmetry.tables import TRANSLATION_DENOMINATOR  # noqa: E402

DATA_DIR = REPO / "src" / "powdersym" / "symmetry" / "data"
REFERENCE_DIR = REPO.parent / "shared" / "data" / "reference"
REFERENCE_SOURCE = (
    "github.com/scattering/paper-ai-diffraction (Baggett et al. 2026, arXiv 2604.23811), commit "
    "f51e386755370fe6bc87d0941e9f98c022892a52, assets/lookups/canonical_extinction_to_space_group.csv, MIT licence"
)


def _hall_key(hall: str) -> str:
    return " ".join(hall.split())  # spaces separate Hall generators ('P 32' is not 'P 3 2'): collapse, keep them


def gemmi_setting(number: int, hall: str) -> gemmi.SpaceGroup:
    """The gemmi table entry of `number` whose Hall symbol is `hall` (pyxtal's setting)."""
    for entry in gemmi.spacegroup_table():
        if entry.number == number and _hall_key(entry.hall) == _hall_key(hall):
            return entry
    raise LookupError(f"gemmi has no setting of space group {number} with Hall symbol {hall!r}")


def to_24ths(values: np.ndarray, what: str) -> np.ndarray:
    """Fractions as exact int8 numerators over 24 (fails loudly if a fraction is not a multiple of 1/24)."""
    scaled = np.asarray(values, dtype=float) * TRANSLATION_DENOMINATOR
    numerators = np.rint(scaled)
    if np.abs(scaled - numerators).max(initial=0.0) > 1e-9:
        raise ValueError(f"{what}: translation not a multiple of 1/{TRANSLATION_DENOMINATOR}")
    return numerators.astype(np.int8)


def gemmi_operations(sg: gemmi.SpaceGroup) -> tuple[np.ndarray, np.ndarray]:
    """All operations (coset representatives x centring) as integer rotations and translations in 24ths."""
    ops = list(sg.operations())
    rotations = np.array([op.rot for op in ops], dtype=np.int64) // gemmi.Op.DEN
    translations = np.array([op.tran for op in ops], dtype=np.int64) * TRANSLATION_DENOMINATOR // gemmi.Op.DEN
    return rotations.astype(np.int8), (translations % TRANSLATION_DENOMINATOR).astype(np.int8)


def enantiomorph_of(number: int, rotations: np.ndarray, translations_24: np.ndarray, lattice: np.ndarray) -> int | None:
    """The space-group type of the mirror image (x -> -x maps (R, t) to (R, -t)); None if it is the same type."""
    mirror = spglib.get_spacegroup_type_from_symmetry(
        rotations.astype(np.intc), (-translations_24 / TRANSLATION_DENOMINATOR) % 1.0, lattice=lattice
    )
    return None if mirror.number == number else int(mirror.number)


def example_lattice(crystal_system: str) -> np.ndarray:
    """A lattice (rows a, b, c) with the metric of the crystal system, for spglib's tolerance checks."""
    if crystal_system in ("trigonal", "hexagonal"):
        return np.array([[1.0, 0.0, 0.0], [-0.5, np.sqrt(3) / 2, 0.0], [0.0, 0.0, 1.6]])
    return np.eye(3)


def wyckoff_entries(group: Group) -> list[dict]:
    """pyxtal's Wyckoff positions in letter order (a first), each with its orbit maps of the free parameters."""
    entries = []
    for wp in reversed(group.Wyckoff_positions):  # pyxtal lists the general position first, as ITA prints them
        wp.get_site_symmetry()
        affine = np.array([op.affine_matrix[:3] for op in wp.ops])
        rotations = np.rint(affine[:, :, :3])
        if np.abs(affine[:, :, :3] - rotations).max() > 1e-9:
            raise ValueError(f"{group.number}{wp.letter}: non-integer orbit rotation")
        entries.append(
            {
                "letter": wp.letter,
                "multiplicity": int(wp.multiplicity),
                "site_symmetry": wp.site_symm,
                "rotations": rotations.astype(np.int8),
                "translations_24": to_24ths(affine[:, :, 3] % 1.0, f"{group.number}{wp.letter}") % 24,
            }
        )
    return entries


def maximal_subgroups(group: Group, kind: str) -> list[list[int]]:
    """Distinct (subgroup number, index) pairs of pyxtal's maximal t- or k-subgroups (conjugates collapsed)."""
    table = group.get_max_t_subgroup() if kind == "t" else group.get_max_k_subgroup()
    return sorted({(int(n), int(i)) for n, i in zip(table["subgroup"], table["index"], strict=True)})


def reference_symbols(reference_dir: Path) -> list[dict]:
    """The reference's canonical extinction symbols, rewritten for our settings (b-unique monoclinic, 'R - - -')."""
    classes = []
    with open(reference_dir / "canonical_extinction_to_space_group.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            text = row["Canonical Extinction Group"]
            primary, _, rest = text.partition(" (equiv: ")
            variants = [primary.strip()] + [v.strip() for v in rest.rstrip(")").split(",") if v.strip()]
            # monoclinic: our groups are in the unique-axis-b setting, so take the 'P 1 x 1' form with c glides
            b_unique = [v for v in variants if re.fullmatch(r"[PC] 1 \S+ 1", v) and not re.search(r"[an]", v[4:])]
            if b_unique:
                symbol = b_unique[0]
            elif primary.startswith("R ("):
                symbol = next(v for v in variants if v.startswith("R -"))
            else:
                symbol = primary.strip()
            classes.append({"symbol": symbol, "space_groups": json.loads(row["Space Group Numbers"])})
    return classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-dir", type=Path, default=REFERENCE_DIR,
                        help="folder with canonical_extinction_to_space_group.csv (extinction symbols)")
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args()

    groups, op_rotations, op_translations, orbit_rotations, orbit_translations = [], [], [], [], []
    n_ops_total = n_orbit_total = 0
    for number in range(1, 231):
        group = Group(number)
        spg_type = spglib.get_spacegroup_type(group.hall_number)
        sg = gemmi_setting(number, spg_type.hall_symbol)
        rotations, translations_24 = gemmi_operations(sg)
        crystal_system = sg.crystal_system_str()

        wyckoff = []
        for entry in wyckoff_entries(group):
            m = entry["multiplicity"]
            if len(entry["rotations"]) != m:
                raise ValueError(f"{number}{entry['letter']}: {len(entry['rotations'])} orbit maps, multiplicity {m}")
            orbit_rotations.append(entry["rotations"])
            orbit_translations.append(entry["translations_24"])
            wyckoff.append({"letter": entry["letter"], "multiplicity": m, "site_symmetry": entry["site_symmetry"],
                            "orbit": [n_orbit_total, n_orbit_total + m]})
            n_orbit_total += m

        short = spg_type.international.split(" = ")[0].replace("_", "")
        groups.append(
            {
                "number": number,
                "hm_symbol": short,
                "hm_full": spg_type.international_full.replace("_", ""),
                "setting_symbol": sg.xhm(),
                "hall_symbol": sg.hall,
                "aliases": sorted({sg.hm, sg.xhm(), spg_type.international_short.replace("_", "")} - {short}),
                "schoenflies": spg_type.schoenflies,
                "centring": sg.centring_type(),
                "point_group": sg.point_group_hm(),
                "laue_class": sg.laue_str(),
                "crystal_system": crystal_system,
                "enantiomorph": enantiomorph_of(number, rotations, translations_24, example_lattice(crystal_system)),
                "operations": [n_ops_total, n_ops_total + len(rotations)],
                "wyckoff_positions": wyckoff,
                "maximal_t_subgroups": maximal_subgroups(group, "t"),
                "maximal_k_subgroups": maximal_subgroups(group, "k"),
            }
        )
        op_rotations.append(rotations)
        op_translations.append(translations_24)
        n_ops_total += len(rotations)

    # Extinction groups: computed here by the package's own code, from the operations just exported, so that
    # run-time lookups are free; tests/symmetry recomputes them and compares with this file and the reference.
    lattice_systems = [lattice_system_of(g["crystal_system"], g["centring"]) for g in groups]
    keys = extinction_keys(
        [r.astype(np.int64) for r in op_rotations], [t.astype(np.int64) for t in op_translations], lattice_systems
    )
    partition = partition_by(keys)  # the 99 extinction groups (ITA convention)
    powder_partition = partition_by([powder for powder, _ in keys])  # the 97 powder classes
    powder_class_of_sg = {n: index for index, members in enumerate(powder_partition) for n in members}
    reference = reference_symbols(args.reference_dir)
    extinction_groups = []
    for members in partition:
        # name a computed class after the reference class of its lowest-numbered member
        symbol = next(c["symbol"] for c in reference if members[0] in c["space_groups"])
        extinction_groups.append({"symbol": symbol, "lattice_system": lattice_systems[members[0] - 1],
                                  "space_groups": members, "powder_class": powder_class_of_sg[members[0]]})

    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": 1,
        "description": "Space-group tables for powdersym.symmetry; written by scripts/export_symmetry_tables.py",
        "setting": "ITA standard: monoclinic unique axis b, cell choice 1; R groups on hexagonal axes; "
                   "origin choice 2 where two exist (the settings of pyxtal and the Bilbao server)",
        "sources": {
            "operations, centring, point group, Laue class, crystal system": f"gemmi {version('gemmi')}",
            "H-M short and full symbols, Schoenflies symbol, enantiomorph identification":
                f"spglib {version('spglib')}",
            "Wyckoff positions, maximal t- and k-subgroups": f"pyxtal {version('pyxtal')} (Bilbao Crystallographic "
                                                             "Server tables)",
            "extinction groups and their powder classes": "computed by powdersym.symmetry.extinction from the "
                                                          "exported operations",
            "extinction group symbols": REFERENCE_SOURCE,
        },
        "translation_denominator": TRANSLATION_DENOMINATOR,
        "space_groups": groups,
        "extinction_groups": extinction_groups,
    }
    (args.out / "space_groups.json").write_text(json.dumps(meta, separators=(",", ":")) + "\n")
    np.savez_compressed(
        args.out / "symmetry_operations.npz",
        rotations=np.concatenate(op_rotations),
        translations_24=np.concatenate(op_translations),
        wyckoff_rotations=np.concatenate(orbit_rotations),
        wyckoff_translations_24=np.concatenate(orbit_translations),
    )
    for path in sorted(args.out.iterdir()):
        shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
        print(f"{shown}: {path.stat().st_size / 1024:.0f} KiB")
    print(f"{len(groups)} space groups, {n_ops_total} operations, {n_orbit_total} Wyckoff orbit maps, "
          f"{len(extinction_groups)} extinction groups in {len(powder_partition)} powder classes")


if __name__ == "__main__":
    main()
