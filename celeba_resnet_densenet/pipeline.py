"""``reproduce`` and ``grid``: the paper's experiment end to end (Velamala & Rawat).

sample 29,500 CelebA images -> split -> for ResNet50 and DenseNet121: the learning-rate x dropout
grid (resumable) -> best point on validation -> test metrics -> the paper's table with its numbers
beside ours, the per-attribute table, training curves, the exported models.

Layout under ``out_dir``::

    grid/<backbone>/grid.csv                every grid point, updated after each one
    grid/<backbone>/<lr..._dropout...>/     Trainer folder: log.csv, tb/, result.json, best_weights.pt
    models/<backbone>.pt                    the selected model (used by ``predict``)
    *.md, *.csv, tables.json                the tables (common.tables.write_tables)
    training_curves.png, grid_validation.png
    test_predictions_<backbone>.npz         test probabilities and labels
    throughput.json, run.json
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from celeba_resnet_densenet.config import BACKBONE_TITLES, ExperimentConfig
from celeba_resnet_densenet.data import AttributeSample, load_sample, split_attributes, split_datasets
from celeba_resnet_densenet.evaluate import (AVERAGES, PAPER_AVERAGE, binarize, per_attribute_metrics,
                                             predict_logits, sigmoid, summary_metrics)
from celeba_resnet_densenet.tables import (averaging_table, epoch_log_table, grid_table, per_attribute_table,
                                           plot_grid, plot_training_curves, results_table,
                                           selected_hyperparameters_table)
from celeba_resnet_densenet.train import (WEIGHTS_FILE, GridPoint, GridResult, load_point_model, run_grid,
                                          train_grid_point)
from common.checkpoint import require_same_configuration
from common.data.dataset import corrupt_samples_skipped
from common.gpu import select_device
from common.tables import write_run_record, write_tables

log = logging.getLogger(__name__)


def experiment_fingerprint(config: ExperimentConfig, backbone: str) -> dict[str, Any]:
    """Everything that changes a grid point's result (not the grid's extent, not the device)."""
    optim = dataclasses.asdict(config.optim)
    optim.pop("eval_batch_size")
    return {"backbone": backbone, "data_root": config.data_root, "data": dataclasses.asdict(config.data),
            "head": dataclasses.asdict(config.head), "optim": optim,
            "selection_metric": config.grid.selection_metric, "seed": config.seed,
            "pretrained_weights": config.pretrained_path(backbone)}


def run_backbone_grid(config: ExperimentConfig, backbone: str, sample: AttributeSample, datasets: dict,
                      out_dir: Path) -> GridResult:
    """The learning-rate x dropout grid of one backbone under ``out_dir/grid/<backbone>``."""
    grid_dir = out_dir / "grid" / backbone
    require_same_configuration(grid_dir, experiment_fingerprint(config, backbone))
    points = [GridPoint(lr, dropout) for lr, dropout in config.grid.points()]
    train_labels = split_attributes(sample, "train")

    def train_point(point: GridPoint, folder: Path) -> dict[str, Any]:
        log.info("%s: training grid point %s", backbone, point.name)
        return train_grid_point(config, backbone, point, datasets, train_labels, folder)

    return run_grid(points, train_point, grid_dir, config.grid.selection_metric)


def run_grids(config: ExperimentConfig, out_dir: str | os.PathLike) -> tuple[AttributeSample, dict, dict[str, GridResult]]:
    """Load the sample and run the grid of every backbone in ``config.backbones``."""
    out_dir = Path(out_dir)
    sample = load_sample(config.data, config.data_root)
    log.info("sample: %s", sample.describe())
    datasets = split_datasets(sample, config.data)
    grids = {backbone: run_backbone_grid(config, backbone, sample, datasets, out_dir)
             for backbone in config.backbones}
    return sample, datasets, grids


def scale_note(config: ExperimentConfig, sample: AttributeSample) -> str:
    """One sentence saying what the numbers were computed on."""
    described = sample.describe()
    height, width = config.data.image_size
    source = ("synthetic faces (common.synthetic; not comparable with the paper's numbers)"
              if sample.synthetic else "real CelebA")
    weights = ("ImageNet weights from local files" if config.pretrained_weights
               else "backbones trained from scratch (weights=None)")
    return (f"Scale {config.scale}: {source}; {described['n_train']}/{described['n_val']}/{described['n_test']} "
            f"train/val/test images ({described['split_rule']}) of a {described['n_sampled']}-image sample "
            f"({described['n_available']} available); input {height}x{width}; batch {config.optim.batch_size}; "
            f"{config.optim.epochs} epochs; grid lr {list(config.grid.learning_rates)} x dropout "
            f"{list(config.grid.dropouts)}; {weights}. Paper: 29,500-image sample, batch 64, 8 epochs, "
            f"grid lr [0.01, 0.005, 0.001] x dropout [0.3, 0.5].")


def reproduce(config: ExperimentConfig, out_dir: str | os.PathLike, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the whole experiment and write tables, figures, models and ``run.json`` to ``out_dir``.
    Returns ``{backbone: test metrics}``."""
    start = time.time()
    out_dir = Path(out_dir)
    sample, datasets, grids = run_grids(config, out_dir)
    device = select_device(config.runtime.device)

    test_metrics: dict[str, dict[str, float]] = {}
    averaged: dict[str, dict[str, dict[str, float]]] = {}
    per_attribute: dict[str, dict[str, np.ndarray]] = {}
    throughput: dict[str, Any] = {"device": str(device)}
    test_labels = None
    for backbone, grid in grids.items():
        folder = grid.out_dir / grid.best["folder"]
        model, meta = load_point_model(folder, device=device)
        logits, test_labels = predict_logits(model, datasets["test"], batch_size=config.optim.eval_batch_size)
        probabilities = sigmoid(logits)
        predictions = binarize(probabilities, config.optim.threshold)
        test_metrics[backbone] = summary_metrics(test_labels, predictions, PAPER_AVERAGE)
        averaged[backbone] = {average: summary_metrics(test_labels, predictions, average) for average in AVERAGES}
        per_attribute[backbone] = per_attribute_metrics(test_labels, predictions)
        np.savez_compressed(out_dir / f"test_predictions_{backbone}.npz", probabilities=probabilities.astype(np.float32),
                            labels=test_labels, image_ids=np.asarray(
                                [sample.annotations.image_ids[i] for i in sample.splits["test"]]))
        models_dir = out_dir / "models"
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = models_dir / f".{backbone}.pt.tmp"
        shutil.copyfile(folder / WEIGHTS_FILE, tmp)
        os.replace(tmp, models_dir / f"{backbone}.pt")
        speeds = [r["train_images_per_second"] for r in grid.results if r.get("train_images_per_second")]
        throughput[backbone] = {
            "train_images_per_second_selected_run": grid.best.get("train_images_per_second"),
            "train_images_per_second_mean_over_grid": float(np.mean(speeds)) if speeds else None,
            "image_size": list(config.data.image_size), "batch_size": config.optim.batch_size,
            "channels_last": config.runtime.channels_last, "bf16": config.runtime.bf16}
        log.info("%s test: %s", BACKBONE_TITLES[backbone], test_metrics[backbone])

    train_majority = (split_attributes(sample, "train").mean(axis=0) >= 0.5).astype(np.uint8)
    majority_metrics = summary_metrics(test_labels, np.tile(train_majority, (len(test_labels), 1)), PAPER_AVERAGE)
    note = scale_note(config, sample)
    tables = [results_table(test_metrics, majority_metrics, note), selected_hyperparameters_table(grids, config)]
    tables += [grid_table(backbone, grid, config.scale, config.grid.selection_metric)
               for backbone, grid in grids.items()]
    tables += [averaging_table(averaged),
               per_attribute_table(per_attribute, test_labels.mean(axis=0), note),
               epoch_log_table(grids)]
    write_tables(tables, out_dir)
    # Training and validation ran in this process (workers record into shared memory too).
    unreadable = {name: dataset.unreadable_summary() for name, dataset in datasets.items()}
    plot_training_curves(grids, out_dir / "training_curves.png")
    plot_grid(grids, config.grid.selection_metric, out_dir / "grid_validation.png")
    (out_dir / "throughput.json").write_text(json.dumps(throughput, indent=1) + "\n", encoding="utf-8")
    write_run_record(out_dir, argv, config, start_time=start,
                     extra={"sample": sample.describe(), "throughput": throughput,
                            "corrupt_images_skipped": corrupt_samples_skipped(),
                            "unreadable_images": unreadable,
                            "test_metrics": test_metrics})
    for name, summary in unreadable.items():
        if summary["unreadable_files"]:
            log.warning("%s split: %d unreadable image(s) skipped: %s", name, summary["unreadable_files"],
                        ", ".join(summary["unreadable_file_names"]))
    return test_metrics


