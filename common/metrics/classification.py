"""Multi-label classification and segmentation metrics, vectorised over classes (NumPy only).

Conventions shared by every function here:

* ``y_true`` is ``(N, C)`` in {0, 1} (bool, int or float), ``scores`` ``(N, C)`` real-valued (logits
  or probabilities: only their order matters for ranking metrics) and ``y_pred`` ``(N, C)`` in
  {0, 1}. A 1-D array is one class; per-class functions then return a Python ``float`` instead of a
  ``(1,)`` array.
* A class for which a metric is undefined (AUROC without positives or without negatives, ...)
  gets NaN, and the call emits **one** :class:`DegenerateClassWarning` naming the classes; it never
  raises. Use ``np.nanmean`` for the class mean and ``common.tables.cell_or_na`` in tables.
* Malformed input (shape mismatch, labels outside {0, 1}, non-finite scores) raises ``ValueError``.

The ranking metrics equal scikit-learn's ``roc_auc_score`` / ``average_precision_score`` per
column (checked to 1e-9 in ``tests/test_common_metrics_classification.py``, ties included) but
sort every column once, in one vectorised call, instead of looping over classes.
"""
from __future__ import annotations

import warnings
from typing import Literal

import numpy as np

__all__ = [
    "DegenerateClassWarning",
    "THRESHOLD_GRID",
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

#: Paper 000 (Le & Lee), §3 "inference": thresholds 0.01 to 1.00 in steps of 0.01.
THRESHOLD_GRID = np.round(np.arange(1, 101) / 100.0, 2)


class DegenerateClassWarning(UserWarning):
    """A metric is undefined for some classes (e.g. no positive or no negative samples); those
    classes were given NaN."""


def _warn_degenerate(metric: str, classes: np.ndarray, reason: str) -> None:
    classes = np.flatnonzero(classes)
    if classes.size:
        shown = classes[:20].tolist()
        more = f" and {classes.size - 20} more" if classes.size > 20 else ""
        warnings.warn(f"{metric}: {classes.size} class(es) {shown}{more} {reason}; their value is NaN",
                      DegenerateClassWarning, stacklevel=3)


def _binary_2d(name: str, array) -> np.ndarray:
    """``(N, C)`` bool view of a {0,1} array (1-D -> one column)."""
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (N, C), got shape {array.shape}")
    if array.dtype == bool:
        return array
    if not np.isin(array, (0, 1)).all():
        bad = np.unique(array[~np.isin(array, (0, 1))])[:5]
        raise ValueError(f"{name} must hold only 0 and 1, found {bad.tolist()}")
    return array.astype(bool)


def _scores_2d(name: str, array) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (N, C), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(array)).sum())} non-finite values")
    return array


def _check_same_shape(first_name: str, first: np.ndarray, second_name: str, second: np.ndarray) -> None:
    if first.shape != second.shape:
        raise ValueError(f"{first_name} has shape {first.shape} but {second_name} has shape {second.shape}")
    if first.shape[0] == 0:
        raise ValueError(f"{first_name} is empty")


def _per_class_result(values: np.ndarray, one_dimensional: bool):
    return float(values[0]) if one_dimensional else values


def _sorted_by_score(y_true: np.ndarray, scores: np.ndarray, descending: bool):
    """Per class (rows of the ``(C, N)`` result): labels in score order, the index of the first
    and last position of each position's tie group."""
    scores_by_class = np.ascontiguousarray(scores.T)
    if descending:
        scores_by_class = -scores_by_class
    order = np.argsort(scores_by_class, axis=1)
    sorted_scores = np.take_along_axis(scores_by_class, order, axis=1)
    sorted_labels = np.take_along_axis(np.ascontiguousarray(y_true.T), order, axis=1)
    n = sorted_scores.shape[1]
    positions = np.broadcast_to(np.arange(n), sorted_scores.shape)
    starts_group = np.ones(sorted_scores.shape, dtype=bool)
    starts_group[:, 1:] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    ends_group = np.ones(sorted_scores.shape, dtype=bool)
    ends_group[:, :-1] = starts_group[:, 1:]
    group_first = np.maximum.accumulate(np.where(starts_group, positions, 0), axis=1)
    group_last = np.minimum.accumulate(np.where(ends_group, positions, n - 1)[:, ::-1], axis=1)[:, ::-1]
    return sorted_labels, group_first, group_last


