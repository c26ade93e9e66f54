"""Test metrics as Velamala & Rawat report them (section "Testing"): accuracy, precision, recall,
F-score, plus the per-attribute breakdown the paper does not print.

Which averaging the paper used is not stated. What the numbers allow us to infer:

* accuracy is the fraction of correct (image, attribute) decisions — the training log's
  ``accuracy_score=0.887`` after one epoch cannot be exact-match (subset) accuracy over 40
  attributes, which is a few percent for such models;
* precision / recall / F are **not** micro-averaged: a micro F is the harmonic mean of micro
  precision and recall, but the paper's F (ResNet50 0.7863, DenseNet121 0.77685) is below the
  harmonic mean of its P and R (0.7937, 0.7909), as happens when per-item F1 values are averaged;
* with ~9 of 40 attributes present per image, per-image ("samples") averaging gives values of the
  paper's size (P ~0.78 R ~0.81), whereas macro averaging over attributes is dragged down by rare,
  hard attributes (Blurry, Narrow_Eyes, Oval_Face ...).

We therefore report scikit-learn's ``average="samples"`` (``zero_division=0``) as the paper's
columns, and macro and micro in a separate table so the choice can be checked.

Beyond the paper (``REAL_DATA_PROTOCOL.md``): the decision rule is chosen on validation
(:func:`decision_thresholds`), the threshold-free mean AUROC and mAP stand beside every
thresholded metric, and every test number carries a 95 % bootstrap interval over test images
(:func:`metric_intervals`, :func:`paired_difference`).
"""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import torch
from scipy.special import expit

from celeba_resnet_densenet.losses import prior_corrected_thresholds
from common.metrics import DegenerateClassWarning, auroc, average_precision, precision_recall_f1, search_thresholds
from common.metrics import accuracy as per_attribute_accuracy
from common.metrics.intervals import Interval, bootstrap_interval, paired_bootstrap_difference
from common.train import predict as predict_outputs

#: The averaging used for the paper's precision / recall / F columns (see module docstring).
PAPER_AVERAGE = "samples"
AVERAGES = ("samples", "macro", "micro")


def binarize(probabilities: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Attribute present where ``probability >= threshold`` -> uint8."""
    return (np.asarray(probabilities) >= threshold).astype(np.uint8)


def label_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of correct (image, attribute) decisions = mean of the per-attribute accuracies
    = 1 - Hamming loss (the paper's "Accuracy")."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    return float(np.mean(y_true == y_pred))


def summary_metrics(y_true: np.ndarray, y_pred: np.ndarray, average: str = PAPER_AVERAGE) -> dict[str, float]:
    """``{"accuracy", "precision", "recall", "f1"}`` with P/R/F1 averaged as ``average``."""
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, average=average)
    return {"accuracy": label_accuracy(y_true, y_pred), "precision": float(precision),
            "recall": float(recall), "f1": float(f1)}


def per_attribute_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                          probabilities: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-attribute ``accuracy``, ``precision``, ``recall``, ``f1``, ``positive_rate`` (C,) and,
    with ``probabilities``, ``auroc`` (NaN where a class is missing). Precision/recall/F1 of an
    attribute without predicted or true positives are 0, as in scikit-learn with ``zero_division=0``."""
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, average=None)
    metrics = {"accuracy": np.asarray(per_attribute_accuracy(y_true, y_pred), dtype=np.float64),
               "precision": np.asarray(precision, dtype=np.float64),
               "recall": np.asarray(recall, dtype=np.float64),
               "f1": np.asarray(f1, dtype=np.float64),
               "positive_rate": np.asarray(y_true, dtype=np.float64).mean(axis=0)}
    if probabilities is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DegenerateClassWarning)
            metrics["auroc"] = np.asarray(auroc(y_true, probabilities), dtype=np.float64)
    return metrics


