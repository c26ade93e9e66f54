"""The paper's numbers and the tables / figures that put ours beside them.

Velamala & Rawat report one result block per model (section "Testing"), the hyper-parameters
selected by the grid (sections "Model Evaluation - ResNet50 / DenseNet121") and the first epoch
of each training log (same sections). Those numbers are the constants below; every table is
built from a pipeline result plus these constants, never typed in by hand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from celeba_resnet_densenet.config import BACKBONE_TITLES, PAPER_DROPOUTS, PAPER_LEARNING_RATES
from celeba_resnet_densenet.evaluate import AVERAGES, PAPER_AVERAGE
from celeba_resnet_densenet.train import DIVERGENCE_FACTOR, VALIDATION_METRICS
from common.attributes import CELEBA_ATTRIBUTES
from common.tables import Table, na

#: Section "Testing": "ResNet50: Accuracy - 0.89683 Precision - 0.7764 Recall - 0.8118
#: F-Score - 0.7863"; "DenseNet121: Accuracy - 0.892025 Precision - 0.7577 Recall - 0.82703
#: F-Score - 0.77685".
PAPER_TEST_RESULTS: dict[str, dict[str, float]] = {
    "resnet50": {"accuracy": 0.89683, "precision": 0.7764, "recall": 0.8118, "f1": 0.7863},
    "densenet121": {"accuracy": 0.892025, "precision": 0.7577, "recall": 0.82703, "f1": 0.77685},
}
#: Sections "Model Evaluation - ResNet50" and "- DenseNet121": "the best performing model ... for
#: Learning Rate - 0.001, Batch Size - 64, Drop Out - 0.3" (both models).
PAPER_SELECTED_POINT: dict[str, dict[str, float]] = {
    "resnet50": {"learning_rate": 0.001, "dropout": 0.3, "batch_size": 64, "epochs": 8},
    "densenet121": {"learning_rate": 0.001, "dropout": 0.3, "batch_size": 64, "epochs": 8},
}
#: The only epoch of each training log printed in the paper ("Epoch [1/8], Train Loss: 0.0434,
#: Train accuracy Score: 0.8875, Val Loss: 0.0375, Val accuracy Score: 0.9000" for ResNet50;
#: "0.0470, 0.8796, 0.0414, 0.8938" for DenseNet121).
PAPER_EPOCH_LOG: dict[str, dict[int, dict[str, float]]] = {
    "resnet50": {1: {"train_loss": 0.0434, "train_accuracy": 0.8875, "val_loss": 0.0375, "val_accuracy": 0.9000}},
    "densenet121": {1: {"train_loss": 0.0470, "train_accuracy": 0.8796, "val_loss": 0.0414, "val_accuracy": 0.8938}},
}
#: Training speed printed in the same logs: 625 batches of 64 per epoch, ResNet50 9.17 batch/s
#: (01:08 per epoch), DenseNet121 8.68 batch/s (01:11); the GPU is not named.
PAPER_BATCHES_PER_SECOND: dict[str, float] = {"resnet50": 9.17, "densenet121": 8.68}

METRIC_TITLES = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F-score"}


def _title(backbone: str) -> str:
    return BACKBONE_TITLES.get(backbone, backbone)


def results_table(test_metrics: Mapping[str, Mapping[str, float]], majority_metrics: Mapping[str, float],
                  scale_note: str) -> Table:
    """Section "Testing": accuracy, precision, recall, F-score per model, ours vs the paper, and the
    majority rule (each attribute's training-split majority value) as a floor."""
    rows = []
    for key, title in METRIC_TITLES.items():
        rows.append([f"Majority rule {title}", majority_metrics[key], na("not in the paper"),
                     na("not in the paper")])
    for backbone, metrics in test_metrics.items():
        paper = PAPER_TEST_RESULTS.get(backbone)
        for key, title in METRIC_TITLES.items():
            ours = metrics[key]
            paper_value = paper[key] if paper else na("model not in the paper")
            delta = ours - paper[key] if paper else na("model not in the paper")
            rows.append([f"{_title(backbone)} {title}", ours, paper_value, delta])
    return Table(
        name="test_results",
        title="Test-set results (paper section \"Testing\"), ours vs Velamala & Rawat",
        columns=["Model and metric", "Ours", "Paper", "Ours - paper"],
        rows=rows,
        notes=[scale_note,
               "Accuracy = fraction of correct (image, attribute) decisions; precision, recall and "
               f"F-score use scikit-learn's average=\"{PAPER_AVERAGE}\" (per image, then averaged): "
               "the paper does not name its averaging; its F-scores are below the harmonic mean of "
               "its P and R, which rules out micro averaging (see table averaging).",
               "Attributes are predicted present where sigmoid(logit) >= 0.5. Majority rule: every "
               "test image gets each attribute's majority value on the training split (no image is "
               "looked at); class-weighted training trades accuracy against recall of rare attributes, "
               "so a weak model can score below it."],
        float_format=".4f")


def selected_hyperparameters_table(grid_results: Mapping[str, Any], config) -> Table:
    """The grid point chosen on validation per model, beside the paper's choice."""
    rows = []
    for backbone, grid in grid_results.items():
        best = grid.best
        paper = PAPER_SELECTED_POINT.get(backbone, {})
        rows.append([_title(backbone), best["learning_rate"], paper.get("learning_rate", na("not in paper")),
                     best["dropout"], paper.get("dropout", na("not in paper")),
                     config.optim.batch_size, paper.get("batch_size", na("not in paper")),
                     best["best_epoch"], config.optim.epochs, paper.get("epochs", na("not in paper"))])
    return Table(
        name="selected_hyperparameters",
        title="Grid point selected on validation (paper sections \"Model Evaluation\")",
        columns=["Model", "Learning rate", "Paper LR", "Dropout", "Paper dropout", "Batch",
                 "Paper batch", "Best epoch", "Epochs", "Paper epochs"],
        rows=rows,
        notes=[f"Selection metric: {config.grid.selection_metric} (best epoch of each run, then best run); "
               "the paper keeps \"the best performing model on the training and validation data\" "
               "without naming the metric; its logs report validation accuracy."],
        float_format=".4g")


def grid_point_label(learning_rate: float, dropout: float) -> str:
    return f"lr {learning_rate:g}, dropout {dropout:g}"


def _metric_cell(value: Any) -> Any:
    """A validation metric, or why there is none (a diverged run's loss is stored as "inf"/"nan")."""
    return value if isinstance(value, (int, float)) else na(f"non-finite ({value})")


def grid_table(backbone: str, grid, scale: str, selection_metric: str) -> Table:
    """Every point of the paper's grid for one model (validation metrics at each run's best
    epoch); points the run did not train are ``n/a``."""
    by_point = {(float(r["learning_rate"]), float(r["dropout"])): r for r in grid.results}
    paper_points = [(lr, dropout) for lr in PAPER_LEARNING_RATES for dropout in PAPER_DROPOUTS]
    extra_points = [point for point in by_point if point not in paper_points]
    rows = []
    for lr, dropout in paper_points + sorted(extra_points):
        record = by_point.get((lr, dropout))
        if record is None:
            rows.append([grid_point_label(lr, dropout)] + [na(f"not in {scale} grid")] * (len(VALIDATION_METRICS) + 3))
            continue
        selected = int(record["folder"] == grid.best["folder"])
        rows.append([grid_point_label(lr, dropout), record["best_epoch"]]
                    + [_metric_cell(record["best"][name]) for name in VALIDATION_METRICS]
                    + [int(record.get("diverged", False)), selected])
    paper = PAPER_SELECTED_POINT.get(backbone)
    notes = [f"Validation metrics at the epoch with the best {selection_metric}; P/R/F1 averaged "
             f"per image (average=\"{PAPER_AVERAGE}\"); val loss is the class-weighted BCE; "
             f"Diverged = 1: the validation loss was non-finite or above {DIVERGENCE_FACTOR:g}x the constant "
             "predictor's at every epoch; such a point is never selected. "
             "Selected = 1 for the point chosen on validation."]
    if paper:
        notes.append(f"The paper selected lr {paper['learning_rate']:g}, dropout {paper['dropout']:g} "
                     f"and prints no per-point numbers.")
    return Table(
        name=f"grid_{backbone}",
        title=f"{_title(backbone)}: hyper-parameter grid, learning rate x dropout (validation)",
        columns=["Grid point", "Best epoch", "Val loss", "Val accuracy", "Val precision",
                 "Val recall", "Val F1", "Diverged", "Selected"],
        rows=rows, notes=notes, float_format=".4g")


def averaging_table(averaged: Mapping[str, Mapping[str, Mapping[str, float]]]) -> Table:
    """Our test P/R/F1 under each averaging beside the paper's (unnamed) averaging."""
    rows = []
    for backbone, by_average in averaged.items():
        paper = PAPER_TEST_RESULTS.get(backbone)
        for average in AVERAGES:
            metrics = by_average[average]
            harmonic = (2 * metrics["precision"] * metrics["recall"] / (metrics["precision"] + metrics["recall"])
                        if metrics["precision"] + metrics["recall"] > 0 else 0.0)
            rows.append([f"{_title(backbone)} {average}", metrics["precision"], metrics["recall"],
                         metrics["f1"], harmonic])
        if paper:
            harmonic = 2 * paper["precision"] * paper["recall"] / (paper["precision"] + paper["recall"])
            rows.append([f"{_title(backbone)} paper (average not named)", paper["precision"],
                         paper["recall"], paper["f1"], harmonic])
    return Table(
        name="averaging",
        title="Which averaging? Test precision / recall / F-score under scikit-learn's averages",
        columns=["Model and average", "Precision", "Recall", "F-score", "Harmonic mean of P and R"],
        rows=rows,
        notes=["Micro F-score always equals the harmonic mean of micro P and R; the paper's F-scores "
               "are below it, as for per-image (samples) or per-attribute (macro) averaging.",
               f"The paper's columns in test_results use average=\"{PAPER_AVERAGE}\"."],
        float_format=".4f")


def per_attribute_table(per_attribute: Mapping[str, Mapping[str, np.ndarray]], positive_rate: np.ndarray,
                        scale_note: str) -> Table:
    """Test accuracy / precision / recall / F1 of every attribute for each model."""
    backbones = list(per_attribute)
    columns = ["Attribute", "Test positive rate"]
    for backbone in backbones:
        columns += [f"{_title(backbone)} {label}" for label in ("acc", "P", "R", "F1")]
    rows = []
    for index, name in enumerate(CELEBA_ATTRIBUTES):
        row: list[Any] = [name, float(positive_rate[index])]
        for backbone in backbones:
            values = per_attribute[backbone]
            row += [float(values[key][index]) for key in ("accuracy", "precision", "recall", "f1")]
        rows.append(row)
    mean_row: list[Any] = ["mean (macro)", float(np.mean(positive_rate))]
    for backbone in backbones:
        values = per_attribute[backbone]
        mean_row += [float(np.mean(values[key])) for key in ("accuracy", "precision", "recall", "f1")]
    rows.append(mean_row)
    return Table(
        name="per_attribute",
        title="Per-attribute test metrics (the paper prints none)",
        columns=columns, rows=rows,
        notes=[scale_note, "P, R and F1 of an attribute with no predicted or no true positives are 0 "
               "(scikit-learn's zero_division=0)."],
        float_format=".3f")


def epoch_log_table(grid_results: Mapping[str, Any]) -> Table:
    """Per-epoch train / validation loss and accuracy of the selected runs; the paper prints epoch 1."""
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    rows = []
    for backbone, grid in grid_results.items():
        paper_log = PAPER_EPOCH_LOG.get(backbone, {})
        for entry in grid.best["epochs"]:
            paper_epoch = paper_log.get(int(entry["epoch"]))
            row: list[Any] = [f"{_title(backbone)} epoch {int(entry['epoch'])}"]
            row += [entry[key] if key in entry else na("no training log row for this epoch") for key in keys]
            row += [paper_epoch[key] if paper_epoch else na("the paper prints epoch 1 only") for key in keys]
            rows.append(row)
    return Table(
        name="epoch_log",
        title="Training log of the selected runs (paper sections \"Model Evaluation\")",
        columns=["Model and epoch", "Train loss", "Train accuracy", "Val loss", "Val accuracy",
                 "Paper train loss", "Paper train accuracy", "Paper val loss", "Paper val accuracy"],
        rows=rows,
        notes=["Train loss / accuracy are running means over the epoch's batches (as the paper's tqdm "
               "log); losses are class-weighted BCE, whose scale depends on the weighting scheme, "
               "which the paper does not give, so only the accuracies are comparable."],
        float_format=".4f")


# --------------------------------------------------------------------------- figures


def plot_training_curves(grid_results: Mapping[str, Any], path: Path) -> Path:
    """Loss and accuracy per epoch (train solid, validation dashed) of each selected run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4.5))
    for index, (backbone, grid) in enumerate(grid_results.items()):
        color = f"C{index}"
        epochs = grid.best["epochs"]
        x = [entry["epoch"] for entry in epochs]
        label = (f"{_title(backbone)} (lr {grid.best['learning_rate']:g}, "
                 f"dropout {grid.best['dropout']:g})")
        for axis, key in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
            train = [entry.get(f"train_{key}", np.nan) for entry in epochs]
            val = [entry[f"val_{key}"] for entry in epochs]
            axis.plot(x, train, "-o", color=color, label=f"{label} train")
            axis.plot(x, val, "--s", color=color, label=f"{label} val")
    loss_axis.set(xlabel="epoch", ylabel="class-weighted BCE (log scale)", title="Loss", yscale="log")
    accuracy_axis.set(xlabel="epoch", ylabel="label accuracy", title="Accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = accuracy_axis.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.06 * len(grid_results), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_grid(grid_results: Mapping[str, Any], metric: str, path: Path) -> Path:
    """Heat map of the validation ``metric`` over learning rate x dropout, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(grid_results), figsize=(4.5 * len(grid_results), 3.5), squeeze=False)
    for axis, (backbone, grid) in zip(axes[0], grid_results.items()):
        rates = sorted({float(r["learning_rate"]) for r in grid.results} | set(PAPER_LEARNING_RATES))
        dropouts = sorted({float(r["dropout"]) for r in grid.results} | set(PAPER_DROPOUTS))
        values = np.full((len(rates), len(dropouts)), np.nan)
        for record in grid.results:
            values[rates.index(float(record["learning_rate"])), dropouts.index(float(record["dropout"]))] = \
                record["best"][metric]
        image = axis.imshow(values, cmap="viridis", aspect="auto")
        for i in range(len(rates)):
            for j in range(len(dropouts)):
                if np.isnan(values[i, j]):
                    axis.text(j, i, "not run", ha="center", va="center", color="k", fontsize=8)
                    continue
                bright = image.norm(values[i, j]) > 0.5
                axis.text(j, i, f"{values[i, j]:.4f}", ha="center", va="center",
                          color="k" if bright else "w", fontsize=8)
        axis.set_xticks(range(len(dropouts)), [f"{d:g}" for d in dropouts])
        axis.set_yticks(range(len(rates)), [f"{r:g}" for r in rates])
        axis.set(xlabel="dropout", ylabel="learning rate", title=f"{_title(backbone)}: {metric}")
        figure.colorbar(image, ax=axis)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
