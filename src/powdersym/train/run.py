"""`train(config)`: one Lightning run from a TrainConfig to an exported model (safetensors + JSON).

The loop is Lightning's; what it does is stated here: endless batches (synthetic stream or balanced draws from
pattern files), validation every `validate_every` steps, a checkpoint every `checkpoint_every` steps (`last.ckpt`,
resumable, and the best by validation loss), early stopping on the validation loss, CSV (and TensorBoard where
installed) logs under `out/`, bf16 mixed precision on a GPU. With several devices, DDP: one process per device,
each drawing its own batches (so the effective batch is devices x batch_size), gradients averaged, validation
metrics averaged over processes, and only rank 0 writing checkpoints, logs and the exported model.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import platform
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from powdersym.models.saved import save_model
from powdersym.simulate import preset
from powdersym.train.config import TrainConfig, class_names
from powdersym.train.data import PatternData
from powdersym.train.history import with_history
from powdersym.train.schedule import CosineOverBudget


@dataclass
class TrainResult:
    """Where a run left its files and what it measured on the validation data."""

    model_path: Path
    checkpoint: Path | None
    steps: int
    seconds: float
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


def instrument_of(config: TrainConfig, data: PatternData):
    """The instrument of the training patterns: the preset, or what the pattern files say they were made with."""
    if config.synthetic:
        return preset(config.instrument)
    data.setup()
    assert data.dataset is not None
    return data.dataset.instrument


def fit_lattice_scaler(config: TrainConfig, data: PatternData) -> dict | None:
    """Scaling of the six lattice targets, fitted on training labels (synthetic: 4096 crystals drawn on the CPU
    from a seed the training stream does not use)."""
    if config.lattice_weight <= 0:
        return None
    from powdersym.models import LatticeScaler

    if config.synthetic:
        from powdersym.data.generate import SyntheticSettings, make_generator, synthetic_crystals
        from powdersym.train.config import synthetic_draw

        settings = SyntheticSettings(*synthetic_draw(config))
        crystals = synthetic_crystals(4096, settings, make_generator(config.seed + 20_000, "cpu"), "cpu")
        lattice = crystals.batch.lattice.float()
    else:
        assert data.dataset is not None
        lattice = torch.from_numpy(data.dataset.labels["lattice"][data.split["train"]]).float()
    return LatticeScaler.fit(lattice).to_dict()


def start_from(module: L.LightningModule, path: str) -> dict[str, Any]:
    """Copy the weights of a saved model into the module's network (same architecture, label set and grid) and
    return its `training` entry (the history the new model continues). Warns when a synthetic run would replay the stream the saved model was trained on (same seed and instrument:
    the stream restarts at step 0, so the run sees the same crystals and augmentation draws again)."""
    from powdersym.models.saved import load_model

    saved = load_model(path)
    target = getattr(module.net, "discriminator", module.net)  # an SGAN starts its discriminator
    try:
        target.load_state_dict(saved.net.state_dict())
    except RuntimeError as err:
        raise ValueError(f"{path}: its network does not match this run's ({str(err).splitlines()[0]})") from None
    before = saved.meta.get("training", {}).get("config") or {}
    config = module.config
    same_stream = (before.get("data"), before.get("seed"), before.get("instrument")) == ("synthetic", config.seed, config.instrument)
    if config.synthetic and same_stream:
        warnings.warn(f"{path} was trained on the synthetic stream with seed {config.seed}: this run replays the same "
                      "patterns; pass another --seed for fresh data", stacklevel=2)  # fmt: skip
    return saved.meta.get("training", {})


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def strategy_for(config: TrainConfig) -> str:
    """'ddp' (one process per device; Lightning starts the others by re-running the command, or torchrun starts
    them all) when the run has several devices, else Lightning's single-device 'auto'. The SGAN's discriminator
    step leaves the generator out of its backward pass, which DDP must be told about."""
    devices = config.devices
    if devices in ("auto", -1, "-1"):  # all GPUs
        n_devices = torch.cuda.device_count() if config.accelerator in ("auto", "gpu", "cuda") else 1
    elif isinstance(devices, str) and "," in devices:  # a list of GPU ids, "0,1"
        n_devices = len([d for d in devices.split(",") if d.strip()])
    else:
        n_devices = int(devices)
    if n_devices <= 1:
        return "auto"
    return "ddp_find_unused_parameters_true" if config.sgan else "ddp"


def trainer_for(config: TrainConfig, out: Path) -> L.Trainer:
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    gpu = torch.cuda.is_available() and config.accelerator in ("auto", "gpu", "cuda")
    precision = config.precision or ("bf16-mixed" if gpu else "32-true")
    callbacks: list = [
        ModelCheckpoint(dirpath=out / "checkpoints", every_n_train_steps=config.checkpoint_every * config.optimiser_steps,
                        save_last=True, save_top_k=0),
        ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor="val_loss", mode="min", save_top_k=1),
    ]
    if config.lr_schedule == "cosine":
        max_seconds = None if config.max_minutes is None else 60 * config.max_minutes
        callbacks.append(CosineOverBudget(config.max_steps * config.optimiser_steps, max_seconds))
    if config.patience is not None:
        callbacks.append(EarlyStopping(monitor="val_loss", patience=config.patience, check_on_train_epoch_end=False))
    loggers: list = [CSVLogger(out, name="logs", version="")]
    if importlib.util.find_spec("tensorboard") is not None:
        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    return L.Trainer(
        max_steps=config.max_steps * config.optimiser_steps, max_time=None if config.max_minutes is None else {"seconds": 60 * config.max_minutes},
        val_check_interval=config.validate_every, check_val_every_n_epoch=None,
        limit_val_batches=None, num_sanity_val_steps=0, accelerator=config.accelerator, devices=config.devices,
        strategy=strategy_for(config), precision=precision, callbacks=callbacks, logger=loggers, log_every_n_steps=config.log_every,
        enable_progress_bar=config.progress, enable_model_summary=False, use_distributed_sampler=False, default_root_dir=out,
    )  # fmt: skip


def _check_same_stream_workers(checkpoint: Path, config: TrainConfig) -> None:
    """The synthetic batch order depends on the number of stream workers: resuming with another would replay some
    patterns and skip others."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True).get("hyper_parameters", {})
    before = int(saved.get("config", {}).get("stream_workers", 0))
    if before != config.stream_workers:
        raise ValueError(f"the interrupted run used --stream-workers {before}: resume with the same number "
                         f"(not {config.stream_workers}), or the synthetic batches would repeat and skip")  # fmt: skip


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train a model as `config` says and export it to `config.out`/model.safetensors (+ .json)."""
    from powdersym.train.module import SGAN, Classifier

    L.seed_everything(config.seed, workers=True, verbose=False)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    data = PatternData(config)
    instrument = instrument_of(config, data)
    n_points = len(instrument.grid()) if config.synthetic else data.dataset.n_points  # type: ignore[union-attr]
    classes = class_names(config.labels)
    scaler = fit_lattice_scaler(config, data)
    module_type = SGAN if config.sgan else Classifier
    module = module_type(config.as_dict(), len(classes), n_points, scaler)
    before = start_from(module, config.init) if config.init else None
    if config.compile:
        module.net = torch.compile(module.net)
    trainer = trainer_for(config, out)
    checkpoint = out / "checkpoints" / "last.ckpt"
    if resume and not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: nothing to resume from")
    if resume and config.synthetic:
        _check_same_stream_workers(checkpoint, config)
    start = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=str(checkpoint) if resume else None)
    seconds = time.perf_counter() - start
    steps = trainer.global_step // config.optimiser_steps  # batches trained
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    if trainer.is_global_zero:  # under DDP the other processes only trained; rank 0 exports
        best = trainer.checkpoint_callbacks[1].best_model_path if len(trainer.checkpoint_callbacks) > 1 else ""
        if best and config.patience is not None:
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        net = getattr(module.net, "_orig_mod", module.net)
        hardware = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
        training = {**data.describe(), "steps": steps, "seconds": round(seconds, 1),
                    "hardware": hardware if trainer.world_size == 1 else f"{trainer.world_size} x {hardware} (DDP)",
                    "commit": git_commit(), "config": config.as_dict(), "sgan": config.sgan}  # fmt: skip
        if before is not None:  # a fine-tune: carry the legs that made the starting model
            training = with_history(training, before)
        meta = {
            "model": config.model, "label_set": config.labels, "classes": classes, "lattice_scaler": scaler,
            "instrument": dataclasses.asdict(instrument), "normalisation": "max", "temperature": 1.0,
            "training": training,
            "metrics": metrics,
        }  # fmt: skip
        save_model(out / "model.safetensors", net.discriminator if config.sgan else net, meta)
        (out / "result.json").write_text(json.dumps(metrics, indent=1))
    return TrainResult(out / "model.safetensors", checkpoint if checkpoint.is_file() else None, steps, seconds, metrics)
