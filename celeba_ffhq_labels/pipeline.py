"""``reproduce``: the whole of Le & Lee in one call — train on CelebA, choose the checkpoint and
search the thresholds on validation, evaluate on test (Fig. 3, with intervals), check the label
command's geometry step, export the classifier, transfer labels to a folder of larger faces.

Writes under ``out_dir``:
``fig3_auroc.{md,csv}``, ``summary.{md,csv}``, ``geometry_check.{md,csv}``, ``tables.json``
(common.tables), ``fig3_auroc.png``, ``thresholds.json``, ``predictions.npz`` (validation and test
scores and labels), ``classifier.pt`` (for ``label``), ``hq_faces/`` + ``hq_faces_labels.csv``
(the label-transfer example), ``train/`` (checkpoints, log.csv, TensorBoard) and ``run.json``.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from common.checkpoint import write_atomically
from common.curves import plot_training_log
from common.data.dataset import corrupt_samples_skipped
from common.export import CELEBA_MODEL_LICENCE
from common.gpu import select_device
from common.metrics import auroc, hamming_loss
from common.tables import na, record_process_start, wall_time_text, write_run_record, write_tables

from celeba_ffhq_labels.config import DataConfig, ExperimentConfig
from celeba_ffhq_labels.data import Splits, evaluation_dataset, load_annotations, make_splits
from celeba_ffhq_labels.evaluate import (evaluate_scores, grid_search_thresholds, metric_intervals, plot_auroc_bars,
                                         plot_label_density, plot_labelled_faces,
                                         write_thresholds)
from celeba_ffhq_labels.geometry import geometry_check
from celeba_ffhq_labels.models import CLASSIFIER_FILE, export_classifier, save_classifier
from celeba_ffhq_labels.tables import PAPER_MEAN_AUROC, auroc_table, geometry_table, summary_table
from celeba_ffhq_labels.train import TRAIN_DIR, sigmoid_scores, train_classifier
from celeba_ffhq_labels.transfer import Labeller, write_hq_faces

logger = logging.getLogger(__name__)

THRESHOLDS_FILE = "thresholds.json"
PREDICTIONS_FILE = "predictions.npz"
FIGURE_FILE = "fig3_auroc.png"
DENSITY_FILE = "fig2_label_density.png"
LABELLED_FACES_FILE = "fig4_labelled_faces.png"
CURVES_FILE = "training_curves.png"
HQ_FACES_DIR = "hq_faces"
HQ_LABELS_FILE = "hq_faces_labels.csv"


def scale_notes(config: ExperimentConfig, sizes: dict[str, int]) -> list[str]:
    """One sentence on what this run is, printed under every table."""
    height, width = config.model.input_size
    data = "synthetic faces (common.synthetic)" if config.data_root is None else f"CelebA from {config.data_root}"
    weights = ("ImageNet weights from " + config.model.pretrained_path if config.model.pretrained_path
               else "from scratch")
    note = (f"Scale '{config.scale}': {config.model.title} ({weights}) at {height}x{width}, {data}, "
            f"{sizes['train']} train / {sizes['val']} val / {sizes['test']} test images, "
            f"{config.optim.epochs} epochs, batch {config.optim.batch_size}, Adam lr "
            f"{config.optim.learning_rate:g}.")
    if config.scale != "paper":
        note += (" The paper: SE-ResNeXt-101 (32x4d) at 224x224 on 162k / 40k CelebA images; "
                 "compare magnitudes only.")
    return [note]


def save_predictions(path: Path, annotations, splits: Splits, val: dict, test: dict,
                     thresholds: np.ndarray) -> Path:
    """``predictions.npz``: per set (``val``, ``test``) the sigmoid scores (float64), the true labels,
    the rows of the annotations and the image ids, plus the thresholds searched on ``val_scores``."""
    arrays = {"thresholds": np.asarray(thresholds, dtype=np.float64)}
    for name, scores, rows in (("val", val, splits.val), ("test", test, splits.test)):
        kept = rows[scores["index"].astype(np.int64)]  # corrupt images dropped
        arrays.update({f"{name}_scores": scores["scores"], f"{name}_labels": scores["attributes"].astype(np.uint8),
                       f"{name}_rows": kept,
                       f"{name}_images": np.array([annotations.image_ids[row] for row in kept], dtype=str)})
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(temporary, **arrays)
    temporary.replace(path)
    return path


def reproduce(config: ExperimentConfig, out_dir: str | Path, argv: Sequence[str] | None = None,
              restart: bool = False) -> dict:
    """Run the pipeline of ``config`` into ``out_dir``; returns the facts written to run.json."""
    start = time.time()
    out_dir = Path(out_dir)
    record_process_start(out_dir, start, fresh=restart)
    if restart and (out_dir / TRAIN_DIR).exists():
        shutil.rmtree(out_dir / TRAIN_DIR)
    annotations = load_annotations(config.data_root, config.data, seed=config.seed)
    splits = make_splits(annotations, config.data)
    sizes = splits.sizes()
    split_note = splits.describe()
    logger.info("%d images: %s", len(annotations), split_note)

    plot_label_density({name: annotations.attributes[getattr(splits, name)] for name in ("train", "val", "test")},
                       out_dir / DENSITY_FILE, title=f"Fig. 2 reproduced: attribute label density, {split_note}")
    trained = train_classifier(config, annotations, splits, out_dir)
    model = trained.model
    plot_training_log(trained.train_dir / "log.csv", out_dir / CURVES_FILE, best_metric="hamming_loss",
                      title=f"{config.model.title}, scale '{config.scale}': the kept checkpoint has the lowest "
                            f"validation hamming loss")
    device = select_device(config.runtime.device)
    batch_size = config.optim.eval_batch_size
    workers, progress = config.runtime.num_workers, config.runtime.progress

    # §3.2: thresholds by grid search on validation; every §3.1 metric on test, with intervals.
    val = sigmoid_scores(model, evaluation_dataset(annotations, splits.val, config.model), batch_size, device,
                         progress=progress, num_workers=workers)
    thresholds = grid_search_thresholds(val["attributes"], val["scores"])
    model.set_decision_thresholds(thresholds)
    test = sigmoid_scores(model, evaluation_dataset(annotations, splits.test, config.model), batch_size, device,
                          progress=progress, num_workers=workers)
    evaluation = evaluate_scores(test["attributes"], test["scores"], thresholds)
    options = config.evaluation
    intervals = metric_intervals(test["attributes"], test["scores"], thresholds,
                                 n_resamples=options.bootstrap_resamples, confidence=options.confidence,
                                 seed=options.bootstrap_seed)
    save_predictions(out_dir / PREDICTIONS_FILE, annotations, splits, val, test, thresholds)

    searched_on = f"val ({len(val['scores'])} images, {splits.rule})"
    save_classifier(out_dir / CLASSIFIER_FILE, model, config.model,
                    metadata={"scale": config.scale, "data": "synthetic" if config.data_root is None else "CelebA",
                              "split": splits.as_dict(), "thresholds": [float(t) for t in thresholds],
                              "thresholds_searched_on": searched_on,
                              "test_metrics": {name: interval.as_dict()
                                               for name, interval in intervals.metrics.items()}})
    write_thresholds(out_dir / THRESHOLDS_FILE, thresholds, searched_on=searched_on)
    plot_auroc_bars(evaluation.auroc, out_dir / FIGURE_FILE,
                    title=f"Fig. 3 reproduced: AUROC per attribute — {config.model.title}, "
                          f"scale '{config.scale}', {sizes['test']} test images ({splits.rule})",
                    reference_mean=PAPER_MEAN_AUROC,
                    reference_label=f"paper, mean {PAPER_MEAN_AUROC} (§3.2)")

    # The label command's geometry step, checked on the test faces re-cropped to CelebA-HQ's frame.
    labeller = Labeller(model, config.model, thresholds, geometry="auto", source="this run")
    image_paths = annotations.image_paths()
    test_paths = [image_paths[row] for row in splits.test]
    check = geometry_check(labeller, test_paths, annotations.attributes[splits.test],
                           hq_size=options.hq_check_size, batch_size=batch_size, num_workers=workers,
                           progress=progress, n_resamples=options.bootstrap_resamples,
                           confidence=options.confidence, seed=options.bootstrap_seed)

    # §3.2 / Fig. 4: label transfer to a folder of larger faces (synthetic stand-in for FFHQ).
    hq_dir = out_dir / HQ_FACES_DIR
    if hq_dir.exists():
        shutil.rmtree(hq_dir)
    transfer_config = config.transfer
    face_paths, face_attributes = write_hq_faces(hq_dir, transfer_config.hq_faces_n,
                                                 transfer_config.hq_faces_seed,
                                                 transfer_config.hq_faces_size)
    labelled = labeller.label(hq_dir, out_dir / HQ_LABELS_FILE, batch_size=transfer_config.batch_size,
                              num_workers=workers, progress=progress)
    readable_paths = [hq_dir / name for name, ok in zip(labelled.images, labelled.readable) if ok]
    plot_labelled_faces(readable_paths[:8], labelled.soft_labels[:8], labelled.hard_labels[:8],
                        out_dir / LABELLED_FACES_FILE,
                        title="Fig. 4 reproduced: hard labels (validation thresholds) of the example HQ faces, "
                              "most probable first, with their soft labels")
    if config.data_root is None:
        names = [path.relative_to(hq_dir).as_posix() for path in face_paths]
        readable = [k for k, name in enumerate(names) if name not in set(labelled.unreadable)]
        hard = labelled.hard_labels[labelled.label_rows([names[k] for k in readable])]
        transfer_hamming = hamming_loss(face_attributes[readable], hard)
        transfer_baseline = hamming_loss(face_attributes[readable], np.zeros_like(hard))
    else:
        transfer_hamming = transfer_baseline = na(
            "model trained on real CelebA; the synthetic HQ faces' labels are the renderer's, "
            "not comparable")
    transfer = {"labelled": int(labelled.readable.sum()), "unreadable": len(labelled.unreadable),
                "hamming_loss": transfer_hamming, "all_negative_hamming_loss": transfer_baseline}

    notes = scale_notes(config, sizes)
    write_tables([auroc_table(evaluation, intervals, split_note, notes),
                  summary_table(evaluation, intervals, sizes, transfer, split_note, notes),
                  geometry_table(check, split_note, notes, synthetic=config.data_root is None)],
                 out_dir)
    facts = {
        "sizes": sizes,
        "split": splits.as_dict(),
        "n_images": len(annotations),
        "steps": trained.result.step,
        "best_val_hamming_loss": trained.result.best_value,
        "training_images_per_second": trained.result.samples_per_second,
        "mean_auroc": evaluation.mean_auroc,
        "test_intervals": intervals.as_dict(),
        "geometry_check": check.as_dict(),
        "corrupt_images_skipped": corrupt_samples_skipped(),
        "unreadable_in_label_transfer": labelled.unreadable,
        "device": str(device),
        "bf16": trained.bf16_decision,
    }
    write_run_record(out_dir, argv, config, start_time=start, extra=facts)
    return facts


#: The shipped labeller's card, beside the model file.
MODEL_CARD_FILE = "MODEL_CARD.md"


def ship_labeller(results_dir: str | Path, model_path: str | Path, batch_size: int = 100) -> dict:
    """Ship the classifier of a finished ``reproduce`` run: write ``model_path`` (``models.export_classifier``:
    int8 / fp16, at most 10 MiB, with the validation thresholds) and ``MODEL_CARD.md`` beside it.

    The shipped weights are checked the way a user meets them: the run's test images are labelled by
    ``label``'s path (``transfer.Labeller``, CelebA geometry) with the shipped file and with the run's
    full-precision ``classifier.pt``, and both mean AUROCs go into the card beside the run's own.
    Returns the record written into the model's metadata and the card."""
    results_dir, model_path = Path(results_dir), Path(model_path)
    run = json.loads((results_dir / "run.json").read_text(encoding="utf-8"))
    with np.load(results_dir / PREDICTIONS_FILE) as stored:
        test_rows, test_labels = stored["test_rows"], stored["test_labels"]
    run_mean_auroc = float(run["extra"]["mean_auroc"])
    data = DataConfig(**{key: tuple(value) if isinstance(value, list) else value
                         for key, value in run["config"]["data"].items()})
    annotations = load_annotations(run["config"]["data_root"], data, seed=run["config"]["seed"])
    image_paths = annotations.image_paths()
    test_paths = [image_paths[row] for row in test_rows]
    record = {"source_run": str(results_dir), "command": run["command"], "start_time": run["start_time"],
              "test_mean_auroc_run": run_mean_auroc}
    export_classifier(results_dir / CLASSIFIER_FILE, model_path, extra_meta={"shipped": record})
    with tempfile.TemporaryDirectory() as scratch:
        for key, source in (("test_mean_auroc_fp32_label_path", results_dir / CLASSIFIER_FILE),
                            ("test_mean_auroc_shipped", model_path)):
            labelled = Labeller.from_file(source, geometry="celeba").label(
                test_paths, Path(scratch) / "test.csv", batch_size=batch_size, progress=False)
            rows = labelled.label_rows([path.name for path in test_paths])
            record[key] = float(np.nanmean(auroc(test_labels, labelled.soft_labels[rows])))
    record["bytes"] = model_path.stat().st_size
    write_model_card(model_path.parent / MODEL_CARD_FILE, model_path, run, record)
    return record


