"""Class-weighted binary cross-entropy (Velamala & Rawat, sections "Problem Statement" and
"Training and Validation": "Used Binary Cross Entropy loss"; "The dataset is a class imbalanced
dataset for which we balanced the dataset using class weights while training the model").

The paper does not give its weighting formula. We use scikit-learn's ``"balanced"`` class weights
(``compute_class_weight``) per attribute: ``n / (2 n_pos)`` for positive labels and
``n / (2 n_neg)`` for negative ones, counted on the training split, so that both values of every
attribute carry the same total weight.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def balanced_class_weights(attributes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) labels in {0, 1} -> (positive weights (C,), negative weights (C,)), float32.

    ``w_pos = N / (2 n_pos)``, ``w_neg = N / (2 n_neg)`` (scikit-learn's "balanced" heuristic per
    attribute). A value absent from the training labels never occurs in the loss there; it gets
    weight 1 so that the weights stay finite.
    """
    labels = np.asarray(attributes)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"attributes must be a non-empty (N, C) array, got shape {labels.shape}")
    n = labels.shape[0]
    n_positive = (labels == 1).sum(axis=0).astype(np.float64)
    n_negative = n - n_positive
    with np.errstate(divide="ignore"):
        positive = np.where(n_positive > 0, n / (2.0 * n_positive), 1.0)
        negative = np.where(n_negative > 0, n / (2.0 * n_negative), 1.0)
    return positive.astype(np.float32), negative.astype(np.float32)


class WeightedBCELoss(nn.Module):
    """Mean over samples and attributes of ``w * BCE(sigmoid(logit), y)`` with ``w = w_pos`` where
    ``y = 1`` and ``w_neg`` where ``y = 0``; unweighted when no weights are given."""

    def __init__(self, positive_weights: np.ndarray | None = None,
                 negative_weights: np.ndarray | None = None):
        super().__init__()
        if (positive_weights is None) != (negative_weights is None):
            raise ValueError("give both positive and negative weights, or neither")
        if positive_weights is None:
            self.register_buffer("positive_weights", None)
            self.register_buffer("negative_weights", None)
        else:
            self.register_buffer("positive_weights", torch.as_tensor(positive_weights, dtype=torch.float32))
            self.register_buffer("negative_weights", torch.as_tensor(negative_weights, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        if self.positive_weights is None:
            return F.binary_cross_entropy_with_logits(logits, targets)
        weights = (targets * self.positive_weights.to(logits.device)
                   + (1.0 - targets) * self.negative_weights.to(logits.device))
        return F.binary_cross_entropy_with_logits(logits, targets, weight=weights)
