"""Learning curves from the training log every ``common.train.Trainer`` run writes (``<train dir>/log.csv``:
``step, epoch, lr, train/loss, samples_per_second`` on every logged step and ``eval/<metric>`` on the
steps where validation ran).

:func:`plot_training_log` draws the training loss (each logged value faint, its per-epoch mean
solid) and every validation metric against the epoch, one panel each, marking the checkpoint the run
kept when the caller names the metric and direction it was chosen by. ``python -m common.curves
LOG.csv OUT.png`` does the same from the command line.
"""
from __future__ import annotations

import argparse
import csv
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np


def read_training_log(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``log.csv`` -> ``{column: float array}`` (empty cells NaN), one entry per logged row."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "step" not in reader.fieldnames:
            raise ValueError(f"{path}: not a common.train log (no 'step' column in the header)")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: the training log has no rows yet")
    columns: dict[str, np.ndarray] = {}
    for name in reader.fieldnames:
        values = []
        for line_number, row in enumerate(rows, start=2):
            cell = row.get(name) or ""
            try:
                values.append(float(cell) if cell.strip() else math.nan)
            except ValueError:
                raise ValueError(f"{path}, line {line_number}: column {name!r} holds {cell!r}, not a number") from None
        columns[name] = np.asarray(values, dtype=np.float64)
    return columns


def late_change(log: dict[str, np.ndarray], column: str,
                fraction: float = 0.25) -> tuple[float, float, float, float] | None:
    """How much ``column`` (a validation metric) moved over the last ``fraction`` of a run:
    ``(earlier step, its value, last step, its value)``, the earlier one being the last logged value
    at or before ``(1 - fraction)`` of the last logged step; ``None`` when the log holds fewer than
    two values there. A plateau shows as a change within the metric's noise."""
    if column not in log:
        return None
    logged = ~np.isnan(log[column])
    steps, values = log["step"][logged], log[column][logged]
    if len(steps) < 2:
        return None
    earlier = np.flatnonzero(steps <= (1.0 - fraction) * steps[-1])
    if len(earlier) == 0:
        return None
    return float(steps[earlier[-1]]), float(values[earlier[-1]]), float(steps[-1]), float(values[-1])


#: Panels side by side before the figure wraps to another row.
MAX_PANELS_PER_ROW = 4
#: A loss is smoothed by its per-epoch mean from this many epochs on, else by a running mean.
MIN_EPOCHS_FOR_EPOCH_MEANS = 8


def _fractional_epochs(log: dict[str, np.ndarray]) -> np.ndarray:
    """Every row's position in epochs (step / steps per epoch, the latter from the last logged step and
    its epoch: every epoch of a Trainer run has the same number of steps); the step when the log has
    no epochs."""
    steps, epochs = log["step"], log.get("epoch")
    if epochs is None or np.isnan(epochs).all():
        return steps
    last = int(np.nanargmax(steps))
    return steps * (epochs[last] + 1) / steps[last]


def plot_training_log(log_csv: str | os.PathLike, out_png: str | os.PathLike, title: str | None = None,
                      best_metric: str | None = None, best_mode: str = "min",
                      loss_columns: Sequence[str] | None = None, x_axis: str = "epoch",
                      smoothing_window: int = 10) -> Path:
    """Training losses and every ``eval/*`` metric of ``log_csv``, one panel each, written to ``out_png``.

    ``loss_columns``: the logged training losses to draw (a GAN logs several, e.g. ``train/d_loss``
    and ``train/g_loss``); ``None``: ``train/loss`` where the log has it. Each is drawn faint at every
    logged step with its per-epoch mean when the log spans at least ``MIN_EPOCHS_FOR_EPOCH_MEANS``
    epochs, else a running mean over ``smoothing_window`` logged steps.
    ``x_axis``: "epoch" (fractional) or "step". ``best_metric`` (a name after ``eval/``) with
    ``best_mode`` ("min" or "max") marks the evaluation a best-checkpoint rule kept. A named loss
    column the log lacks raises ``ValueError`` naming the file. Returns the PNG path."""
    if x_axis not in ("epoch", "step"):
        raise ValueError(f"x_axis must be 'epoch' or 'step', not {x_axis!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = read_training_log(log_csv)
    if loss_columns is None:
        loss_columns = [name for name in ("train/loss",) if name in log]
    missing = [name for name in loss_columns if name not in log]
    if missing:
        raise ValueError(f"{log_csv}: no column(s) {missing} in the training log (it has {sorted(log)})")
    x = _fractional_epochs(log) if x_axis == "epoch" else log["step"]
    metrics = [name for name in log if name.startswith("eval/") and not np.isnan(log[name]).all()]
    panels = max(1, len(loss_columns)) + len(metrics)
    columns = min(panels, MAX_PANELS_PER_ROW)
    rows = math.ceil(panels / columns)
    figure, grid = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows), squeeze=False)
    axes = [list(grid.flat)]
    for unused in axes[0][panels:]:
        unused.set_visible(False)
    epochs = log.get("epoch")
    many_epochs = epochs is not None and len(np.unique(epochs[~np.isnan(epochs)])) >= MIN_EPOCHS_FOR_EPOCH_MEANS
    for loss_axis, name in zip(axes[0], loss_columns):
        loss = log[name]
        logged = ~np.isnan(loss)
        loss_axis.plot(x[logged], loss[logged], color="C0", alpha=0.25, linewidth=0.8, label="logged steps")
        if many_epochs:
            per_epoch = [(epoch + 1 if x_axis == "epoch" else float(np.max(x[logged & (epochs == epoch)])),
                          float(np.mean(loss[logged & (epochs == epoch)])))
                         for epoch in np.unique(epochs[logged & ~np.isnan(epochs)])]
            loss_axis.plot(*zip(*per_epoch), "-o", color="C0", markersize=3, label="epoch mean")
        elif logged.sum() >= smoothing_window:
            kernel = np.ones(smoothing_window) / smoothing_window
            loss_axis.plot(x[logged][smoothing_window - 1:], np.convolve(loss[logged], kernel, mode="valid"),
                           color="C0", label=f"mean of {smoothing_window} logged steps")
        loss_axis.legend(fontsize=8, frameon=False)
        loss_axis.set(title="Training loss" if name == "train/loss" else name.removeprefix("train/").replace("_", " "),
                      xlabel=x_axis, ylabel="loss")
    if not loss_columns:
        axes[0][0].set(title="Training loss (not logged)", xlabel=x_axis)
    for axis, name in zip(axes[0][max(1, len(loss_columns)):], metrics):
        evaluated = ~np.isnan(log[name])
        axis.plot(x[evaluated], log[name][evaluated], "-s", color="C1", markersize=3)
        short = name.removeprefix("eval/")
        if short == best_metric:
            values = log[name][evaluated]
            index = int(np.argmin(values) if best_mode == "min" else np.argmax(values))
            axis.plot(x[evaluated][index], values[index], "*", color="C3", markersize=12,
                      label=f"kept: {values[index]:.4f}")
            axis.legend(fontsize=8, frameon=False)
        axis.set(title=f"Validation {short.replace('_', ' ')}", xlabel=x_axis, ylabel=short)
    for axis in axes[0][:panels]:
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=120)
    plt.close(figure)
    return out_png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Learning curves of a common.train log.csv as a PNG.")
    parser.add_argument("log_csv", type=Path)
    parser.add_argument("out_png", type=Path)
    parser.add_argument("--title", default=None)
    parser.add_argument("--best-metric", default=None, help="eval metric the kept checkpoint was chosen by")
    parser.add_argument("--best-mode", choices=("min", "max"), default="min")
    parser.add_argument("--losses", default=None,
                        help="comma-separated loss columns, one panel each (e.g. train/d_loss,train/g_loss); "
                             "default: train/loss where logged")
    parser.add_argument("--x", choices=("epoch", "step"), default="epoch", dest="x_axis")
    args = parser.parse_args(argv)
    try:
        out = plot_training_log(args.log_csv, args.out_png, args.title, args.best_metric, args.best_mode,
                                loss_columns=None if args.losses is None else
                                [name.strip() for name in args.losses.split(",")], x_axis=args.x_axis)
    except ValueError as error:
        raise SystemExit(f"common.curves: {error}") from None
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
