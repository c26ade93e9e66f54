"""``reproduce`` and ``grid``: the paper's experiment end to end (Velamala & Rawat).

sample 29,500 CelebA images -> split -> for ResNet50 and DenseNet121: the learning-rate x dropout
grid (resumable) -> best point on validation -> [at a reduced grid budget: the selected point
retrained on the whole training split] -> decision thresholds on validation -> test metrics with
bootstrap intervals -> the paper's table with its numbers beside ours, the comparisons, the
per-attribute table, training curves, the exported models.

Layout under ``out_dir``::

    grid/<backbone>/grid.csv                every grid point, updated after each one
    grid/<backbone>/<lr..._dropout...>/     Trainer folder: log.csv, tb/, result.json, best_weights.pt
    grid/<backbone>/bf16.json               the bf16 decision of a ``--bf16 auto`` run
    final/<backbone>/<lr..._dropout...>/    the selected point retrained (reduced-budget grids only)
    models/<backbone>.pt                    the selected model + validation thresholds (``predict``)
    *.md, *.csv, tables.json                the tables (common.tables.write_tables)
    training_curves.png, grid_validation.png
    test_predictions_<backbone>.npz         test and validation probabilities, labels, thresholds
    throughput.json, run.json
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from celeba_resnet_densenet.config import BACKBONE_TITLES, ExperimentConfig
from torch.utils.data import Subset

from celeba_resnet_densenet.data import (AttributeSample, cached_split_datasets, load_sample, split_attributes,
                                         split_datasets)
from celeba_resnet_densenet.evaluate import (AVERAGES, DECISION_RULES, HEADLINE_RULE, decision_thresholds,
                                             metric_intervals, paired_difference, per_attribute_metrics,
                                             predict_logits, ranking_metrics, sigmoid, summary_metrics,
                                             evaluation_metrics)
from celeba_resnet_densenet.evaluate import TEST_METRICS as TEST_METRIC_TITLES
from celeba_resnet_densenet.tables import (averaging_table, comparisons_table, decision_rules_table,
                                           epoch_log_table, grid_table, per_attribute_table, plot_grid,
                                           plot_per_attribute_auroc,
                                           plot_training_curves, results_table, run_comparison_table,
                                           selected_hyperparameters_table)
from celeba_resnet_densenet.train import (BackboneRun, GridPoint, build_model, load_point_model,
                                          run_grid, train_grid_point)
from common.checkpoint import load_checkpoint, require_same_configuration, save_checkpoint, write_atomically
from common.export import CELEBA_MODEL_LICENCE
from common.data.dataset import corrupt_samples_skipped
from common.gpu import select_device
from common.metrics import apply_thresholds
from common.tables import record_process_start, write_run_record, write_tables

log = logging.getLogger(__name__)

#: Per backbone, the bf16 decision of an "auto" run (kept so that a resumed run keeps its precision).
BF16_DECISION_FILE = "bf16.json"


def experiment_fingerprint(config: ExperimentConfig, backbone: str) -> dict[str, Any]:
    """Everything that changes a grid point's result (not the grid's extent, not the device)."""
    optim = dataclasses.asdict(config.optim)
    optim.pop("eval_batch_size")
    return {"backbone": backbone, "data_root": config.data_root, "data": dataclasses.asdict(config.data),
            "head": dataclasses.asdict(config.head), "optim": optim,
            "selection_metric": config.grid.selection_metric, "seed": config.seed,
            "grid_budget": {"subset_size": config.grid.subset_size, "epochs": config.grid.epochs},
            "pretrained_weights": config.pretrained_path(backbone)}


def resolve_bf16(config: ExperimentConfig, backbone: str, grid_dir: Path) -> dict[str, Any]:
    """Whether ``backbone`` trains in bf16 autocast (``common.train.decide_bf16``): ``--bf16 on/off``
    as given; "auto" times a throwaway copy on this CPU once, or asks CUDA for native bf16, and
    keeps the decision in ``grid_dir/bf16.json`` so that a resumed run keeps its precision."""
    import torch

    from common.train import decide_bf16

    height, width = config.data.image_size

    def make_batch(n: int):
        generator = torch.Generator().manual_seed(0)
        return (torch.randn(n, 3, height, width, generator=generator),
                torch.randint(0, 2, (n, config.head.num_attributes), generator=generator).float())

    record = decide_bf16(
        config.runtime.bf16, grid_dir / BF16_DECISION_FILE, select_device(config.runtime.device),
        lambda: build_model(config, backbone, config.grid.dropouts[0]), make_batch,
        lambda outputs, targets: torch.nn.functional.binary_cross_entropy_with_logits(outputs.float(), targets),
        batch_size=config.optim.batch_size, channels_last=config.runtime.channels_last)
    log.info("%s: bf16 %s (%s)", backbone, "on" if record["use_bf16"] else "off", record["reason"])
    return record


def grid_subset(config: ExperimentConfig, datasets: dict) -> dict:
    """The datasets the grid trains on: a seeded subset of ``config.grid.subset_size`` training
    images when set (validation stays whole), else ``datasets``."""
    n_train = len(datasets["train"])
    if config.grid.subset_size is None or config.grid.subset_size >= n_train:
        return datasets
    rows = np.sort(np.random.default_rng(config.seed).choice(n_train, config.grid.subset_size, replace=False))
    return {**datasets, "train": Subset(datasets["train"], rows.tolist())}


def run_backbone(config: ExperimentConfig, backbone: str, sample: AttributeSample, datasets: dict,
                 out_dir: Path, retrain_selected: bool = True) -> BackboneRun:
    """One backbone: the learning-rate x dropout grid under ``out_dir/grid/<backbone>`` and, when
    the grid has a reduced budget and ``retrain_selected``, the selected point retrained under
    ``out_dir/final/<backbone>`` (the returned run's weights; else the selected grid point's)."""
    grid_dir = out_dir / "grid" / backbone
    fingerprint = experiment_fingerprint(config, backbone)
    require_same_configuration(grid_dir, fingerprint)
    bf16 = resolve_bf16(config, backbone, grid_dir)
    points = [GridPoint(lr, dropout) for lr, dropout in config.grid.points()]
    train_labels = split_attributes(sample, "train")
    grid_datasets = grid_subset(config, datasets)

    def train_point(point: GridPoint, folder: Path) -> dict[str, Any]:
        log.info("%s: training grid point %s on %d images", backbone, point.name, len(grid_datasets["train"]))
        return train_grid_point(config, backbone, point, grid_datasets, train_labels, folder,
                                epochs=config.grid.epochs or config.optim.epochs, bf16=bf16["use_bf16"])

    grid = run_grid(points, train_point, grid_dir, config.grid.selection_metric)
    if not retrain_selected or (grid_datasets is datasets and not config.grid.epochs):
        return BackboneRun(grid, grid.best, grid.out_dir / grid.best["folder"], bf16)
    final_dir = out_dir / "final" / backbone
    require_same_configuration(final_dir, fingerprint)
    point = GridPoint(float(grid.best["learning_rate"]), float(grid.best["dropout"]))
    log.info("%s: training the selected point %s on all %d training images", backbone, point.name,
             len(datasets["train"]))
    final = run_grid([point], lambda point, folder: train_grid_point(
        config, backbone, point, datasets, train_labels, folder, bf16=bf16["use_bf16"]),
        final_dir, config.grid.selection_metric)
    return BackboneRun(grid, final.best, final_dir / point.name, bf16)


def run_grids(config: ExperimentConfig, out_dir: str | os.PathLike,
              retrain_selected: bool = True) -> tuple[AttributeSample, dict, dict[str, BackboneRun]]:
    """Load the sample and train every backbone in ``config.backbones`` (grid, then the selected
    point retrained when the grid has a reduced budget and ``retrain_selected``)."""
    out_dir = Path(out_dir)
    sample = load_sample(config.data, config.data_root)
    log.info("sample: %s", sample.describe())
    if config.runtime.image_cache_dir is not None:
        datasets = cached_split_datasets(sample, config.data, config.runtime.image_cache_dir,
                                         progress=config.runtime.progress)
    else:
        datasets = split_datasets(sample, config.data)
    runs = {backbone: run_backbone(config, backbone, sample, datasets, out_dir, retrain_selected)
            for backbone in config.backbones}
    return sample, datasets, runs


def scale_note(config: ExperimentConfig, sample: AttributeSample) -> str:
    """One sentence saying what the numbers were computed on."""
    described = sample.describe()
    height, width = config.data.image_size
    source = ("synthetic faces (common.synthetic; not comparable with the paper's numbers)"
              if sample.synthetic else "real CelebA")
    weights = ("ImageNet weights from local files" if config.pretrained_weights
               else "backbones trained from scratch (weights=None)")
    subset = config.grid.subset_size
    reduced_grid = (subset is not None and subset < described["n_train"]) or bool(config.grid.epochs)
    grid_budget = (f" at a reduced budget ({config.grid.epochs or config.optim.epochs} epochs on "
                   f"{min(subset or described['n_train'], described['n_train'])} training images), the selected "
                   f"point then retrained" if reduced_grid else "")
    return (f"Scale {config.scale}: {source}; {described['n_train']}/{described['n_val']}/{described['n_test']} "
            f"train/val/test images ({described['split_rule']}) of a {described['n_sampled']}-image sample "
            f"({described['n_available']} available); input {height}x{width}"
            f"{', horizontal flips' if config.data.hflip else ''}; batch {config.optim.batch_size}; "
            f"{config.optim.epochs} epochs; {config.optim.class_weighting} class weighting; grid lr "
            f"{list(config.grid.learning_rates)} x dropout {list(config.grid.dropouts)}{grid_budget}; {weights}. "
            f"Paper: 29,500-image sample, batch 64, 8 epochs, grid lr [0.01, 0.005, 0.001] x dropout [0.3, 0.5].")


def _image_ids(sample: AttributeSample, dataset, split: str) -> np.ndarray:
    """The image ids a split's predictions are in order of (a cached dataset leaves out unreadable rows)."""
    rows = dataset.rows if hasattr(dataset, "rows") else sample.splits[split]
    return np.asarray([sample.annotations.image_ids[i] for i in rows])


