"""Data sets: real structures, pattern files, PyTorch datasets and splits.

- `import_structures(folder)` -> StructureCollection: CIF/POSCAR files read, standardised (spglib), de-duplicated,
  with provenance; `StructureCollection.save/load` (HDF5) (collection).
- `build_dataset(out, source, instrument, n)`: synthetic or real patterns with labels into an HDF5 pattern file,
  resumable; `dataset_info`, `read_labels`, `verify_dataset` (store).
- `PatternDataset(paths)`: a torch Dataset over pattern files (memory-mapped rows, multi-worker);
  `SyntheticStream(...)`: an endless IterableDataset generating labelled, augmented patterns on a device (loaders).
- `random_split`, `structure_disjoint_split`, `label_fraction_split` (the main paper's 10 % test, 5/10/25/50 %
  labelled) (splits); `label_columns`, `class_labels`, `reduced_formula` (labels).
"""

from powdersym.data.collection import ImportReport, StructureCollection, StructureRecord, import_structures, standardise
from powdersym.data.labels import CLASS_LABELS, NUMERIC_LABELS, STRING_LABELS, class_labels, label_columns, reduced_formula
from powdersym.data.loaders import PatternDataset, SyntheticStream
from powdersym.data.splits import LABEL_FRACTIONS, label_fraction_split, random_split, structure_disjoint_split
from powdersym.data.store import (
    DatasetFormatError,
    build_dataset,
    class_names,
    dataset_info,
    read_labels,
    verify_dataset,
)

__all__ = [
    "ImportReport", "StructureCollection", "StructureRecord", "import_structures", "standardise",
    "CLASS_LABELS", "NUMERIC_LABELS", "STRING_LABELS", "class_labels", "label_columns", "reduced_formula",
    "PatternDataset", "SyntheticStream", "LABEL_FRACTIONS", "label_fraction_split", "random_split",
    "structure_disjoint_split", "DatasetFormatError", "build_dataset", "class_names", "dataset_info", "read_labels",
    "verify_dataset",
]  # fmt: skip
