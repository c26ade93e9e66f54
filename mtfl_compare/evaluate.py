"""Metrics and figures of Canal Garcia et al. §3.1 "Evaluation" and §4.

Accuracy, per-class precision and recall, and the row-normalised confusion matrix (rows = true
class, in the tables' class order: S/NS for smiling, F/M for gender) — Tables 3-5; confusion
matrix heat maps and a grid of misclassified test faces (Fig. 4).

Beyond the paper (``../shared/REAL_DATA_PROTOCOL.md``): every accuracy carries a 95 % Wilson
interval, and two models evaluated on the same test faces are compared by :func:`compare_paired`
(exact McNemar test and a paired-bootstrap interval of the accuracy difference, from
``common.metrics.intervals``), pairing the faces by their row in ``testing.txt``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from common.metrics import confusion_matrix
from common.metrics.intervals import (Interval, McNemarResult, mcnemar_test,
                                      paired_bootstrap_difference, wilson_interval)
from mtfl_compare.data import CLASS_LABELS, CLASS_NAMES, POSITIVE_CLASS


@dataclass
class BinaryEvaluation:
    """Test metrics of one binary attribute, classes in table order (``class_names``)."""

    attribute: str
    class_names: tuple[str, str]
    counts: np.ndarray                 # (2, 2) int64, rows = truth, columns = prediction
    accuracy: float
    precision: tuple[float, float]     # per class; NaN when the class is never predicted
    recall: tuple[float, float]        # per class; NaN when the class is absent
    predictions: np.ndarray = field(repr=False)   # 0/1 labels per test example
    labels: np.ndarray = field(repr=False)
    rows: np.ndarray = field(repr=False)          # each example's row in the test split file

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def correct(self) -> np.ndarray:
        """Per test example: was it classified correctly (bool)."""
        return self.predictions == self.labels

    def accuracy_interval(self, confidence: float = 0.95) -> Interval:
        """Wilson score interval of the accuracy (``ValueError`` on an empty test set)."""
        return wilson_interval(int(self.correct.sum()), self.n, confidence)

    @property
    def row_normalised(self) -> np.ndarray:
        """Confusion matrix as fractions of each true class (NaN rows for absent classes)."""
        totals = self.counts.sum(axis=1, keepdims=True).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(totals > 0, self.counts / np.maximum(totals, 1), np.nan)

    def class_metric(self, metric: str, class_name: str) -> float:
        values = {"precision": self.precision, "recall": self.recall}[metric]
        return values[self.class_names.index(class_name)]

    @property
    def positive_precision(self) -> float:
        return self.class_metric("precision", POSITIVE_CLASS[self.attribute])

    @property
    def positive_recall(self) -> float:
        return self.class_metric("recall", POSITIVE_CLASS[self.attribute])

    def to_json(self) -> dict:
        clean = lambda value: None if math.isnan(value) else float(value)  # noqa: E731
        interval = self.accuracy_interval() if self.n else None
        return {"attribute": self.attribute, "class_names": list(self.class_names),
                "n": self.n, "counts": self.counts.tolist(),
                "accuracy": clean(self.accuracy),
                "accuracy_wilson95": [interval.low, interval.high] if interval else None,
                "precision": [clean(v) for v in self.precision],
                "recall": [clean(v) for v in self.recall]}


def evaluate_binary(attribute: str, labels: np.ndarray, predictions: np.ndarray,
                    rows: np.ndarray) -> BinaryEvaluation:
    """Accuracy, per-class precision / recall and confusion counts in the paper's class order.

    ``labels`` / ``predictions`` are the 0/1 attribute values (``mtfl_compare.data.attribute_labels``);
    ``rows`` the examples' rows in the test split (what :func:`compare_paired` pairs on).
    """
    labels = np.asarray(labels, dtype=np.int64)
    predictions = np.asarray(predictions, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    if not labels.shape == predictions.shape == rows.shape or labels.ndim != 1:
        raise ValueError(f"labels, predictions and rows must be 1-D of one length, got shapes "
                         f"{labels.shape}, {predictions.shape}, {rows.shape}")
    if len(np.unique(rows)) != len(rows):
        raise ValueError("rows repeat: each test example must appear once")
    order = list(CLASS_LABELS[attribute])
    counts = confusion_matrix(labels, predictions, num_classes=2)[np.ix_(order, order)]
    with np.errstate(divide="ignore", invalid="ignore"):
        correct = np.diag(counts).astype(np.float64)
        predicted = counts.sum(axis=0).astype(np.float64)
        actual = counts.sum(axis=1).astype(np.float64)
        precision = np.where(predicted > 0, correct / np.maximum(predicted, 1), np.nan)
        recall = np.where(actual > 0, correct / np.maximum(actual, 1), np.nan)
    accuracy = float(np.mean(labels == predictions)) if len(labels) else math.nan
    return BinaryEvaluation(attribute, CLASS_NAMES[attribute], counts, accuracy,
                            tuple(float(v) for v in precision), tuple(float(v) for v in recall),
                            predictions, labels, rows)


@dataclass(frozen=True)
class PairedComparison:
    """Two models' test outcomes on the faces both were evaluated on."""

    n: int                            # faces in common
    accuracy_a: float
    accuracy_b: float
    difference: Interval              # accuracy A - B, paired bootstrap over the common faces
    mcnemar: McNemarResult

    @property
    def verdict(self) -> str:
        """"A better" / "B better" when the interval of the difference excludes 0, else
        "not distinguishable at this scale" (the protocol's wording)."""
        if not self.difference.excludes(0.0):
            return "not distinguishable at this scale"
        return "A better" if self.difference.estimate > 0 else "B better"


