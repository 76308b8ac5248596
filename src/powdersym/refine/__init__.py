"""Cell refinement: fit lattice parameters, zero shift and profile widths to a measured pattern (Le Bail-like).

`refine_cell(x, y, instrument=..., space_group=..., cell=...)` -> `RefinementResult` (refined cell with
uncertainties, Rwp, observed / calculated / difference plot). `index_pattern(pattern)` -> the cubic, tetragonal,
hexagonal, orthorhombic, monoclinic or triclinic cell the peak positions index (de Wolff's M20), or None: a starting
cell for the refinement. `forbidden_lines(cell)` -> how many observed lines (indexed, and weak ones the cell
explains) each space group's systematic absences forbid.
"""

from powdersym.refine.cell import CellModel, SpaceGroupSetting, allowed_reflections
from powdersym.refine.extinction import forbidden_lines
from powdersym.refine.index import IndexedCell, find_peaks, index_cells, index_pattern
from powdersym.refine.lebail import instrument_for, refine_cell, refine_pattern
from powdersym.refine.result import RefinementResult, format_uncertain

__all__ = ["CellModel", "IndexedCell", "RefinementResult", "SpaceGroupSetting", "allowed_reflections", "find_peaks", "forbidden_lines", "format_uncertain",
           "index_cells", "index_pattern", "instrument_for", "refine_cell", "refine_pattern"]