def evaluate_backbone(config: ExperimentConfig, run: BackboneRun, datasets: dict, train_labels: np.ndarray,
                      device) -> dict[str, Any]:
    """Validation-chosen decision rules, then every rule's test metrics and the headline intervals."""
    model, meta = load_point_model(run.folder, device=device)
    batch = config.optim.eval_batch_size
    val_logits, val_labels = predict_logits(model, datasets["val"], batch_size=batch)
    test_logits, test_labels = predict_logits(model, datasets["test"], batch_size=batch)
    val_probabilities, probabilities = sigmoid(val_logits), sigmoid(test_logits)
    thresholds = decision_thresholds(val_labels, val_probabilities, train_labels, config.optim.class_weighting,
                                     config.optim.threshold)
    predictions = {rule: apply_thresholds(probabilities, values) for rule, values in thresholds.items()}
    headline = predictions[HEADLINE_RULE]
    return {
        "model": model, "meta": meta, "labels": test_labels, "probabilities": probabilities,
        "val_labels": val_labels, "val_probabilities": val_probabilities, "thresholds": thresholds,
        "predictions": predictions,
        "rules": {rule: evaluation_metrics(test_labels, probabilities, y_pred) for rule, y_pred in predictions.items()},
        "intervals": metric_intervals(test_labels, probabilities, headline, seed=config.seed),
        "averaged": {average: summary_metrics(test_labels, headline, average) for average in AVERAGES},
        "per_attribute": per_attribute_metrics(test_labels, headline, probabilities),
        "val_ranking": ranking_metrics(val_labels, val_probabilities),
    }


