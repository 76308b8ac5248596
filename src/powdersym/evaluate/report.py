"""One evaluation of one model on one test set: every metric of issue 5 with its provenance, as report.json,
report.md and PNG figures.

`evaluate_predictions` is the single entry point: it takes the model's outputs as arrays and the labels as stored
in the pattern files, so it does not care how the predictions were produced.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from powdersym.files import atomic_write_text
from powdersym.symmetry import CRYSTAL_SYSTEMS

from . import plots
from .calibration import (
    N_BINS,
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from .certainty import certainty, certainty_histograms, choose_refusal_threshold, refusal_curve
from .labelsets import SPACE_GROUP_SETS, class_index, class_names, derived_index_of_sg, space_group_numbers
from .lattice import lattice_metrics
from .metrics import (
    Array,
    balanced_accuracy,
    confusion_matrix,
    crystal_system_blocks,
    crystal_system_confusion,
    crystal_system_of_classes,
    distance_histogram,
    is_probabilities,
    marginalise,
    merged_accuracy,
    per_class_top_k,
    softmax,
    subgroup_distances,
    to_numpy,
    top_k_accuracy,
)

TOP_K = (1, 3, 5)
MARGINALS = ("bravais", "crystal_system", "extinction_group")  # labels derived from a space-group model


@dataclass
class Report:
    """Everything measured on one test set, JSON-ready (plain numbers, lists and dicts; NaN where undefined)."""

    label_set: str
    class_names: list[str]
    n_samples: int
    accuracy: dict[str, float]  # 'top1', 'top3', 'top5', 'balanced'
    per_class: dict[str, list]  # 'count', 'top1', 'top3', 'top5' per class, in class order
    confusion: list[list[int]]  # true class along rows
    certainty: dict[str, list]  # histograms of right and wrong predictions ('edges', 'right', 'wrong')
    refusal: dict[str, list]  # curve: 'threshold', 'coverage', 'accuracy'
    refusal_at_half: dict[str, float]  # threshold, coverage, accuracy at 50 % coverage (Vecsei et al.)
    calibration: dict[str, Any]  # n_bins, ece_before, ece_after, temperature, nll, reliability bins
    # space-group label sets only
    merged_accuracy: dict[str, float] | None = None  # 'strict', 'enantiomorph', 'extinction_group'
    derived_accuracy: dict[str, float] | None = None  # top-1 of the marginalised probabilities
    crystal_system_confusion: list[list[int]] | None = None
    confusion_blocks: list[dict] | None = None
    subgroup_distance: dict[str, Any] | None = None  # 'histogram' {distance: count} of errors, 'mean'
    refusal_chosen: dict[str, Any] | None = None  # threshold chosen on validation data and its test result
    lattice: dict[str, Any] | None = None
    n_excluded: int = 0  # rows without a class in this label set (e.g. groups outside the 144)
    # provenance
    model: str = ""
    training_data: str = ""
    split: str = ""
    test_data: str = ""
    overlap: str = ""
    overlap_counts: dict[str, Any] | None = None
    date: str = ""
    commit: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON dict (NaN becomes None)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Inverse of to_dict (None stays None where a number was NaN)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> str:
        """A few lines for a terminal."""
        a = self.accuracy
        lines = [f"{self.model or 'model'} on {self.test_data or 'test data'} ({self.label_set}, "
                 f"{self.n_samples} patterns)",
                 f"top-1 {_pct(a['top1'])}  top-3 {_pct(a['top3'])}  top-5 {_pct(a['top5'])}  "
                 f"balanced {_pct(a['balanced'])}"]
        if self.merged_accuracy:
            lines.append("merged: " + "  ".join(f"{k} {_pct(v)}" for k, v in self.merged_accuracy.items()))
        lines.append(f"accuracy at 50 % coverage {_pct(self.refusal_at_half['accuracy'])}; "
                     f"ECE {_num(self.calibration['ece_before'])} -> {_num(self.calibration['ece_after'])}")
        return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    return value


def current_commit() -> str:
    """The git commit of the powdersym checkout (with '+dirty' when it has changes), '' outside a checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return commit + ("+dirty" if dirty else "")


