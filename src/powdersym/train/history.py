"""The training history a fine-tuned model carries: every leg since its first run, so that a model card can say how
many steps and patterns, on which seeds and data, went into shipped weights without hand-kept notes."""

from __future__ import annotations

from typing import Any


def leg_of(training: dict[str, Any]) -> dict[str, Any]:
    """One leg's summary from a model JSON's `training` entry (what `train` exports)."""
    config = training.get("config", {})
    leg = {
        "steps": training.get("steps"), "batch": config.get("batch_size"), "lr": config.get("lr"),
        "minutes": config.get("max_minutes"), "init": config.get("init"), "seed": config.get("seed"),
        "balanced_over": training.get("balanced_over"), "hardware": training.get("hardware"), "commit": training.get("commit"),
    }  # fmt: skip
    if config.get("lr_schedule", "constant") != "constant":
        leg["lr_schedule"] = config["lr_schedule"]
    if config.get("augment_ranges"):
        leg["augment_ranges"] = config["augment_ranges"]
    return {k: v for k, v in leg.items() if v is not None}


def legs_of(training: dict[str, Any]) -> list[dict[str, Any]]:
    """All legs that made a saved model: its recorded history, or the one run it was if it has none."""
    if not training:
        return []
    return list(training["legs"]) if "legs" in training else [leg_of(training)]


def with_history(training: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """`training` of a run started from a model whose `training` entry is `before`, with the legs of both and the
    number of patterns drawn in all of them (each leg draws steps x batch; legs on the same seed redraw the same)."""
    legs = [*legs_of(before), leg_of(training)]
    seen = sum(int(leg.get("steps", 0)) * int(leg.get("batch", 0)) for leg in legs)
    return {**training, "legs": legs, "patterns_seen": seen}
