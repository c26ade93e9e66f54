"""Training of one grid point and the resumable hyper-parameter grid (Velamala & Rawat, section
"Training and Validation": BCE with class weights, Adam, batch 64, 8 epochs, "Hyper parameter
tuning" over learning rate {0.01, 0.005, 0.001} x dropout {0.3, 0.5}; sections "Model
Evaluation": the best model on validation is kept).

Each grid point trains in its own folder with ``common.train.Trainer`` (checkpoint every epoch,
so an interrupted point resumes where it stopped). A finished point leaves ``result.json``
(per-epoch curves, the validation metrics of its best epoch) and ``best_weights.pt`` (that
epoch's weights plus what :mod:`celeba_resnet_densenet.predict` needs); its optimizer
checkpoints are then deleted. Re-running the grid skips every point that has ``result.json``.
``grid.csv`` records every point after each one finishes.

A run *diverged* at an evaluation when its validation loss is non-finite or more than
``DIVERGENCE_FACTOR`` times the validation loss of the constant predictor (every logit 0, under
the same weighted loss). Such an epoch is never kept and a run with no healthy epoch is never
selected: accuracy at a fixed threshold can look fine while the network outputs garbage (seen at
smoke scale: lr 0.01 points with validation losses of 1e8-1e12 had been selected).
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from celeba_resnet_densenet.config import ExperimentConfig
from celeba_resnet_densenet.data import image_normalization
from celeba_resnet_densenet.evaluate import binarize, predict_logits, sigmoid, summary_metrics
from celeba_resnet_densenet.losses import WeightedBCELoss, class_weights
from celeba_resnet_densenet.models import AttributeClassifier
from common.attributes import CELEBA_ATTRIBUTES
from common.checkpoint import load_checkpoint, save_checkpoint
from common.export import COMPACT_FORMAT, expand_state_dict
from common.gpu import init_distributed
from common.seed import seed_everything
from common.train import BEST_CHECKPOINT, LAST_CHECKPOINT, Trainer, TrainConfig

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
WEIGHTS_FILE = "best_weights.pt"
GRID_CSV = "grid.csv"
#: Validation loss above this multiple of the constant predictor's marks a diverged evaluation.
DIVERGENCE_FACTOR = 10.0
#: The Trainer keeps the best checkpoint by this key: the selection metric, NaN when diverged.
SELECTION_KEY = "val_selection"
VALIDATION_METRICS = ("val_loss", "val_accuracy", "val_precision", "val_recall", "val_f1")
GRID_CSV_COLUMNS = ("learning_rate", "dropout", "status", "selected", "best_epoch", *VALIDATION_METRICS,
                    "train_images_per_second", "train_seconds", "folder")


@dataclass(frozen=True)
class GridPoint:
    """One (learning rate, dropout) setting of the paper's grid."""

    learning_rate: float
    dropout: float

    @property
    def name(self) -> str:
        return f"lr{self.learning_rate:g}_dropout{self.dropout:g}"


@dataclass
class GridResult:
    """Every finished point's ``result.json`` content, in grid order, and the selected one."""

    results: list[dict[str, Any]]
    best: dict[str, Any]
    out_dir: Path


@dataclass
class BackboneRun:
    """One backbone's grid, the record of the run whose weights are used (the selected grid point,
    or its retraining after a reduced-budget grid), that run's folder and the bf16 decision."""

    grid: GridResult
    final: dict[str, Any]
    folder: Path
    bf16: dict[str, Any]


def metric_mode(metric: str) -> str:
    """``"min"`` for losses, ``"max"`` for everything else."""
    return "min" if metric.endswith("loss") else "max"


