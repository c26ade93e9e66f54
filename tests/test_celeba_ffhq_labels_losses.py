"""Le & Lee §2.3: class weights of Eq. (4)-(6) and the weighted BCE of Eq. (1)-(3)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from celeba_ffhq_labels.losses import attribute_loss_weights, weighted_bce_with_logits


def test_loss_weights_match_the_formula_on_a_hand_made_matrix():
    labels = np.array([[1, 0, 1, 0],
                       [1, 1, 0, 0],
                       [1, 0, 0, 1],
                       [1, 1, 0, 0]], dtype=np.uint8)
    # N = 8 positive labels in all (Eq. 5), M = 4 classes, N_t = (4, 2, 1, 1) (Eq. 6).
    expected = [8 / (4 * 4), 8 / (4 * 2), 8 / (4 * 1), 8 / (4 * 1)]
    np.testing.assert_allclose(attribute_loss_weights(labels), expected)


def test_loss_weights_rarer_attribute_weighs_more_and_positive_weighted_mean_is_one():
    rng = np.random.default_rng(0)
    rates = np.linspace(0.02, 0.8, 40)
    labels = (rng.random((500, 40)) < rates).astype(np.uint8)
    weights = attribute_loss_weights(labels)
    assert np.all(np.diff(weights[np.argsort(labels.sum(0))]) <= 1e-12)
    # sum_t w_t N_t = M N / M = N: on average a positive label keeps weight 1.
    assert math.isclose(float((weights * labels.sum(0)).sum()), float(labels.sum()), rel_tol=1e-12)


def test_attribute_without_positives_gets_weight_zero_and_a_warning():
    labels = np.array([[1, 0], [1, 0], [0, 0]], dtype=np.uint8)
    with pytest.warns(RuntimeWarning, match="no positive training labels"):
        weights = attribute_loss_weights(labels)
    np.testing.assert_allclose(weights, [2 / (2 * 2), 0.0])


def test_loss_weights_reject_non_binary_labels():
    with pytest.raises(ValueError, match="0/1"):
        attribute_loss_weights(np.array([[1, -1]]))


def test_weighted_bce_is_the_weighted_mean_of_per_label_cross_entropies():
    logits = torch.tensor([[2.0, -1.0, 0.5], [-0.3, 0.7, -2.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    weights = torch.tensor([0.5, 2.0, 1.5])
    probabilities = torch.sigmoid(logits)
    per_label = -(targets * torch.log(probabilities) + (1 - targets) * torch.log(1 - probabilities))
    expected = (per_label * weights).mean()  # Eq. (2): mean over n x m labels, Eq. (1): weight(c)
    assert torch.allclose(weighted_bce_with_logits(logits, targets, weights), expected, atol=1e-6)
