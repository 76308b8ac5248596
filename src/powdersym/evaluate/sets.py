"""Evaluation sets with space-group labels, from the shared data beside the repository (../shared/data):

- 'rruff': measured RRUFF X-ray patterns;
- 'spglib-pymatgen-xray' / '-neutron': the spglib test structures simulated by pymatgen (an independent simulator);
- 'spglib-powdersym-xray' / '-neutron': the same structures simulated by powdersym with realistic augmentation,
  already on the shipped model's grid (`EvaluationSet.inputs`);
- 'measured-neutron' / 'measured-neutron-tof': the measured neutron patterns of the GSAS-II tutorials and
  EasyDiffraction whose space group is known, constant wavelength and time of flight (the latter for mapping
  onto a constant-wavelength model through d); magnetic, multi-phase and duplicate measurements are listed in
  `EvaluationSet.skipped`, not loaded;
- 'measured-xray': the measured X-ray patterns of the same collections and the IUCr Rietveld pdCIF files (lab Cu
  and Mo K-alpha, synchrotron; mapped onto the Cu K-alpha model through d): measured X-ray data from other
  instruments than RRUFF's, skipped as the neutron sets are.
"""

from __future__ import annotations

import csv
import os
import re
import tarfile
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from powdersym.io import MeasuredPattern

SHARED_NAMES = (
    "rruff", "spglib-pymatgen-xray", "spglib-pymatgen-neutron", "spglib-powdersym-xray", "spglib-powdersym-neutron",
    "measured-neutron", "measured-neutron-tof", "measured-xray",
)  # fmt: skip
CU_KA1 = 1.540593  # Å: RRUFF's Cu K-alpha data are mapped through d with the K-alpha1 line of the model's grid
SIMULATION_SEED = 20240607  # the spglib-powdersym sets' augmentation draws: fixed, so every run sees the same patterns
# The spglib-pymatgen set's labels: pymatgen's SpacegroupAnalyzer defaults (spglib symprec 0.01 Å, 5 degrees).
SYMPREC, ANGLE_TOLERANCE = 0.01, 5.0
# pymatgen reads the spglib POSCARs (VASP 4, no species line) with these placeholder species, one per count group;
# the powdersym sets use the same atoms, so the two simulators see identical structures.
PLACEHOLDER_SPECIES = ("H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne")
MEASURED_COLLECTIONS = ("gsas2_tutorials", "easydiffraction", "iucr_pdcif_cdvae_xrd")
XRAY_RADIATIONS = ("xray_lab", "xray_synchrotron")
INSTRUMENT_SUFFIXES = (".prm", ".inst", ".instprm")
# Measurements that appear in two collections: (collection, id) -> the one kept.
DUPLICATES = {("easydiffraction", "PbSO4_D1A"): "gsas2_tutorials/PbSO4_D1A",
              ("easydiffraction", "PbSO4_lab"): "gsas2_tutorials/PbSO4_lab"}  # the same counts, 10-100 deg of 10-160


@dataclass
class EvaluationSet:
    """Patterns with their space-group numbers and a description for reports.

    Measured (or externally simulated) sets hold `patterns`, which `Predictor.prepare` maps onto a model's grid;
    sets simulated on a model's grid hold `inputs` [N, P] (max-normalised) for `instrument` instead.
    `skipped`: (id, reason) of the files the set leaves out.
    """

    name: str
    description: str
    patterns: list[MeasuredPattern]
    space_group: np.ndarray  # [N] 1-230
    lattice: np.ndarray | None = None  # [N, 6]
    formula: np.ndarray | None = None
    inputs: np.ndarray | None = None  # [N, P] on `instrument`'s grid
    instrument: str | None = None
    names: list[str] = field(default_factory=list)  # one per pattern
    clusters: np.ndarray | None = None  # [N] ids: patterns of one sample share one (paired tests count it once)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.space_group)

    def model_inputs(self, predictor: Any) -> np.ndarray:
        """The network's inputs [N, P] for a Predictor: `inputs` as they are, or the patterns prepared."""
        if self.inputs is None:
            return np.stack([p.y for p in predictor.prepare(self.patterns)])
        if predictor.instrument.name != self.instrument or self.inputs.shape[1] != len(predictor.instrument.grid()):
            raise ValueError(f"{self.name} is simulated on the {self.instrument} grid; the model expects {predictor.instrument.name}")
        return self.inputs