def write_model_card(path: Path, model_path: Path, run: dict, record: dict) -> Path:
    """``MODEL_CARD.md`` of the shipped labeller; every number from the run's ``run.json`` and
    :func:`ship_labeller`'s re-evaluation of the shipped weights."""
    facts, config = run["extra"], run["config"]
    split, metrics = facts["split"], facts["test_intervals"]["metrics"]
    sizes = split["sizes"]
    identities = split.get("identities") or {}
    data = ("synthetic faces (`common.synthetic`): a pipeline check, not a model to use"
            if config["data_root"] is None else f"CelebA images under `{config['data_root']}`")
    height, width = config["model"]["input_size"]
    lines = [
        f"# Model card: `{model_path.name}` ({config['model']['title']}, CelebA's 40 attributes)", "",
        "- **Task**: soft (sigmoid) and hard (per-attribute threshold) labels of CelebA's 40 attributes for a face "
        "image (Le & Lee, label transfer to FFHQ); `python -m celeba_ffhq_labels label --images DIR --out CSV` uses "
        "this model by default.",
        f"- **Data**: {sizes['train']:,} / {sizes['val']:,} / {sizes['test']:,} train / validation / test images "
        f"of {identities.get('train', '?')} / {identities.get('val', '?')} / {identities.get('test', '?')} people, "
        f"{data}, split by {split['rule']}: no person is in two sets.",
        f"- **Training**: `{run['command']}` ({run['start_time']}, {wall_time_text(run)}); "
        f"{facts['steps']:,} steps, input {height}x{width} (CelebA's aligned frame), from scratch; the checkpoint "
        "with the lowest validation hamming loss. See the package README for every reduction against the paper.",
        "- **Decision rule**: per-attribute thresholds searched on validation (§3.2), stored in the file.",
        "- **Input geometry**: faces in CelebA's aligned 178x218 frame (any size of that aspect) are used as they "
        "are; square CelebA-HQ / FFHQ crops are mapped to that frame first (`--geometry`, README).",
        f"- **Weights**: int8 per-output-channel for large tensors, fp16 elsewhere (`common.export`), "
        f"{record['bytes'] / 2**20:.2f} MiB. Test mean AUROC through the `label` path: "
        f"{record['test_mean_auroc_shipped']:.4f} with these weights, {record['test_mean_auroc_fp32_label_path']:.4f} "
        f"with the full-precision checkpoint ({record['test_mean_auroc_run']:.4f} as the run evaluated it).",
        "", f"## Test metrics (95 % bootstrap intervals over the {sizes['test']:,} test images)", "",
        "| metric | value | 95 % CI |", "|---|---:|---|"]
    titles = {"mean_auroc": "Mean AUROC (40 attributes)", "hamming_loss": "Hamming loss, validation thresholds",
              "hamming_loss_at_half": "Hamming loss, threshold 0.5",
              "all_negative_hamming_loss": "Hamming loss, all-negative baseline",
              "mean_accuracy": "Mean accuracy, validation thresholds"}
    for key, title in titles.items():
        if key in metrics:
            interval = metrics[key]
            lines.append(f"| {title} | {interval['estimate']:.4f} | [{interval['low']:.4f}, {interval['high']:.4f}] |")
    geometry = facts.get("geometry_check", {}).get("variants", {})
    if geometry:
        lines += ["", "## Geometry check (test faces re-cropped to CelebA-HQ's square frame)", "",
                  "| faces | mean AUROC | 95 % CI | Male AUROC |", "|---|---:|---|---:|"]
        for variant in geometry.values():
            interval = variant["mean_auroc"]
            lines.append(f"| {variant['title']} | {interval['estimate']:.4f} | [{interval['low']:.4f}, "
                         f"{interval['high']:.4f}] | {variant['male_auroc']:.4f} |")
    lines += ["", "## Limits", "",
              "- Trained on aligned CelebA crops of celebrities at low resolution; expect lower accuracy on other "
              "populations, poses, lighting and on faces not aligned like CelebA's. Subjective attributes "
              "(Attractive, Big_Nose, ...) carry CelebA's annotators' judgement.",
              "", "## Licence", "", CELEBA_MODEL_LICENCE, ""]
    text = "\n".join(lines)
    return write_atomically(path, lambda temp_path: temp_path.write_text(text, encoding="utf-8"))
