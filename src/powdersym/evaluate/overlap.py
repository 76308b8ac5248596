"""How much of a test set the training data has already seen: test rows whose formula (or structure prototype)
also occurs in training. A test score on seen compositions measures memory as much as generalisation, so every
report states it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _seen(train: Iterable[str], test: list[str]) -> dict[str, Any]:
    known = {value for value in train if value}
    given = [value for value in test if value]  # '' marks an unknown formula or prototype
    seen = [value for value in given if value in known]
    return {
        "n_known": len(given),
        "n_seen": len(seen),
        "fraction_seen": len(seen) / len(given) if given else float("nan"),
        "distinct": len(set(given)),
        "distinct_seen": len(set(seen)),
    }


def split_overlap(
    train_formulas: Iterable[str],
    test_formulas: Iterable[str],
    train_prototypes: Iterable[str] | None = None,
    test_prototypes: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Test rows whose reduced formula (and prototype, if given) occurs in training, with a one-line 'text' for
    reports. Empty strings count as unknown and are left out of the fractions."""
    test_formulas = [str(v) for v in test_formulas]
    out: dict[str, Any] = {"n_test": len(test_formulas), "formula": _seen(map(str, train_formulas), test_formulas)}
    parts = [_describe("formula", out["formula"])]
    if train_prototypes is not None and test_prototypes is not None:
        out["prototype"] = _seen(map(str, train_prototypes), [str(v) for v in test_prototypes])
        parts.append(_describe("prototype", out["prototype"]))
    out["text"] = "; ".join(parts)
    return out


def _describe(what: str, counts: dict[str, Any]) -> str:
    if not counts["n_known"]:
        return f"no test {what}s known"
    return (f"{counts['n_seen']} of {counts['n_known']} test rows ({100 * counts['fraction_seen']:.1f} %) have a "
            f"{what} seen in training ({counts['distinct_seen']} of {counts['distinct']} distinct {what}s)")