def shared_data_folder() -> Path:
    """../shared/data beside the checkout, or $POWDERSYM_SHARED_DATA."""
    env = os.environ.get("POWDERSYM_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def load_evaluation_set(name: str | os.PathLike, device: str = "cpu") -> EvaluationSet:
    """A shared set by name (see SHARED_NAMES); FileNotFoundError with what is missing. `device` runs the
    simulator of the spglib-powdersym sets. (Pattern files are read by `powdersym.data.PatternDataset`.)"""
    if Path(name).is_dir():
        return measured_folder(Path(name))
    root = shared_data_folder()
    name = str(name)
    if name == "rruff":
        path = root / "measured" / "rruff_dev" / "rruff_dev.npz"
        data = _npz(path)
        x = data["two_theta_deg"].astype(np.float64)
        patterns = [MeasuredPattern(x, row.astype(np.float64), None, "two_theta", wavelength=CU_KA1, source=f"rruff:{f}")
                    for row, f in zip(data["intensity"], data["source_file"])]  # fmt: skip
        return EvaluationSet("rruff", f"{len(patterns)} measured RRUFF Cu K-alpha patterns ({path})", patterns,
                             data["sg_number"].astype(int), names=[p.source for p in patterns],
                             clusters=consecutive_runs(data["source_file"], data["sg_number"]))  # fmt: skip
    if name.startswith("spglib-pymatgen-"):
        kind = name.rsplit("-", 1)[1]
        path = root / "simulated" / "spglib_pymatgen.npz"
        data = _npz(path)
        x = data[f"{kind}_two_theta"].astype(np.float64)
        wavelength = 1.54184 if kind == "xray" else 1.5403  # pymatgen's weighted Cu K-alpha; the neutron set's
        patterns = [MeasuredPattern(x, row.astype(np.float64), None, "two_theta", wavelength=wavelength, source=f"spglib:{n}")
                    for row, n in zip(data[kind], data["name"])]  # fmt: skip
        return EvaluationSet(name=name, description=f"{len(patterns)} spglib test structures simulated by pymatgen ({kind}; {path})",
                             patterns=patterns, space_group=data["sg_number"].astype(int), lattice=data["lattice"],
                             formula=data["formula"], names=[p.source for p in patterns])  # fmt: skip
    if name in ("spglib-powdersym-xray", "spglib-powdersym-neutron"):
        return _spglib_powdersym(root, "xray-cuka" if name.endswith("xray") else "neutron-cw", device)
    if name in ("measured-neutron", "measured-neutron-tof"):
        return _measured(root, ("neutron_tof",) if name.endswith("tof") else ("neutron_cw",), name)
    if name == "measured-xray":
        return _measured(root, XRAY_RADIATIONS, name)
    raise FileNotFoundError(f"unknown evaluation set {name!r} (shared sets: {', '.join(SHARED_NAMES)}; or an .h5 pattern file, or a folder with labels.csv)")


def spglib_structures(root: Path | None = None) -> tuple[list, np.ndarray, list[str], list[tuple[str, str]]]:
    """The spglib test structures as the spglib-pymatgen set has them: (Crystals, space groups, file names,
    skipped), placeholder species per count group, label = spglib at pymatgen's default tolerances; structures
    spglib finds no symmetry for at those tolerances are skipped, as pymatgen's set skipped them."""
    import spglib

    from powdersym.structures.readers import read_poscar
    from powdersym.structures.species import species_index

    folder = (root or shared_data_folder()) / "structures" / "spglib_testdata"
    archive, index = folder / "spglib_poscars.tar.gz", folder / "index.csv"
    for path in (archive, index):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shared structures not found (they live in ../shared/data beside the checkout)")
    with open(index, newline="") as handle:
        files = sorted(row["file"] for row in csv.DictReader(handle))
    crystals, groups, names, skipped = [], [], [], []
    with tempfile.TemporaryDirectory() as temporary, tarfile.open(archive) as tar:
        tar.extractall(temporary, filter="data")
        for file in files:
            path = Path(temporary) / file
            n_groups = len(path.read_text().splitlines()[5].split())  # VASP 4: line 6 holds the atom counts
            crystal = read_poscar(path, species=PLACEHOLDER_SPECIES[:n_groups])
            cell = (crystal.matrix(), crystal.frac_coords, [species_index(s) for s in crystal.species])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # spglib 2.5+ about its old error handling
                dataset = spglib.get_symmetry_dataset(cell, symprec=SYMPREC, angle_tolerance=ANGLE_TOLERANCE)
            if dataset is None:
                skipped.append((file, f"spglib finds no symmetry at symprec {SYMPREC} (as for the pymatgen set)"))
                continue
            crystals.append(crystal)
            groups.append(int(dataset.number))
            names.append(file)
    return crystals, np.array(groups), names, skipped


def _spglib_powdersym(root: Path, instrument_name: str, device: str) -> EvaluationSet:
    crystals, groups, names, skipped = spglib_structures(root)
    inputs = simulate_realistic(crystals, instrument_name, SIMULATION_SEED, device)
    return EvaluationSet(
        name=f"spglib-powdersym-{'xray' if instrument_name.startswith('xray') else 'neutron'}",
        description=f"{len(crystals)} spglib test structures simulated by powdersym on the {instrument_name} grid, "
                    f"realistic augmentation (seed {SIMULATION_SEED})",
        patterns=[], space_group=groups, formula=np.array([c.formula() for c in crystals]),
        inputs=inputs, instrument=instrument_name, names=names, skipped=skipped,
    )  # fmt: skip


def consecutive_runs(files: np.ndarray, space_groups: np.ndarray) -> np.ndarray:
    """Cluster ids [N] for RRUFF patterns: a run of consecutively numbered source files ('640.npy', '641.npy', ...)
    with one space group is one mineral measured several times (the MANIFEST's caveat), and counts once in a
    paired test."""
    numbers = np.array([int(Path(str(f)).stem) for f in files])
    order = np.argsort(numbers, kind="stable")
    n, g = numbers[order], np.asarray(space_groups)[order]
    starts = np.r_[True, (np.diff(n) != 1) | (g[1:] != g[:-1])]
    clusters = np.empty(len(n), dtype=int)
    clusters[order] = np.cumsum(starts) - 1
    return clusters


def simulate_realistic(crystals: list, instrument_name: str, seed: int, device: str = "cpu") -> np.ndarray:
    """Patterns [N, P] (float32, max 1) of crystals on an instrument preset's grid with the preset's realistic
    augmentation, as the shipped models were trained; the same seed gives the same patterns on one device."""
    import torch

    from powdersym.data.generate import augment_config, make_generator, render
    from powdersym.simulate.instruments import preset
    from powdersym.structures import CrystalBatch

    instrument = preset(instrument_name)
    generator = make_generator(seed, device)
    with torch.no_grad():
        patterns = render(CrystalBatch.from_crystals(crystals), instrument, augment_config("realistic", instrument), generator, device)
    return patterns.float().cpu().numpy()


def measured_rows(root: Path | None = None, radiations: tuple[str, ...] = ("neutron_cw",)) -> list[dict]:
    """metadata.csv rows of the measured collections for some radiations ('neutron_cw', 'neutron_tof', 'xray_lab',
    'xray_synchrotron'), each with 'collection', 'key' (collection/id) and 'skip' (the reason it is left out, or
    '')."""
    base = (root or shared_data_folder()) / "measured"
    rows = []
    for collection in MEASURED_COLLECTIONS:
        path = base / collection / "metadata.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: shared measured data not found (it lives in ../shared/data beside the checkout)")
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                if row["radiation"] not in radiations:
                    continue
                row.update(collection=collection, key=f"{collection}/{row['id']}")
                row["skip"] = skip_reason(row)
                rows.append(row)
    return rows


