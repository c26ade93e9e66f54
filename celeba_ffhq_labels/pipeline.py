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

import logging
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from common.data.dataset import corrupt_samples_skipped
from common.gpu import select_device
from common.metrics import hamming_loss
from common.tables import na, write_run_record, write_tables

from celeba_ffhq_labels.config import ExperimentConfig
from celeba_ffhq_labels.data import Splits, evaluation_dataset, load_annotations, make_splits
from celeba_ffhq_labels.evaluate import (evaluate_scores, grid_search_thresholds, metric_intervals, plot_auroc_bars,
                                         write_thresholds)
from celeba_ffhq_labels.geometry import geometry_check
from celeba_ffhq_labels.models import CLASSIFIER_FILE, save_classifier
from celeba_ffhq_labels.tables import PAPER_MEAN_AUROC, auroc_table, geometry_table, summary_table
from celeba_ffhq_labels.train import TRAIN_DIR, sigmoid_scores, train_classifier
from celeba_ffhq_labels.transfer import Labeller, write_hq_faces

logger = logging.getLogger(__name__)

THRESHOLDS_FILE = "thresholds.json"
PREDICTIONS_FILE = "predictions.npz"
FIGURE_FILE = "fig3_auroc.png"
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
    if restart and (out_dir / TRAIN_DIR).exists():
        shutil.rmtree(out_dir / TRAIN_DIR)
    annotations = load_annotations(config.data_root, config.data, seed=config.seed)
    splits = make_splits(annotations, config.data)
    sizes = splits.sizes()
    split_note = splits.describe()
    logger.info("%d images: %s", len(annotations), split_note)

    trained = train_classifier(config, annotations, splits, out_dir)
    model = trained.model
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