def evaluate_predictions(
    probs_or_logits: Array,
    labels: Array,
    label_set: str,
    *,
    logits: bool | None = None,
    val_logits: Array | None = None,
    val_labels: Array | None = None,
    refusal_target_accuracy: float | None = None,
    lattice_pred: Array | None = None,
    lattice_true: Array | None = None,
    lattice_scaler: Any = None,
    crystal_system: Array | None = None,
    model: str = "",
    training_data: str = "",
    split: str = "",
    test_data: str = "",
    overlap: str | Mapping[str, Any] = "",
    date: str = "",
    commit: str | None = None,
    n_bins: int = N_BINS,
) -> Report:
    """Evaluate a model's outputs [N, C] (probabilities or logits: `logits`, or guessed from the rows) against
    stored labels [N] (space-group numbers for 'space_group', class indices otherwise; rows with a negative label
    are left out and counted).

    val_logits / val_labels (validation split, same label convention) give the temperature for the calibrated ECE
    and, with refusal_target_accuracy, a refusal threshold whose test coverage and accuracy are reported.
    lattice_pred / lattice_true [N, 6] add lattice-parameter metrics, per crystal system where it is known
    (crystal_system [N] indices, or derived from space-group / crystal-system labels). overlap is a text or the
    dict of `split_overlap`. commit defaults to the checkout's commit, date to now (UTC). Certainty, refusal and
    the 'before' ECE use the outputs as given (temperature scaling is reported, not applied to them).
    """
    scores = to_numpy(probs_or_logits).astype(np.float64)
    labels = to_numpy(labels).astype(np.int64).reshape(-1)
    names = list(class_names(label_set))
    if scores.ndim != 2 or scores.shape[1] != len(names):
        raise ValueError(f"{label_set!r} has {len(names)} classes; predictions have shape {scores.shape}")
    if len(labels) != len(scores):
        raise ValueError(f"{len(labels)} labels for {len(scores)} predictions")
    keep = labels >= 0
    scores, labels = scores[keep], labels[keep]
    y = class_index(labels, label_set)
    is_logits = (not is_probabilities(scores)) if logits is None else logits
    probs = softmax(scores) if is_logits else scores
    test_logits = scores if is_logits else np.log(np.clip(scores, 1e-300, None))
    predicted = probs.argmax(axis=1)
    notes: list[str] = []

    per_class = per_class_top_k(probs, y, TOP_K)
    accuracy = {f"top{k}": top_k_accuracy(probs, y, k) for k in TOP_K}
    accuracy["balanced"] = balanced_accuracy(predicted, y, len(names))
    confusion = confusion_matrix(predicted, y, len(names))

    curve = refusal_curve(probs, y)
    calibration = _calibration(probs, test_logits, y, label_set, val_logits, val_labels, n_bins)
    refusal_chosen = None
    if refusal_target_accuracy is not None:
        if val_logits is None or val_labels is None:
            notes.append("refusal_target_accuracy needs validation data; no threshold chosen")
        else:
            val_y = class_index(to_numpy(val_labels).reshape(-1), label_set)
            val_probs = softmax(to_numpy(val_logits)[val_y >= 0])
            chosen = choose_refusal_threshold(val_probs, val_y[val_y >= 0], target_accuracy=refusal_target_accuracy)
            kept = certainty(probs) >= chosen.threshold
            refusal_chosen = {"target_accuracy": refusal_target_accuracy, "validation": chosen.to_dict(),
                              "test_coverage": float(kept.mean()) if len(kept) else float("nan"),
                              "test_accuracy": float((predicted == y)[kept].mean()) if kept.any() else float("nan")}

    report = Report(
        label_set=label_set, class_names=names, n_samples=int(len(y)), accuracy=accuracy,
        per_class={k: v.tolist() for k, v in per_class.items()}, confusion=confusion.tolist(),
        certainty=certainty_histograms(probs, y), refusal=curve.to_dict(),
        refusal_at_half=curve.at_coverage(0.5).to_dict(), calibration=calibration, refusal_chosen=refusal_chosen,
        n_excluded=int((~keep).sum()), model=model, training_data=training_data, split=split, test_data=test_data,
        overlap=overlap if isinstance(overlap, str) else str(overlap.get("text", "")),
        overlap_counts=None if isinstance(overlap, str) else dict(overlap),
        date=date or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        commit=current_commit() if commit is None else commit, notes=notes,
    )
    if label_set in SPACE_GROUP_SETS:
        _add_space_group_metrics(report, probs, predicted, y, confusion)
    if lattice_pred is not None and lattice_true is not None:
        systems = _crystal_systems(labels, label_set, crystal_system, keep)
        report.lattice = lattice_metrics(to_numpy(lattice_pred)[keep], to_numpy(lattice_true)[keep], systems,
                                         scaler=lattice_scaler)
    return report