def _finite_or_text(value: Any) -> Any:
    """``value`` with every non-finite float spelled as text ("nan", "inf"): strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _finite_or_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_text(item) for item in value]
    return value


def _write_json(path: Path, record: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite_or_text(record), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _better(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def diverged(val_loss: float, constant_val_loss: float) -> bool:
    """Whether a validation loss marks a diverged network (see the module docstring)."""
    return not math.isfinite(val_loss) or val_loss > DIVERGENCE_FACTOR * constant_val_loss


def run_grid(points: Sequence[GridPoint], train_point: Callable[[GridPoint, Path], dict[str, Any]],
             out_dir: str | os.PathLike, selection_metric: str = "val_accuracy") -> GridResult:
    """Run every point not finished yet, record ``grid.csv``, select the best on validation.

    ``train_point(point, folder)`` trains one point in ``folder`` (resuming from its checkpoint
    when there is one) and returns its record, which must hold ``best[selection_metric]``;
    the record is stored as ``folder/result.json``. A point whose ``result.json`` exists is
    loaded, not retrained. Ties go to the earlier point in grid order. A point whose record says
    ``"diverged": true`` (no healthy epoch) is never selected.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len({point.name for point in points}) != len(points):
        raise ValueError(f"duplicate grid points: {[point.name for point in points]}")
    mode = metric_mode(selection_metric)
    finished: dict[str, dict[str, Any]] = {}
    for point in points:
        folder = out_dir / point.name
        result_path = folder / RESULT_FILE
        if result_path.is_file():
            finished[point.name] = json.loads(result_path.read_text(encoding="utf-8"))
            log.info("grid point %s already finished: %s", point.name, result_path)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        record = train_point(point, folder)
        if selection_metric not in record.get("best", {}):
            raise KeyError(f"grid point {point.name}: result has no best[{selection_metric!r}]")
        record = {"learning_rate": point.learning_rate, "dropout": point.dropout,
                  "folder": point.name, **record}
        _write_json(result_path, record)
        finished[point.name] = record
        write_grid_csv(out_dir / GRID_CSV, points, finished, selected=None)
    best, best_value = None, None
    for point in points:
        if finished[point.name].get("diverged", False):
            log.warning("grid point %s diverged (validation loss %s): not selectable", point.name,
                        finished[point.name]["best"].get("val_loss"))
            continue
        value = float(finished[point.name]["best"][selection_metric])
        if _better(value, best_value, mode):
            best, best_value = finished[point.name], value
    if best is None:
        raise ValueError(f"no grid point has a finite {selection_metric} without diverging: "
                         f"{[point.name for point in points]}; lower the learning rates")
    write_grid_csv(out_dir / GRID_CSV, points, finished, selected=best["folder"])
    return GridResult([finished[point.name] for point in points], best, out_dir)


