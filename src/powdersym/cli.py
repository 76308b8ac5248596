"""The `powdersym` command. Subcommands grow with the pipeline: simulate (now), dataset, train, evaluate, predict."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Crystal symmetry from powder diffraction patterns (neutron CW, neutron time-of-flight, X-ray).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Crystal symmetry from powder diffraction patterns (neutron CW, neutron time-of-flight, X-ray)."""


def fail(message: str) -> None:
    """One-line error on stderr, exit code 2."""
    typer.echo(f"powdersym: error: {message}", err=True)
    raise typer.Exit(2)


def _parse_overrides(pairs: list[str]) -> dict[str, object]:
    from powdersym.simulate.instruments import Instrument

    types = {f.name: f.type for f in dataclasses.fields(Instrument)}
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in types:
            fail(f"--set expects NAME=VALUE with NAME an instrument parameter, got {pair!r}")
        try:
            out[key] = tuple(float(v) for v in value.split(",")) if key.startswith("wavelength") else float(value)
        except ValueError:
            fail(f"--set {key}: {value!r} is not a number")
    return out


def _parse_ranges(items: list[str]) -> dict[str, tuple[float, float] | None]:
    from powdersym.augment.config import parse_ranges

    try:
        return parse_ranges(items)
    except ValueError as err:
        fail(f"--augment-range: {err}")
    return {}


AUGMENT_RANGE_HELP = ("Replace one effect's range of --augment, e.g. crystallite_size=1000:10000 (Å) or microstrain=0:5e-4 "
                      "for an instrument with sharper peaks, zero_shift=-0.02:0.02, or impurity_fraction=off (repeatable; "
                      "names and units: powdersym.augment.AugmentConfig).")