def skip_reason(row: dict) -> str:
    """Why a metadata row is no single-phase nuclear pattern with one label ('' when it is one): magnetic order
    (extra peaks the nuclear space group does not explain), a second phase, a duplicate measurement, or no single
    space-group number (two phases' '7+29', an incommensurate structure's superspace group)."""
    notes = row.get("notes", "")
    if not re.fullmatch(r"\s*\d+\s*", row.get("sg_number", "")) or not 1 <= int(row["sg_number"]) <= 230:
        return f"no single space group: {row.get('sg_number', '')!r} ({row.get('sg_symbol', '')})"
    if (row.get("collection"), row.get("id")) in DUPLICATES:
        return f"duplicate: the same measurement as {DUPLICATES[(row['collection'], row['id'])]}"
    below = re.search(r"magnetic order below ~?\s*([\d.]+)\s*K", notes)
    if below:  # ordered only below a transition: compare with the measuring temperature
        temperature = re.match(r"\s*([\d.]+)\s*K", row.get("temperature", ""))
        if temperature and float(temperature.group(1)) < float(below.group(1)):
            return f"magnetic: {notes.split(';')[-1].strip()} and measured at {row['temperature']}"
        return ""
    if re.search(r"\bA?FM order|magnetic peaks|magnetic intensity|magnetically ordered", notes):
        return f"magnetic: {notes}"
    if re.search(r"two-phase|multi-phase|2nd phase|impurity", notes, re.IGNORECASE):
        return f"multi-phase: {notes}"
    return ""


