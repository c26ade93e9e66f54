"""celeba_resnet_densenet: the paper's metrics, loss weights and decision rules against scikit-learn / scipy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, hamming_loss, precision_recall_fscore_support
from sklearn.utils.class_weight import compute_class_weight

from celeba_resnet_densenet.evaluate import (AVERAGES, PAPER_AVERAGE, label_accuracy, metric_intervals,
                                             per_attribute_metrics, resampled_statistics, summary_metrics,
                                             evaluation_metrics)
from celeba_resnet_densenet.losses import (WeightedBCELoss, balanced_class_weights, class_weights,
                                           prior_corrected_thresholds)


@pytest.fixture
def fixed_labels() -> tuple[np.ndarray, np.ndarray]:
    """30 images x 40 attributes with the awkward cases: an image with no predicted positives, an
    image with no true positives, an attribute never present, an attribute never predicted."""
    generator = np.random.default_rng(3)
    y_true = (generator.random((30, 40)) < 0.25).astype(np.uint8)
    y_pred = np.where(generator.random((30, 40)) < 0.8, y_true, 1 - y_true).astype(np.uint8)
    y_pred[0] = 0
    y_true[1] = 0
    y_true[:, 4] = 0
    y_pred[:, 7] = 0
    return y_true, y_pred


@pytest.mark.parametrize("average", AVERAGES)
def test_averaged_precision_recall_f1_match_sklearn(fixed_labels, average):
    y_true, y_pred = fixed_labels
    ours = summary_metrics(y_true, y_pred, average)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average=average, zero_division=0)
    assert ours["precision"] == pytest.approx(precision, abs=1e-12)
    assert ours["recall"] == pytest.approx(recall, abs=1e-12)
    assert ours["f1"] == pytest.approx(f1, abs=1e-12)


def test_accuracy_is_label_accuracy(fixed_labels):
    y_true, y_pred = fixed_labels
    expected = accuracy_score(y_true.ravel(), y_pred.ravel())
    assert label_accuracy(y_true, y_pred) == pytest.approx(expected, abs=1e-12)
    assert label_accuracy(y_true, y_pred) == pytest.approx(1.0 - hamming_loss(y_true, y_pred), abs=1e-12)
    # exact-match (subset) accuracy is a different, much smaller number
    assert accuracy_score(y_true, y_pred) < 0.2 < label_accuracy(y_true, y_pred)


def test_per_attribute_metrics_match_sklearn(fixed_labels):
    y_true, y_pred = fixed_labels
    ours = per_attribute_metrics(y_true, y_pred)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average=None, zero_division=0)
    np.testing.assert_allclose(ours["precision"], precision, atol=1e-12)
    np.testing.assert_allclose(ours["recall"], recall, atol=1e-12)
    np.testing.assert_allclose(ours["f1"], f1, atol=1e-12)
    np.testing.assert_allclose(ours["accuracy"], [accuracy_score(y_true[:, c], y_pred[:, c]) for c in range(40)])
    assert ours["accuracy"].mean() == pytest.approx(label_accuracy(y_true, y_pred))


def test_only_micro_f1_is_the_harmonic_mean(fixed_labels):
    """The argument for the paper's averaging: its F is below the harmonic mean of its P and R."""
    y_true, y_pred = fixed_labels
    micro = summary_metrics(y_true, y_pred, "micro")
    harmonic = 2 * micro["precision"] * micro["recall"] / (micro["precision"] + micro["recall"])
    assert micro["f1"] == pytest.approx(harmonic, abs=1e-12)
    samples = summary_metrics(y_true, y_pred, PAPER_AVERAGE)
    assert samples["f1"] < 2 * samples["precision"] * samples["recall"] / (samples["precision"] + samples["recall"])


def test_balanced_class_weights_match_sklearn(fixed_labels):
    y_true, _ = fixed_labels
    positive, negative = balanced_class_weights(y_true)
    for attribute in range(40):
        column = y_true[:, attribute]
        if column.min() == column.max():  # sklearn needs both classes present
            assert positive[attribute] == 1.0 or negative[attribute] == 1.0
            continue
        expected_negative, expected_positive = compute_class_weight("balanced", classes=np.array([0, 1]), y=column)
        assert positive[attribute] == pytest.approx(expected_positive, rel=1e-6)
        assert negative[attribute] == pytest.approx(expected_negative, rel=1e-6)
    assert np.isfinite(positive).all() and np.isfinite(negative).all()


