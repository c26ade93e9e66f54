"""Class-weighted binary cross-entropy (Velamala & Rawat, sections "Problem Statement" and
"Training and Validation": "Used Binary Cross Entropy loss"; "The dataset is a class imbalanced
dataset for which we balanced the dataset using class weights while training the model").

The paper does not give its weighting formula. :data:`CLASS_WEIGHTINGS` offers three, counted on
the training split per attribute (``--class-weighting``):

* ``"balanced"`` (default): scikit-learn's ``compute_class_weight("balanced")``, ``n / (2 n_pos)``
  for positive labels and ``n / (2 n_neg)`` for negative ones, so both values of every attribute
  carry the same total weight;
* ``"positive"``: ``n_neg / n_pos`` on positives and 1 on negatives (PyTorch's ``pos_weight``);
* ``"none"``: plain BCE.

**What weighting does to the decision rule.** Under either weighting the loss-minimising output
for an image whose true probability of the attribute is ``p`` is
``q = (p / pi) / (p / pi + (1 - p) / (1 - pi))`` with ``pi`` the attribute's training prior, so
``q >= 1 - pi`` exactly when ``p >= 0.5``. Thresholding a weighted model at 0.5 therefore calls a
rare attribute present far too often; :func:`prior_corrected_thresholds` gives the ``1 - pi``
rule that undoes the weighting (0.5 for unweighted BCE).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


#: ``--class-weighting`` choices (see the module docstring); the first is the default.
CLASS_WEIGHTINGS = ("balanced", "positive", "none")


def _class_counts(attributes: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    labels = np.asarray(attributes)
    if labels.ndim != 2 or labels.shape[0] == 0:
        raise ValueError(f"attributes must be a non-empty (N, C) array, got shape {labels.shape}")
    n_positive = (labels == 1).sum(axis=0).astype(np.float64)
    return labels.shape[0], n_positive, labels.shape[0] - n_positive


def class_weights(attributes: np.ndarray, scheme: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(positive weights (C,), negative weights (C,)) of ``scheme`` for (N, C) training labels,
    or ``None`` for ``"none"``."""
    if scheme not in CLASS_WEIGHTINGS:
        raise ValueError(f"unknown class weighting {scheme!r}; choose one of {CLASS_WEIGHTINGS}")
    if scheme == "none":
        return None
    if scheme == "balanced":
        return balanced_class_weights(attributes)
    _, n_positive, n_negative = _class_counts(attributes)
    with np.errstate(divide="ignore", invalid="ignore"):
        positive = np.where((n_positive > 0) & (n_negative > 0), n_negative / n_positive, 1.0)
    return positive.astype(np.float32), np.ones_like(positive, dtype=np.float32)


def prior_corrected_thresholds(attributes: np.ndarray, scheme: str) -> np.ndarray:
    """Per-attribute probability thresholds that undo ``scheme``'s weighting (module docstring):
    ``1 - pi`` (training prior ``pi``) for "balanced" and "positive", 0.5 for "none" -> (C,)."""
    n, n_positive, _ = _class_counts(attributes)
    if scheme not in CLASS_WEIGHTINGS:
        raise ValueError(f"unknown class weighting {scheme!r}; choose one of {CLASS_WEIGHTINGS}")
    if scheme == "none":
        return np.full(n_positive.shape, 0.5)
    return 1.0 - n_positive / n


def balanced_class_weights(attributes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) labels in {0, 1} -> (positive weights (C,), negative weights (C,)), float32.

    ``w_pos = N / (2 n_pos)``, ``w_neg = N / (2 n_neg)`` (scikit-learn's "balanced" heuristic per
    attribute). A value absent from the training labels never occurs in the loss there; it gets
    weight 1 so that the weights stay finite.
    """
    n, n_positive, n_negative = _class_counts(attributes)
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
