"""celeba_resnet_densenet: the paper's metrics and loss weights against scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, hamming_loss, precision_recall_fscore_support
from sklearn.utils.class_weight import compute_class_weight

from celeba_resnet_densenet.evaluate import (AVERAGES, PAPER_AVERAGE, label_accuracy, per_attribute_metrics,
                                             summary_metrics)
from celeba_resnet_densenet.losses import WeightedBCELoss, balanced_class_weights


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
