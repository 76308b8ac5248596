"""`evaluate_model`: a saved model on a test set -> Report, with the training data, split and overlap stated from
what the model's JSON records (checked against the test set's formulas, not assumed)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np


def evaluation_label_set(meta: dict[str, Any]) -> str:
    """The evaluation name of a model's label set ('sg' -> 'space_group', 'eg' -> 'extinction_group', ...)."""
    from powdersym.train.config import LABEL_COLUMNS, canonical_label_set

    return LABEL_COLUMNS[canonical_label_set(meta.get("label_set", "sg"))]


def class_labels(groups: np.ndarray, label_set: str) -> np.ndarray:
    """Space-group numbers [N] -> stored labels of `label_set` [N] (the numbers themselves for 'space_group')."""
    from powdersym.evaluate.labelsets import derived_index_of_sg

    groups = np.asarray(groups).astype(np.int64)
    return groups if label_set == "space_group" else derived_index_of_sg(label_set)[groups]


def recorded_split(meta: dict[str, Any]) -> Any:
    """PatternData of a model trained on pattern files, with the train / validation / test rows it recorded
    (rebuilt from the seed and split in the model's JSON); None for synthetic-only models."""
    config = meta.get("training", {}).get("config")
    if not config or config.get("data") == "synthetic":
        return None
    from powdersym.train import TrainConfig
    from powdersym.train.data import PatternData

    files = [config["data"]] if isinstance(config["data"], str) else config["data"]
    if not all(Path(f).is_file() for f in files):
        raise FileNotFoundError(f"the model's training files are not found ({', '.join(files)}): cannot check the overlap")
    data = PatternData(TrainConfig.from_dict(config))
    data.setup()
    return data


def test_set(data: str | os.PathLike, predictor: Any, label_set: str = "space_group", rows: np.ndarray | None = None) -> tuple[Any, np.ndarray]:
    """(set with labels of `label_set`, space_group, formula, description; network inputs [N, P]) of a pattern
    file (only `rows` where given), a folder with a labels.csv, or a shared set."""
    from powdersym.evaluate.sets import load_evaluation_set

    if str(data).endswith((".h5", ".hdf5")):  # simulated patterns on the model's grid
        from powdersym.data import PatternDataset

        stored = PatternDataset(data, target="space_group")
        expected = len(predictor.instrument.grid())
        if stored.n_points != expected:
            raise ValueError(f"{data}: {stored.n_points} points per pattern, the model expects {expected}")
        rows = np.arange(len(stored)) if rows is None else np.sort(rows)
        x, groups = stored.read(rows)
        which = f"{len(rows)} test-split patterns of {data}" if len(rows) < len(stored) else f"{len(stored)} patterns of {data}"
        return SimpleNamespace(labels=stored.labels[label_set][rows], space_group=groups.numpy(), formula=stored.strings("formula")[rows],
                               lattice=stored.labels["lattice"][rows], description=which), x.numpy()  # fmt: skip
    test = load_evaluation_set(data)
    test.labels = class_labels(test.space_group, label_set)
    return test, test.model_inputs(predictor)


def evaluate_model(predictor: Any, data: str | os.PathLike, name: str, validation_size: int = 512) -> Any:
    """Report of a Predictor's model on a test set; calibration (ECE before / after temperature scaling) with a
    temperature fitted on `validation_size` synthetic validation patterns; lattice errors when the model has
    lattice heads and the test set lattice labels."""
    from powdersym.evaluate import evaluate_predictions, split_overlap

    from powdersym.evaluate.calibrate_model import synthetic_validation
    from powdersym.models import LatticeScaler

    meta = predictor.saved.meta
    label_set = evaluation_label_set(meta)
    recorded = recorded_split(meta)
    rows = None  # a model's own training file: only its recorded test split is evaluated
    if recorded is not None and str(data).endswith((".h5", ".hdf5")):
        files = [Path(f).resolve() for f in np.atleast_1d(recorded.config.data)]
        rows = recorded.split["test"] if files == [Path(data).resolve()] else None
    test, inputs = test_set(data, predictor, label_set, rows)
    logits, lattice = predictor.logits(inputs)
    # temperature scaling fitted on a validation split: synthetic patterns of the model's instrument
    val_inputs, val_groups = synthetic_validation(predictor.instrument, validation_size)
    val_logits, _ = predictor.logits(val_inputs)
    val_labels = class_labels(val_groups, label_set)
    scaler = predictor.saved.meta.get("lattice_scaler")
    lattice_true = getattr(test, "lattice", None)
    if lattice is None or scaler is None or lattice_true is None:
        lattice = lattice_true = None
    else:
        lattice = np.asarray(LatticeScaler.from_dict(scaler).inverse(lattice))
    training = meta.get("training", {})
    if recorded is None:
        overlap: str | dict = "none possible: the model was trained on random synthetic crystals only"
        split = "test set outside the training data (synthetic random crystals)"
    else:
        train_rows = np.concatenate([recorded.split["train"], recorded.split.get("unlabelled", np.array([], dtype=np.int64))])
        trained_on = recorded.dataset.strings("formula")[train_rows]
        formulas = getattr(test, "formula", None)
        overlap = split_overlap(trained_on, formulas if formulas is not None else [""] * len(test.space_group))
        split = f"{training.get('split', '?')} split of {training.get('source')} (seed {training.get('seed')}); test: {data}"
    return evaluate_predictions(
        logits, test.labels, label_set, logits=True, val_logits=val_logits, val_labels=val_labels,
        lattice_pred=lattice, lattice_true=lattice_true, model=name, training_data=str(training.get("source", "")),
        split=split, test_data=test.description, overlap=overlap,
    )  # fmt: skip


def label_fraction_point(meta: dict[str, Any], accuracy: float, name: str) -> dict[str, Any] | None:
    """The (model kind, labelled fraction, accuracy) of a model for the main paper's Table 4 plot."""
    config = meta.get("training", {}).get("config") or {}
    if "labelled_fraction" not in config:
        return None
    kind = "SGAN" if config.get("sgan") else "supervised"
    return {"model": kind, "fraction": float(config["labelled_fraction"]), "accuracy": accuracy,
            "label_set": meta.get("label_set", ""), "name": name}  # fmt: skip
