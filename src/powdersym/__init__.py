"""powdersym: crystal symmetry from one powder diffraction pattern."""

__version__ = "0.1.0"
