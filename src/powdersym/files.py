"""Writing files so that a reader never sees a half-written one: into a temporary file beside the target, then
renamed over it (atomic on one file system). Every file powdersym writes goes through `atomic_write`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None], suffix: str | None = None) -> Path:
    """Call write(temporary_path), then rename the temporary file to `path` (0644, as an ordinary file would be);
    on any error the temporary file is removed and `path` is left as it was. `suffix` of the temporary file (some
    writers choose the format by it; default: the target's own suffix)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix if suffix is None else suffix, dir=folder)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`text` (UTF-8) into `path`, atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