@app.command()
def simulate(
    structure: Path = typer.Argument(..., help="Crystal structure: CIF, or VASP POSCAR/CONTCAR."),
    instrument: str = typer.Option("neutron-cw", "--instrument", "-i", help="Instrument preset: neutron-cw, xray-cuka, neutron-tof."),
    output: Path = typer.Option(..., "--output", "-o", help="Pattern file to write: columns x (2theta deg or ToF µs), intensity (max 1), sigma."),
    wavelength: Optional[float] = typer.Option(None, "--wavelength", "-w", help="Wavelength in Å (constant-wavelength presets; replaces a K-alpha doublet by one line)."),
    zero: Optional[float] = typer.Option(None, "--zero", help="Zero shift: 2theta degrees (CW) or µs (ToF)."),
    set_: list[str] = typer.Option([], "--set", help="Any instrument parameter, e.g. --set U=0.1 --set difc=22600 (repeatable)."),
    counts: float = typer.Option(1e4, "--counts", help="Counts at the strongest point, for the Poisson sigma column."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also write a PNG of the pattern with hkl tick marks."),
) -> None:
    """Simulate the powder pattern of a crystal structure on an instrument's grid."""
    import numpy as np

    from powdersym.simulate import MissingScatteringDataError, UnknownInstrumentError, peak_list, preset
    from powdersym.simulate import simulate as simulate_patterns
    from powdersym.structures import StructureError, UnknownElementError, read_structure

    overrides = _parse_overrides(set_)
    if wavelength is not None:
        if wavelength <= 0:
            fail(f"--wavelength must be positive, got {wavelength}")
        overrides.update(wavelengths=(wavelength,), wavelength_weights=(1.0,))
    if zero is not None:
        overrides["zero"] = zero
    try:
        inst = preset(instrument, **overrides)
        crystal = read_structure(structure)
        y = simulate_patterns(crystal, inst, dtype=__import__("torch").float64)[0].numpy()
        peaks = peak_list(crystal, inst)
    except (StructureError, UnknownElementError, UnknownInstrumentError, MissingScatteringDataError, ValueError, OSError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    x = inst.grid()
    sigma = np.sqrt(np.clip(y, 0, None) * counts + 1.0) / counts
    header = (
        f"powdersym simulate {structure.name}: {crystal.formula()}, cell {' '.join(f'{v:.5g}' for v in crystal.lattice)}\n"
        f"instrument {inst.name} ({inst.radiation}, {inst.geometry}); x = {inst.x_label}; intensity max-normalised;"
        f" sigma Poisson for {counts:g} counts at the maximum\n"
        "x intensity sigma"
    )
    from powdersym.io import write_xye

    try:
        write_xye(output, x, y, sigma, header)
        if plot is not None:
            from powdersym.simulate.plot import plot_pattern

            plot_pattern(plot, x, y, peaks, inst, title=f"{crystal.formula()} - {inst.name}")
    except OSError as err:
        fail(f"cannot write: {err}")
    typer.echo(f"wrote {output} ({len(x)} points, {len(peaks.position)} reflections in range)")



# ---------------------------------------------------------------------------------------------------------------------
# powdersym dataset build | import | info

dataset_app = typer.Typer(
    help="Pattern data sets: import real structures, build HDF5 pattern files (synthetic or real), inspect them.",
    no_args_is_help=True,
)
app.add_typer(dataset_app, name="dataset")


def _warn(message: str) -> None:
    typer.echo(f"powdersym: warning: {message}", err=True)


def _parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    index, sep, count = text.partition("/")
    try:
        shard = int(index), int(count)
    except ValueError:
        shard = (-1, 0)
    if not sep or not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        fail(f"--shard expects I/K with 0 <= I < K, got {text!r}")
    return shard


@dataset_app.command("build")
def dataset_build(
    out: Path = typer.Option(..., "--out", "-o", help="Pattern file to write (HDF5); an unfinished build of it is resumed."),
    source: str = typer.Option("synthetic", "--source", "-s", help="'synthetic' (random crystals), a folder of CIF/POSCAR files, or a structure collection from `dataset import`."),
    instrument: str = typer.Option("neutron-cw", "--instrument", "-i", help="Instrument preset: neutron-cw, xray-cuka, neutron-tof."),
    n: Optional[int] = typer.Option(None, "--n", "-n", help="Number of patterns (synthetic: required; real: default one per structure, more cycle through them)."),
    seed: int = typer.Option(0, "--seed", help="Random seed; blocks are seeded from it, so a build is reproducible."),
    augment: str = typer.Option("realistic", "--augment", help="Augmentations: realistic (for the instrument's kind), vecsei, or none (clean patterns)."),
    augment_range: list[str] = typer.Option([], "--augment-range", help=AUGMENT_RANGE_HELP),
    label_set: str = typer.Option("sg", "--label-set", help="Synthetic: labels balanced when drawing space groups: sg, sg144, bravais, extinction, crystal_system."),
    block_size: int = typer.Option(1024, "--block-size", help="Patterns generated and committed at a time (the unit of resuming)."),
    device: str = typer.Option("auto", "--device", help="Where to simulate: auto (cuda if present), cpu, cuda, cuda:1..."),
    chunk_size: Optional[int] = typer.Option(None, "--chunk-size", help="Crystals simulated at a time (default: 256 on a GPU, the simulator's choice on the CPU)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="I/K: write only blocks I, I+K, ... (one file per writer; read the K files together)."),
    set_: list[str] = typer.Option([], "--set", help="Any instrument parameter, e.g. --set U=0.1 (repeatable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file and discard an unfinished build."),
) -> None:
    """Simulate a labelled pattern data set into an HDF5 file (resumable: run the same command again)."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from powdersym.data import DatasetFormatError, build_dataset
    from powdersym.data.store import PARTIAL_SUFFIX
    from powdersym.simulate import UnknownInstrumentError, preset
    from powdersym.structures import StructureError

    shard_pair = _parse_shard(shard)
    ranges = _parse_ranges(augment_range)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        fail(f"--device {device}: CUDA is not available here")
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    if partial.exists() and not overwrite:
        typer.echo(f"resuming the unfinished build in {partial}", err=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    progress = Progress(*columns, transient=False)
    task = None

    def report(done: int, total: int) -> None:
        nonlocal task
        if task is None:  # the bar appears once the settings are checked and the first block starts
            progress.start()
            task = progress.add_task(f"{out.name}", total=total, completed=done)
        progress.update(task, completed=done)

    try:
        inst = preset(instrument, **_parse_overrides(set_))
        torch.device(device)
        if ranges:
            from powdersym.data.generate import augment_config

            augment = augment_config(augment, inst, ranges)
        try:
            path = build_dataset(
                out, source, inst, n, seed=seed, block_size=block_size, device=device, augment=augment,
                label_set=label_set, shard=shard_pair, chunk_size=chunk_size, overwrite=overwrite, progress=report,
                warn=_warn,
            )  # fmt: skip
        finally:
            if task is not None:
                progress.stop()
    except typer.Exit:  # fail() inside (a click Exit is a RuntimeError)
        raise
    except KeyboardInterrupt:
        typer.echo(f"powdersym: interrupted: whole blocks are kept in {partial}; run the same command to resume", err=True)
        raise typer.Exit(130)
    except ImportError as err:
        fail(f"{source} generation needs a module that is not available ({err})")
    except (DatasetFormatError, StructureError, UnknownInstrumentError, FileExistsError, FileNotFoundError, ValueError, RuntimeError, OSError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    typer.echo(f"wrote {path}")


@dataset_app.command("import")
def dataset_import(
    folder: Path = typer.Argument(..., help="Folder of structure files (CIF, CIF.gz, POSCAR/CONTCAR, .vasp), searched recursively."),
    out: Path = typer.Option(..., "--out", "-o", help="Structure collection to write (HDF5), for `dataset build --source`."),
    symprec: float = typer.Option(0.01, "--symprec", help="spglib distance tolerance (Å) for the space group and standard cell."),
    length_tolerance: float = typer.Option(0.01, "--length-tolerance", help="Duplicates: relative difference of conventional cell lengths."),
    angle_tolerance: float = typer.Option(1.0, "--angle-tolerance", help="Duplicates: difference of cell angles (degrees)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing collection."),
) -> None:
    """Read, standardise (spglib) and de-duplicate real structures, keeping their provenance."""
    from powdersym.data import import_structures

    if out.exists() and not overwrite:
        fail(f"{out} exists (use --overwrite to replace it)")
    try:
        collection, report = import_structures(
            folder, symprec=symprec, length_tolerance=length_tolerance, cell_angle_tolerance=angle_tolerance, warn=_warn
        )
        if not len(collection):
            fail(f"{folder}: no readable structures ({report.n_files} structure files)")
        collection.save(out)
    except (FileNotFoundError, ValueError, OSError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    typer.echo(f"{report.summary(len(collection))} -> {out}")


@dataset_app.command("info")
def dataset_info_command(
    path: Path = typer.Argument(..., help="Pattern file from `dataset build` (or a structure collection from `dataset import`)."),
    label: list[str] = typer.Option(["crystal_system", "bravais"], "--label", "-l", help="Labels to count class by class (repeatable); the others get one line."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON instead."),
    check: bool = typer.Option(False, "--check", help="Also read every pattern, verifying the chunk checksums."),
) -> None:
    """Summarise a data set: how it was made and how many patterns each class has."""
    import json

    from powdersym.data import CLASS_LABELS, DatasetFormatError, dataset_info, verify_dataset
    from powdersym.data.collection import is_collection

    unknown = [name for name in label if name not in CLASS_LABELS]
    if unknown:
        fail(f"--label: unknown label {unknown[0]!r} (class labels: {', '.join(CLASS_LABELS)})")
    try:
        if is_collection(path):
            _collection_info(path, as_json)
            return
        info = dataset_info(path)
        if check:
            verify_dataset(path)
    except DatasetFormatError as err:
        fail(str(err).splitlines()[0])
    if as_json:
        typer.echo(json.dumps(info, indent=1))
        return
    _print_info(info, label, check)


def _print_info(info: dict, tabulated: list[str], checked: bool) -> None:
    import statistics

    from rich.console import Console
    from rich.table import Table

    from powdersym.data.store import class_names

    console = Console(soft_wrap=True)  # long lines stay whole when piped
    inst, gen = info["instrument"], info["generator"]
    console.print(f"[bold]{info['path']}[/bold]: {info['n_patterns']:,} patterns x {info['n_points']} points "
                  f"({info['synthetic']:,} synthetic, {info['real']:,} real)" + ("; checksums verified" if checked else ""))
    console.print(f"instrument {inst.get('name')} ({inst.get('radiation')}, {inst.get('geometry')}); source {gen.get('source')}"
                  f"{' ' + gen['path'] if gen.get('path') else ''}; augment {'none' if not gen.get('augment') else 'on'}; "
                  f"seed {info['seed']}; shard {info['shard']}; made {info['created']} by powdersym {info['powdersym_version']}")
    names = class_names()
    sizes = {name: len(values) - (1 if name == "space_group" else 0) for name, values in names.items()}
    for name, counts in info["counts"].items():
        present = {k: v for k, v in counts.items() if not k.startswith("-1")}
        values = list(present.values()) or [0]
        outside = counts.get("-1", 0)
        console.print(f"{name}: {len(present)} of {sizes[name]} classes present; per class min {min(values):,}, "
                      f"median {statistics.median(values):g}, max {max(values):,}"
                      + (f"; {outside:,} patterns outside the set" if outside else ""))
    for name in tabulated:
        table = Table(title=f"patterns per {name}", title_justify="left")
        table.add_column("class")
        table.add_column("patterns", justify="right")
        table.add_column("share", justify="right")
        counts = info["counts"][name]
        first = 1 if name == "space_group" else 0
        classes = [f"{i} {label}" for i, label in enumerate(names[name]) if i >= first] + (["-1"] if "-1" in counts else [])
        for key in classes:  # every class, absent ones with 0
            count = counts.get(key, 0)
            table.add_row("-1 (outside the set)" if key == "-1" else key, f"{count:,}", f"{100 * count / max(info['n_patterns'], 1):.1f} %")
        console.print(table)


def _collection_info(path: Path, as_json: bool) -> None:
    import collections
    import json

    from powdersym.data import StructureCollection
    from powdersym.symmetry import space_group

    found = StructureCollection.load(path)
    if as_json:
        typer.echo(json.dumps(found.as_dict(), indent=1))
        return
    systems = collections.Counter(space_group(r.space_group).crystal_system for r in found.records)
    typer.echo(f"{path}: structure collection, {len(found)} structures in {len({r.space_group for r in found.records})} "
               f"space groups; {len(found.skipped)} files skipped and {len(found.duplicates)} duplicates removed at import")
    typer.echo("crystal systems: " + ", ".join(f"{name} {count}" for name, count in sorted(systems.items())))



@app.command()
def train(
    model: str = typer.Option("resnet1d", "--model", "-m", help="Network: resnet1d (Lolla et al. 2022), resnet1d_wide, convnext1d, dense (Vecsei et al.), cnn_park."),
    labels: str = typer.Option("bravais", "--labels", "-l", help="What to classify: bravais (14), sg (230 space groups), sg144 (the paper's 144), eg (extinction groups), cs (7 crystal systems)."),
    data: list[str] = typer.Option(["synthetic"], "--data", "-d", help="'synthetic' (random crystals simulated on the fly) or pattern files from `powdersym dataset build` (repeatable)."),
    instrument: str = typer.Option("neutron-cw", "--instrument", "-i", help="Instrument preset of synthetic data: neutron-cw, xray-cuka, neutron-tof (pattern files carry their own)."),
    out: Path = typer.Option(Path("runs/run"), "--out", "-o", help="Folder for checkpoints, logs and the exported model (model.safetensors + model.json)."),
    steps: int = typer.Option(20_000, "--steps", help="Training steps (mini-batches)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this many minutes of training (the model is exported as it is then)."),
    batch_size: int = typer.Option(64, "--batch-size", help="Patterns per mini-batch (paper: 64 supervised, 32 SGAN)."),
    lr: float = typer.Option(1e-4, "--lr", help="Adam learning rate (paper: 1e-4)."),
    lr_schedule: str = typer.Option("constant", "--lr-schedule", help="constant, or cosine: decay the rate to zero over --steps or --max-minutes, whichever ends first (usually better for a fixed budget)."),
    sgan: bool = typer.Option(False, "--sgan", help="Semi-supervised GAN (Lolla et al.): unlabelled rows also train the discriminator."),
    discriminator_lr: float = typer.Option(5e-6, "--discriminator-lr", help="SGAN: Adam rate of the discriminator (paper: 5e-6; 5e-4 learns in minutes with --norm batch)."),
    generator_lr: float = typer.Option(1e-6, "--generator-lr", help="SGAN: Adam rate of the generator (paper: 1e-6)."),
    generator_loss: str = typer.Option("paper", "--generator-loss", help="SGAN generator loss: paper (eq. 2, non-saturating) or feature_matching (Salimans et al. 2016)."),
    labelled_fraction: float = typer.Option(1.0, "--labelled-fraction", help="Fraction of the training rows that keep their labels (paper: 0.05, 0.1, 0.25, 0.5)."),
    lattice_weight: float = typer.Option(0.0, "--lattice-weight", help="> 0: also regress a, b, c, alpha, beta, gamma with this weight on their MSE."),
    augment: str = typer.Option("realistic", "--augment", help="Augmentation of synthetic patterns: realistic, vecsei, none."),
    augment_range: list[str] = typer.Option([], "--augment-range", help=AUGMENT_RANGE_HELP),
    balance: Optional[str] = typer.Option(None, "--balance", help="Synthetic: draw the classes of this label set equally often (sg, sg144, bravais, eg, cs; default: --labels). cs gives monoclinic and triclinic crystals 2/7 of the patterns instead of 15/230."),
    known_exponent: float = typer.Option(0.0, "--known-exponent", help="Synthetic: 0 < e <= 1 draws space groups in proportion to (balanced share)^(1-e) x (share among known crystals)^e, so the network trains most on the groups real samples take (1: P-1 7.5 %, P2_1/c 4.7 % of the patterns); 0: balanced."),
    split: str = typer.Option("auto", "--split", help="Split of pattern files: structure (no formula/prototype in two parts; the default for real structures), random (the default for synthetic crystals), or auto."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the split, the batches and the synthetic stream; continuing a synthetic run with --init needs a new seed, or the same patterns are replayed."),
    validate_every: int = typer.Option(1000, "--validate-every", help="Steps between validations (and early-stopping checks)."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", help="Steps between checkpoints (out/checkpoints/last.ckpt)."),
    patience: int = typer.Option(10, "--patience", help="Validations without improvement before stopping early (0: never stop early)."),
    devices: str = typer.Option("1", "--devices", help="GPUs to train on (CPU processes where there is no GPU): a number, 'auto' or ids '0,1'. More than one trains with DDP: one process per device (Lightning starts the others by re-running this command), each drawing its own batches of --batch-size, so a step sees devices x batch-size patterns; rank 0 writes checkpoints, logs and the model. Under torchrun give the same count: torchrun --nproc-per-node 4 $(which powdersym) train ... --devices 4."),
    workers: int = typer.Option(2, "--workers", help="DataLoader worker processes reading pattern files."),
    stream_workers: int = typer.Option(0, "--stream-workers", help="Synthetic: processes generating patterns beside training (0: the training process generates between steps). Same patterns, consecutive pools of crystals interleaved (so --resume needs the same number); on a GPU each process holds its own pool and buffers, and one GPU measured no gain: use 0 there."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from the weights of a saved model (fine-tune, e.g. a shipped model on your own structures or instrument)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from out/checkpoints/last.ckpt after an interruption."),
    norm: Optional[str] = typer.Option(None, "--norm", help="resnet1d normalisation: layer (as published) or batch (learns from noisy, background-laden patterns; the shipped models)."),
    dropout: Optional[float] = typer.Option(None, "--dropout", help="Dropout of the residual blocks (resnet1d default 0.05; paper's Table 2: 0.1)."),
) -> None:
    """Train a classifier on synthetic or stored patterns and export it for `powdersym predict` (several GPUs: see
    --devices)."""
    from powdersym.train import TrainConfig
    from powdersym.train import train as run_training

    ranges = _parse_ranges(augment_range)
    try:
        config = TrainConfig(
            model=model, labels=labels, data=data[0] if data == ["synthetic"] else list(data), instrument=instrument,
            out=str(out), seed=seed, max_steps=steps, max_minutes=max_minutes, batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, sgan=sgan,
            discriminator_lr=discriminator_lr, generator_lr=generator_lr, generator_loss=generator_loss,
            labelled_fraction=labelled_fraction, lattice_weight=lattice_weight, augment=augment, augment_ranges=ranges, balance=balance, known_exponent=known_exponent, split=split,
            validate_every=validate_every, checkpoint_every=checkpoint_every, patience=patience or None,
            devices=int(devices) if devices.isdigit() else devices, num_workers=workers, stream_workers=stream_workers, dropout=dropout, model_kwargs={"norm": norm} if norm else {}, init=str(init) if init else None,
        )  # fmt: skip
        result = run_training(config, resume=resume)
    except (ValueError, FileNotFoundError, KeyError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    from lightning.pytorch.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # the other DDP processes: rank 0 reports
        return
    typer.echo(f"trained {result.steps} steps in {result.seconds:.0f} s; model: {result.model_path}")
    for name, value in sorted(result.metrics.items()):
        if name.startswith("val_"):
            typer.echo(f"  {name} {value:.4f}")


def _read_options(wavelength, unit, instrument_file, bank) -> dict:
    options: dict = {}
    if wavelength is not None:
        if wavelength <= 0:
            fail(f"--wavelength must be positive, got {wavelength}")
        options["wavelength"] = wavelength
    if unit is not None:
        options["unit"] = unit
    if instrument_file is not None:
        options["instrument_file"] = instrument_file
    if bank is not None:
        options["bank"] = bank
    return options


@app.command()
def predict(
    files: list[Path] = typer.Argument(..., help="Measured patterns: xy/xye/dat/csv columns, GSAS raw/gsa/fxye, pdCIF."),
    instrument: str = typer.Option("xray-cuka", "--instrument", "-i", help="Which shipped model: xray-cuka (laboratory Cu K-alpha) or neutron-cw (constant-wavelength neutrons)."),
    model: Optional[Path] = typer.Option(None, "--model", "-m", help="A model of your own (model.safetensors from `powdersym train`) instead of the shipped one."),
    wavelength: Optional[float] = typer.Option(None, "--wavelength", "-w", help="Wavelength in Å of 2theta data (when the file does not say)."),
    unit: Optional[str] = typer.Option(None, "--unit", help="x axis of column files: two_theta, tof, d or q (when it cannot be inferred)."),
    instrument_file: Optional[Path] = typer.Option(None, "--instrument-file", help="GSAS(-II) instrument parameters (.instprm/.prm): wavelength or DIFC/DIFA/ZERO."),
    bank: Optional[int] = typer.Option(None, "--bank", help="Bank of a multi-bank file or instrument file."),
    top: int = typer.Option(5, "--top", help="How many space groups to list."),
    background: str = typer.Option("chebyshev", "--background", help="Background subtraction: chebyshev, snip or none."),
    prior: str = typer.Option("known", "--prior", help="Space-group prior: known (how often known crystals take each group: P2_1/c far more often than P4_22_12; for real samples) or trained (the model's balanced training classes)."),
    index: bool = typer.Option(True, "--index/--no-index", help="Index the peak positions with cubic, tetragonal, hexagonal, then orthorhombic and last monoclinic cells; where one fits (de Wolff's M20), keep only the space groups of that lattice, down-weight those whose systematic absences forbid an observed line or that allow lines the pattern does not show, and report the cell. A cubic cell may also index the main phase of a mixture."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document with every result (for pipelines)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Folder for PNGs of raw pattern, background and model input (with the indexed cell's lines)."),
    jobs: int = typer.Option(0, "--jobs", "-j",
                             help="Processes that index the peak positions (0: one per core; from 16 files each)."),
) -> None:
    """Space group, Bravais lattice, crystal system, extinction group and a lattice estimate of measured patterns,
    with an 'uncertain' flag when the model is less certain than on the validation threshold. Where the peak
    positions index a cell (cubic to monoclinic), the cell is reported and only its lattice's groups are kept."""
    import json

    from powdersym.io import PatternFormatError, read_pattern
    from powdersym.models.saved import ModelFileError
    from powdersym.predict import Predictor

    options = _read_options(wavelength, unit, instrument_file, bank)
    back = None if background == "none" else background
    try:
        settings = dict(top=top, background=back, prior=prior, index=index, jobs=jobs)
        predictor = Predictor.load(model, **settings) if model else Predictor.for_instrument(instrument, **settings)
        patterns = [read_pattern(path, **options) for path in _progress(files, "reading")]
        prepared = predictor.prepare(patterns)
        import numpy as np

        cells = predictor.index_patterns(patterns, progress="indexing" if len(patterns) >= PROGRESS_FROM else None)
        results = predictor.predict_arrays(np.stack([p.y for p in prepared]), [str(f) for f in files], np.array([p.coverage for p in prepared]), cells)
        results = predictor.with_spacings(results, patterns, cells)
        if plot is not None:
            plot.mkdir(parents=True, exist_ok=True)
            for path, item, cell in zip(files, prepared, cells):
                ticks = None if cell is None else predictor.grid_positions(cell.line_d(0.5))
                item.plot(plot / f"{Path(path).stem}.png", title=str(path), lines=ticks, lines_label=str(cell))
    except (PatternFormatError, ModelFileError, ValueError, OSError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=1))
    else:
        for result in results:
            typer.echo(str(result))


PROGRESS_FROM = 8  # items from which a step shows a progress bar


def _progress(items: list, label: str):
    """Items with a progress bar on stderr when there are many."""
    if len(items) < PROGRESS_FROM:
        return items
    from rich.progress import track

    return track(items, description=label, transient=True)


@app.command()
def evaluate(
    models: list[Path] = typer.Argument(..., help="Models (.safetensors from `powdersym train`, any label set; on their own training file only its recorded test split is used) or shipped ones by instrument name (xray-cuka, neutron-cw); several give one report each and the main paper's Table 4 plot (accuracy vs labelled fraction)."),
    data: str = typer.Option(..., "--data", "-d", help="Test patterns: a pattern file (.h5 from `powdersym dataset build`), a folder of measured files with labels.csv (file, sg_number[, wavelength, instrument_file, bank, unit]), or a shared set (rruff, spglib-pymatgen-xray/-neutron, spglib-powdersym-xray/-neutron, measured-neutron, measured-neutron-tof, measured-xray)."),
    out: Path = typer.Option(Path("report"), "--out", "-o", help="Folder for report.json, report.md and the figures (a subfolder per model when there are several)."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Write the PNG figures."),
) -> None:
    """Accuracy (top-1/3/5, per class, balanced), confusion matrices, merged (enantiomorph, extinction-group)
    accuracy, subgroup distance of errors, refusal curve and calibration of space-group models on a test set."""
    from powdersym.evaluate import plot_label_fraction, write_report
    from powdersym.evaluate.run import evaluate_model, label_fraction_point
    from powdersym.io import PatternFormatError
    from powdersym.models.saved import ModelFileError
    from powdersym.predict import SHIPPED, Predictor

    points = []
    try:
        for index, model in enumerate(models):
            name = str(model)
            predictor = Predictor.for_instrument(name) if name in SHIPPED else Predictor.load(model, any_label_set=True)
            report = evaluate_model(predictor, data, name)
            folder = out if len(models) == 1 else out / f"{index}_{Path(name).parent.name or Path(name).stem}"
            written = write_report(report, folder, figures=figures)
            typer.echo(report.summary())
            typer.echo(f"wrote {len(written)} files to {folder}")
            point = label_fraction_point(predictor.saved.meta, report.accuracy["top1"], name)
            points.append(point) if point is not None else None
        if len(models) > 1 and len(points) > 1 and figures:
            typer.echo(f"wrote {plot_label_fraction(points, out / 'label_fraction.png')}")
    except (PatternFormatError, ModelFileError, ValueError, OSError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)


@app.command()
def calibrate(
    model: Path = typer.Argument(..., help="A model (.safetensors) from `powdersym train`; its JSON is updated."),
    n: int = typer.Option(2048, "--n", help="Synthetic validation patterns (realistic augmentation, a seed no training stream uses)."),
    coverage: float = typer.Option(0.5, "--coverage", help="Fraction of validation patterns that stay above the refusal threshold."),
    index: bool = typer.Option(True, "--index/--no-index", help="Choose the threshold on the probabilities predict reports: each validation pattern indexed and restricted to its cell (about 0.5 s a pattern on one core)."),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Processes that index the validation patterns (0: one per core)."),
) -> None:
    """Fit the model's temperature (calibrated probabilities) and its refusal threshold on synthetic validation
    patterns, and store both with the model for `powdersym predict`."""
    from powdersym.evaluate.calibrate_model import calibrate_saved_model
    from powdersym.models.saved import ModelFileError

    if not 0 < coverage <= 1 or n < 16:
        fail("--coverage must lie in (0, 1] and --n be at least 16")
    try:
        stored = calibrate_saved_model(model, n=n, coverage=coverage, index=index, progress=True, jobs=jobs)
    except (ModelFileError, ValueError, OSError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    c = stored["calibration"]
    typer.echo(f"temperature {stored['temperature']:.3f}; ECE {c['ece_before']:.3f} -> {c['ece_after']:.3f}; "
               f"refusal threshold {stored['refusal_threshold']:.3f} keeps {c['refusal']['coverage']:.0%} at "
               f"{c['refusal']['accuracy_kept']:.1%} top-1 (all: {c['top1']:.1%})")
    if "refusal_known" in c:
        k = c["refusal_known"]
        typer.echo(f"with known crystals' space-group frequencies (patterns re-weighted to them): threshold "
                   f"{stored['refusal_threshold_known']:.3f} keeps {k['coverage']:.0%} at {k['accuracy_kept']:.1%} top-1 (all: {k['top1']:.1%})")


@app.command()
def refine(
    file: Path = typer.Argument(..., help="Measured pattern (any format `predict` reads)."),
    sg: str = typer.Option(..., "--sg", help="Space group: number (standard setting) or Hermann-Mauguin symbol, e.g. 'P 1 21/n 1'."),
    cell: Optional[str] = typer.Option(None, "--cell", help="Starting cell a,b,c,alpha,beta,gamma (Å, deg), e.g. from `powdersym predict`; default: the cubic, tetragonal, hexagonal, orthorhombic, monoclinic or triclinic cell the peak positions index."),
    wavelength: Optional[float] = typer.Option(None, "--wavelength", "-w", help="Wavelength in Å of 2theta data (when the file does not say)."),
    unit: Optional[str] = typer.Option(None, "--unit", help="x axis of column files: two_theta or tof."),
    instrument_file: Optional[Path] = typer.Option(None, "--instrument-file", help="GSAS(-II) instrument parameters (.instprm/.prm)."),
    bank: Optional[int] = typer.Option(None, "--bank", help="Bank of a multi-bank file or instrument file."),
    radiation: Optional[str] = typer.Option(None, "--radiation", help="xray or neutron (when the file does not say)."),
    no_ka2: bool = typer.Option(False, "--no-ka2", help="X-ray data measured with K-alpha1 only (primary monochromator)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="PNG of observed, calculated and difference curves."),
    as_json: bool = typer.Option(False, "--json", help="The result as JSON."),
) -> None:
    """Refine the cell, zero shift and peak widths against a measured pattern with free peak intensities
    (Le Bail-like), from a starting cell (given, or indexed from the peak positions); prints the cell with
    uncertainties and Rwp."""
    import json

    from powdersym.io import PatternFormatError, read_pattern
    from powdersym.refine import instrument_for, refine_pattern

    try:
        start = [float(v) for v in cell.split(",")] if cell else None
        if start is not None and len(start) != 6:
            raise ValueError(f"--cell needs six numbers a,b,c,alpha,beta,gamma, got {len(start)}")
        group: int | str = int(sg) if sg.strip().isdigit() else sg
        pattern = read_pattern(file, **_read_options(wavelength, unit, instrument_file, bank))
        inst = instrument_for(pattern, radiation, ka2=False) if no_ka2 else None
        start = start or _indexed_start(pattern, group, inst or instrument_for(pattern, radiation))
        result = refine_pattern(pattern, space_group=group, cell=start, radiation=radiation, instrument=inst)
        if plot is not None:
            result.plot(plot)
    except (PatternFormatError, ValueError, OSError) as err:
        fail(str(err).splitlines()[0] if str(err) else type(err).__name__)
    typer.echo(json.dumps(result.to_dict(), indent=1) if as_json else str(result))


def _indexed_start(pattern, group: int | str, instrument) -> list[float]:
    """The indexed cell of a pattern as a refinement start, checked against the group (an orthorhombic cell's axes
    put in the order of the group's standard setting, judged by its reflection conditions)."""
    from powdersym.refine import SpaceGroupSetting, index_pattern
    from powdersym.refine.extinction import setting_lattice
    from powdersym.refine.index import SPACE_GROUP_RANGES, instrument_doublet, with_article

    found = index_pattern(pattern, doublet=instrument_doublet(instrument) if pattern.unit == "two_theta" else None)
    if found is None:
        raise ValueError("no cell (cubic to triclinic) indexes these peaks; give a starting cell with --cell")
    setting = SpaceGroupSetting.from_key(group)
    low, high = SPACE_GROUP_RANGES[found.system]
    if not low <= setting.number <= high:
        raise ValueError(f"the peaks index {with_article(found.system)} cell ({found}), which space group {setting.symbol} cannot have; give --cell")
    typer.echo(f"starting from the {found}", err=True)
    return list(setting_lattice(found, setting.number))


if __name__ == "__main__":
    app()