def _calibration(probs: np.ndarray, test_logits: np.ndarray, y: np.ndarray, label_set: str,
                 val_logits: Array | None, val_labels: Array | None, n_bins: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n_bins": n_bins, "ece_before": expected_calibration_error(probs, y, n_bins), "ece_after": float("nan"),
        "temperature": float("nan"), "nll_before": negative_log_likelihood(probs, y), "nll_after": float("nan"),
        "reliability_before": reliability_bins(probs, y, n_bins), "reliability_after": None,
    }
    if val_logits is not None and val_labels is not None:
        val_y = class_index(to_numpy(val_labels).reshape(-1), label_set)
        temperature = fit_temperature(to_numpy(val_logits)[val_y >= 0], val_y[val_y >= 0])
        calibrated = softmax(apply_temperature(test_logits, temperature))
        out.update(temperature=temperature, ece_after=expected_calibration_error(calibrated, y, n_bins),
                   nll_after=negative_log_likelihood(calibrated, y),
                   reliability_after=reliability_bins(calibrated, y, n_bins))
    return out


def _add_space_group_metrics(report: Report, probs: np.ndarray, predicted: np.ndarray, y: np.ndarray,
                             confusion: np.ndarray) -> None:
    label_set = report.label_set
    report.merged_accuracy = {merge: merged_accuracy(predicted, y, label_set, merge)
                              for merge in ("strict", "enantiomorph", "extinction_group")}
    numbers = space_group_numbers(label_set)
    report.derived_accuracy = {}
    for to in MARGINALS:
        derived_true = derived_index_of_sg(to)[numbers[y]]
        report.derived_accuracy[to] = top_k_accuracy(marginalise(probs, to), derived_true, 1)
    report.crystal_system_confusion = crystal_system_confusion(confusion, label_set).tolist()
    report.confusion_blocks = [block.to_dict() for block in crystal_system_blocks(confusion, label_set)]
    distances = subgroup_distances(numbers[predicted], numbers[y])
    wrong = distances[distances > 0]
    report.subgroup_distance = {"histogram": distance_histogram(distances),
                                "mean": float(wrong.mean()) if len(wrong) else float("nan")}


def _crystal_systems(labels: np.ndarray, label_set: str, given: Array | None, keep: np.ndarray) -> np.ndarray | None:
    if given is not None:
        return to_numpy(given).reshape(-1)[keep]
    if label_set in SPACE_GROUP_SETS:
        return derived_index_of_sg("crystal_system")[space_group_numbers(label_set)[class_index(labels, label_set)]]
    if label_set == "crystal_system":
        return labels
    return None


# --- writing ------------------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> Path:
    return atomic_write_text(path, text)


