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
from celeba_resnet_densenet.evaluate import AVERAGES, DECISION_RULES, HEADLINE_RULE, PAPER_AVERAGE, TEST_METRICS
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


def _interval_cells(interval) -> list[Any]:
    return [interval.low, interval.high]


def results_table(evaluated: Mapping[str, Mapping[str, Any]], majority: Mapping[str, Any], scale_note: str) -> Table:
    """Section "Testing": accuracy, precision, recall, F-score per model at the validation-chosen
    thresholds, with 95 % bootstrap intervals, ours vs the paper, the threshold-free mean AUROC and
    mAP beside them, and the majority rule (each attribute's training-split majority value) as a floor."""
    rows = []
    for key, title in METRIC_TITLES.items():
        rows.append([f"Majority rule {title}", majority["metrics"][key], *_interval_cells(majority["intervals"][key]),
                     na("not in the paper"), na("not in the paper")])
    for backbone, result in evaluated.items():
        metrics, intervals = result["rules"][HEADLINE_RULE], result["intervals"]
        paper = PAPER_TEST_RESULTS.get(backbone)
        for key, title in TEST_METRICS.items():
            ours = metrics[key]
            if paper and key in paper:
                paper_value, delta = paper[key], ours - paper[key]
            else:
                why = na("model not in the paper") if not paper else na("the paper reports no threshold-free metric")
                paper_value, delta = why, why
            rows.append([f"{_title(backbone)} {title}", ours, *_interval_cells(intervals[key]), paper_value, delta])
    return Table(
        name="test_results",
        title="Test-set results (paper section \"Testing\"), ours vs Velamala & Rawat",
        columns=["Model and metric", "Ours", "95% CI low", "95% CI high", "Paper", "Ours - paper"],
        rows=rows,
        notes=[scale_note,
               "Accuracy = fraction of correct (image, attribute) decisions; precision, recall and "
               f"F-score use scikit-learn's average=\"{PAPER_AVERAGE}\" (per image, then averaged): "
               "the paper does not name its averaging; its F-scores are below the harmonic mean of "
               "its P and R, which rules out micro averaging (see table averaging).",
               f"Decision rule: {DECISION_RULES[HEADLINE_RULE]}; the paper's 0.5 and the prior-corrected "
               "rule are in table decision_rules. Mean AUROC and mAP (average precision) are threshold-free, "
               "averaged over attributes with both classes in the test set.",
               "95% CI: percentile bootstrap over test images (2,000 resamples; an image's 40 labels stay "
               "together). Majority rule: every test image gets each attribute's majority value on the "
               "training split (no image is looked at)."],
        float_format=".4f")


def decision_rules_table(evaluated: Mapping[str, Mapping[str, Any]], test_labels: np.ndarray) -> Table:
    """Test accuracy / P / R / F and the share of labels called present under each decision rule."""
    rows = []
    for backbone, result in evaluated.items():
        for rule in DECISION_RULES:
            metrics = result["rules"][rule]
            rows.append([f"{_title(backbone)}, {rule}", metrics["accuracy"], metrics["precision"],
                         metrics["recall"], metrics["f1"], float(result["predictions"][rule].mean())])
    return Table(
        name="decision_rules",
        title="Decision rules on test: validation thresholds vs prior-corrected vs 0.5",
        columns=["Model and rule", "Accuracy", "Precision", "Recall", "F-score", "Labels called present"],
        rows=rows,
        notes=[f"{rule}: {text}." for rule, text in DECISION_RULES.items()]
              + [f"True share of present labels in the test split: {float(np.mean(test_labels)):.4f}. Class "
                 "weighting moves the loss-minimising output for a true probability of 0.5 to 1 - prior "
                 "(losses.py), so the 0.5 rule calls rare attributes present too often."],
        float_format=".4f")


def comparisons_table(compared: list[Mapping[str, Any]]) -> Table:
    """Paired differences on the same test images with their 95 % bootstrap intervals."""
    rows = []
    for row in compared:
        interval = row["interval"]
        rows.append([f"{_title(row['a'])} - {_title(row['b'])}, {TEST_METRICS[row['metric']]}", interval.estimate,
                     interval.low, interval.high, int(interval.excludes(0.0))])
    return Table(
        name="comparisons",
        title="Paired comparisons on test (A - B, same images)",
        columns=["A - B, metric", "Difference", "95% CI low", "95% CI high", "Interval excludes 0"],
        rows=rows,
        notes=["Percentile bootstrap over test images (2,000 resamples), both sides evaluated on the same "
               "resampled images; models at their validation-chosen thresholds.",
               "Interval excludes 0: 1 = the difference is established at this scale (A above B when it is "
               "positive, below when negative); 0 = not distinguishable at this scale."]
              + [f"{row[0]}: {row[1]:+.4f} [{row[2]:+.4f}, {row[3]:+.4f}], "
                 f"{'established' if row[4] else 'not distinguishable at this scale'}." for row in rows],
        float_format=".4f")


