"""``reproduce``: the whole of Le & Lee in one call — train on CelebA, evaluate (Fig. 3), search the
thresholds, export the classifier, transfer labels to a folder of high-resolution faces.

Writes under ``out_dir``:
``fig3_auroc.{md,csv}``, ``summary.{md,csv}``, ``tables.json`` (common.tables),
``fig3_auroc.png``, ``thresholds.json``, ``classifier.pt`` (for ``label``),
``hq_faces/`` + ``hq_faces_labels.csv`` (the label-transfer example), ``train/`` (checkpoints,
log.csv, TensorBoard) and ``run.json``.
"""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from common.data.dataset import corrupt_samples_skipped
from common.metrics import hamming_loss
from common.tables import na, write_run_record, write_tables

from celeba_ffhq_labels.config import ExperimentConfig
from celeba_ffhq_labels.data import evaluation_dataset, load_annotations, make_splits
from celeba_ffhq_labels.evaluate import evaluate_scores, grid_search_thresholds, plot_auroc_bars, write_thresholds
from celeba_ffhq_labels.models import save_classifier
from celeba_ffhq_labels.tables import PAPER_MEAN_AUROC, auroc_table, summary_table
from celeba_ffhq_labels.train import TRAIN_DIR, resolve_runtime, sigmoid_scores, train_classifier
from celeba_ffhq_labels.transfer import label_folder, write_hq_faces

logger = logging.getLogger(__name__)

CLASSIFIER_FILE = "classifier.pt"
THRESHOLDS_FILE = "thresholds.json"
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
            f"{sizes['train']} train / {sizes['test']} held-out images, {config.optim.epochs} epochs, "
            f"batch {config.optim.batch_size}, Adam lr {config.optim.learning_rate:g}.")
    if config.scale != "paper":
        note += (" The paper: SE-ResNeXt-101 (32x4d) at 224x224 on 162k / 40k CelebA images; "
                 "compare magnitudes only.")
    return [note]


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
    logger.info("%d images: %s (%s split)", len(annotations), sizes, splits.kind)

    trained = train_classifier(config, annotations, splits, out_dir)
    model = trained.model
    device = resolve_runtime(config.runtime)[0]
    batch_size = config.optim.eval_batch_size

    # §3.2: thresholds by grid search on the held-out split, then every metric of §3.1.
    workers = config.runtime.num_workers
    monitor = sigmoid_scores(model, evaluation_dataset(annotations, splits.monitor, config.model),
                             batch_size, device, progress=config.runtime.progress, num_workers=workers)
    thresholds = grid_search_thresholds(monitor["attributes"], monitor["scores"])
    model.set_decision_thresholds(thresholds)
    test = monitor if splits.kind == "random" else sigmoid_scores(
        model, evaluation_dataset(annotations, splits.test, config.model), batch_size, device,
        progress=config.runtime.progress, num_workers=workers)
    evaluation = evaluate_scores(test["attributes"], test["scores"], thresholds)

    save_classifier(out_dir / CLASSIFIER_FILE, model, config.model,
                    metadata={"scale": config.scale, "mean_auroc": evaluation.mean_auroc,
                              "thresholds_searched_on": f"{splits.kind} split, held-out part"})
    write_thresholds(out_dir / THRESHOLDS_FILE, thresholds,
                     searched_on=f"{'test' if splits.kind == 'random' else 'val'} split "
                                 f"({len(splits.monitor)} images, {splits.kind} split)")
    plot_auroc_bars(evaluation.auroc, out_dir / FIGURE_FILE,
                    title=f"Fig. 3 reproduced: AUROC per attribute — {config.model.title}, "
                          f"scale '{config.scale}', {sizes['test']} held-out images",
                    reference_mean=PAPER_MEAN_AUROC,
                    reference_label=f"paper, mean {PAPER_MEAN_AUROC} (§3.2)")

    # §3.2 / Fig. 4: label transfer to a folder of larger faces (synthetic stand-in for FFHQ).
    hq_dir = out_dir / HQ_FACES_DIR
    if hq_dir.exists():
        shutil.rmtree(hq_dir)
    transfer_config = config.transfer
    face_paths, face_attributes = write_hq_faces(hq_dir, transfer_config.hq_faces_n,
                                                 transfer_config.hq_faces_seed,
                                                 transfer_config.hq_faces_size)
    labelled = label_folder(model, config.model, hq_dir, out_dir / HQ_LABELS_FILE, thresholds,
                            batch_size=transfer_config.batch_size, device=device,
                            progress=config.runtime.progress, num_workers=workers)
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
    write_tables([auroc_table(evaluation, notes), summary_table(evaluation, sizes, transfer, notes)],
                 out_dir)
    facts = {
        "sizes": sizes,
        "split": splits.kind,
        "n_images": len(annotations),
        "steps": trained.result.step,
        "best_held_out_hamming_loss": trained.result.best_value,
        "training_images_per_second": trained.result.samples_per_second,
        "mean_auroc": evaluation.mean_auroc,
        "corrupt_images_skipped": corrupt_samples_skipped(),
        "unreadable_in_label_transfer": labelled.unreadable,
        "device": str(device),
    }
    write_run_record(out_dir, argv, config, start_time=start, extra=facts)
    return facts