def write_report(report: Report, out_dir: str | Path, figures: bool = True) -> list[Path]:
    """Write report.json, report.md and (with figures) the PNG figures into out_dir, each file atomically.
    Returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figure_paths = _figures(report, out_dir) if figures else []
    written = [
        _write_text(out_dir / "report.json", json.dumps(report.to_dict(), indent=1) + "\n"),
        _write_text(out_dir / "report.md", report_markdown(report, [p.name for p in figure_paths])),
    ]
    return written + figure_paths


def _figures(report: Report, out_dir: Path) -> list[Path]:
    what = f"{report.model or 'model'}: {report.label_set}"
    confusion = np.asarray(report.confusion)
    groups: list[tuple[str, int]] = []
    if report.label_set in SPACE_GROUP_SETS:  # classes run in number order, so crystal systems are contiguous
        system = crystal_system_of_classes(report.label_set)
        groups = [(CRYSTAL_SYSTEMS[system[i]], int(i)) for i in np.flatnonzero(np.diff(system, prepend=-1))]
    paths = [
        plots.plot_confusion(confusion, report.class_names, out_dir / "confusion.png", normalise="true", title=what,
                             groups=groups),
        plots.plot_confusion(confusion, report.class_names, out_dir / "confusion_all.png", normalise="all",
                             title=what, groups=groups),
        plots.plot_certainty(report.certainty, out_dir / "certainty.png", title=what),
        plots.plot_refusal(report.refusal, out_dir / "refusal.png", title=what),
        plots.plot_reliability(report.calibration["reliability_before"], out_dir / "reliability.png",
                               report.calibration["reliability_after"], title=what),
    ]
    if report.crystal_system_confusion is not None:
        paths.append(plots.plot_confusion(np.asarray(report.crystal_system_confusion), list(CRYSTAL_SYSTEMS),
                                          out_dir / "confusion_crystal_system.png", title=what))
        for block in report.confusion_blocks or []:
            paths.append(plots.plot_confusion_block(block, out_dir / f"confusion_{block['crystal_system']}.png"))
    if report.subgroup_distance is not None:
        paths.append(plots.plot_distance_histogram(report.subgroup_distance["histogram"],
                                                   out_dir / "subgroup_distance.png", title=what))
    return paths


def _pct(value: float | None) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f} %"


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def report_markdown(report: Report, figure_names: Sequence[str] = ()) -> str:
    """The report as readable Markdown tables."""
    r, c = report, report.calibration
    out = [f"# Evaluation: {r.model or 'model'} on {r.test_data or 'test data'}\n"]
    out.append(_table(["", ""], [
        ("model", r.model), ("training data", r.training_data), ("split", r.split), ("test data", r.test_data),
        ("train/test overlap", r.overlap or "not checked"), ("label set", f"{r.label_set} ({len(r.class_names)} "
                                                                         "classes)"),
        ("patterns", f"{r.n_samples}" + (f" ({r.n_excluded} without a class left out)" if r.n_excluded else "")),
        ("date", r.date), ("commit", r.commit or "unknown"),
    ]))
    out.append("## Overall\n")
    rows = [(f"top-{k}", _pct(r.accuracy[f"top{k}"])) for k in TOP_K]
    rows += [("balanced accuracy", _pct(r.accuracy["balanced"])),
             ("accuracy at 50 % coverage", f"{_pct(r.refusal_at_half['accuracy'])} (certainty >= "
                                           f"{_num(r.refusal_at_half['threshold'], 3)}, coverage "
                                           f"{_pct(r.refusal_at_half['coverage'])})"),
             (f"ECE ({c['n_bins']} bins) before / after temperature scaling",
              f"{_num(c['ece_before'])} / {_num(c['ece_after'])} (T = {_num(c['temperature'])})")]
    out.append(_table(["metric", "value"], rows))
    if r.merged_accuracy:
        out.append("## Merged accuracy\n\nPowder diffraction cannot tell enantiomorphic pairs apart; the strict "
                   "number counts them as errors.\n")
        out.append(_table(["counted as right", "top-1"], [
            ("same space group (strict)", _pct(r.merged_accuracy["strict"])),
            ("same up to enantiomorph", _pct(r.merged_accuracy["enantiomorph"])),
            ("same extinction group", _pct(r.merged_accuracy["extinction_group"]))]))
    if r.derived_accuracy:
        out.append("## Derived labels (space-group probabilities summed per class)\n")
        out.append(_table(["label", "top-1"], [(k, _pct(v)) for k, v in r.derived_accuracy.items()]))
    if r.subgroup_distance:
        hist = r.subgroup_distance["histogram"]
        out.append(f"## Maximal-subgroup distance of wrong predictions\n\nmean {_num(r.subgroup_distance['mean'], 3)}"
                   "\n")
        out.append(_table(["distance", "wrong predictions"], [(k, v) for k, v in hist.items()]))
    if r.refusal_chosen:
        rc = r.refusal_chosen
        out.append("## Refusal threshold chosen on validation data\n")
        out.append(_table(["target accuracy", "threshold", "validation coverage", "test coverage", "test accuracy"],
                          [(_pct(rc["target_accuracy"]), _num(rc["validation"]["threshold"], 3),
                            _pct(rc["validation"]["coverage"]), _pct(rc["test_coverage"]),
                            _pct(rc["test_accuracy"]))]))
    if r.lattice:
        out.append(_lattice_markdown(r.lattice))
    out.append("## Per-class accuracy\n")
    pc = r.per_class
    out.append(_table(["class", "count", "top-1", "top-3", "top-5"], [
        (name, pc["count"][i], _pct(pc["top1"][i]), _pct(pc["top3"][i]), _pct(pc["top5"][i]))
        for i, name in enumerate(r.class_names)]))
    if r.notes:
        out.append("## Notes\n\n" + "\n".join(f"- {n}" for n in r.notes) + "\n")
    if figure_names:
        out.append("## Figures\n\n" + "\n".join(f"![{Path(n).stem}]({n})" for n in figure_names) + "\n")
    return "\n".join(out)


def _lattice_markdown(lattice: Mapping[str, Any]) -> str:
    names = lattice["parameters"]
    text = [f"## Lattice parameters\n\nMSE (Garcia-Cardona et al. eq. 1, {lattice['mse_on']} targets): "
            f"{_num(lattice['mse'])}\n"]
    text.append(_table(["", *names], [("MAE", *(_num(lattice["mae"][n]) for n in names)),
                                      ("MAPE %", *(_num(lattice["mape"][n], 3) for n in names))]))
    per_system = lattice.get("per_crystal_system") or {}
    if per_system:
        text.append(_table(["crystal system", "n", "MSE", *(f"MAE {n}" for n in names)], [
            (system, m["n"], _num(m["mse"]), *(_num(m["mae"][n]) for n in names)) for system, m in per_system.items()
        ]))
    return "\n".join(text)