def measure_throughput(config: ExperimentConfig, steps: int = 5, warmup_steps: int = 2) -> dict[str, Any]:
    """Steady-state training speed (forward + backward + Adam step, warm-up excluded) of each
    backbone with the paper's head at ``config.data.image_size`` and ``config.optim.batch_size``,
    on random inputs (``common.gpu.measure_training_throughput``)."""
    import torch

    from celeba_resnet_densenet.losses import WeightedBCELoss
    from celeba_resnet_densenet.train import build_model
    from common.gpu import measure_training_throughput

    height, width = config.data.image_size
    criterion = WeightedBCELoss()

    def make_batch(n: int):
        generator = torch.Generator().manual_seed(0)
        return (torch.randn(n, 3, height, width, generator=generator),
                torch.randint(0, 2, (n, config.head.num_attributes), generator=generator).float())

    results: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    for backbone in config.backbones:
        model = build_model(config, backbone, config.grid.dropouts[0])
        measured = measure_training_throughput(
            model, make_batch, criterion, batch_size=config.optim.batch_size, steps=steps,
            warmup_steps=warmup_steps, device=config.runtime.device, bf16=config.runtime.bf16,
            channels_last=config.runtime.channels_last, compile_model=config.runtime.compile,
            optimizer_factory=lambda parameters: torch.optim.Adam(parameters, lr=config.grid.learning_rates[0]))
        results[backbone] = dataclasses.asdict(measured)
        log.info("%s: %.2f training images/s", backbone, measured.images_per_second)
    return results
