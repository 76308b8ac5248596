"""Reading and writing pattern files."""

from powdersym.io.xye import write_xye

__all__ = ["write_xye"]
