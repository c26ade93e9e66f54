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
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit

from common.metrics import accuracy as per_attribute_accuracy
from common.metrics import precision_recall_f1
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


def per_attribute_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-attribute ``accuracy``, ``precision``, ``recall``, ``f1`` and ``positive_rate`` (C,).
    Precision/recall/F1 of an attribute without predicted or true positives are 0, as in
    scikit-learn with ``zero_division=0``."""
    precision, recall, f1 = precision_recall_f1(y_true, y_pred, average=None)
    return {"accuracy": np.asarray(per_attribute_accuracy(y_true, y_pred), dtype=np.float64),
            "precision": np.asarray(precision, dtype=np.float64),
            "recall": np.asarray(recall, dtype=np.float64),
            "f1": np.asarray(f1, dtype=np.float64),
            "positive_rate": np.asarray(y_true, dtype=np.float64).mean(axis=0)}


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