def _logit_outputs(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    return model(batch["image"]).float()


def predict_logits(model: torch.nn.Module, dataset, batch_size: int = 128,
                   device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Attribute logits and true labels over ``dataset`` (in order) -> ((N, 40) float32, (N, 40) uint8)."""
    if device is None:
        device = next(model.parameters()).device
    outputs = predict_outputs(model, dataset, batch_size=batch_size, device=device,
                              output_fn=_logit_outputs)
    return outputs["outputs"], outputs["attributes"].astype(np.uint8)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits (float64, no overflow for large |logit|)."""
    return expit(np.asarray(logits, dtype=np.float64))


# --------------------------------------------------------------------------- decision rules and intervals

#: The decision rules reported on test, each a per-attribute probability threshold (module
#: ``losses`` explains the prior-corrected one). "validation" is the headline rule.
DECISION_RULES: dict[str, str] = {
    "validation": "per-attribute thresholds chosen on validation (fewest wrong labels)",
    "prior": "prior-corrected: 1 - training prior under class weighting, 0.5 without",
    "fixed": "0.5 for every attribute (the paper's rule, as far as it is stated)",
}
HEADLINE_RULE = "validation"


def decision_thresholds(val_labels: np.ndarray, val_probabilities: np.ndarray, train_labels: np.ndarray,
                        class_weighting: str, fixed: float = 0.5) -> dict[str, np.ndarray]:
    """``{rule: (C,) thresholds}`` for every rule of :data:`DECISION_RULES`; the validation rule
    searches 0.01 ... 1.00 per attribute for the fewest wrong validation labels
    (``common.metrics.search_thresholds``, ties to the smaller threshold). Nothing here sees test."""
    n_attributes = np.asarray(train_labels).shape[1]
    return {"validation": search_thresholds(val_labels, val_probabilities),
            "prior": prior_corrected_thresholds(train_labels, class_weighting),
            "fixed": np.full(n_attributes, float(fixed))}


def _mean_auroc(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateClassWarning)
        return float(np.nanmean(auroc(y_true, probabilities)))


def _mean_ap(y_true: np.ndarray, probabilities: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateClassWarning)
        return float(np.nanmean(average_precision(y_true, probabilities)))


def ranking_metrics(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Threshold-free ``{"mean_auroc", "mean_ap"}``: AUROC and average precision per attribute,
    averaged over the attributes where they are defined (both classes present)."""
    return {"mean_auroc": _mean_auroc(y_true, probabilities), "mean_ap": _mean_ap(y_true, probabilities)}


#: Metrics of :func:`evaluation_metrics` and their titles in tables.
TEST_METRICS: dict[str, str] = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall",
                                "f1": "F-score", "mean_auroc": "Mean AUROC", "mean_ap": "mAP"}


def evaluation_metrics(y_true: np.ndarray, probabilities: np.ndarray | None, y_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and per-image P / R / F of ``y_pred`` plus, when ``probabilities`` are given, the
    ranking metrics (a rule without scores, like the majority rule, has none)."""
    metrics = summary_metrics(y_true, y_pred, PAPER_AVERAGE)
    if probabilities is not None:
        metrics.update(ranking_metrics(y_true, probabilities))
    return metrics


def resampled_statistics(y_true: np.ndarray, probabilities: np.ndarray | None,
                         y_pred: np.ndarray) -> dict[str, Callable[[np.ndarray], float]]:
    """``{metric: statistic(rows)}``: each :func:`evaluation_metrics` value on the test images ``rows``
    (drawn with replacement). Accuracy and the per-image ("samples") P / R / F are means of per-image
    values, computed once (per-class metrics of the transposed labels are per-image metrics, with the
    same zero_division=0 convention); the ranking metrics are recomputed on each resample."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    precision, recall, f1 = precision_recall_f1(y_true.T, y_pred.T, average=None)
    per_image = {"accuracy": (y_true == y_pred).mean(axis=1), "precision": np.asarray(precision),
                 "recall": np.asarray(recall), "f1": np.asarray(f1)}
    statistics: dict[str, Callable[[np.ndarray], float]] = {
        name: (lambda rows, values=values: float(values[rows].mean())) for name, values in per_image.items()}
    if probabilities is not None:
        statistics["mean_auroc"] = lambda rows: _mean_auroc(y_true[rows], probabilities[rows])
        statistics["mean_ap"] = lambda rows: _mean_ap(y_true[rows], probabilities[rows])
    return statistics


def metric_intervals(y_true: np.ndarray, probabilities: np.ndarray | None, y_pred: np.ndarray,
                     n_resamples: int = 2000, seed: int = 0) -> dict[str, Interval]:
    """95 % percentile-bootstrap interval of every :func:`evaluation_metrics` value, resampling test
    images (an image's 40 decisions stay together)."""
    return {name: bootstrap_interval(statistic, len(y_true), n_resamples=n_resamples, seed=seed)
            for name, statistic in resampled_statistics(y_true, probabilities, y_pred).items()}


def paired_difference(y_true: np.ndarray, a: tuple[np.ndarray | None, np.ndarray],
                      b: tuple[np.ndarray | None, np.ndarray], metric: str, n_resamples: int = 2000,
                      seed: int = 0) -> Interval:
    """Interval of metric(A) - metric(B) on the same test images, resampled together (paired
    bootstrap); ``a`` and ``b`` are ``(probabilities or None, predictions)``."""
    return paired_bootstrap_difference(resampled_statistics(y_true, *a)[metric],
                                       resampled_statistics(y_true, *b)[metric], len(y_true),
                                       n_resamples=n_resamples, seed=seed)
