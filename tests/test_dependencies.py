"""The package imports at module level only what `pip install powdersym` installs: the standard library and the
dependencies declared in pyproject.toml (the [test] extra, which CI installs, must not hide a missing one)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT_NAMES = {"scikit-learn": "sklearn"}  # distributions whose import name differs


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names imported by statements that run on import (not inside functions, classes or try blocks)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_module_level_imports_are_declared_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {re.match(r"[A-Za-z0-9_.\-]+", r).group(0).lower() for r in project["dependencies"]}
    importable = {IMPORT_NAMES.get(d, d.replace("-", "_")) for d in declared}
    undeclared = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "src/powdersym").rglob("*.py")
        for name in _module_level_imports(path)
        if name not in sys.stdlib_module_names and name != "powdersym" and name not in importable
    }
    assert not undeclared, sorted(undeclared)
