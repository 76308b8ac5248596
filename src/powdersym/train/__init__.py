"""Training (Lightning): `TrainConfig` (the main paper's hyper-parameters as defaults), `train(config)` -> an
exported model; `Classifier` and `SGAN` Lightning modules around the plain networks of `powdersym.models`;
`PatternData` (synthetic stream or pattern files, seeded splits, class-balanced batches)."""

from powdersym.train.config import LABEL_COLUMNS, TrainConfig, canonical_label_set, class_names, class_target, n_classes
from powdersym.train.run import TrainResult, train

__all__ = ["LABEL_COLUMNS", "TrainConfig", "TrainResult", "canonical_label_set", "class_names", "class_target", "n_classes", "train"]
