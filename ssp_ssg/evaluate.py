"""Evaluation of Kalayeh et al. (CVPR 2017): the measures of Tables 2-4 and Figs. 4-5.

* Table 2 / 3: classification error (threshold 0.5 on the sigmoid), average precision of the
  scores (§4.2), balanced accuracy (§4.3.1, after weighted-BCE fine-tuning); each averaged
  over the 40 attributes.
* Table 4: per-class intersection over union of the face parser and its mean (§4.4).
* Fig. 4: SSP's localisation weights averaged over test images (40 attributes x 7 regions).
* Fig. 5: the mean of the 50 most active channels of the last conv layer.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from common.metrics import (DegenerateClassWarning, accuracy, average_precision,
                            balanced_accuracy, confusion_matrix, iou_from_confusion)
from common.train import predict
from ssp_ssg.train import attribute_logits


@dataclass(frozen=True)
class AttributeScores:
    """Means over attributes, in percent, and the per-attribute values behind them."""

    error: float
    average_precision: float
    balanced_accuracy: float
    per_attribute_error: np.ndarray
    per_attribute_ap: np.ndarray              # NaN where the test split has no positive
    per_attribute_balanced_accuracy: np.ndarray
    n_attributes_with_positives: int
    n_attributes_with_both: int


def attribute_scores(labels: np.ndarray, probabilities: np.ndarray,
                     threshold: float = 0.5) -> AttributeScores:
    """Error %, AP % and balanced accuracy % of ``probabilities`` (N, 40) against 0/1 labels.

    Attributes without positives (AP) or without one of the two classes (balanced accuracy)
    in the test split are left out of those means; the counts say how many remain.
    """
    labels = np.asarray(labels).astype(np.uint8)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    predictions = (probabilities >= threshold).astype(np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateClassWarning)
        per_error = 1.0 - accuracy(labels, predictions)
        per_ap = average_precision(labels, probabilities)
        per_balanced = balanced_accuracy(labels, predictions)

    def mean_percent(values):
        finite = values[np.isfinite(values)]
        return float(100.0 * finite.mean()) if len(finite) else float("nan")

    return AttributeScores(
        error=mean_percent(per_error), average_precision=mean_percent(per_ap),
        balanced_accuracy=mean_percent(per_balanced), per_attribute_error=per_error,
        per_attribute_ap=per_ap, per_attribute_balanced_accuracy=per_balanced,
        n_attributes_with_positives=int(np.isfinite(per_ap).sum()),
        n_attributes_with_both=int(np.isfinite(per_balanced).sum()))


def majority_probabilities(train_labels: np.ndarray, n: int) -> np.ndarray:
    """Every test image gets each attribute's training positive rate: thresholded at 0.5 it
    predicts the majority class (the error floor every model must beat)."""
    rates = np.asarray(train_labels, dtype=np.float64).mean(axis=0)
    return np.broadcast_to(rates, (n, len(rates))).copy()


def predict_attribute_probabilities(model: nn.Module, dataset: Dataset, batch_size: int,
                                    device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid scores (N, 40) and labels (N, 40) over ``dataset`` in order."""
    outputs = predict(model, dataset, batch_size=batch_size, device=device,
                      output_fn=lambda m, batch: torch.sigmoid(attribute_logits(m, batch).float()))
    return outputs["outputs"], outputs["attributes"]


def per_image_confusions(net: nn.Module, dataset: Dataset, num_classes: int, batch_size: int,
                         device: torch.device, layer: str = "deconv13") -> np.ndarray:
    """(N, K, K) confusion of each image's full-resolution prediction (rows = ground truth), in
    dataset order: their sum is the test set's confusion (Table 4), and resampling images sums
    a resample's (the bootstrap of the mean IoU)."""

    def confusions(model, batch):
        predicted = model(batch["image"], up_to=layer)[layer].argmax(1)
        cells = (batch["mask"] * num_classes + predicted).flatten(1)
        counts = torch.zeros(len(cells), num_classes * num_classes, device=cells.device)
        return counts.scatter_add_(1, cells, torch.ones_like(cells, dtype=counts.dtype))

    outputs = predict(net, dataset, batch_size=batch_size, device=device, output_fn=confusions)
    return np.rint(outputs["outputs"]).astype(np.int64).reshape(-1, num_classes, num_classes)


