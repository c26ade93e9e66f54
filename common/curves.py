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
                      best_metric: str | None = None, best_mode: str = "min") -> Path:
    """Training loss and every ``eval/*`` metric of ``log_csv`` against the epoch, written to ``out_png``.

    ``best_metric`` (a name after ``eval/``) with ``best_mode`` ("min" or "max") marks the evaluation
    a best-checkpoint rule kept. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = read_training_log(log_csv)
    x = _fractional_epochs(log)
    metrics = [name for name in log if name.startswith("eval/") and not np.isnan(log[name]).all()]
    panels = 1 + len(metrics)
    figure, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.6), squeeze=False)
    loss_axis = axes[0][0]
    loss = log.get("train/loss")
    if loss is not None:
        logged = ~np.isnan(loss)
        loss_axis.plot(x[logged], loss[logged], color="C0", alpha=0.25, linewidth=0.8, label="logged steps")
        epochs = log.get("epoch")
        if epochs is not None and not np.isnan(epochs).all():
            per_epoch = [(epoch + 1, float(np.mean(loss[logged & (epochs == epoch)])))
                         for epoch in np.unique(epochs[logged & ~np.isnan(epochs)])]
            loss_axis.plot(*zip(*per_epoch), "-o", color="C0", markersize=3, label="epoch mean")
        loss_axis.legend(fontsize=8, frameon=False)
    loss_axis.set(title="Training loss", xlabel="epoch", ylabel="loss")
    for axis, name in zip(axes[0][1:], metrics):
        evaluated = ~np.isnan(log[name])
        axis.plot(x[evaluated], log[name][evaluated], "-s", color="C1", markersize=3)
        short = name.removeprefix("eval/")
        if short == best_metric:
            values = log[name][evaluated]
            index = int(np.argmin(values) if best_mode == "min" else np.argmax(values))
            axis.plot(x[evaluated][index], values[index], "*", color="C3", markersize=12,
                      label=f"kept: {values[index]:.4f}")
            axis.legend(fontsize=8, frameon=False)
        axis.set(title=f"Validation {short.replace('_', ' ')}", xlabel="epoch", ylabel=short)
    for axis in axes[0]:
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
    args = parser.parse_args(argv)
    print(plot_training_log(args.log_csv, args.out_png, args.title, args.best_metric, args.best_mode))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
