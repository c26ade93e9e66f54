"""The whole reproduction: train every network, evaluate, write Tables 2-4 and Figs. 3-5.

Order: the face parser (§3.2; with Helen also the one trained on all 2,330 images for the
attribute models, §4.1), the parser trained jointly with attributes (§4.4), the six attribute
models of Table 2 (SPPNet*, Naive, BBox, Avg. Pooling, SSG, SSP), the weighted-BCE fine-tuning of
Avg. Pooling / SSG / SSP for balanced accuracy, then LFWA when given. Every network trains in
``<out>/checkpoints/<name>`` and resumes there, so re-running the command after an interruption
continues where it stopped; its validation-selected checkpoint is what gets evaluated.

Besides the paper's tables: ``claims_intervals`` (every comparison of the paper with a paired
95 % bootstrap interval on the test split, ``claims.py``), ``fig4_localisation_check`` /
``fig4_localisation_summary`` (Fig. 4's largest weights against the regions the attributes
describe, ``localisation.py``), per-image localisation maps and learning curves.
``evaluate_run`` recomputes all of it from a finished run's checkpoints.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from common.attributes import ATTRIBUTE_INDEX, PARTS7_LABELS
from common.curves import late_change, read_training_log
from common.gpu import select_device
from common.seed import seed_everything
from common.tables import na, record_process_start, write_run_record, write_tables
from ssp_ssg import figures, tables
from ssp_ssg.claims import claims_table, compare, paper_comparisons
from ssp_ssg.config import ReproduceConfig
from ssp_ssg.data import CelebAWithMasks
from ssp_ssg.evaluate import (attribute_scores, intersection_over_union, majority_probabilities,
                              mean_localisation_weights, per_image_confusions,
                              region_masks_from_probabilities, top_channel_activation)
from ssp_ssg.jobs import (Job, JobResult, PreparedData, ReproductionInputs, all_jobs,
                          inputs_from_run, lfwa_data, load_final, prepare_data,
                          require_same_experiment, run_jobs)
from ssp_ssg.localisation import localisation_tables
from ssp_ssg.models import localisation_maps
from ssp_ssg.train import RunSettings

logger = logging.getLogger(__name__)

MODEL_LABELS = {"segmentation": "Segmentation net (Table 1)",
                "segmentation_all": "Segmentation net on all of Helen (§4.1)",
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
            f"weighted-BCE fine-tuning, batch {optim.batch_size}, AdaGrad lr {optim.learning_rate:g}"
            f"{' annealed to 0 (cosine)' if optim.lr_schedule == 'cosine' else ''}, "
            f"weight decay {optim.weight_decay:g}, validation "
            f"{f'every {config.eval_every} steps' if config.eval_every else 'at the end only'}.")
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



#: The validation metric whose change over the last quarter of training shows a plateau or its
#: absence: mean IoU for the parsers, balanced accuracy for the weighted-BCE fine-tunings (their
#: selection metric), AP (threshold-free) for the other attribute nets.
LATE_CHANGE_NOTE = ("Validation, last quarter: the network's validation metric (%) at the last "
                    "validation at or before 3/4 of its steps (that step given) and at its end, "
                    "and the change; mean IoU for the parsers, balanced accuracy for the "
                    "weighted-BCE fine-tunings, AP for the other attribute nets. A plateau shows "
                    "as a change within the metric's noise.")


def late_validation_change(log_csv: Path, kind: str, balanced: bool) -> list:
    """``[step at 3/4, value there, value at the end, change]`` of the job's validation metric
    (``LATE_CHANGE_NOTE``; ``common.curves.late_change``), or four cells saying why not."""
    if not log_csv.is_file():
        return [na("no training log")] * 4
    column = ("eval/val_mean_iou" if kind in ("segmentation", "joint")
              else "eval/val_balanced_accuracy" if balanced else "eval/val_average_precision")
    change = late_change(read_training_log(log_csv), column)
    if change is None:
        return [na("fewer than two validation points")] * 4
    step, earlier, _, last = change
    return [int(step), earlier, last, last - earlier]


def _summary_row(result: JobResult, log_csv: Path, job: Job) -> list:
    loss = (result.last_training_loss if result.last_training_loss is not None
            else na("no training step logged"))
    return [MODEL_LABELS.get(result.name, result.name), result.trainable_parameters,
            result.steps, result.selected_step, result.batch_size, loss,
            *late_validation_change(log_csv, job.kind, job.balanced_from is not None)]


def reproduce(inputs: ReproductionInputs, argv: list[str]) -> dict:
    """Train every job, evaluate, and write tables, figures, ``timings.json`` and ``run.json``.

    Raises ``ValueError`` before any training when ``<out>/checkpoints`` was started with another
    configuration or data (``jobs.require_same_experiment``)."""
    start = time.time()
    record_process_start(inputs.out_dir, start)
    seed_everything(inputs.config.seed)
    data = prepare_data(inputs)  # writes the synthetic faces once, before any worker starts
    logger.info("attributes: %d train / %d validation / %d test images; parsing: %s",
                len(data.train_set), len(data.val_set), len(data.test_set), data.parsing_source)
    jobs = all_jobs(inputs)
    require_same_experiment(inputs, data, jobs)
    results = run_jobs(inputs, jobs, inputs.config.parallel_jobs)
    return write_results(inputs, data, jobs, results, Path(inputs.out_dir), argv, start, "reproduce")


def evaluate_run(run: str | Path, out_dir: str | Path | None, settings: RunSettings,
                 argv: list[str], synthetic_cache: Path = Path("results/.synthetic"),
                 bootstrap_resamples: int | None = None) -> dict:
    """``python -m ssp_ssg evaluate``: the tables and figures of a finished reproduction (its
    ``--out`` folder ``run``) recomputed from its selected checkpoints, without training, into
    ``out_dir`` (default ``<run>/evaluation``). The configuration and data folders come from
    ``<run>/checkpoints/experiment.json``; every network must have finished (``ValueError``
    naming the first that has not). ``bootstrap_resamples`` (default: the scale's) is the one
    evaluation setting; with reproduce's, the tables equal reproduce's."""
    start = time.time()
    inputs = inputs_from_run(run, settings, synthetic_cache)
    if bootstrap_resamples is not None:
        inputs = dataclasses.replace(inputs, config=dataclasses.replace(
            inputs.config, bootstrap_resamples=bootstrap_resamples))
    out_dir = Path(out_dir) if out_dir is not None else Path(inputs.out_dir) / "evaluation"
    seed_everything(inputs.config.seed)
    data = prepare_data(inputs)
    jobs = all_jobs(inputs)
    require_same_experiment(inputs, data, jobs)
    results = run_jobs(inputs, jobs, parallel_jobs=1, train=False)
    return write_results(inputs, data, jobs, results, out_dir, argv, start, "evaluate")


#: Attributes of the per-image localisation figure: one per kind of region.
MAP_FIGURE_ATTRIBUTES = ("Bangs", "Eyeglasses", "Smiling", "Big_Nose", "Rosy_Cheeks")


def write_results(inputs: ReproductionInputs, data: PreparedData, jobs: list[Job],
                  results: dict[str, JobResult], out_dir: Path, argv: list[str], start: float,
                  mode: str) -> dict:
    """Tables 2-4, the claims with intervals, the Fig. 4 check, the figures, ``run.json`` (and
    ``timings.json`` after training) from the jobs' selected checkpoints, into ``out_dir``."""
    config = inputs.config
    out_dir.mkdir(parents=True, exist_ok=True)
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
    confusions = {
        "alone": per_image_confusions(parser, data.parsing_test, len(PARTS7_LABELS), eval_batch, device),
        "joint": per_image_confusions(joint.segmentation, data.parsing_test, len(PARTS7_LABELS),
                                      eval_batch, device)}
    iou_alone, mean_alone = intersection_over_union(confusions["alone"].sum(axis=0))
    iou_joint, mean_joint = intersection_over_union(confusions["joint"].sum(axis=0))

    source, splits = data.source, data.splits
    scale_note = describe_scale(config, source)
    data_note = (f"Data: {'synthetic faces' if source.synthetic else 'real CelebA'} "
                 f"({source.annotations.root}); {len(splits.train)} train / {len(splits.val)} "
                 f"validation / {len(splits.test)} test images ({splits.description}); every "
                 f"network's checkpoint chosen on the validation images; SSP / SSG / Naive read "
                 f"a parser trained on {data.parsing_source}; BBox landmarks: "
                 f"{source.landmark_source}.")
    if source.n_dropped:
        data_note += f" {source.n_dropped} images without a face / mask were left out."
    metric_note = (f"Error at threshold 0.5; AP averaged over the "
                   f"{scores['avgpool'].n_attributes_with_positives} of 40 attributes with "
                   f"positives in the test split, balanced accuracy over the "
                   f"{scores['avgpool'].n_attributes_with_both} with both classes.")
    notes = (scale_note, data_note, metric_note)
    parsing_note = (f"Parsing test set: {data.parsing_source}; IoU of the full-resolution "
                    f"output (Deconv13).")
    written = tables.table2(scores, balanced_scores, majority, notes)
    written.append(tables.table3(lfwa_scores, (scale_note,)))
    written.append(tables.table4(iou_alone, mean_alone, iou_joint, mean_joint, PARTS7_LABELS,
                                 (scale_note, parsing_note)))
    written.append(tables.training_summary(
        [_summary_row(results[job.name], inputs.checkpoint_dir(job.name) / "log.csv", job)
         for job in jobs], (scale_note, LATE_CHANGE_NOTE)))
    comparisons = compare(paper_comparisons(), test_labels, probabilities, balanced, confusions,
                          config.bootstrap_resamples, seed=config.seed)
    written.append(claims_table(comparisons, (scale_note, data_note, parsing_note)))

    ssp = load_final(inputs, Job("ssp", "attributes", "ssp")).to(device)
    weights = mean_localisation_weights(ssp, data.test_set, eval_batch, device)
    figures.localisation_heatmap(weights, out_dir / "fig4_ssp_localisation_weights.png")
    np.savetxt(out_dir / "fig4_ssp_localisation_weights.csv", weights.T, delimiter=",",
               fmt="%.5f", header=",".join(PARTS7_LABELS), comments="")
    check, summary_table, summary = localisation_tables(weights, (scale_note,))
    written += [check, summary_table]
    write_tables(written, out_dir)

    write_figures(inputs, data, ssp, parser, joint, device, out_dir)
    figures.learning_curves(
        {MODEL_LABELS.get(job.name, job.name): inputs.checkpoint_dir(job.name) / "log.csv"
         for job in jobs},
        {MODEL_LABELS.get(job.name, job.name): results[job.name].selected_step for job in jobs},
        out_dir / "fig_learning_curves.png")
    timings = {name: {"wall_seconds": round(r.wall_seconds, 2),
                      "train_images_per_second": r.train_images_per_second}
               for name, r in results.items() if r.wall_seconds is not None}
    if timings:
        (out_dir / "timings.json").write_text(json.dumps(
            {"device": str(device), "torch_threads": config.torch_threads or torch.get_num_threads(),
             "parallel_jobs": config.parallel_jobs, "runs": timings}, indent=1) + "\n")
    write_run_record(out_dir, argv, config, start_time=start, extra={
        "mode": mode, "run_folder": inputs.out_dir, "data_root": inputs.data_root,
        "masks_root": inputs.masks_root, "helen_root": inputs.helen_root,
        "lfwa_root": inputs.lfwa_root, "train_images": len(splits.train),
        "validation_images": len(splits.val), "test_images": len(splits.test),
        "parsing": data.parsing_source, "settings": inputs.settings, "timings": timings,
        "localisation_matches": dataclasses.asdict(summary)})
    return {"scores": scores, "balanced": balanced_scores, "majority": majority,
            "iou": (mean_alone, mean_joint), "comparisons": comparisons,
            "localisation": summary}


def write_figures(inputs: ReproductionInputs, data: PreparedData, ssp, parser, joint, device,
                  out_dir: Path) -> None:
    """Figs. 3 (parsing examples), 5 (top-50 activations) and the per-image localisation maps."""
    count = inputs.config.figure_images
    avgpool = load_final(inputs, Job("avgpool", "attributes", "avgpool")).to(device)
    images = _stack_images(data.test_set, count)["image"].to(device)
    figures.top_channel_figure(images.cpu().numpy(), {
        "Avg. Pooling": top_channel_activation(avgpool, images),
        "SSP": top_channel_activation(ssp, images)}, out_dir / "fig5_top50_activations.png")
    columns = [ATTRIBUTE_INDEX[name] for name in MAP_FIGURE_ATTRIBUTES]
    with torch.no_grad():
        ssp.eval()
        logits, weights, region_probs = ssp.forward_with_regions(images)
        maps = localisation_maps(weights[:, :, columns], region_probs, images.shape[-2:])
    present = torch.sigmoid(logits)[:, columns].cpu().numpy()
    titles = [[f"{name.replace('_', ' ')} p={p:.2f}" for name, p in zip(MAP_FIGURE_ATTRIBUTES, row)]
              for row in present]
    figures.localisation_map_figure(images.cpu().numpy(), maps.cpu().numpy(), MAP_FIGURE_ATTRIBUTES,
                                    out_dir / "fig4_localisation_maps.png", titles=titles)
    batch = _stack_images(data.parsing_test, count)
    parsing_images = batch["image"].to(device)
    figures.parsing_figure(batch["image"].numpy(), {
        f"truth ({data.source.mask_source.split(' (')[0]})": batch["mask"].numpy(),
        "parser": region_masks_from_probabilities(parser.to(device), parsing_images),
        "parser + attributes": region_masks_from_probabilities(joint.segmentation.to(device),
                                                               parsing_images),
    }, out_dir / "fig3_parsing_examples.png")