def write_grid_csv(path: Path, points: Sequence[GridPoint], finished: dict[str, dict[str, Any]],
                   selected: str | None) -> None:
    """One row per grid point: finished ones with their validation metrics, the rest pending."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=GRID_CSV_COLUMNS)
        writer.writeheader()
        for point in points:
            row: dict[str, Any] = {"learning_rate": point.learning_rate, "dropout": point.dropout,
                                   "folder": point.name, "status": "pending", "selected": ""}
            record = finished.get(point.name)
            if record is not None:
                row.update(status="finished", best_epoch=record.get("best_epoch"),
                           train_images_per_second=record.get("train_images_per_second"),
                           train_seconds=record.get("train_seconds"),
                           selected="yes" if point.name == selected else "")
                row.update({name: record["best"].get(name) for name in VALIDATION_METRICS})
            writer.writerow(row)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- one grid point


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches per epoch on this rank (the Trainer drops the last partial batch)."""
    world_size = init_distributed().world_size
    steps = (n_train // world_size) // batch_size
    if steps == 0:
        raise ValueError(f"{n_train} training images give no full batch of {batch_size}")
    return steps


def build_model(config: ExperimentConfig, backbone: str, dropout: float) -> AttributeClassifier:
    return AttributeClassifier(backbone, num_features=config.head.num_features, dropout=dropout,
                               num_attributes=config.head.num_attributes,
                               pretrained_weights=config.pretrained_path(backbone))


def model_metadata(config: ExperimentConfig, backbone: str, point: GridPoint) -> dict[str, Any]:
    """What a saved model needs to be rebuilt and fed (stored inside ``best_weights.pt``)."""
    mean, std = image_normalization()
    return {"backbone": backbone, "num_features": config.head.num_features,
            "num_attributes": config.head.num_attributes, "dropout": point.dropout,
            "learning_rate": point.learning_rate, "image_size": list(config.data.image_size),
            "normalize_mean": list(mean), "normalize_std": list(std),
            "threshold": config.optim.threshold, "attribute_names": list(CELEBA_ATTRIBUTES),
            "scale": config.scale, "data": "synthetic" if config.data_root is None else "celeba"}


def _epoch_curves(history: list[dict[str, float]], log_csv: Path, n_steps_per_epoch: int) -> list[dict[str, float]]:
    """Per-epoch train loss / accuracy (running means from ``log.csv``) and validation metrics
    (the Trainer's evaluation history), one row per epoch; a re-logged step keeps its last row."""
    by_step: dict[int, dict[str, float]] = {}
    for entry in history:
        by_step.setdefault(int(entry["step"]), {}).update(
            {key: float(value) for key, value in entry.items() if key != "step"})
    if log_csv.is_file():
        with open(log_csv, newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                if row.get("train/loss"):
                    step = int(float(row["step"]))
                    by_step.setdefault(step, {}).update(
                        train_loss=float(row["train/loss"]), train_accuracy=float(row["train/accuracy"]))
    epochs = []
    for step in sorted(by_step):
        if step % n_steps_per_epoch == 0 and "val_accuracy" in by_step[step]:
            epochs.append({"epoch": step // n_steps_per_epoch, "step": step, **by_step[step]})
    return epochs


def build_criterion(config: ExperimentConfig, train_labels: np.ndarray) -> WeightedBCELoss:
    """The BCE of ``config.optim.class_weighting`` with weights counted on ``train_labels``."""
    weights = class_weights(train_labels, config.optim.class_weighting)
    return WeightedBCELoss() if weights is None else WeightedBCELoss(*weights)


def train_grid_point(config: ExperimentConfig, backbone: str, point: GridPoint, datasets: dict,
                     train_labels: np.ndarray, folder: Path, *, epochs: int | None = None,
                     bf16: bool = False) -> dict[str, Any]:
    """Train ``backbone`` at ``point`` for ``epochs`` (default ``config.optim.epochs``) epochs in
    ``folder`` (resumable), evaluating on validation after every epoch, in bf16 autocast when
    ``bf16``; returns the record stored as ``result.json``."""
    start = time.perf_counter()
    n_epochs = config.optim.epochs if epochs is None else epochs
    seed_everything(config.seed)
    model = build_model(config, backbone, point.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=point.learning_rate)
    criterion = build_criterion(config, train_labels)
    threshold = config.optim.threshold
    selection = config.grid.selection_metric
    logit_threshold = math.log(threshold / (1.0 - threshold))

    def loss_fn(network: torch.nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = network(batch["image"])
        targets = batch["attributes"]
        loss = criterion(logits, targets)
        correct = ((logits.detach().float() >= logit_threshold) == (targets >= 0.5)).float().mean()
        return loss, {"accuracy": float(correct)}

    def evaluate_fn(network: torch.nn.Module) -> dict[str, float]:
        logits, labels = predict_logits(network, datasets["val"], batch_size=config.optim.eval_batch_size)
        targets = torch.from_numpy(labels).float()
        val_loss = float(criterion(torch.from_numpy(logits), targets))
        constant_val_loss = float(criterion(torch.zeros_like(targets), targets))
        metrics = {f"val_{k}": v for k, v in summary_metrics(labels, binarize(sigmoid(logits), threshold)).items()}
        metrics.update(val_loss=val_loss, val_constant_loss=constant_val_loss,
                       val_diverged=float(diverged(val_loss, constant_val_loss)))
        metrics[SELECTION_KEY] = math.nan if metrics["val_diverged"] else metrics[selection]
        return metrics

    n_steps = steps_per_epoch(len(datasets["train"]), config.optim.batch_size)
    runtime = config.runtime
    train_config = TrainConfig(
        out_dir=folder, max_steps=n_steps * n_epochs, log_every=n_steps,
        eval_every=n_steps, checkpoint_every=0, bf16=bf16, channels_last=runtime.channels_last,
        compile=runtime.compile, device=runtime.device, seed=config.seed, best_metric=SELECTION_KEY,
        best_mode=metric_mode(selection), tensorboard=runtime.tensorboard, progress=runtime.progress)
    trainer = Trainer(model, optimizer, datasets["train"], train_config,
                      batch_size=config.optim.batch_size, loss_fn=loss_fn, evaluate_fn=evaluate_fn,
                      num_workers=runtime.num_workers)
    result = trainer.fit(resume=True)

    epochs = _epoch_curves(result.history, folder / "log.csv", n_steps)
    if not epochs:
        raise RuntimeError(f"{folder}: training finished without a validation evaluation")
    mode = metric_mode(selection)
    best_epoch = None
    for entry in epochs:
        if not entry["val_diverged"] and (best_epoch is None
                                          or _better(entry[selection], best_epoch[selection], mode)):
            best_epoch = entry
    run_diverged = best_epoch is None
    if run_diverged:  # no healthy epoch: report the last one, keep no weights
        best_epoch = epochs[-1]
        log.warning("%s diverged at every evaluation (last validation loss %s, constant predictor %s)",
                    folder, best_epoch["val_loss"], best_epoch["val_constant_loss"])
    else:
        best_state = load_checkpoint(folder / BEST_CHECKPOINT)
        save_checkpoint(folder / WEIGHTS_FILE, {"model": best_state["models"]["model"],
                                                "meta": {**model_metadata(config, backbone, point),
                                                         "epoch": best_epoch["epoch"]}})
    for name in (LAST_CHECKPOINT, BEST_CHECKPOINT):
        (folder / name).unlink(missing_ok=True)
    return {
        "backbone": backbone,
        "diverged": run_diverged,
        "constant_val_loss": best_epoch["val_constant_loss"],
        "best_epoch": best_epoch["epoch"],
        "best": {name: best_epoch[name] for name in VALIDATION_METRICS},
        "epochs": epochs,
        "train_images_per_second": result.samples_per_second,
        "train_seconds": round(time.perf_counter() - start, 3),
        "steps_per_epoch": n_steps,
        "epochs_trained": n_epochs,
        "n_train": len(datasets["train"]),
        "bf16": bf16,
    }


def load_point_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[AttributeClassifier, dict[str, Any]]:
    """The network in a model file and its metadata, in eval mode on ``device``. ``path`` is a
    trained point's folder (its ``best_weights.pt``), such a file, a ``models/<backbone>.pt`` of
    ``reproduce`` or a shipped model (``common.export`` compact weights)."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    state = load_checkpoint(path, map_location="cpu")
    if not isinstance(state, dict) or "meta" not in state or not ({"model", "compact"} & set(state)):
        raise ValueError(f"{path}: not a celeba_resnet_densenet model file (expected 'meta' and 'model' "
                         f"or '{COMPACT_FORMAT}' weights)")
    weights = expand_state_dict(state["compact"]) if "compact" in state else state["model"]
    meta = state["meta"]
    model = AttributeClassifier(meta["backbone"], num_features=meta["num_features"],
                                dropout=meta["dropout"], num_attributes=meta["num_attributes"])
    model.load_state_dict(weights)
    return model.to(device).eval(), meta