def segmentation_confusion(net: nn.Module, dataset: Dataset, num_classes: int,
                           batch_size: int, device: torch.device,
                           layer: str = "deconv13") -> np.ndarray:
    """(K, K) confusion of the full-resolution prediction over ``dataset`` (rows = ground truth)."""
    return per_image_confusions(net, dataset, num_classes, batch_size, device, layer).sum(axis=0)


def accuracy_maximising_thresholds(labels: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Per attribute, the decision threshold (present when probability >= threshold) with the
    highest accuracy on these (validation) images; among equally accurate ones the closest to
    0.5. Candidates: 0, 1 and the midpoints between consecutive distinct probabilities.
    ``labels`` (N, A) 0/1, ``probabilities`` (N, A) -> (A,) float64."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    thresholds = np.empty(labels.shape[1])
    for column in range(labels.shape[1]):
        values, inverse = np.unique(probabilities[:, column], return_inverse=True)
        positives = np.bincount(inverse, weights=labels[:, column], minlength=len(values))
        negatives = np.bincount(inverse, minlength=len(values)) - positives
        candidates = np.concatenate([[0.0], (values[1:] + values[:-1]) / 2, [1.0]])
        # threshold candidates[k] makes values[k:] positive (candidates[-1] = 1.0 only the
        # values equal to 1, which the last group is when a score saturates)
        below = np.concatenate([[0.0], np.cumsum(negatives)])           # negatives under it
        above = np.concatenate([np.cumsum(positives[::-1])[::-1], [0.0]])  # positives over it
        correct = below + above
        if values[-1] >= 1.0:
            correct[-1] = below[-1] - negatives[-1] + positives[-1]
        best = np.flatnonzero(correct == correct.max())
        thresholds[column] = candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]]
    return thresholds


def intersection_over_union(confusion: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-class IoU in percent and their mean over classes present in truth or prediction."""
    iou = 100.0 * iou_from_confusion(confusion)
    return iou, float(np.nanmean(iou))


def mean_localisation_weights(ssp_model: nn.Module, dataset: Dataset, batch_size: int,
                              device: torch.device) -> np.ndarray:
    """SSP's softmax-over-regions weights averaged over ``dataset``: (regions, attributes)."""
    outputs = predict(ssp_model, dataset, batch_size=batch_size, device=device,
                      output_fn=lambda m, batch: m.forward_with_localisation(batch["image"])[1])
    return outputs["outputs"].mean(axis=0)


@torch.no_grad()
def top_channel_activation(model: nn.Module, images: torch.Tensor,
                           top_k: int = 50) -> np.ndarray:
    """Per image, the mean of the ``top_k`` channels of the last conv layer with the largest
    mean activation (Fig. 5), each map scaled to [0, 1]: (N, h, w)."""
    model.eval()
    features = model.feature_map(images).float()
    strength = features.mean(dim=(-2, -1))
    top = strength.topk(min(top_k, features.shape[1]), dim=1).indices
    selected = torch.gather(features, 1, top[:, :, None, None].expand(-1, -1, *features.shape[-2:]))
    maps = selected.mean(dim=1)
    low = maps.amin(dim=(-2, -1), keepdim=True)
    high = maps.amax(dim=(-2, -1), keepdim=True)
    return ((maps - low) / (high - low).clamp_min(1e-12)).cpu().numpy()


def region_masks_from_probabilities(net: nn.Module, images: torch.Tensor) -> np.ndarray:
    """Hard 7-class prediction of a segmentation net (Deconv13) for a few images."""
    net.eval()
    with torch.no_grad():
        return net(images)["deconv13"].argmax(1).cpu().numpy()