def comparisons(config: ExperimentConfig, evaluated: dict[str, dict[str, Any]],
                majority_predictions: np.ndarray) -> list[dict[str, Any]]:
    """The paired comparisons the README may claim (model vs majority rule, validation thresholds vs
    0.5, DenseNet121 vs ResNet50), each a paired-bootstrap interval over test images."""
    rows = []
    labels = next(iter(evaluated.values()))["labels"]
    for backbone, result in evaluated.items():
        headline = (result["probabilities"], result["predictions"][HEADLINE_RULE])
        for metric in ("accuracy", "f1"):
            rows.append({"a": backbone, "b": "majority rule", "metric": metric,
                         "interval": paired_difference(labels, headline, (None, majority_predictions), metric,
                                                       seed=config.seed)})
        title = BACKBONE_TITLES[backbone]
        rows.append({"a": f"{title} validation thresholds", "b": f"{title} threshold 0.5",
                     "metric": "accuracy",
                     "interval": paired_difference(labels, headline,
                                                   (result["probabilities"], result["predictions"]["fixed"]),
                                                   "accuracy", seed=config.seed)})
    if {"resnet50", "densenet121"} <= set(evaluated):
        a, b = evaluated["densenet121"], evaluated["resnet50"]
        for metric in ("accuracy", "f1", "mean_auroc", "mean_ap"):
            rows.append({"a": "densenet121", "b": "resnet50", "metric": metric, "interval": paired_difference(
                labels, (a["probabilities"], a["predictions"][HEADLINE_RULE]),
                (b["probabilities"], b["predictions"][HEADLINE_RULE]), metric, seed=config.seed)})
    return rows


