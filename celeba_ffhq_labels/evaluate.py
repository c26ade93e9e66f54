"""Evaluation, Le & Lee §3.1 "Evaluation metrics" and §3.2 "Result".

* per-class thresholds by the paper's grid search: 0.01 to 1.00 in steps of 0.01, for each
  attribute the one with the lowest hamming loss (``common.metrics.search_thresholds``), searched
  on the **validation** set (the paper searches on its test set);
* on the **test** set: AUROC per attribute and its mean (Fig. 3; the paper's mean is 0.7611),
  hamming loss (Eq. 7) at 0.5, at the validation thresholds and of the all-negative baseline,
  per-attribute accuracy with the validation thresholds;
* 95 % percentile-bootstrap intervals of those test numbers over test images (an image's 40 labels
  are resampled together; ``common.metrics.intervals``), and paired intervals of the differences
  that say whether the thresholds beat 0.5 and the all-negative baseline.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from common.attributes import CELEBA_ATTRIBUTES
from common.metrics import THRESHOLD_GRID, accuracy, apply_thresholds, auroc, hamming_loss, search_thresholds
from common.metrics.intervals import Interval, bootstrap_interval, paired_bootstrap_difference


@dataclass(frozen=True)
class AttributeEvaluation:
    """Metrics of one set of sigmoid scores against the true labels (arrays are per attribute)."""

    auroc: np.ndarray                   # (40,), NaN where the set has one label only
    accuracy: np.ndarray                # (40,) with ``thresholds``
    thresholds: np.ndarray              # (40,) the thresholds applied
    positive_rate: np.ndarray           # (40,) fraction of positive labels in the set
    hamming_loss_at_half: float         # Eq. 7 with every threshold 0.5
    hamming_loss: float                 # Eq. 7 with ``thresholds``
    all_negative_hamming_loss: float    # Eq. 7 of predicting every attribute absent
    num_images: int

    @property
    def mean_auroc(self) -> float:
        """Mean over the attributes where AUROC is defined (the paper's 0.7611, §3.2)."""
        defined = self.auroc[~np.isnan(self.auroc)]
        return float(defined.mean()) if defined.size else float("nan")


def evaluate_scores(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> AttributeEvaluation:
    """Every §3 metric of ``scores`` (sigmoid outputs, (N, 40)) against ``labels`` (N, 40)."""
    labels = np.asarray(labels).astype(np.uint8)
    per_attribute_auroc = _per_attribute_auroc(labels, scores)
    predictions = apply_thresholds(scores, thresholds)
    return AttributeEvaluation(
        auroc=per_attribute_auroc,
        accuracy=np.asarray(accuracy(labels, predictions), dtype=np.float64),
        thresholds=np.asarray(thresholds, dtype=np.float64),
        positive_rate=labels.mean(axis=0, dtype=np.float64),
        hamming_loss_at_half=hamming_loss(labels, apply_thresholds(scores, 0.5)),
        hamming_loss=hamming_loss(labels, predictions),
        all_negative_hamming_loss=hamming_loss(labels, np.zeros_like(labels)),
        num_images=int(labels.shape[0]),
    )


def _per_attribute_auroc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(40,) AUROC, NaN (without a warning) where a set has one label only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # attributes with a single label in the set: NaN AUROC
        return np.asarray(auroc(labels, scores), dtype=np.float64)


def _mean_defined(values: np.ndarray) -> float:
    """Mean over the finite values (NaN when there is none), without a warning."""
    defined = values[~np.isnan(values)]
    return float(defined.mean()) if defined.size else float("nan")


#: The test metrics that get an interval (:func:`metric_intervals`), as ``EvaluationIntervals.metrics`` keys.
INTERVAL_METRICS: tuple[str, ...] = ("mean_auroc", "hamming_loss", "hamming_loss_at_half",
                                     "all_negative_hamming_loss", "mean_accuracy")
#: Paired differences of hamming losses on the same test images (``EvaluationIntervals.differences``).
INTERVAL_DIFFERENCES: tuple[str, ...] = ("thresholds_minus_half", "thresholds_minus_all_negative")


@dataclass(frozen=True)
class EvaluationIntervals:
    """95 % bootstrap intervals of the test metrics (resampling test images)."""

    metrics: dict[str, Interval]                  # keys: INTERVAL_METRICS
    differences: dict[str, Interval]              # keys: INTERVAL_DIFFERENCES (paired)
    per_attribute_auroc: list[Interval | None]    # (40,), None where AUROC is undefined on test

    def as_dict(self) -> dict:
        """JSON-able, for run.json."""
        return {"metrics": {name: value.as_dict() for name, value in self.metrics.items()},
                "differences": {name: value.as_dict() for name, value in self.differences.items()},
                "per_attribute_auroc": {name: (None if value is None else value.as_dict())
                                        for name, value in zip(CELEBA_ATTRIBUTES, self.per_attribute_auroc)}}


def hamming_statistics(labels: np.ndarray, scores: np.ndarray,
                       thresholds: np.ndarray) -> dict[str, Callable[[np.ndarray], float]]:
    """``{name: statistic(rows)}`` for the bootstrap: the hamming losses of the searched
    thresholds, of 0.5 and of the all-negative baseline, and the mean accuracy, each the mean of a
    per-image value over the test images ``rows`` (drawn with replacement)."""
    labels = np.asarray(labels).astype(np.uint8)
    wrong = {
        "hamming_loss": (apply_thresholds(scores, thresholds) != labels).mean(axis=1),
        "hamming_loss_at_half": (apply_thresholds(scores, 0.5) != labels).mean(axis=1),
        "all_negative_hamming_loss": labels.mean(axis=1, dtype=np.float64),
    }
    statistics = {name: (lambda rows, values=values: float(values[rows].mean()))
                  for name, values in wrong.items()}
    correct = 1.0 - wrong["hamming_loss"]
    statistics["mean_accuracy"] = lambda rows: float(correct[rows].mean())
    return statistics


def mean_auroc_statistic(labels: np.ndarray, scores: np.ndarray):
    """``statistic(rows)``: mean AUROC over the attributes defined on the resampled test images."""
    labels = np.asarray(labels).astype(np.uint8)
    scores = np.asarray(scores)
    return lambda rows: _mean_defined(_per_attribute_auroc(labels[rows], scores[rows]))


def metric_intervals(labels: np.ndarray, scores: np.ndarray, thresholds: np.ndarray, *,
                   n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> EvaluationIntervals:
    """Percentile-bootstrap intervals over test images (``common.metrics.intervals``; every
    statistic sees the same resamples, same ``seed``) of each :data:`INTERVAL_METRICS` value, of
    every attribute's AUROC, and paired intervals of the searched thresholds' hamming loss minus
    that of 0.5 and of the all-negative baseline. The estimates equal :func:`evaluate_scores`'s."""
    labels = np.asarray(labels).astype(np.uint8)
    scores = np.asarray(scores, dtype=np.float64)
    n = labels.shape[0]
    options = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    statistics = hamming_statistics(labels, scores, thresholds)
    statistics["mean_auroc"] = mean_auroc_statistic(labels, scores)
    metrics = {name: bootstrap_interval(statistics[name], n, **options) for name in INTERVAL_METRICS}
    differences = {
        "thresholds_minus_half": paired_bootstrap_difference(
            statistics["hamming_loss"], statistics["hamming_loss_at_half"], n, **options),
        "thresholds_minus_all_negative": paired_bootstrap_difference(
            statistics["hamming_loss"], statistics["all_negative_hamming_loss"], n, **options),
    }
    full = _per_attribute_auroc(labels, scores)
    per_attribute: list[Interval | None] = []
    for column in range(labels.shape[1]):
        if np.isnan(full[column]):
            per_attribute.append(None)
            continue
        y, s = labels[:, column], scores[:, column]

        def column_auroc(rows, y=y, s=s) -> float:
            if y[rows].min() == y[rows].max():
                return float("nan")
            return float(auroc(y[rows], s[rows]))

        per_attribute.append(bootstrap_interval(column_auroc, n, **options))
    return EvaluationIntervals(metrics=metrics, differences=differences, per_attribute_auroc=per_attribute)


def grid_search_thresholds(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """§3.2: per attribute, the threshold of 0.01, 0.02, ..., 1.00 with the lowest hamming loss
    on ``labels`` / ``scores`` (the pipeline passes the validation set's)."""
    return np.asarray(search_thresholds(np.asarray(labels).astype(np.uint8), scores,
                                        grid=THRESHOLD_GRID), dtype=np.float64)


def write_thresholds(path: str | os.PathLike, thresholds: np.ndarray, searched_on: str) -> Path:
    """``{"grid": ..., "searched_on": ..., "thresholds": {attribute: t}}`` as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "grid": "0.01..1.00 step 0.01, per attribute the lowest hamming loss (Le & Lee §3.2)",
        "searched_on": searched_on,
        "thresholds": {name: round(float(value), 2) for name, value in zip(CELEBA_ATTRIBUTES, thresholds)},
    }
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


def read_thresholds(path: str | os.PathLike) -> np.ndarray:
    """Inverse of :func:`write_thresholds` -> (40,) in CelebA's attribute order."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}, line {error.lineno}: invalid JSON ({error.msg})") from error
    thresholds = record.get("thresholds") if isinstance(record, dict) else None
    if not isinstance(thresholds, dict):
        raise ValueError(f"{path}: no 'thresholds' object (written by write_thresholds)")
    missing = [name for name in CELEBA_ATTRIBUTES if name not in thresholds]
    if missing:
        raise ValueError(f"{path}: thresholds missing for {missing}")
    return np.array([float(thresholds[name]) for name in CELEBA_ATTRIBUTES])


def auroc_figure_order(per_attribute_auroc: np.ndarray) -> np.ndarray:
    """Fig. 3's bar order: attributes by AUROC, highest first (undefined ones last). The text
    extraction of the paper does not preserve the figure; its §3.2 names the lowest bar (Pale
    Skin), which a sorted chart ends with."""
    values = np.where(np.isnan(per_attribute_auroc), -np.inf, per_attribute_auroc)
    return np.argsort(-values, kind="stable")


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(figure, path: str | os.PathLike) -> Path:
    """``figure`` laid out and written to ``path`` as PNG (no software stamp, so reruns give the same
    bytes), then closed."""
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, metadata={"Software": None})
    _pyplot().close(figure)
    return path


def plot_auroc_bars(per_attribute_auroc: np.ndarray, path: str | os.PathLike, title: str,
                    reference_mean: float, reference_label: str) -> Path:
    """Fig. 3: one bar per attribute (sorted by :func:`auroc_figure_order`), our mean and the
    paper's mean as horizontal lines. Written as PNG."""
    plt = _pyplot()

    order = auroc_figure_order(per_attribute_auroc)
    values = per_attribute_auroc[order]
    names = [CELEBA_ATTRIBUTES[i].replace("_", " ") for i in order]
    defined = ~np.isnan(values)
    figure, axes = plt.subplots(figsize=(12, 4.8), dpi=110)
    positions = np.arange(len(values))
    axes.bar(positions[defined], values[defined], color="#4C72B0", width=0.75)
    for position in positions[~defined]:
        axes.text(position, 0.02, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
    mean = float(values[defined].mean()) if defined.any() else float("nan")
    if np.isfinite(mean):
        axes.axhline(mean, color="#4C72B0", linestyle="-", linewidth=1.2, label=f"ours, mean {mean:.4f}")
    axes.axhline(reference_mean, color="#C44E52", linestyle="--", linewidth=1.2, label=reference_label)
    axes.axhline(0.5, color="grey", linestyle=":", linewidth=0.8, label="chance (0.5)")
    axes.set_xticks(positions)
    axes.set_xticklabels(names, rotation=70, ha="right", fontsize=7.5)
    axes.set_xlim(-0.6, len(values) - 0.4)
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("AUROC")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper right", fontsize=8)
    return _save_figure(figure, path)


def plot_label_density(labels_by_set: dict[str, np.ndarray], path: str | os.PathLike, title: str) -> Path:
    """Fig. 2: the share of images carrying each attribute, one bar group per attribute (sorted by the
    first set's rate) and one bar per set (train / val / test): how imbalanced the labels are, which
    Eq. (4)'s weights answer. Written as PNG."""
    plt = _pyplot()

    names = list(labels_by_set)
    rates = {name: np.asarray(labels, dtype=np.float64).mean(axis=0) for name, labels in labels_by_set.items()}
    order = np.argsort(-rates[names[0]], kind="stable")
    positions = np.arange(len(order))
    width = 0.8 / len(names)
    figure, axes = plt.subplots(figsize=(12, 4.4), dpi=110)
    for index, name in enumerate(names):
        axes.bar(positions + (index - (len(names) - 1) / 2) * width, rates[name][order], width=width,
                 label=f"{name} ({len(labels_by_set[name]):,} images)")
    axes.set_xticks(positions)
    axes.set_xticklabels([CELEBA_ATTRIBUTES[i].replace("_", " ") for i in order], rotation=70, ha="right",
                         fontsize=7.5)
    axes.set_xlim(-0.6, len(order) - 0.4)
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("share of images with the attribute")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="upper right", fontsize=8)
    return _save_figure(figure, path)


def plot_labelled_faces(image_paths: list[Path], soft_labels: np.ndarray, hard_labels: np.ndarray,
                        path: str | os.PathLike, title: str, per_face: int = 6, columns: int = 4) -> Path:
    """Fig. 4: labelled faces, each with the attributes its hard labels call present (the
    ``per_face`` most probable, with their soft labels) in a row of its own below the face, so a
    list never runs into the next face. Written as PNG."""
    plt = _pyplot()
    from PIL import Image

    rows = max(1, -(-len(image_paths) // columns))
    text_height = 0.2 * (per_face + 1)  # inches: 7-pt lines and a margin
    figure, axes = plt.subplots(2 * rows, columns, figsize=(3.1 * columns, (3.9 + text_height) * rows), dpi=100,
                                squeeze=False, gridspec_kw={"height_ratios": [3.9, text_height] * rows})
    for axis in axes.ravel():
        axis.axis("off")
    for position, (image_path, soft, hard) in enumerate(zip(image_paths, soft_labels, hard_labels)):
        row, column = divmod(position, columns)
        image_axis, text_axis = axes[2 * row, column], axes[2 * row + 1, column]
        with Image.open(image_path) as image:
            image_axis.imshow(image.convert("RGB"))
        image_axis.set_title(Path(image_path).name, fontsize=8)
        present = [index for index in np.argsort(-soft) if hard[index]][:per_face]
        text = "\n".join(f"{CELEBA_ATTRIBUTES[index].replace('_', ' ')} {soft[index]:.2f}" for index in present)
        text_axis.text(0.0, 1.0, text or "(none present)", transform=text_axis.transAxes, va="top", fontsize=7)
    figure.suptitle(title, fontsize=10)
    return _save_figure(figure, path)
