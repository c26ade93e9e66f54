"""Evaluation metrics shared by the paper packages.

The classification and segmentation metrics are re-exported here (NumPy only, cheap to import).
FID (``common.metrics.fid``) and the deep face-feature norm (``common.metrics.dfn``) need torch /
OpenCV and are imported from their submodules. CLI: ``python -m common.metrics fid DIR_A DIR_B``.
"""
from common.metrics.classification import (
    THRESHOLD_GRID,
    DegenerateClassWarning,
    accuracy,
    apply_thresholds,
    auroc,
    average_precision,
    balanced_accuracy,
    confusion_matrix,
    hamming_loss,
    iou_from_confusion,
    mean_iou,
    precision_recall_f1,
    search_thresholds,
)

__all__ = [
    "THRESHOLD_GRID",
    "DegenerateClassWarning",
    "accuracy",
    "apply_thresholds",
    "auroc",
    "average_precision",
    "balanced_accuracy",
    "confusion_matrix",
    "hamming_loss",
    "iou_from_confusion",
    "mean_iou",
    "precision_recall_f1",
    "search_thresholds",
]