def run_comparison_table(runs: list[Mapping[str, Any]], compared: list[Mapping[str, Any]], n_test: int,
                         n_resamples: int) -> Table:
    """Finished runs compared on the same test images (``compare``): each run's test metrics at its
    validation-chosen thresholds with 95 % bootstrap intervals, then every run minus the first,
    paired."""
    rows = []
    for run in runs:
        for key in ("accuracy", "f1", "mean_auroc", "mean_ap"):
            interval = run["intervals"][key]
            rows.append([f"{run['name']}: {TEST_METRICS[key]}", interval.estimate, interval.low, interval.high,
                         na("a run's own value")])
    for row in compared:
        interval = row["interval"]
        rows.append([f"{row['a']} - {row['b']}: {TEST_METRICS[row['metric']]}", interval.estimate, interval.low,
                     interval.high, int(interval.excludes(0.0))])
    return Table(
        name="run_comparison",
        title=f"Runs compared on the same {n_test} test images (validation-chosen thresholds)",
        columns=["Run or difference, metric", "Value", "95% CI low", "95% CI high", "Interval excludes 0"],
        rows=rows,
        notes=[f"Percentile bootstrap over test images ({n_resamples:,} resamples); differences resample both runs on "
               "the same images (paired). Interval excludes 0: 1 = established at this scale, 0 = not "
               "distinguishable."] + [f"{run['name']}: {run['path']}" for run in runs],
        float_format=".4f")


def selected_hyperparameters_table(runs: Mapping[str, Any], config) -> Table:
    """The grid point chosen on validation per model, beside the paper's choice; epochs are those of
    the run whose weights are used (the retraining after a reduced-budget grid)."""
    rows = []
    for backbone, run in runs.items():
        best = run.final
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


def per_attribute_table(per_attribute: Mapping[str, Mapping[str, np.ndarray]],
                        thresholds: Mapping[str, np.ndarray], positive_rate: np.ndarray, scale_note: str) -> Table:
    """Per attribute and model: the validation-chosen threshold, test accuracy / P / R / F1 at it and
    the test AUROC."""
    backbones = list(per_attribute)
    keys = ("accuracy", "precision", "recall", "f1", "auroc")
    columns = ["Attribute", "Test positive rate"]
    for backbone in backbones:
        columns += [f"{_title(backbone)} {label}" for label in ("threshold", "acc", "P", "R", "F1", "AUROC")]
    rows = []
    for index, name in enumerate(CELEBA_ATTRIBUTES):
        row: list[Any] = [name, float(positive_rate[index])]
        for backbone in backbones:
            values = per_attribute[backbone]
            auroc = float(values["auroc"][index])
            row += [float(thresholds[backbone][index])]
            row += [float(values[key][index]) for key in keys[:-1]]
            row += [auroc if np.isfinite(auroc) else na("one class only in test")]
        rows.append(row)
    mean_row: list[Any] = ["mean (macro)", float(np.mean(positive_rate))]
    for backbone in backbones:
        values = per_attribute[backbone]
        mean_row += [float(np.mean(thresholds[backbone]))]
        mean_row += [float(np.mean(values[key])) for key in keys[:-1]] + [float(np.nanmean(values["auroc"]))]
    rows.append(mean_row)
    return Table(
        name="per_attribute",
        title="Per-attribute test metrics at the validation-chosen thresholds (the paper prints none)",
        columns=columns, rows=rows,
        notes=[scale_note, "P, R and F1 of an attribute with no predicted or no true positives are 0 "
               "(scikit-learn's zero_division=0). AUROC is threshold-free; its mean skips attributes with "
               "one class only."],
        float_format=".3f")


def epoch_log_table(runs: Mapping[str, Any]) -> Table:
    """Per-epoch train / validation loss and accuracy of the selected runs; the paper prints epoch 1."""
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    rows = []
    for backbone, run in runs.items():
        paper_log = PAPER_EPOCH_LOG.get(backbone, {})
        for entry in run.final["epochs"]:
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


def plot_training_curves(runs: Mapping[str, Any], path: Path) -> Path:
    """Loss and accuracy per epoch (train solid, validation dashed) of each selected run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4.5))
    for index, (backbone, run) in enumerate(runs.items()):
        color = f"C{index}"
        epochs = run.final["epochs"]
        x = [entry["epoch"] for entry in epochs]
        label = (f"{_title(backbone)} (lr {run.final['learning_rate']:g}, "
                 f"dropout {run.final['dropout']:g})")
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
    figure.tight_layout(rect=(0, 0.06 * len(runs), 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def plot_grid(runs: Mapping[str, Any], metric: str, path: Path) -> Path:
    """Heat map of the validation ``metric`` over learning rate x dropout, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(runs), figsize=(4.5 * len(runs), 3.5), squeeze=False)
    for axis, (backbone, run) in zip(axes[0], runs.items()):
        grid = run.grid
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


def plot_per_attribute_auroc(per_attribute: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> Path:
    """Test AUROC of every attribute for each network, attributes sorted by the first network's AUROC
    (the paper compares the two networks only through four averaged numbers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    backbones = list(per_attribute)
    order = np.argsort(np.nan_to_num(per_attribute[backbones[0]]["auroc"], nan=0.0))
    positions = np.arange(len(CELEBA_ATTRIBUTES))
    height = 0.8 / len(backbones)
    figure, axis = plt.subplots(figsize=(7, 10))
    for index, backbone in enumerate(backbones):
        values = per_attribute[backbone]["auroc"][order]
        axis.barh(positions + (index - (len(backbones) - 1) / 2) * height, np.nan_to_num(values, nan=0.0),
                  height=height, color=f"C{index}", label=_title(backbone))
    axis.axvline(0.5, color="k", linestyle="--", linewidth=1, label="chance")
    axis.set_yticks(positions, [CELEBA_ATTRIBUTES[i] for i in order], fontsize=7)
    axis.set(xlabel="test AUROC", xlim=(0.0, 1.0), title="Per-attribute test AUROC")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
