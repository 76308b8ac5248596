"""Reading measured patterns (GSAS, pdCIF, column files, instrument parameters) and preparing them for a model."""

from powdersym.io.instprm import read_instrument_parameters
from powdersym.io.pattern import UNITS, MeasuredPattern, PatternFormatError
from powdersym.io.plot import plot_preprocessing
from powdersym.io.preprocess import PreparedPattern, preprocess, preprocess_many
from powdersym.io.readers import read_pattern
from powdersym.io.xye import write_xye

__all__ = [
    "UNITS",
    "MeasuredPattern",
    "PatternFormatError",
    "PreparedPattern",
    "plot_preprocessing",
    "preprocess",
    "preprocess_many",
    "read_instrument_parameters",
    "read_pattern",
    "write_xye",
]