def compare_paired(a: BinaryEvaluation, b: BinaryEvaluation, n_resamples: int = 2000,
                   seed: int = 0) -> PairedComparison:
    """Compare two evaluations of one attribute on the test faces they share (matched by row):
    exact McNemar test of the paired correct / incorrect outcomes and a paired-bootstrap 95 %
    interval of the accuracy difference A - B. ``ValueError`` for different attributes or
    fewer than 2 common faces."""
    if a.attribute != b.attribute:
        raise ValueError(f"cannot pair {a.attribute} with {b.attribute}")
    common, in_a, in_b = np.intersect1d(a.rows, b.rows, assume_unique=True, return_indices=True)
    if len(common) < 2:
        raise ValueError(f"the two evaluations share {len(common)} test faces; pairing needs 2 or more")
    if not np.array_equal(a.labels[in_a], b.labels[in_b]):
        raise ValueError("the two evaluations disagree on the labels of the same test rows")
    correct_a = a.correct[in_a].astype(np.float64)
    correct_b = b.correct[in_b].astype(np.float64)
    difference = paired_bootstrap_difference(lambda idx: correct_a[idx].mean(),
                                             lambda idx: correct_b[idx].mean(), len(common),
                                             n_resamples=n_resamples, seed=seed)
    return PairedComparison(len(common), float(correct_a.mean()), float(correct_b.mean()), difference,
                            mcnemar_test(correct_a.astype(bool), correct_b.astype(bool)))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrices(panels: Sequence[tuple[str, BinaryEvaluation | None]], path: Path,
                            title: str, columns: int = 2) -> Path:
    """Row-normalised confusion matrices as heat maps, one panel per (caption, evaluation)."""
    plt = _pyplot()
    rows = max(1, math.ceil(len(panels) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for axis in axes.flat[len(panels):]:
        axis.axis("off")
    for axis, (caption, evaluation) in zip(axes.flat, panels):
        if evaluation is None:
            axis.axis("off")
            axis.set_title(f"{caption}\n(not run)", fontsize=8)
            continue
        matrix = evaluation.row_normalised
        axis.imshow(np.nan_to_num(matrix), vmin=0.0, vmax=1.0, cmap="Blues")
        for (i, j), value in np.ndenumerate(matrix):
            text = "-" if math.isnan(value) else f"{100 * value:.0f}%\n({evaluation.counts[i, j]})"
            axis.text(j, i, text, ha="center", va="center", fontsize=8,
                      color="white" if not math.isnan(value) and value > 0.6 else "black")
        names = evaluation.class_names
        axis.set_xticks([0, 1], names)
        axis.set_yticks([0, 1], names)
        axis.set_xlabel("predicted", fontsize=8)
        axis.set_ylabel("true", fontsize=8)
        axis.set_title(f"{caption}\nacc {100 * evaluation.accuracy:.1f}%", fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_misclassified(images: np.ndarray, evaluation: BinaryEvaluation, path: Path, title: str,
                       max_images: int = 8) -> tuple[Path, int]:
    """Fig. 4: a grid of misclassified test faces with their true and predicted class.

    ``images`` are the test faces (uint8, N x H x W x 3) in the order of ``evaluation``.
    Returns the path and the number of faces shown (0: an empty panel says so).
    """
    plt = _pyplot()
    wrong = np.flatnonzero(evaluation.labels != evaluation.predictions)[:max_images]
    columns = max(1, min(4, len(wrong)))
    rows = max(1, math.ceil(len(wrong) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.4 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    label_name = {label: name for label, name in zip(CLASS_LABELS[evaluation.attribute],
                                                     evaluation.class_names)}
    if len(wrong) == 0:
        axes[0, 0].text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
    for axis, index in zip(axes.flat, wrong):
        axis.imshow(images[index])
        axis.set_title(f"true {label_name[int(evaluation.labels[index])]}, "
                       f"predicted {label_name[int(evaluation.predictions[index])]}", fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path, len(wrong)
