"""common.metrics classification/segmentation metrics against scikit-learn (the reference)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from common.metrics import (
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


def _labels_and_scores(rng, n=600, c=12, decimals=None):
    """Imbalanced labels (positive rates 5 %..90 %) and informative scores; optional rounding
    creates heavy ties."""
    rates = np.linspace(0.05, 0.9, c)
    y_true = (rng.random((n, c)) < rates).astype(np.uint8)
    scores = rng.random((n, c)) * 0.7 + 0.3 * y_true
    if decimals is not None:
        scores = np.round(scores, decimals)
    return y_true, scores


def _per_column(function, y_true, values, **kwargs):
    return np.array([function(y_true[:, c], values[:, c], **kwargs) for c in range(y_true.shape[1])])


@pytest.mark.parametrize("decimals", [None, 2, 1, 0])
def test_auroc_and_average_precision_equal_sklearn_including_ties(rng, decimals):
    y_true, scores = _labels_and_scores(rng, decimals=decimals)
    if decimals is not None:
        assert len(np.unique(scores)) <= 10 ** decimals + 2  # heavy ties really present
    np.testing.assert_allclose(auroc(y_true, scores), _per_column(skm.roc_auc_score, y_true, scores),
                               rtol=0, atol=1e-9)
    np.testing.assert_allclose(average_precision(y_true, scores),
                               _per_column(skm.average_precision_score, y_true, scores), rtol=0, atol=1e-9)


def test_ranking_metrics_on_constant_scores_and_1d_input(rng):
    y_true = (rng.random(50) < 0.3).astype(int)
    constant = np.full(50, 0.7)
    assert auroc(y_true, constant) == pytest.approx(0.5, abs=1e-12)
    assert average_precision(y_true, constant) == pytest.approx(y_true.mean(), abs=1e-12)
    scores = rng.normal(size=50)
    value = auroc(y_true, scores)
    assert isinstance(value, float)
    assert value == pytest.approx(skm.roc_auc_score(y_true, scores), abs=1e-12)
    assert auroc(y_true, -scores) == pytest.approx(1 - value, abs=1e-12)


def test_degenerate_classes_give_nan_and_one_warning(rng):
    y_true, scores = _labels_and_scores(rng, n=200, c=5)
    y_true[:, 1] = 0
    y_true[:, 3] = 1
    with pytest.warns(DegenerateClassWarning, match=r"\[1, 3\]") as caught:
        values = auroc(y_true, scores)
    assert len([w for w in caught if issubclass(w.category, DegenerateClassWarning)]) == 1
    assert np.isnan(values[[1, 3]]).all()
    expected = _per_column(skm.roc_auc_score, y_true[:, [0, 2, 4]], scores[:, [0, 2, 4]])
    np.testing.assert_allclose(values[[0, 2, 4]], expected, atol=1e-12)

    with pytest.warns(DegenerateClassWarning, match=r"\[1\]"):
        ap = average_precision(y_true, scores)
    assert np.isnan(ap[1]) and ap[3] == pytest.approx(1.0)  # all-positive AP is defined, as sklearn
    predictions = (scores > 0.5).astype(int)
    with pytest.warns(DegenerateClassWarning):
        balanced = balanced_accuracy(y_true, predictions)
    assert np.isnan(balanced[[1, 3]]).all() and np.isfinite(balanced[[0, 2, 4]]).all()


def test_counting_metrics_equal_sklearn(rng):
    y_true, scores = _labels_and_scores(rng)
    y_pred = (scores > 0.55).astype(np.uint8)
    assert hamming_loss(y_true, y_pred) == pytest.approx(skm.hamming_loss(y_true, y_pred), abs=1e-15)
    np.testing.assert_allclose(accuracy(y_true, y_pred), _per_column(skm.accuracy_score, y_true, y_pred))
    np.testing.assert_allclose(balanced_accuracy(y_true, y_pred),
                               _per_column(skm.balanced_accuracy_score, y_true, y_pred), atol=1e-12)


@pytest.mark.parametrize("average", [None, "macro", "micro", "samples"])
def test_precision_recall_f1_equal_sklearn_with_zero_division_0(rng, average):
    y_true, scores = _labels_and_scores(rng, n=300, c=8)
    y_pred = (scores > 0.6).astype(np.uint8)
    y_pred[:, 2] = 0          # never predicted: precision 0/0
    y_true[:, 5] = 0          # never present: recall 0/0
    y_pred[:, 5] = 0          # ... and never predicted: F1 0/0
    y_true[:7] = 0            # samples with no true and no predicted labels ("samples" average)
    y_pred[:7] = 0
    expected = skm.precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)[:3]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # documented: zero-division cases are silent zeros
        ours = precision_recall_f1(y_true, y_pred, average=average)
    for value, reference in zip(ours, expected):
        np.testing.assert_allclose(value, reference, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="average"):
        precision_recall_f1(y_true, y_pred, average="weighted")


def test_confusion_matrix_and_iou_equal_sklearn(rng):
    labels = rng.integers(0, 6, size=(4, 20, 20))
    predictions = np.where(rng.random(labels.shape) < 0.7, labels, rng.integers(0, 6, size=labels.shape))
    predictions[predictions == 4] = 3  # class 4 never predicted
    confusion = confusion_matrix(labels, predictions, num_classes=7)  # class 6 absent everywhere
    assert confusion.dtype == np.int64 and confusion.shape == (7, 7)
    np.testing.assert_array_equal(confusion, skm.confusion_matrix(labels.ravel(), predictions.ravel(),
                                                                  labels=list(range(7))))
    with pytest.warns(DegenerateClassWarning, match=r"\[6\]"):
        iou = iou_from_confusion(confusion)
    assert np.isnan(iou[6])
    np.testing.assert_allclose(iou[:6], skm.jaccard_score(labels.ravel(), predictions.ravel(),
                                                          labels=list(range(6)), average=None))
    with pytest.warns(DegenerateClassWarning):
        assert mean_iou(confusion) == pytest.approx(np.mean(iou[:6]))
    with pytest.raises(ValueError, match="0..6"):
        confusion_matrix(labels, predictions + 2, num_classes=7)


def _brute_force_thresholds(y_true, scores, grid):
    """Reference: one pass per threshold, first (smallest) minimiser."""
    losses = np.stack([np.mean((scores >= t) != y_true.astype(bool), axis=0) for t in grid])
    return grid[np.argmin(losses, axis=0)]


def test_search_thresholds_equals_grid_search(rng):
    y_true, scores = _labels_and_scores(rng, n=400, c=10)
    probabilities = np.clip(scores, 0, 1)
    thresholds = search_thresholds(y_true, probabilities)
    np.testing.assert_array_equal(thresholds, _brute_force_thresholds(y_true, probabilities, THRESHOLD_GRID))
    assert THRESHOLD_GRID[0] == 0.01 and THRESHOLD_GRID[-1] == 1.0 and len(THRESHOLD_GRID) == 100
    hard = apply_thresholds(probabilities, thresholds)
    fixed = (probabilities >= 0.5).astype(np.uint8)
    assert hamming_loss(y_true, hard) <= hamming_loss(y_true, fixed)
    # Scores on the grid itself, heavy ties: the >= rule and the tie rule must match the reference.
    tied = np.round(probabilities, 1)
    np.testing.assert_array_equal(search_thresholds(y_true, tied), _brute_force_thresholds(y_true, tied, THRESHOLD_GRID))


def test_search_thresholds_tie_goes_to_smallest_threshold():
    y_true = np.array([0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.9])
    # Every threshold in (0.2, 0.6] is perfect: the smallest grid value, 0.21, wins.
    assert search_thresholds(y_true, scores) == pytest.approx(0.21)
    # One class without positives: predicting all-negative wins (score 1.0 never occurs here).
    assert search_thresholds(np.zeros(4, int), scores) == pytest.approx(0.91)


@pytest.mark.parametrize("function", [auroc, average_precision, search_thresholds])
def test_bad_inputs_raise_value_error(function):
    with pytest.raises(ValueError, match="only 0 and 1"):
        function(np.array([0, 1, 2]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="non-finite"):
        function(np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]))
    with pytest.raises(ValueError, match="shape"):
        function(np.zeros((3, 2)), np.zeros((3, 3)))