def auroc(y_true, scores):
    """Area under the ROC curve per class (Mann-Whitney U with average ranks, so ties count 1/2).

    Equals ``sklearn.metrics.roc_auc_score(y_true[:, c], scores[:, c])`` for every class ``c``.
    Paper 000 reports it on CelebA's test split. Classes without positives or without negatives
    give NaN (one :class:`DegenerateClassWarning`).

    Returns:
        ``(C,)`` float64, or a float for 1-D input.
    """
    one_dimensional = np.ndim(y_true) == 1
    y_true = _binary_2d("y_true", y_true)
    scores = _scores_2d("scores", scores)
    _check_same_shape("y_true", y_true, "scores", scores)
    n_positive = y_true.sum(axis=0).astype(np.float64)
    n_negative = y_true.shape[0] - n_positive
    sorted_labels, group_first, group_last = _sorted_by_score(y_true, scores, descending=False)
    average_rank = 0.5 * (group_first + group_last) + 1.0
    positive_rank_sum = np.einsum("cn,cn->c", average_rank, sorted_labels.astype(np.float64))
    degenerate = (n_positive == 0) | (n_negative == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        area = (positive_rank_sum - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative)
    area[degenerate] = np.nan
    _warn_degenerate("auroc", degenerate, "have no positives or no negatives")
    return _per_class_result(area, one_dimensional)


def average_precision(y_true, scores):
    """Average precision per class: ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score
    thresholds, highest first (no interpolation), as ``sklearn.metrics.average_precision_score``.

    A class without positives gives NaN (one :class:`DegenerateClassWarning`; scikit-learn returns 0
    there). A class without negatives is well defined (AP = 1), as in scikit-learn.

    Returns:
        ``(C,)`` float64, or a float for 1-D input.
    """
    one_dimensional = np.ndim(y_true) == 1
    y_true = _binary_2d("y_true", y_true)
    scores = _scores_2d("scores", scores)
    _check_same_shape("y_true", y_true, "scores", scores)
    n_positive = y_true.sum(axis=0).astype(np.float64)
    sorted_labels, _, group_last = _sorted_by_score(y_true, scores, descending=True)
    sorted_labels = sorted_labels.astype(np.float64)
    true_positives = np.cumsum(sorted_labels, axis=1)
    precision = true_positives / np.arange(1, sorted_labels.shape[1] + 1)
    # Every positive contributes the precision at the end of its tie group (its threshold).
    precision_at_threshold = np.take_along_axis(precision, group_last, axis=1)
    degenerate = n_positive == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        area = np.einsum("cn,cn->c", sorted_labels, precision_at_threshold) / n_positive
    area[degenerate] = np.nan
    _warn_degenerate("average_precision", degenerate, "have no positives")
    return _per_class_result(area, one_dimensional)


def hamming_loss(y_true, y_pred) -> float:
    """Fraction of wrong labels over all samples and classes (paper 000, Eq. 7); equals
    ``sklearn.metrics.hamming_loss``."""
    y_true = _binary_2d("y_true", y_true)
    y_pred = _binary_2d("y_pred", y_pred)
    _check_same_shape("y_true", y_true, "y_pred", y_pred)
    return float(np.count_nonzero(y_true != y_pred) / y_true.size)


def accuracy(y_true, y_pred):
    """Per-class accuracy ``(TP + TN) / N``; ``1 - accuracy`` is the per-attribute error that
    papers 002 and 003 report. ``(C,)`` float64, or a float for 1-D input."""
    one_dimensional = np.ndim(y_true) == 1
    y_true = _binary_2d("y_true", y_true)
    y_pred = _binary_2d("y_pred", y_pred)
    _check_same_shape("y_true", y_true, "y_pred", y_pred)
    return _per_class_result(np.mean(y_true == y_pred, axis=0), one_dimensional)


def balanced_accuracy(y_true, y_pred):
    """Per-class balanced accuracy ``(TPR + TNR) / 2``, the mean of the recalls of both labels.

    Equals ``sklearn.metrics.balanced_accuracy_score`` on each column that has both labels; a class
    without positives or without negatives gives NaN (one :class:`DegenerateClassWarning`).
    """
    one_dimensional = np.ndim(y_true) == 1
    y_true = _binary_2d("y_true", y_true)
    y_pred = _binary_2d("y_pred", y_pred)
    _check_same_shape("y_true", y_true, "y_pred", y_pred)
    n_positive = y_true.sum(axis=0)
    n_negative = y_true.shape[0] - n_positive
    true_positives = np.count_nonzero(y_true & y_pred, axis=0)
    true_negatives = np.count_nonzero(~y_true & ~y_pred, axis=0)
    degenerate = (n_positive == 0) | (n_negative == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 0.5 * (true_positives / n_positive + true_negatives / n_negative)
    value[degenerate] = np.nan
    _warn_degenerate("balanced_accuracy", degenerate, "have no positives or no negatives")
    return _per_class_result(value, one_dimensional)


def _divide_or_zero(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def precision_recall_f1(y_true, y_pred,
                        average: Literal["macro", "micro", "samples"] | None = None):
    """Precision, recall and F1, as ``sklearn.metrics.precision_recall_fscore_support(...,
    zero_division=0)``.

    A ratio whose denominator is 0 (precision of a class never predicted, recall of a class never
    present, F1 with no true, predicted or shared positives) is **0, not NaN, and silent**:
    these are counting metrics whose conventional value there is 0, unlike AUROC.

    Args:
        average: ``None`` -> per-class ``(C,)`` arrays (floats for 1-D input); ``"macro"`` -> the
            unweighted mean of the per-class values; ``"micro"`` -> from TP/FP/FN summed over all
            classes; ``"samples"`` -> computed per sample over its classes, then averaged.

    Returns:
        ``(precision, recall, f1)``.
    """
    if average not in (None, "macro", "micro", "samples"):
        raise ValueError(f"average must be None, 'macro', 'micro' or 'samples', got {average!r}")
    one_dimensional = np.ndim(y_true) == 1
    y_true = _binary_2d("y_true", y_true)
    y_pred = _binary_2d("y_pred", y_pred)
    _check_same_shape("y_true", y_true, "y_pred", y_pred)
    axis = 1 if average == "samples" else 0
    true_positives = np.count_nonzero(y_true & y_pred, axis=axis)
    predicted = np.count_nonzero(y_pred, axis=axis)
    actual = np.count_nonzero(y_true, axis=axis)
    if average == "micro":
        true_positives, predicted, actual = true_positives.sum(), predicted.sum(), actual.sum()
    precision = _divide_or_zero(true_positives, predicted)
    recall = _divide_or_zero(true_positives, actual)
    f1 = _divide_or_zero(2 * true_positives, predicted + actual)
    if average is None:
        return tuple(_per_class_result(value, one_dimensional) for value in (precision, recall, f1))
    return float(np.mean(precision)), float(np.mean(recall)), float(np.mean(f1))


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts; row = true class, column = predicted class.

    ``labels`` and ``predictions`` are integer arrays of any equal shape (class per sample, or
    label maps ``(N, H, W)`` for face parsing), values in ``0 .. num_classes - 1``.
    """
    labels = np.asarray(labels)
    predictions = np.asarray(predictions)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels has shape {labels.shape} but predictions has shape {predictions.shape}")
    for name, values in (("labels", labels), ("predictions", predictions)):
        if values.size and not np.issubdtype(values.dtype, np.integer):
            raise ValueError(f"{name} must be integer class indices, got dtype {values.dtype}")
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"{name} must lie in 0..{num_classes - 1}, found "
                             f"{int(values.min())}..{int(values.max())}")
    flat_index = labels.reshape(-1).astype(np.int64) * num_classes + predictions.reshape(-1)
    return np.bincount(flat_index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_from_confusion(confusion: np.ndarray) -> np.ndarray:
    """Per-class intersection over union ``TP / (TP + FP + FN)`` from a confusion matrix (rows =
    truth). A class absent from both truth and prediction gives NaN (one
    :class:`DegenerateClassWarning`)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1]:
        raise ValueError(f"confusion must be a square (K, K) matrix, got shape {confusion.shape}")
    intersection = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - intersection
    degenerate = union == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = intersection / union
    iou[degenerate] = np.nan
    _warn_degenerate("iou_from_confusion", degenerate, "appear neither in truth nor in prediction")
    return iou


def mean_iou(confusion: np.ndarray) -> float:
    """Mean of :func:`iou_from_confusion` over the classes where it is defined (NaN if none)."""
    iou = iou_from_confusion(confusion)
    return float(np.mean(iou[~np.isnan(iou)])) if not np.isnan(iou).all() else float("nan")


def search_thresholds(y_true, scores, grid=THRESHOLD_GRID):
    """Per-class decision thresholds minimising the hamming loss (paper 000, §3, "inference").

    For every class, each threshold ``t`` of ``grid`` (default 0.01, 0.02, ..., 1.00 as in the
    paper) predicts ``scores >= t`` and counts the wrong labels; the threshold with the fewest wins.
    **Ties go to the smallest threshold** (``argmin``'s first). One sort per class and a binary
    search for the whole grid, not one pass per threshold. A class with a single label is not
    degenerate here: the threshold that predicts that label everywhere wins.

    Args:
        scores: probabilities (sigmoid outputs) for the paper's grid; any real scores with a
            matching grid.
        grid: 1-D candidate thresholds.

    Returns:
        ``(C,)`` float64 thresholds, or a float for 1-D input. Apply them with
        :func:`apply_thresholds`.
    """
    one_dimensional = np.ndim(y_true) == 1
    y_true = _binary_2d("y_true", y_true)
    scores = _scores_2d("scores", scores)
    _check_same_shape("y_true", y_true, "scores", scores)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        raise ValueError(f"grid must be a non-empty 1-D array of finite thresholds, got shape {grid.shape}")
    scores_by_class = np.ascontiguousarray(scores.T)
    order = np.argsort(scores_by_class, axis=1)
    sorted_scores = np.take_along_axis(scores_by_class, order, axis=1)
    positives_up_to = np.zeros((scores_by_class.shape[0], scores_by_class.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.take_along_axis(np.ascontiguousarray(y_true.T), order, axis=1), axis=1,
              out=positives_up_to[:, 1:])
    n_positive = positives_up_to[:, -1]
    n_samples = scores.shape[0]
    thresholds = np.empty(scores.shape[1])
    for class_index in range(scores.shape[1]):
        below = np.searchsorted(sorted_scores[class_index], grid, side="left")  # predicted negative
        false_negatives = positives_up_to[class_index, below]
        false_positives = (n_samples - below) - (n_positive[class_index] - false_negatives)
        thresholds[class_index] = grid[np.argmin(false_negatives + false_positives)]
    return _per_class_result(thresholds, one_dimensional)


def apply_thresholds(scores, thresholds) -> np.ndarray:
    """Hard labels ``scores >= thresholds`` (per class, broadcast over samples) as uint8, the rule
    :func:`search_thresholds` optimised."""
    return (np.asarray(scores) >= np.asarray(thresholds)).astype(np.uint8)
