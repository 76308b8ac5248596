"""Evaluation of symmetry classifiers from their outputs (probabilities or logits [N, C]) and true labels [N].

- `evaluate_predictions(...) -> Report` and `write_report(report, out_dir)`: everything below in one report
  (report.json, report.md, PNG figures) with its provenance (report).
- top-k, per-class and balanced accuracy, confusion matrices (also in crystal-system blocks), accuracy with
  enantiomorphs or extinction groups merged, `marginalise` space-group probabilities onto derived labels,
  maximal-subgroup distances of errors (metrics).
- certainty histograms, refusal curve and threshold choice after Vecsei et al. (certainty); ECE and temperature
  scaling (calibration); lattice-parameter MAE / MAPE / MSE (lattice); train/test formula overlap (overlap).
- the figures, including `plot_label_fraction` for the main paper's Table 4 / Fig. 9 (plots).
"""

from .calibration import (
    apply_temperature,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)
from .certainty import (
    RefusalCurve,
    RefusalPoint,
    certainty,
    certainty_histograms,
    choose_refusal_threshold,
    refusal_curve,
)
from .labelsets import LABEL_SETS, class_index, class_names, n_classes, space_group_numbers
from .lattice import LATTICE_PARAMETERS, lattice_metrics
from .metrics import (
    ConfusionBlock,
    as_probabilities,
    balanced_accuracy,
    confusion_matrix,
    crystal_system_blocks,
    crystal_system_confusion,
    distance_histogram,
    marginalise,
    mcnemar_p,
    paired_cluster_p,
    merged_accuracy,
    normalise_confusion,
    per_class_top_k,
    predicted_numbers,
    softmax,
    subgroup_distances,
    top_k_accuracy,
    top_k_hits,
)
from .overlap import split_overlap
from .plots import (
    plot_certainty,
    plot_confusion,
    plot_confusion_block,
    plot_distance_histogram,
    plot_label_fraction,
    plot_refusal,
    plot_reliability,
)
from .report import Report, evaluate_predictions, report_markdown, write_report

__all__ = [
    "LABEL_SETS", "LATTICE_PARAMETERS", "ConfusionBlock", "RefusalCurve", "RefusalPoint", "Report",
    "apply_temperature", "as_probabilities", "balanced_accuracy", "certainty", "certainty_histograms",
    "choose_refusal_threshold", "class_index", "class_names", "confusion_matrix", "crystal_system_blocks",
    "crystal_system_confusion", "distance_histogram", "evaluate_predictions", "expected_calibration_error",
    "fit_temperature", "lattice_metrics", "marginalise", "mcnemar_p", "paired_cluster_p", "merged_accuracy", "n_classes", "negative_log_likelihood",
    "normalise_confusion", "per_class_top_k", "plot_certainty", "plot_confusion", "plot_confusion_block",
    "plot_distance_histogram", "plot_label_fraction", "plot_refusal", "plot_reliability", "predicted_numbers",
    "refusal_curve", "reliability_bins", "report_markdown", "softmax", "space_group_numbers", "split_overlap",
    "subgroup_distances", "top_k_accuracy", "top_k_hits", "write_report",
]
