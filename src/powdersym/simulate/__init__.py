"""Powder-pattern simulation: radiations, instruments, reflections, profiles, rendering."""

from powdersym.simulate.instruments import PRESETS, Instrument, UnknownInstrumentError, preset
from powdersym.simulate.perturb import Perturbation
from powdersym.simulate.pattern import PeakList, Sticks, compute_sticks, peak_list, simulate
from powdersym.simulate.render import render, render_direct
from powdersym.simulate.scattering import MissingScatteringDataError, Neutron, XRay

__all__ = [
    "PRESETS", "Perturbation", "Instrument", "UnknownInstrumentError", "preset", "PeakList", "Sticks", "compute_sticks",
    "peak_list", "simulate", "render", "render_direct", "MissingScatteringDataError", "Neutron", "XRay",
]