def _measured(root: Path, radiations: tuple[str, ...], name: str) -> EvaluationSet:
    patterns, groups, names, skipped = [], [], [], []
    for row in measured_rows(root, radiations):
        if row["skip"]:
            skipped.append((row["key"], row["skip"]))
            continue
        pattern = _read_measured(root / "measured" / row["collection"], row)
        pattern.metadata["path"], pattern.source = pattern.source, row["key"]
        patterns.append(pattern)
        groups.append(int(row["sg_number"]))
        names.append(row["key"])
    kinds = {"neutron_tof": "time-of-flight neutron", "neutron_cw": "constant-wavelength neutron"}
    kind = kinds.get(radiations[0], "X-ray")
    return EvaluationSet(
        name=name, description=f"{len(patterns)} measured {kind} patterns with known space groups "
                               f"(GSAS-II tutorials, EasyDiffraction, IUCr pdCIF; {len(skipped)} skipped)",
        patterns=patterns, space_group=np.array(groups, dtype=int), names=names, skipped=skipped,
    )  # fmt: skip


def _read_measured(folder: Path, row: dict) -> MeasuredPattern:
    """One pattern of a metadata row: its instrument file, wavelength or ToF calibration as the row says (an X-ray
    file's own wavelength first, the row's where the file states none); a multi-bank file gives the bank that covers
    most of the d range of the neutron-cw model."""
    files = [f.strip() for f in row["files"].split(";")]
    data = folder / re.sub(r"\s*\(.*\)$", "", files[0])  # 'archive.tar.gz (61 GSAS .gda files ...)'
    instrument = [folder / f for f in files[1:] if f.lower().endswith(INSTRUMENT_SUFFIXES)]
    options: dict[str, Any] = {"instrument_file": instrument[0]} if instrument else {}
    if not instrument and row["radiation"] == "neutron_cw":
        options["wavelength"] = float(row["wavelength_A"])
    stated = re.fullmatch(r"\s*([\d.]+)\s*", row["wavelength_A"])
    if not instrument and row["radiation"] in XRAY_RADIATIONS and stated:
        pattern = _best_bank(data, options)  # pdCIF files state their wavelengths; a plain column file may not
        return pattern if pattern.wavelength else _best_bank(data, options | {"wavelength": float(stated.group(1))})
    calibration = re.search(r"TOF\s*=\s*([-+]?[\d.]+)\s*([-+])\s*([\d.]+)\s*\*\s*d\s*([-+])\s*([\d.]+)\s*\*\s*d\^2",
                            row["tof_calibration"])  # fmt: skip
    if calibration and not instrument:  # EasyDiffraction: 'TOF = ZERO + DIFC*d - DIFA*d^2'
        sign = 1.0 if calibration.group(4) == "+" else -1.0
        options.update(unit="tof", zero=float(calibration.group(1)), difc=float(calibration.group(3)), difa=sign * float(calibration.group(5)))
    if data.name.endswith(".tar.gz"):  # a series of one sample: its first pattern stands for it
        with tempfile.TemporaryDirectory() as temporary, tarfile.open(data) as tar:
            member = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)[0]
            tar.extract(member, temporary, filter="data")
            return _best_bank(Path(temporary) / member.name, options)
    return _best_bank(data, options)


