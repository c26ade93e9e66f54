"""Losses of Kalayeh et al. (CVPR 2017).

* attributes: sigmoid cross entropy (§3.1.1); weighted by the class imbalance for the
  balanced-accuracy fine-tuning of Table 2 (§4.3.1);
* segmentation: softmax cross entropy at every prediction scale, summed with equal weights
  (deep supervision, §3.2).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def downsample_labels(mask: torch.Tensor, size) -> torch.Tensor:
    """Nearest-neighbour resize of an integer label map (B, H, W) to ``size``."""
    size = tuple(int(s) for s in size)
    if tuple(mask.shape[-2:]) == size:
        return mask
    return F.interpolate(mask.unsqueeze(1).float(), size=size, mode="nearest").squeeze(1).long()


def deep_supervision_loss(predictions: dict[str, torch.Tensor], mask: torch.Tensor):
    """Sum of per-scale softmax cross entropies, equal weights (§3.2).

    ``predictions`` maps prediction layer -> logits (B, R, h, w); ``mask`` is (B, H, W) labels.
    Returns (total loss, {layer: loss tensor}) with one entry per scale.
    """
    per_scale = {name: F.cross_entropy(logits.float(), downsample_labels(mask, logits.shape[-2:]))
                 for name, logits in predictions.items()}
    return sum(per_scale.values()), per_scale


def attribute_loss(logits: torch.Tensor, targets: torch.Tensor,
                   class_weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Sigmoid cross entropy over 40 attributes (§3.1.1), averaged over images and attributes.

    ``class_weights = (positive_weight, negative_weight)``, each (40,), weights the two terms
    per attribute (weighted BCE, §4.3.1). Unknown labels (NaN, e.g. an LFW attribute without a
    source column) are left out.
    """
    logits = logits.float()
    known = ~torch.isnan(targets)
    targets = torch.where(known, targets, torch.zeros_like(targets))
    weights = known.float()
    if class_weights is not None:
        positive_weight, negative_weight = class_weights
        weights = weights * (targets * positive_weight + (1 - targets) * negative_weight)
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (losses * weights).sum() / known.sum().clamp_min(1)


def imbalance_class_weights(attributes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-attribute weights that balance positives and negatives: 1/(2p) and 1/(2(1-p)),
    p the training positive rate (clipped to one example), so each class contributes half."""
    attributes = np.asarray(attributes, dtype=np.float64)
    n = max(len(attributes), 1)
    positive_rate = np.clip(attributes.mean(axis=0), 1.0 / n, 1.0 - 1.0 / n)
    positive_weight = torch.tensor(0.5 / positive_rate, dtype=torch.float32)
    negative_weight = torch.tensor(0.5 / (1.0 - positive_rate), dtype=torch.float32)
    return positive_weight, negative_weight