def test_weighted_bce_weights_each_label_by_its_class(fixed_labels):
    y_true, _ = fixed_labels
    positive, negative = balanced_class_weights(y_true)
    logits = torch.from_numpy(np.random.default_rng(0).normal(size=y_true.shape).astype(np.float32))
    targets = torch.from_numpy(y_true.astype(np.float32))
    loss = WeightedBCELoss(positive, negative)(logits, targets)
    probabilities = 1 / (1 + np.exp(-logits.numpy().astype(np.float64)))
    per_label = -(y_true * np.log(probabilities) + (1 - y_true) * np.log(1 - probabilities))
    weights = np.where(y_true == 1, positive, negative)
    assert float(loss) == pytest.approx(float(np.mean(weights * per_label)), rel=1e-5)
    unweighted = WeightedBCELoss()(logits, targets)
    assert float(unweighted) == pytest.approx(float(per_label.mean()), rel=1e-5)


def test_positive_and_no_class_weighting(fixed_labels):
    y_true, _ = fixed_labels
    present_both = (y_true.sum(axis=0) > 0) & (y_true.sum(axis=0) < len(y_true))
    positive, negative = class_weights(y_true, "positive")
    n_positive = y_true.sum(axis=0)[present_both]
    assert positive[present_both] == pytest.approx((len(y_true) - n_positive) / n_positive)
    assert np.all(negative == 1.0) and np.all(positive[~present_both] == 1.0)
    assert class_weights(y_true, "none") is None
    assert [w.tolist() for w in class_weights(y_true, "balanced")] == [w.tolist() for w in
                                                                      balanced_class_weights(y_true)]
    with pytest.raises(ValueError, match="unknown class weighting"):
        class_weights(y_true, "inverse")


@pytest.mark.parametrize("scheme", ["balanced", "positive"])
@pytest.mark.parametrize("prior", [0.05, 0.2, 0.6])
def test_prior_corrected_threshold_is_where_the_weighted_optimum_crosses_one_half(scheme, prior):
    """losses.py: under class weighting the loss-minimising output for a true probability p is
    >= 1 - prior exactly when p >= 0.5 -- found here by minimising the expected weighted BCE."""
    from scipy.optimize import minimize_scalar

    labels = np.zeros((1000, 1), dtype=np.uint8)
    labels[:int(prior * 1000)] = 1
    positive, negative = class_weights(labels, scheme)
    threshold = prior_corrected_thresholds(labels, scheme)[0]
    assert threshold == pytest.approx(1 - prior)

    def optimum(p: float) -> float:
        def expected_loss(q: float) -> float:
            return -(p * positive[0] * np.log(q) + (1 - p) * negative[0] * np.log(1 - q))
        return minimize_scalar(expected_loss, bounds=(1e-9, 1 - 1e-9), method="bounded",
                               options={"xatol": 1e-10}).x

    assert optimum(0.5) == pytest.approx(threshold, abs=1e-6)
    assert optimum(0.45) < threshold < optimum(0.55)
    assert prior_corrected_thresholds(labels, "none")[0] == 0.5


def test_bootstrap_statistics_reproduce_the_full_metrics(fixed_labels):
    """The per-image decomposition the intervals resample gives back the metrics on all images,
    and the ranking metrics equal scikit-learn's."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true, y_pred = fixed_labels
    scores = np.random.default_rng(0).random(y_true.shape)
    statistics = resampled_statistics(y_true, scores, y_pred)
    everything = np.arange(len(y_true))
    full = evaluation_metrics(y_true, scores, y_pred)
    assert {name: statistic(everything) for name, statistic in statistics.items()} == pytest.approx(full)
    both = [c for c in range(y_true.shape[1]) if 0 < y_true[:, c].sum() < len(y_true)]
    assert full["mean_auroc"] == pytest.approx(np.mean([roc_auc_score(y_true[:, c], scores[:, c]) for c in both]))
    assert full["mean_ap"] == pytest.approx(np.mean([average_precision_score(y_true[:, c], scores[:, c])
                                                     for c in both]))
    rows = np.array([3, 3, 7, 0, 12, 12, 12])  # a resample with repeats = the metrics of that multiset
    assert statistics["f1"](rows) == pytest.approx(evaluation_metrics(y_true[rows], None, y_pred[rows])["f1"])
    intervals = metric_intervals(y_true, scores, y_pred, n_resamples=200)
    assert {name: interval.estimate for name, interval in intervals.items()} == pytest.approx(full)
    assert all(interval.low < interval.high for interval in intervals.values())