def _best_bank(path: Path, options: dict) -> MeasuredPattern:
    from powdersym.io import read_pattern
    from powdersym.io.gsas import bank_numbers
    from powdersym.io.preprocess import resample_to_grid
    from powdersym.simulate.instruments import preset

    text = path.read_text(encoding="latin-1")
    banks = bank_numbers(text) if re.search(r"^BANK", text, re.MULTILINE) else []
    if len(banks) <= 1:
        return read_pattern(path, **options)
    grid = preset("neutron-cw")
    read = [read_pattern(path, bank=b, **options) for b in banks]
    return max(read, key=lambda p: resample_to_grid(p, grid)[1].sum())


def _npz(path: Path):
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shared evaluation data not found (it lives in ../shared/data beside the checkout)")
    return np.load(path, allow_pickle=False)


def measured_folder(folder: Path) -> EvaluationSet:
    """Measured pattern files of a folder listed in its labels.csv: columns file, sg_number and optionally
    formula, wavelength, instrument_file, bank, unit (what `read_pattern` needs where the files do not say)."""
    import csv

    from powdersym.io import read_pattern

    table = folder / "labels.csv"
    if not table.is_file():
        raise FileNotFoundError(f"{folder}: no labels.csv (columns file, sg_number[, formula, wavelength, instrument_file, bank, unit])")
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"file", "sg_number"} <= set(rows[0]):
        raise ValueError(f"{table}: needs the columns file and sg_number")
    patterns, groups, formulas = [], [], []
    for number, row in enumerate(rows, start=2):
        try:
            group = int(row["sg_number"])
        except ValueError:
            raise ValueError(f"{table} line {number}: sg_number {row['sg_number']!r} is not a number") from None
        if not 1 <= group <= 230:
            raise ValueError(f"{table} line {number}: sg_number {group} outside 1-230")
        options: dict = {}
        if row.get("wavelength"):
            options["wavelength"] = float(row["wavelength"])
        if row.get("instrument_file"):
            options["instrument_file"] = folder / row["instrument_file"]
        if row.get("bank"):
            options["bank"] = int(row["bank"])
        if row.get("unit"):
            options["unit"] = row["unit"]
        patterns.append(read_pattern(folder / row["file"], **options))
        groups.append(group)
        formulas.append(row.get("formula") or "")
    return EvaluationSet(folder.name, f"{len(patterns)} measured patterns listed in {table}", patterns,
                         np.array(groups), formula=np.array(formulas, dtype=object), names=[r["file"] for r in rows])  # fmt: skip