def export_selected_model(result: dict[str, Any], config: ExperimentConfig, path: Path) -> None:
    """``models/<backbone>.pt``: the selected weights with their metadata and the validation-chosen
    thresholds (what ``predict`` applies), written atomically."""
    weights = {name: tensor.detach().cpu() for name, tensor in result["model"].state_dict().items()}
    meta = {**result["meta"], "thresholds": [float(t) for t in result["thresholds"][HEADLINE_RULE]],
            "decision_rule": DECISION_RULES[HEADLINE_RULE], "class_weighting": config.optim.class_weighting,
            "val_mean_auroc": result["val_ranking"]["mean_auroc"]}
    save_checkpoint(path, {"model": weights, "meta": meta})


def reproduce(config: ExperimentConfig, out_dir: str | os.PathLike, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the whole experiment and write tables, figures, models and ``run.json`` to ``out_dir``.
    Returns ``{backbone: headline test metrics}``."""
    start = time.time()
    out_dir = Path(out_dir)
    record_process_start(out_dir, start)
    sample, datasets, runs = run_grids(config, out_dir)
    device = select_device(config.runtime.device)
    train_labels = split_attributes(sample, "train")

    evaluated: dict[str, dict[str, Any]] = {}
    throughput: dict[str, Any] = {"device": str(device)}
    for backbone, run in runs.items():
        result = evaluated[backbone] = evaluate_backbone(config, run, datasets, train_labels, device)
        np.savez_compressed(out_dir / f"test_predictions_{backbone}.npz",
                            probabilities=result["probabilities"], labels=result["labels"],
                            image_ids=_image_ids(sample, datasets["test"], "test"),
                            val_probabilities=result["val_probabilities"],
                            val_labels=result["val_labels"],
                            val_image_ids=_image_ids(sample, datasets["val"], "val"),
                            **{f"thresholds_{rule}": values for rule, values in result["thresholds"].items()})
        export_selected_model(result, config, out_dir / "models" / f"{backbone}.pt")
        speeds = [r["train_images_per_second"] for r in run.grid.results if r.get("train_images_per_second")]
        throughput[backbone] = {
            "train_images_per_second_selected_run": run.final.get("train_images_per_second"),
            "train_images_per_second_mean_over_grid": float(np.mean(speeds)) if speeds else None,
            "image_size": list(config.data.image_size), "batch_size": config.optim.batch_size,
            "channels_last": config.runtime.channels_last, "bf16": run.bf16}
        log.info("%s test (%s): %s", BACKBONE_TITLES[backbone], HEADLINE_RULE, result["rules"][HEADLINE_RULE])

    test_labels = next(iter(evaluated.values()))["labels"]
    train_majority = (train_labels.mean(axis=0) >= 0.5).astype(np.uint8)
    majority_predictions = np.tile(train_majority, (len(test_labels), 1))
    majority = {"metrics": evaluation_metrics(test_labels, None, majority_predictions),
                "intervals": metric_intervals(test_labels, None, majority_predictions, seed=config.seed)}
    compared = comparisons(config, evaluated, majority_predictions)
    note = scale_note(config, sample)
    tables = [results_table(evaluated, majority, note), decision_rules_table(evaluated, test_labels),
              comparisons_table(compared), selected_hyperparameters_table(runs, config)]
    tables += [grid_table(backbone, run.grid, config.scale, config.grid.selection_metric)
               for backbone, run in runs.items()]
    tables += [averaging_table({b: r["averaged"] for b, r in evaluated.items()}),
               per_attribute_table({b: r["per_attribute"] for b, r in evaluated.items()},
                                   {b: r["thresholds"][HEADLINE_RULE] for b, r in evaluated.items()},
                                   test_labels.mean(axis=0), note),
               epoch_log_table(runs)]
    write_tables(tables, out_dir)
    # Training and validation ran in this process (workers record into shared memory too).
    unreadable = {name: dataset.unreadable_summary() for name, dataset in datasets.items()}
    plot_training_curves(runs, out_dir / "training_curves.png")
    plot_grid(runs, config.grid.selection_metric, out_dir / "grid_validation.png")
    plot_per_attribute_auroc({b: r["per_attribute"] for b, r in evaluated.items()}, out_dir / "per_attribute_auroc.png")
    (out_dir / "throughput.json").write_text(json.dumps(throughput, indent=1) + "\n", encoding="utf-8")
    headline = {backbone: result["rules"][HEADLINE_RULE] for backbone, result in evaluated.items()}
    write_run_record(out_dir, argv, config, start_time=start,
                     extra={"sample": sample.describe(), "throughput": throughput,
                            "corrupt_images_skipped": corrupt_samples_skipped(),
                            "unreadable_images": unreadable,
                            "test_metrics": headline,
                            "test_intervals": {b: {k: v.as_dict() for k, v in r["intervals"].items()}
                                               for b, r in evaluated.items()},
                            "comparisons": [{**row, "interval": row["interval"].as_dict()} for row in compared],
                            "validation_ranking": {b: r["val_ranking"] for b, r in evaluated.items()}})
    for name, summary in unreadable.items():
        if summary["unreadable_files"]:
            log.warning("%s split: %d unreadable image(s) skipped: %s", name, summary["unreadable_files"],
                        ", ".join(summary["unreadable_file_names"]))
    return headline


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
            warmup_steps=warmup_steps, device=config.runtime.device, bf16=config.runtime.bf16 == "on",
            channels_last=config.runtime.channels_last, compile_model=config.runtime.compile,
            optimizer_factory=lambda parameters: torch.optim.Adam(parameters, lr=config.grid.learning_rates[0]))
        results[backbone] = dataclasses.asdict(measured)
        log.info("%s: %.2f training images/s", backbone, measured.images_per_second)
    return results


# --------------------------------------------------------------------------- the shipped model


def _compact_test_auroc(model_file: Path, datasets: dict, config: ExperimentConfig) -> float:
    """Test mean AUROC of a shipped-format model file (int8 / fp16 weights expanded to fp32)."""

    model, _ = load_point_model(model_file)
    logits, labels = predict_logits(model, datasets["test"], batch_size=config.optim.eval_batch_size)
    return ranking_metrics(labels, sigmoid(logits))["mean_auroc"]


def ship_model(config: ExperimentConfig, results_dir: str | os.PathLike, out_path: str | os.PathLike) -> dict[str, Any]:
    """Ship the better network of a finished ``reproduce`` run that fits the size limit.

    The candidates are ranked by **validation** mean AUROC (nothing is chosen on test); each is
    written in ``common.export``'s compact format (int8 weights with per-channel scales, fp16
    elsewhere), and one over ``common.export.SHIPPED_MODEL_MAX_BYTES`` is passed over with the reason
    recorded. The compact model is re-evaluated on the test split so that the model card states
    what the shipped weights, not the training-time weights, score. Writes ``out_path`` and
    ``MODEL_CARD.md`` beside it; returns the record of the choice."""
    from common.export import save_shipped_model

    results_dir, out_path = Path(results_dir), Path(out_path)
    run = json.loads((results_dir / "run.json").read_text(encoding="utf-8"))
    facts = run["extra"]
    ranking = sorted(facts["validation_ranking"].items(), key=lambda item: -item[1]["mean_auroc"])
    passed_over: dict[str, str] = {}
    for backbone, _ in ranking:
        state = load_checkpoint(results_dir / "models" / f"{backbone}.pt")
        meta = {**state["meta"], "shipped_from_run": f"{run['command']} ({run['start_time']})",
                "licence": CELEBA_MODEL_LICENCE}
        try:
            size = save_shipped_model(out_path, state["model"], meta)
        except ValueError as error:
            passed_over[backbone] = str(error)
            log.warning("%s not shipped: %s", backbone, error)
            continue
        sample = load_sample(config.data, config.data_root)
        datasets = (cached_split_datasets(sample, config.data, config.runtime.image_cache_dir, progress=False)
                    if config.runtime.image_cache_dir else split_datasets(sample, config.data))
        record = {"backbone": backbone, "bytes": size, "passed_over": passed_over,
                  "validation_ranking": facts["validation_ranking"],
                  "test_mean_auroc_fp32": facts["test_metrics"][backbone]["mean_auroc"],
                  "test_mean_auroc_shipped": _compact_test_auroc(out_path, datasets, config)}
        write_model_card(out_path.with_name("MODEL_CARD.md"), out_path, run, record)
        return record
    raise ValueError(f"no model of {results_dir} fits the shipping limit: {passed_over}")


def write_model_card(path: Path, model_path: Path, run: dict[str, Any], record: dict[str, Any]) -> Path:
    """``MODEL_CARD.md`` of a shipped model, every number taken from the run's ``run.json`` and
    the re-evaluation of the shipped weights."""
    backbone = record["backbone"]
    title = BACKBONE_TITLES[backbone]
    facts = run["extra"]
    sample = facts["sample"]
    intervals = facts["test_intervals"][backbone]
    data_root = run["config"]["data_root"]
    source = ("synthetic faces (`common.synthetic`): a pipeline check, not a model to use" if data_root is None
              else f"the {sample['n_available']:,} CelebA images under `{data_root}`")
    disjoint = ": no person is in two splits" if "identity" in sample["split_rule"] else ""
    lines = [f"# Model card: `{model_path.name}` ({title}, CelebA attributes)", "",
             "- **Task**: the 40 binary CelebA attributes from an aligned face (Velamala & Rawat); "
             "`python -m celeba_resnet_densenet predict` uses this model by default.",
             f"- **Data**: {sample['n_train']:,} / {sample['n_val']:,} / {sample['n_test']:,} train / validation / test "
             f"images of {source}, split by {sample['split_rule']}{disjoint}.",
             f"- **Scale**: {run['config']['scale']} (`{run['command']}`, {run['start_time']}); input "
             f"{'x'.join(str(v) for v in run['config']['data']['image_size'])}, from scratch; see the package README "
             "for every reduction against the paper.",
             "- **Decision rule**: per-attribute thresholds chosen on validation (stored in the file).",
             f"- **Weights**: int8 per-output-channel for large tensors, fp16 elsewhere (`common.export`), "
             f"{record['bytes'] / 2**20:.2f} MiB; test mean AUROC {record['test_mean_auroc_shipped']:.4f} with these "
             f"weights vs {record['test_mean_auroc_fp32']:.4f} in fp32.",
             "", "## Test metrics (95 % bootstrap intervals over test images)", "",
             "| metric | value | 95 % CI |", "|---|---:|---|"]
    for key, name in TEST_METRIC_TITLES.items():
        interval = intervals[key]
        lines.append(f"| {name} | {interval['estimate']:.4f} | [{interval['low']:.4f}, {interval['high']:.4f}] |")
    lines += ["", "Comparisons on the same test images (paired bootstrap):", ""]
    for row in facts["comparisons"]:
        interval = row["interval"]
        lines.append(f"- {BACKBONE_TITLES.get(row['a'], row['a'])} - {BACKBONE_TITLES.get(row['b'], row['b'])}, "
                     f"{TEST_METRIC_TITLES[row['metric']]}: {interval['estimate']:+.4f} "
                     f"[{interval['low']:+.4f}, {interval['high']:+.4f}]")
    if record["passed_over"]:
        lines += ["", "Not shipped: " + "; ".join(f"{b}: {why}" for b, why in record["passed_over"].items())]
    lines += ["", "## Licence", "", CELEBA_MODEL_LICENCE, ""]
    text = "\n".join(lines)
    return write_atomically(path, lambda temp_path: temp_path.write_text(text, encoding="utf-8"))


def compare_runs(prediction_files: Sequence[str | os.PathLike], names: Sequence[str], out_dir: str | os.PathLike,
                 seed: int = 0, n_resamples: int = 2000) -> list[dict[str, Any]]:
    """Paired test comparison of finished runs from their ``test_predictions_<backbone>.npz`` (e.g. one
    network trained with ``--class-weighting balanced`` and ``none`` at the same budget): each run at
    its own validation-chosen thresholds, every run against the first on the same test images
    (paired bootstrap). Writes ``run_comparison`` (tables + ``run_comparison.json``) to ``out_dir``
    and returns the comparison rows. The runs must hold the same test images in the same order."""
    if len(prediction_files) != len(names) or len(names) < 2:
        raise ValueError("give two or more prediction files and one name for each")
    runs = []
    for name, path in zip(names, prediction_files):
        with np.load(path) as stored:
            probabilities, labels = stored["probabilities"], stored["labels"]
            predictions = apply_thresholds(probabilities, stored[f"thresholds_{HEADLINE_RULE}"])
            runs.append({"name": name, "path": str(path), "image_ids": stored["image_ids"], "labels": labels,
                         "probabilities": probabilities, "predictions": predictions})
    reference = runs[0]
    for run in runs[1:]:
        if not (np.array_equal(run["image_ids"], reference["image_ids"])
                and np.array_equal(run["labels"], reference["labels"])):
            raise ValueError(f"{run['path']}: not the test images of {reference['path']} (a paired comparison "
                             f"needs the same split)")
    labels = reference["labels"]
    for run in runs:
        run["intervals"] = metric_intervals(labels, run["probabilities"], run["predictions"], seed=seed,
                                            n_resamples=n_resamples)
    rows = []
    for run in runs[1:]:
        for metric in ("accuracy", "f1", "mean_auroc", "mean_ap"):
            rows.append({"a": run["name"], "b": reference["name"], "metric": metric,
                         "interval": paired_difference(labels, (run["probabilities"], run["predictions"]),
                                                       (reference["probabilities"], reference["predictions"]),
                                                       metric, n_resamples=n_resamples, seed=seed)})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_tables([run_comparison_table(runs, rows, len(labels), n_resamples)], out_dir)
    record = {"runs": [{"name": run["name"], "predictions": run["path"],
                        "test_metrics": {key: interval.as_dict() for key, interval in run["intervals"].items()}}
                       for run in runs],
              "comparisons": [{"a": row["a"], "b": row["b"], "metric": row["metric"],
                               "interval": row["interval"].as_dict()} for row in rows]}
    text = json.dumps(record, indent=1) + "\n"
    write_atomically(out_dir / "run_comparison.json", lambda temp_path: temp_path.write_text(text, encoding="utf-8"))
    return rows
