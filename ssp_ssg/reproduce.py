"""The whole reproduction: train every network, evaluate, write Tables 2-4 and Figs. 4-5.

Order: the face parser (§3.2), the parser trained jointly with attributes (§4.4), the six
attribute models of Table 2 (SPPNet*, Naive, BBox, Avg. Pooling, SSG, SSP), the weighted-BCE
fine-tuning of Avg. Pooling / SSG / SSP for balanced accuracy, then LFWA when given. Every
network trains in ``<out>/checkpoints/<name>`` and resumes there, so re-running the command
after an interruption continues where it stopped.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from common.attributes import PARTS7_LABELS
from common.gpu import select_device
from common.seed import seed_everything
from common.tables import na, write_run_record, write_tables
from ssp_ssg import figures, tables
from ssp_ssg.config import ReproduceConfig
from ssp_ssg.data import CelebAWithMasks
from ssp_ssg.evaluate import (attribute_scores, intersection_over_union, majority_probabilities,
                              mean_localisation_weights, region_masks_from_probabilities,
                              segmentation_confusion, top_channel_activation)
from ssp_ssg.jobs import (Job, JobResult, PreparedData, ReproductionInputs, celeba_jobs,
                          lfwa_data, lfwa_jobs, load_final, prepare_data, require_same_experiment,
                          run_jobs)

logger = logging.getLogger(__name__)

MODEL_LABELS = {"segmentation": "Segmentation net (Table 1)",
                "joint": "Joint attribute + parsing net (§4.4)", "spp": "SPPNet*",
                "naive": "Naive Approach", "bbox": "BBox", "avgpool": "Avg. Pooling",
                "ssg": "SSG", "ssp": "SSP", "avgpool_balanced": "Avg. Pooling, weighted BCE",
                "ssg_balanced": "SSG, weighted BCE", "ssp_balanced": "SSP, weighted BCE",
                "lfwa_avgpool": "LFWA: Avg. Pooling", "lfwa_ssg": "LFWA: SSG",
                "lfwa_ssp": "LFWA: SSP"}


def describe_scale(config: ReproduceConfig, source: CelebAWithMasks) -> str:
    arch, optim, data = config.architecture, config.optim, config.data
    channels = [arch.scaled(c) for c in (*arch.encoder_channels, *arch.head_channels)]
    text = (f"Scale '{config.scale}': {data.image_size[0]}x{data.image_size[1]} input, "
            f"width x{arch.width_multiplier:g} ({channels[0]}..{channels[-1]} filters), "
            f"{optim.attribute_steps} iterations per attribute net, {optim.segmentation_steps} "
            f"for the parser, {optim.joint_steps} joint, {optim.balanced_finetune_steps} of "
            f"weighted-BCE fine-tuning, batch {optim.batch_size}, AdaGrad lr {optim.learning_rate:g}, "
            f"weight decay {optim.weight_decay:g}.")
    if config.scale != "paper":
        text += (" The paper: 218x178 input, 64..1024 filters, 40K / 75K iterations of batch 32, "
                 "lr 0.001 (§5).")
    return text


def _stack_images(dataset: Dataset, count: int):
    samples = [dataset[i] for i in range(min(count, len(dataset)))]
    samples = [s for s in samples if s is not None]
    batch = {"image": torch.stack([s["image"] for s in samples])}
    if "mask" in samples[0]:
        batch["mask"] = torch.stack([s["mask"] for s in samples])
    return batch



def _summary_row(result: JobResult) -> list:
    loss = (result.last_training_loss if result.last_training_loss is not None
            else na("no training step logged"))
    return [MODEL_LABELS.get(result.name, result.name), result.trainable_parameters,
            result.steps, result.batch_size, loss]


def reproduce(inputs: ReproductionInputs, argv: list[str]) -> dict:
    """Train every job, evaluate, and write tables, figures, ``timings.json`` and ``run.json``.

    Raises ``ValueError`` before any training when ``<out>/checkpoints`` was started with another
    configuration or data (``jobs.require_same_experiment``)."""
    start = time.time()
    config, out_dir = inputs.config, Path(inputs.out_dir)
    seed_everything(config.seed)
    data = prepare_data(inputs)  # writes the synthetic faces once, before any worker starts
    logger.info("attributes: %d train / %d test images; parsing: %s", len(data.train_set),
                len(data.test_set), data.parsing_source)
    jobs = celeba_jobs() + (lfwa_jobs() if inputs.lfwa_root is not None else [])
    require_same_experiment(inputs, data, jobs)
    results = run_jobs(inputs, jobs, config.parallel_jobs)

    test_labels = results["avgpool"].labels
    probabilities = {name: results[name].probabilities
                     for name in ("spp", "naive", "bbox", "avgpool", "ssg", "ssp")}
    probabilities["ssp+ssg"] = 0.5 * (probabilities["ssp"] + probabilities["ssg"])
    balanced = {name: results[f"{name}_balanced"].probabilities for name in tables.BALANCED_MODELS}
    balanced["ssp+ssg"] = 0.5 * (balanced["ssp"] + balanced["ssg"])
    scores = {name: attribute_scores(test_labels, p) for name, p in probabilities.items()}
    balanced_scores = {name: attribute_scores(test_labels, p) for name, p in balanced.items()}
    majority = attribute_scores(test_labels,
                                majority_probabilities(data.train_labels, len(test_labels)))
    lfwa_scores = None
    if inputs.lfwa_root is not None:
        known = lfwa_data(inputs)[2]
        lfwa = {name: results[f"lfwa_{name}"] for name in ("avgpool", "ssg", "ssp")}
        lfwa_probabilities = {name: r.probabilities for name, r in lfwa.items()}
        lfwa_probabilities["ssp+ssg"] = 0.5 * (lfwa_probabilities["ssp"] + lfwa_probabilities["ssg"])
        lfwa_labels = lfwa["avgpool"].labels
        lfwa_scores = {name: attribute_scores(lfwa_labels[:, known], p[:, known])
                       for name, p in lfwa_probabilities.items()}

    device = select_device(inputs.settings.device)
    parser = load_final(inputs, Job("segmentation", "segmentation"))
    joint = load_final(inputs, Job("joint", "joint"))
    eval_batch = max(2 * config.optim.batch_size, 32)
    iou_alone, mean_alone = intersection_over_union(segmentation_confusion(
        parser, data.parsing_test, len(PARTS7_LABELS), eval_batch, device))
    iou_joint, mean_joint = intersection_over_union(segmentation_confusion(
        joint.segmentation, data.parsing_test, len(PARTS7_LABELS), eval_batch, device))

    source, splits = data.source, data.splits
    scale_note = describe_scale(config, source)
    data_note = (f"Data: {'synthetic faces' if source.synthetic else 'real CelebA'} "
                 f"({source.annotations.root}); {len(splits.train)} train / {len(splits.test)} "
                 f"test images ({splits.description}); SSP / SSG / Naive read a parser trained "
                 f"on {data.parsing_source}; BBox landmarks: {source.landmark_source}.")
    if source.n_dropped:
        data_note += f" {source.n_dropped} images without a face / mask were left out."
    metric_note = (f"Error at threshold 0.5; AP averaged over the "
                   f"{scores['avgpool'].n_attributes_with_positives} of 40 attributes with "
                   f"positives in the test split, balanced accuracy over the "
                   f"{scores['avgpool'].n_attributes_with_both} with both classes.")
    notes = (scale_note, data_note, metric_note)
    written = tables.table2(scores, balanced_scores, majority, notes)
    written.append(tables.table3(lfwa_scores, (scale_note,)))
    written.append(tables.table4(
        iou_alone, mean_alone, iou_joint, mean_joint, PARTS7_LABELS,
        (scale_note, f"Parsing test set: {data.parsing_source}; IoU of the full-resolution "
                     f"output (Deconv13).")))
    written.append(tables.training_summary([_summary_row(results[job.name]) for job in jobs],
                                           (scale_note,)))
    write_tables(written, out_dir)

    write_figures(inputs, data, parser, joint, device, eval_batch)
    timings = {name: {"wall_seconds": round(r.wall_seconds, 2),
                      "train_images_per_second": r.train_images_per_second}
               for name, r in results.items()}
    (out_dir / "timings.json").write_text(json.dumps(
        {"device": str(device), "torch_threads": config.torch_threads or torch.get_num_threads(),
         "parallel_jobs": config.parallel_jobs, "runs": timings}, indent=1) + "\n")
    write_run_record(out_dir, argv, config, start_time=start, extra={
        "data_root": inputs.data_root, "masks_root": inputs.masks_root,
        "helen_root": inputs.helen_root, "lfwa_root": inputs.lfwa_root,
        "train_images": len(splits.train), "test_images": len(splits.test),
        "parsing": data.parsing_source, "settings": inputs.settings, "timings": timings})
    return {"scores": scores, "balanced": balanced_scores, "majority": majority,
            "iou": (mean_alone, mean_joint)}


def write_figures(inputs: ReproductionInputs, data: PreparedData, parser, joint, device,
                  eval_batch: int) -> None:
    """Figs. 3 (parsing examples), 4 (localisation weights) and 5 (top-50 activations)."""
    out_dir, count = Path(inputs.out_dir), inputs.config.figure_images
    ssp = load_final(inputs, Job("ssp", "attributes", "ssp")).to(device)
    avgpool = load_final(inputs, Job("avgpool", "attributes", "avgpool")).to(device)
    weights = mean_localisation_weights(ssp, data.test_set, eval_batch, device)
    figures.localisation_heatmap(weights, out_dir / "fig4_ssp_localisation_weights.png")
    np.savetxt(out_dir / "fig4_ssp_localisation_weights.csv", weights.T, delimiter=",",
               fmt="%.5f", header=",".join(PARTS7_LABELS), comments="")
    images = _stack_images(data.test_set, count)["image"].to(device)
    figures.top_channel_figure(images.cpu().numpy(), {
        "Avg. Pooling": top_channel_activation(avgpool, images),
        "SSP": top_channel_activation(ssp, images)}, out_dir / "fig5_top50_activations.png")
    batch = _stack_images(data.parsing_test, count)
    parsing_images = batch["image"].to(device)
    figures.parsing_figure(batch["image"].numpy(), {
        f"truth ({data.source.mask_source.split(' (')[0]})": batch["mask"].numpy(),
        "parser": region_masks_from_probabilities(parser.to(device), parsing_images),
        "parser + attributes": region_masks_from_probabilities(joint.segmentation.to(device),
                                                               parsing_images),
    }, out_dir / "fig3_parsing_examples.png")
