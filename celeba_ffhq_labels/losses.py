"""Class-weighted binary cross-entropy, Le & Lee §2.3, Eqs. (1)-(6).

Eq. (1) scales the loss of class ``c`` by ``weight(c)``; Eq. (2) averages the per-label losses
over the ``m`` classes and ``n`` examples; Eq. (3) is the binary cross-entropy on ``sigmoid(H)``
(printed with ``1 - log sigma`` where the standard ``log(1 - sigma)`` is meant; we use the
standard form). The weights follow King & Zeng's ``w_t = N / (M N_t)`` (Eq. 4) with, for the
multi-label case, ``N`` the number of positive labels in the training set (Eq. 5), ``N_t`` the
positives of attribute ``t`` (Eq. 6) and ``M = m = 40``.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn.functional as F

from common.attributes import CELEBA_ATTRIBUTES


def attribute_loss_weights(labels: np.ndarray) -> np.ndarray:
    """Eq. (4)-(6): ``w_t = N / (M * N_t)`` from an ``(n, M)`` 0/1 label matrix -> ``(M,)`` float64.

    ``N = sum_i sum_j y_ij`` (all positive labels), ``N_t = sum_i y_it``, ``M`` = the number of
    columns. An attribute without positives has no finite weight (``N_t = 0``); it gets weight 0,
    with a warning naming it, so its column does not enter the loss.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be (n, M), got shape {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0/1")
    positives_per_attribute = labels.sum(axis=0, dtype=np.float64)        # N_t, Eq. (6)
    total_positives = positives_per_attribute.sum()                       # N, Eq. (5)
    num_attributes = labels.shape[1]                                      # M = m
    weights = np.zeros(num_attributes, dtype=np.float64)
    present = positives_per_attribute > 0
    weights[present] = total_positives / (num_attributes * positives_per_attribute[present])
    if not present.all():
        names = CELEBA_ATTRIBUTES if num_attributes == len(CELEBA_ATTRIBUTES) else range(num_attributes)
        absent = [str(names[i]) for i in np.flatnonzero(~present)]
        warnings.warn(f"no positive training labels for {absent}: Eq. (4) is undefined there; "
                      f"weight 0", RuntimeWarning, stacklevel=2)
    return weights


def weighted_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor,
                             weights: torch.Tensor) -> torch.Tensor:
    """Eqs. (1)-(3): ``mean_{i,j} weights[j] * BCE(sigmoid(logits_ij), targets_ij)``.

    The mean runs over all ``n * m`` labels (Eq. 2); ``weights`` (m,) multiplies the loss of
    every label of class ``j``, positive or negative (Eq. 1).
    """
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(),
                                              weight=weights.to(logits.device, torch.float32))
