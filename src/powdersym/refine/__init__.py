"""Cell refinement: fit lattice parameters, zero shift and profile widths to a measured pattern (Le Bail-like).

`refine_cell(x, y, instrument=..., space_group=..., cell=...)` -> `RefinementResult` (refined cell with
uncertainties, Rwp, observed / calculated / difference plot).
"""

from powdersym.refine.cell import CellModel, SpaceGroupSetting, allowed_reflections
from powdersym.refine.lebail import instrument_for, refine_cell, refine_pattern
from powdersym.refine.result import RefinementResult, format_uncertain

__all__ = ["CellModel", "RefinementResult", "SpaceGroupSetting", "allowed_reflections", "format_uncertain", "instrument_for", "refine_cell",
           "refine_pattern"]
