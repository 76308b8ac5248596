"""Classify measured patterns with a trained model: read -> preprocess onto the model's grid -> network ->
space group (230) probabilities, calibrated by the model's temperature and turned by Bayes' rule from the class
balance the model was trained on to the space-group frequencies of known crystals (`prior="known"`, the default; a
sample is far likelier P2_1/c than P4_22_12), summed into Bravais lattice, crystal system and extinction group; a
lattice estimate; and an 'uncertain' flag below the model's refusal threshold (chosen on validation data, Vecsei
et al.'s refusal). Where the peak positions index a cubic, tetragonal, hexagonal, orthorhombic, monoclinic or
triclinic cell (`refine.index`: de Wolff's M20), only the space groups of that lattice keep their probability, those
whose systematic absences forbid an observed line, or that allow lines the pattern does not show, are down-weighted
(`refine.extinction`), and the cell replaces the network's lattice estimate (`index=False` turns this off).

    from powdersym.predict import Predictor
    predictor = Predictor.for_instrument("xray-cuka")
    result = predictor.predict_file("sample.xye", wavelength=1.5406)
    print(result)            # or result.to_dict()
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from powdersym.models.saved import ModelFileError, SavedModel, load_model
from powdersym.refine.extinction import MISSING as MISSING_LINE_FACTOR
from powdersym.refine.extinction import PENALTY as ABSENCE_PENALTY
from powdersym.refine.index import SYSTEMS as INDEX_SYSTEMS
from powdersym.refine.index import cell_edges, with_article
from powdersym.simulate.instruments import Instrument

WEIGHTS = Path(__file__).parent / "models" / "weights"
SHIPPED = {"xray-cuka": "xray-cuka", "neutron-cw": "neutron-cw"}
# Input points per forward pass on the CPU (8 patterns of the 8501-point X-ray grid, 23 of the 3041-point
# neutron one): the first layers' activations (32 channels per point) then stay in cache; at 256 patterns they
# did not, and the network ran 2-3x slower per pattern on 2 cores.
CPU_BATCH_POINTS = 70_000
# Patterns per indexing worker before a process pool pays (indexing takes 0.05-0.5 s a pattern, starting a worker ~2 s).
PATTERNS_PER_JOB = 16


def shipped_model(instrument: str) -> Path:
    """The model shipped for an instrument preset; ValueError for presets without one."""
    if instrument not in SHIPPED:
        raise ValueError(f"no shipped model for instrument {instrument!r} (shipped: {', '.join(SHIPPED)}); pass --model")
    return WEIGHTS / f"{SHIPPED[instrument]}.safetensors"


def instrument_of(meta: dict[str, Any]) -> Instrument:
    return Instrument.from_dict(meta["instrument"])


PRIORS = ("known", "trained")


def training_balance(meta: dict[str, Any]) -> str | None:
    """The label set whose classes a model's synthetic training crystals were drawn equally often from; None for
    models trained on pattern files."""
    training = meta.get("training", {})
    if not str(training.get("source", "")).startswith("synthetic"):
        return None
    config = training.get("config", {})  # models from before `balanced_over` was recorded: the run's own balance
    return training.get("balanced_over") or config.get("balance") or config.get("labels", "space_group")


def training_distribution(meta: dict[str, Any]) -> np.ndarray | None:
    """How often a model's synthetic training crystals took each space group [230]: balanced over the label set in
    its JSON, tempered towards known crystals by its `known_exponent`; None for models trained on pattern files."""
    from powdersym.structures.random import space_group_distribution
    from powdersym.structures.statistics import tempered_space_group_distribution

    balanced_over = training_balance(meta)
    if balanced_over is None:
        return None
    exponent = float(meta.get("training", {}).get("known_exponent") or 0.0)
    balanced = space_group_distribution(balanced_over)
    return tempered_space_group_distribution(balanced, exponent) if exponent else balanced


def prior_ratio(meta: dict[str, Any]) -> np.ndarray | None:
    """Bayes factors [230] that turn a model's probabilities for its training classes into probabilities for a
    sample of a known material: the group's share among known crystals (structures.statistics) over its share in
    training (`training_distribution`); 1 (no change) for groups training never drew. None for models trained on
    pattern files, whose class balance the JSON does not record."""
    from powdersym.structures.statistics import known_space_group_frequencies

    trained = training_distribution(meta)
    if trained is None:
        return None
    known = known_space_group_frequencies()
    return np.where(trained > 0, known / np.where(trained > 0, trained, 1.0), 1.0)


@dataclass
class Prediction:
    """What a model says about one pattern; probabilities are calibrated (temperature-scaled)."""

    source: str
    space_groups: list[tuple[int, str, float]]  # top k: (number, Hermann-Mauguin symbol, probability)
    bravais: tuple[str, float]
    crystal_system: tuple[str, float]
    extinction_group: tuple[str, float]
    lattice: tuple[float, ...] | None  # a, b, c (Å), alpha, beta, gamma (deg), constrained by the crystal system
    certainty: float  # probability of the top space group
    uncertain: bool  # certainty below the model's refusal threshold
    threshold: float
    coverage: float  # fraction of the model's grid the measurement covers
    model: str
    prior: str = "trained"  # class prior of the probabilities: known (crystals' frequencies) or trained
    indexed: dict | None = None  # the cell the peak positions index (IndexedCell.to_dict, + groups_ruled_out)
    one_spacing: float | None = None  # Å: no cell, the lines being this spacing's orders (refine.index.one_spacing)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["space_groups"] = [{"number": n, "symbol": s, "probability": p} for n, s, p in self.space_groups]
        for name in ("bravais", "crystal_system", "extinction_group"):
            out[name] = {"label": getattr(self, name)[0], "probability": getattr(self, name)[1]}
        return out

    def __str__(self) -> str:
        from powdersym.symmetry import space_group

        flag = "UNCERTAIN (certainty below the validation threshold)" if self.uncertain else "confident"
        prior = "known crystals' frequencies" if self.prior == "known" else "training balance"
        lines = [f"{self.source}: {flag}; certainty {self.certainty:.2f} (threshold {self.threshold:.2f}; prior: {prior})"]
        lines += [f"  space group {n:>3} {s:<12} {p:6.1%}" for n, s, p in self.space_groups]
        lines.append(f"  crystal system {self.crystal_system[0]} ({self.crystal_system[1]:.0%}), Bravais {self.bravais[0]} "
                     f"({self.bravais[1]:.0%}), extinction group {self.extinction_group[0]} ({self.extinction_group[1]:.0%})")  # fmt: skip
        if self.indexed is not None:
            cell = self.indexed
            lengths = cell_edges(cell["system"], cell["a"], cell["b"], cell["c"], cell.get("beta", 90.0),
                                 cell.get("alpha", 90.0), cell.get("gamma", 90.0))
            lines.append(f"  peak positions index {with_article(cell['system'])} lattice: {lengths}, M20 {cell['m20']:.0f}, "
                         f"{cell['n_indexed']} of {cell['n_lines']} lines"
                         f"{' (of the smoothed pattern: noisy data)' if cell.get('denoised') else ''}"
                         f"{' (' + cell['centring'] + '-centred lines counted)' if cell.get('centring', 'P') != 'P' else ''}"
                         f"{' (the lines ' + space_group(cell['lines_of']).hm_symbol + ' allows counted)' if cell.get('lines_of') else ''}"
                         "; only its space groups are kept")
            if cell.get("groups_ruled_out"):
                lines.append(f"  systematic absences: {cell['groups_ruled_out']} of its groups forbid an observed line "
                             "and are down-weighted")
        elif self.lattice is not None:
            if self.one_spacing is not None:
                lines.append(f"  the lines are orders of one spacing, d = {self.one_spacing:.3f} Å (d, d/2, d/3 ...: "
                             "platy crystallites lying flat?); they index no lattice")
            a, b, c, al, be, ga = self.lattice
            lines.append(f"  lattice estimate a {a:.2f} b {b:.2f} c {c:.2f} Å, alpha {al:.1f} beta {be:.1f} gamma {ga:.1f} deg")
        if self.coverage < 0.999:
            lines.append(f"  the measurement covers {self.coverage:.0%} of the model's range")
        return "\n".join(lines)


def restrict_to_cells(probs: np.ndarray, cells: list | None, evidence: list | None = None,
                      penalty: float = ABSENCE_PENALTY, missing: float = MISSING_LINE_FACTOR) -> np.ndarray:
    """Space-group probabilities [N, 230] with the groups outside each pattern's indexed lattice set to zero, those
    whose systematic absences forbid observed lines, or that allow lines the pattern does not show, down-weighted
    (refine.extinction.absence_weights), and the rest renormalised; rows without a cell (None) unchanged.
    evidence: `line_evidence` (forbidden, unseen) of each cell, if known; penalty: the factor per forbidden line
    (1: absences ignored); missing: the factor per allowed line not seen (1: not counted). Any IndexedCell, triclinic
    included (P1 and P-1 keep their ratio: neither has a reflection condition)."""
    from powdersym.refine.extinction import absence_weights

    if not cells:
        return probs
    out = probs.copy()
    for i, cell in enumerate(cells):
        if cell is not None:
            forbidden, unseen = (None, None) if evidence is None or evidence[i] is None else evidence[i]
            weights = absence_weights(cell, forbidden, penalty, unseen, missing)
            kept = out[i] * weights
            out[i] = kept / kept.sum() if kept.sum() > 0 else weights / weights.sum()
    return out


def constrain_lattice(lattice: np.ndarray, crystal_system: str) -> np.ndarray:
    """The six parameters made consistent with a crystal system (equal lengths averaged, fixed angles set)."""
    a, b, c, al, be, ga = (float(v) for v in lattice)
    if crystal_system == "cubic":
        m = (a + b + c) / 3
        return np.array([m, m, m, 90.0, 90.0, 90.0])
    if crystal_system == "tetragonal":
        m = (a + b) / 2
        return np.array([m, m, c, 90.0, 90.0, 90.0])
    if crystal_system in ("hexagonal", "trigonal"):  # hexagonal axes (rhombohedral groups included)
        m = (a + b) / 2
        return np.array([m, m, c, 90.0, 90.0, 120.0])
    if crystal_system == "orthorhombic":
        return np.array([a, b, c, 90.0, 90.0, 90.0])
    if crystal_system == "monoclinic":  # unique axis b
        return np.array([a, b, c, 90.0, be, 90.0])
    return np.array([a, b, c, al, be, ga])


@dataclass
class Predictor:
    """A loaded model and how to feed it: `predict_file(s)`, `predict_patterns` (MeasuredPattern objects) and
    `predict_arrays` (patterns already on the model's grid)."""

    saved: SavedModel
    name: str = ""
    device: str = "cpu"
    top: int = 5
    background: str | None = "chebyshev"
    prior: str = "known"  # known: frequencies of known crystals; trained: the class balance of training
    index: bool = True  # restrict to the lattice of an indexed cell (refine.index)
    index_systems: tuple[str, ...] = INDEX_SYSTEMS  # the cells searched
    index_denoise: bool = True  # index noisy patterns from a smoothed copy (refine.index.denoised)
    absence_penalty: float = ABSENCE_PENALTY  # factor per observed line a group forbids (1: absences ignored)
    missing_line_factor: float = MISSING_LINE_FACTOR  # factor per line a group allows that is not seen (1: ignored)
    # processes that index (0: one per CPU core); 1 by default: spawned workers re-import the caller's main module
    jobs: int = 1
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.prior not in PRIORS:
            raise ValueError(f"unknown prior {self.prior!r} (known or trained)")
        self._ratio = prior_ratio(self.saved.meta) if self.prior == "known" else None

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu", any_label_set: bool = False, **options: Any) -> Predictor:
        """A saved model; `predict` needs a 230-class one, `evaluate` (any_label_set) takes any label set."""
        saved = load_model(path, device)
        if saved.label_set != "sg" and not any_label_set:
            raise ModelFileError(f"{path}: predict needs a space-group (230-class) model, this one classifies {saved.label_set!r}")
        return cls(saved, name=Path(path).stem, device=device, **options)

    @classmethod
    def for_instrument(cls, instrument: str, device: str = "cpu", **options: Any) -> Predictor:
        return cls.load(shipped_model(instrument), device, **options)

    @property
    def instrument(self) -> Instrument:
        return instrument_of(self.saved.meta)

    @property
    def prior_used(self) -> str:
        """'known' when the probabilities are re-weighted to known crystals' frequencies, else 'trained' (asked
        for, or a model trained on pattern files, whose class balance is not recorded)."""
        return "trained" if self._ratio is None else "known"

    @property
    def threshold(self) -> float:
        """Refusal threshold chosen on validation data for the prior in use (`powdersym calibrate` stores both;
        models calibrated before the known prior existed have the as-trained one only)."""
        meta = self.saved.meta
        key = "refusal_threshold_known" if self.prior_used == "known" and "refusal_threshold_known" in meta else "refusal_threshold"
        return float(meta.get(key, 0.0))

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Space-group probabilities [N, 230] from logits: temperature-calibrated, then re-weighted to the prior."""
        probs = torch.softmax(torch.from_numpy(np.asarray(logits, dtype=np.float32)) / self.saved.temperature, dim=1).numpy()
        if self._ratio is None:
            return probs
        probs = probs * self._ratio
        return probs / probs.sum(axis=1, keepdims=True)

    def logits(self, patterns: np.ndarray | torch.Tensor, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Raw network outputs for patterns on the model's grid [N, P]: class logits [N, 230] and scaled lattice
        [N, 6] (None without lattice heads). `batch_size`: patterns per forward pass; by default CPU_BATCH_POINTS
        input points on the CPU, 256 patterns on a GPU."""
        x = torch.as_tensor(np.asarray(patterns, dtype=np.float32))
        if batch_size is None:
            on_cpu = torch.device(self.device).type == "cpu"
            batch_size = max(1, CPU_BATCH_POINTS // max(x.shape[-1], 1)) if on_cpu else 256
        logits, lattice = [], []
        with torch.inference_mode():
            for part in x.split(batch_size):
                out = self.saved.net(part.to(self.device))
                if isinstance(out, tuple):
                    logits.append(out[0].float().cpu())
                    lattice.append(out[1].float().cpu())
                else:
                    logits.append(out.float().cpu())
        return torch.cat(logits).numpy(), (torch.cat(lattice).numpy() if lattice else None)

    def index_patterns(self, patterns: list, jobs: int | None = None, progress: str | None = None) -> list:
        """The accepted cell (refine.IndexedCell: cubic, tetragonal, hexagonal lattice, orthorhombic, monoclinic or
        triclinic) or None for each MeasuredPattern; all None when `index` is off. jobs: worker processes (0: one per
        CPU core; None: `self.jobs`), used only from PATTERNS_PER_JOB patterns a worker on (a worker takes ~2 s to
        start); the cells do not depend on it. progress: a bar with this label on stderr."""
        if not self.index:
            return [None for _ in patterns]
        instrument = self.instrument  # built from the model's JSON: once, not per pattern
        doublets = [self.doublet_of(p, instrument) for p in patterns]
        work = functools.partial(_index_one, systems=self.index_systems, denoise=self.index_denoise)
        jobs = self.jobs if jobs is None else jobs
        jobs = min(jobs or cpu_cores(), len(patterns) // PATTERNS_PER_JOB)
        if jobs <= 1:
            return _tracked(map(work, patterns, doublets), len(patterns), progress)
        context = multiprocessing.get_context("spawn")  # fork is unsafe once torch's thread pools run
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return _tracked(pool.map(work, patterns, doublets), len(patterns), progress)

    def grid_positions(self, d: np.ndarray) -> np.ndarray:
        """Positions on the model's grid of lines of d-spacings d (Å; the first wavelength), those on the grid only."""
        grid = self.instrument.grid()
        x = self.instrument.peak_positions(torch.as_tensor(np.asarray(d, dtype=np.float64)))[..., 0].numpy()
        return x[np.isfinite(x) & (x >= grid[0]) & (x <= grid[-1])]

    def doublet_of(self, pattern: Any, instrument: Instrument | None = None) -> tuple[float, float] | None:
        """(wavelength2, I2/I1) of the model's K-alpha doublet for a 2theta pattern measured at its first
        wavelength without a doublet of its own (a Cu K-alpha file read with --wavelength 1.5406), else None."""
        from powdersym.refine.index import instrument_doublet

        instrument = instrument or self.instrument
        doublet = instrument_doublet(instrument)
        if doublet is None or pattern.unit != "two_theta" or pattern.wavelength2 or not pattern.wavelength:
            return None
        return doublet if abs(pattern.wavelength - instrument.wavelengths[0]) < 2e-3 else None

    def predict_arrays(self, patterns: np.ndarray, sources: list[str] | None = None, coverage: np.ndarray | None = None,
                       cells: list | None = None) -> list[Prediction]:
        """Predictions for patterns already on the model's grid and max-normalised [N, P]; `cells`: an indexed cell
        (or None) per pattern, from `index_patterns`."""
        from powdersym.evaluate import marginalise
        from powdersym.evaluate.labelsets import class_names
        from powdersym.models import LatticeScaler
        from powdersym.refine.extinction import line_evidence
        from powdersym.symmetry import space_group

        patterns = np.asarray(patterns, dtype=np.float32)
        if patterns.ndim != 2 or patterns.shape[1] != len(self.instrument.grid()):
            raise ValueError(f"patterns must be [N, {len(self.instrument.grid())}] on the model's grid, got {patterns.shape}")
        if not np.isfinite(patterns).all():
            raise ValueError("patterns contain NaN or infinite values")
        logits, lattice = self.logits(patterns)
        use_absences = self.absence_penalty < 1 or self.missing_line_factor < 1
        evidence = [None if c is None or not use_absences else line_evidence(c, self.absence_penalty, self.missing_line_factor)
                    for c in cells] if cells else None  # fmt: skip
        probs = restrict_to_cells(self.probabilities(logits), cells, evidence, self.absence_penalty, self.missing_line_factor)  # [N, 230]
        derived = {to: marginalise(probs, to) for to in ("bravais", "crystal_system", "extinction_group")}
        names = {to: class_names(to) for to in derived}
        scaler = self.saved.meta.get("lattice_scaler")
        lattice = None if lattice is None or scaler is None else np.asarray(LatticeScaler.from_dict(scaler).inverse(lattice))
        out = []
        for i in range(len(probs)):
            order = np.argsort(-probs[i])[: self.top]
            best = {to: int(np.argmax(p[i])) for to, p in derived.items()}
            system = names["crystal_system"][best["crystal_system"]]
            out.append(Prediction(
                source=sources[i] if sources else f"pattern {i}",
                space_groups=[(int(k + 1), space_group(int(k + 1)).hm_symbol, float(probs[i, k])) for k in order],
                bravais=(names["bravais"][best["bravais"]], float(derived["bravais"][i, best["bravais"]])),
                crystal_system=(system, float(derived["crystal_system"][i, best["crystal_system"]])),
                extinction_group=(names["extinction_group"][best["extinction_group"]], float(derived["extinction_group"][i, best["extinction_group"]])),
                lattice=(tuple(round(v, 4) for v in cells[i].lattice()) if cells and cells[i] is not None else
                         None if lattice is None else tuple(round(float(v), 4) for v in constrain_lattice(lattice[i], system))),
                certainty=float(probs[i, order[0]]), uncertain=bool(probs[i, order[0]] < self.threshold),
                threshold=self.threshold, coverage=1.0 if coverage is None else float(coverage[i]), model=self.name,
                prior=self.prior_used, indexed=None if not cells or cells[i] is None else
                cells[i].to_dict() | ({} if evidence[i] is None else {"groups_ruled_out": int((evidence[i][0] > 0).sum())}),
            ))  # fmt: skip
        return out

    def prepare(self, patterns: list) -> list:
        """MeasuredPattern objects on the model's grid (PreparedPattern: input, background, coverage)."""
        from powdersym.io import preprocess

        instrument = self.instrument
        return [preprocess(p, instrument, background=self.background) for p in patterns]

    def predict_patterns(self, patterns: list) -> list[Prediction]:
        prepared = self.prepare(patterns)
        cells = self.index_patterns(patterns)
        out = self.predict_arrays(np.stack([p.y for p in prepared]), [p.source for p in prepared],
                                  np.array([p.coverage for p in prepared]), cells)
        return self.with_spacings(out, patterns, cells)

    def with_spacings(self, predictions: list[Prediction], patterns: list, cells: list) -> list[Prediction]:
        """The predictions, those of patterns that index no cell because their lines are the orders of one spacing
        (a platy sample lying flat) saying which (`Prediction.one_spacing`; refine.index.pattern_spacing)."""
        from powdersym.refine.index import pattern_spacing

        for prediction, pattern, cell in zip(predictions, patterns, cells):
            if self.index and cell is None:
                prediction.one_spacing = pattern_spacing(pattern, self.doublet_of(pattern))
        return predictions

    def predict_file(self, path: str | os.PathLike, **read_options: Any) -> Prediction:
        return self.predict_files([path], **read_options)[0]

    def predict_files(self, paths: list, **read_options: Any) -> list[Prediction]:
        """Read (powdersym.io.read_pattern: unit, wavelength, instrument_file, bank, difc...) and predict."""
        from powdersym.io import read_pattern

        return self.predict_patterns([read_pattern(p, **read_options) for p in paths])


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _index_one(pattern: Any, doublet: tuple[float, float] | None, systems: tuple[str, ...], denoise: bool) -> Any:
    """refine.index.index_pattern of one pattern (module level, so that worker processes can run it)."""
    from powdersym.refine.index import index_pattern

    return index_pattern(pattern, doublet=doublet, systems=systems, denoise=denoise)


def _tracked(results: Any, total: int, label: str | None) -> list:
    """The results as a list, with a progress bar on stderr while they come when a label is given."""
    if label is None:
        return list(results)
    from rich.progress import track

    return list(track(results, total=total, description=label, transient=True))

