"""The training runs of a reproduction as independent jobs, run in order or two at a time.

Each job trains one network in ``<out>/checkpoints/<name>`` (resuming from ``last.pt``), keeps
the checkpoint its validation metric chose (``best.pt``), then scores that one on the
validation and test images. Jobs only share files: the parser's selected checkpoint for
SSP / SSG / Naive, a trained model's selected checkpoint for its weighted-BCE fine-tuning. So on a
2-core CPU two single-threaded jobs train side by side (``parallel_jobs``), which is faster
than one job on two threads for these small nets and keeps every run deterministic.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from common.attributes import CELEBA_ATTRIBUTES, PARTS7_LABELS
from common.checkpoint import (configuration_fingerprint, load_checkpoint,
                               require_same_configuration, write_atomically)
from common.data.dataset import FaceDataset
from common.gpu import select_device
from common.seed import seed_everything
from common.train import BEST_CHECKPOINT, LAST_CHECKPOINT, decide_bf16, load_trained_models
from ssp_ssg.config import ReproduceConfig
from ssp_ssg.data import (CelebAWithMasks, HelenParsingDataset, PairedDataset, Splits,
                          attribute_dataset, load_celeba_with_masks, make_splits, parsing_dataset)
from ssp_ssg.evaluate import (accuracy_maximising_thresholds, attribute_scores,
                              intersection_over_union, predict_attribute_probabilities,
                              segmentation_confusion)
from ssp_ssg.losses import imbalance_class_weights
from ssp_ssg.models import (JointAttributeParsingNet, SegmentationNet, build_attribute_model,
                            count_parameters)
from ssp_ssg.throughput import timing_batch_and_loss, timing_model
from ssp_ssg.train import (RunSettings, Validation, train_attributes, train_joint,
                           train_segmentation)


@dataclass(frozen=True)
class ReproductionInputs:
    """Everything a job needs to rebuild its data and model in any process."""

    config: ReproduceConfig
    out_dir: Path
    settings: RunSettings
    data_root: Path | None = None
    masks_root: Path | None = None
    helen_root: Path | None = None
    lfwa_root: Path | None = None
    synthetic_cache: Path = Path("results/.synthetic")

    def checkpoint_dir(self, name: str) -> Path:
        return Path(self.out_dir) / "checkpoints" / name


@dataclass(frozen=True)
class Job:
    """One network to train: ``kind`` is "segmentation", "joint" or "attributes"."""

    name: str
    kind: str
    model: str | None = None
    dataset: str = "celeba"          # or "lfwa" (Table 3); "helen_all" for the Helen-wide parser
    balanced_from: str | None = None  # weighted-BCE fine-tuning of this job's weights
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobResult:
    name: str
    trainable_parameters: int
    steps: int
    batch_size: int
    selected_step: int                # the step of best.pt, chosen on validation
    last_training_loss: float | None
    wall_seconds: float | None        # None when nothing was trained (evaluate)
    train_images_per_second: float | None
    probabilities: np.ndarray | None = None   # test sigmoid scores (attribute jobs)
    labels: np.ndarray | None = None


@dataclass
class PreparedData:
    source: CelebAWithMasks
    splits: Splits
    train_set: Dataset
    val_set: Dataset
    test_set: Dataset
    parsing_train: Dataset
    parsing_val: Dataset
    parsing_test: Dataset
    #: What the attribute models' parser learns from: with Helen all 2,330 images (§4.1),
    #: otherwise ``parsing_train``.
    parser_train: Dataset
    parsing_source: str
    train_labels: np.ndarray


_PREPARED: dict[ReproductionInputs, PreparedData] = {}


def prepare_data(inputs: ReproductionInputs) -> PreparedData:
    """Attribute and parsing datasets of a reproduction (built once per process)."""
    if inputs in _PREPARED:
        return _PREPARED[inputs]
    data, hflip = inputs.config.data, inputs.config.optim.hflip
    source = load_celeba_with_masks(inputs.data_root, data, inputs.masks_root,
                                    inputs.synthetic_cache)
    annotations = source.annotations
    splits = make_splits(annotations, data)
    size = tuple(data.image_size)
    flip = 0.5 if hflip else 0.0
    if inputs.helen_root is not None:
        parsing_train = HelenParsingDataset(inputs.helen_root, ("train",), size, flip)
        parsing_val = HelenParsingDataset(inputs.helen_root, ("val",), size)
        parsing_test = HelenParsingDataset(inputs.helen_root, ("test",), size)
        parser_train = HelenParsingDataset(inputs.helen_root, ("train", "val", "test"), size, flip)
        parsing_source = (f"Helen, Smith et al.'s labels mapped to 7 classes: Table 4's parsers on "
                          f"its {len(parsing_train)} / {len(parsing_val)} / {len(parsing_test)} "
                          f"train / val / test images, the attribute models' parser on all "
                          f"{len(parser_train)} (§4.1)")
    else:
        parsing_train = parsing_dataset(annotations, splits.parsing_train, size, hflip)
        parsing_val = parsing_dataset(annotations, splits.parsing_val, size, False)
        parsing_test = parsing_dataset(annotations, splits.parsing_test, size, False)
        parser_train = parsing_train
        parsing_source = (f"{source.mask_source} masks of {len(parsing_train)} training / "
                          f"{len(parsing_val)} validation / {len(parsing_test)} test CelebA "
                          f"images (no Helen)")
    prepared = PreparedData(
        source=source, splits=splits,
        train_set=attribute_dataset(annotations, splits.train, size, hflip),
        val_set=attribute_dataset(annotations, splits.val, size, False),
        test_set=attribute_dataset(annotations, splits.test, size, False),
        parsing_train=parsing_train, parsing_val=parsing_val, parsing_test=parsing_test,
        parser_train=parser_train, parsing_source=parsing_source,
        train_labels=annotations.attributes[splits.train])
    _PREPARED[inputs] = prepared
    return prepared


_LFWA: dict[ReproductionInputs, tuple] = {}


def lfwa_data(inputs: ReproductionInputs):
    """LFWA (Liu et al.): ``(train set, test set, known attributes (40,) bool)``.

    ``--lfwa-root`` holds an attribute file (CelebA-style ``list_attr_lfwa.txt`` or Kumar et
    al.'s ``lfw_attributes.txt``) and the LFW images under ``lfw/`` or the root itself. The
    split is ``list_eval_partition.txt`` (0 train, 2 test) when present, else two halves by
    person, as LFWA's own split (§4.2).
    """
    if inputs in _LFWA:
        return _LFWA[inputs]
    from common.data.lfwa import read_lfwa
    from common.data.splits import identity_split

    root = Path(inputs.lfwa_root)
    candidates = [root / name for name in ("list_attr_lfwa.txt", "lfw_attributes.txt")]
    attribute_file = next((p for p in candidates if p.is_file()), None)
    if attribute_file is None:
        raise FileNotFoundError(f"{root}: no list_attr_lfwa.txt or lfw_attributes.txt")
    image_ids, attributes, known = read_lfwa(attribute_file)
    image_root = root / "lfw" if (root / "lfw").is_dir() else root
    paths = [image_root / image_id for image_id in image_ids]
    keep = np.flatnonzero([p.is_file() for p in paths])
    if len(keep) == 0:
        raise FileNotFoundError(f"none of the {len(paths)} images of {attribute_file} is under "
                                f"{image_root}")
    partition_file = root / "list_eval_partition.txt"
    if partition_file.is_file():
        from common.data.celeba import read_partition_file

        file_ids, codes = read_partition_file(partition_file)
        code = dict(zip(file_ids, codes))
        train = np.array([i for i in keep if code.get(image_ids[i]) == 0], dtype=np.int64)
        test = np.array([i for i in keep if code.get(image_ids[i]) == 2], dtype=np.int64)
    else:
        persons = np.unique([image_ids[i].split("/")[0] for i in keep], return_inverse=True)[1]
        train_local, test_local = identity_split(persons, 0.5, inputs.config.seed)
        train, test = keep[train_local], keep[test_local]
    size = tuple(inputs.config.data.image_size)

    def dataset(indices, hflip):
        return FaceDataset([paths[i] for i in indices], attributes=attributes[indices],
                           image_size=size, hflip=hflip)

    _LFWA[inputs] = (dataset(train, inputs.config.optim.hflip), dataset(test, False), known)
    return _LFWA[inputs]


#: ``ReproduceConfig`` fields that say how a reproduction executes or what it draws, not what
#: its networks learn: they may differ between a run and its resume.
RUNTIME_FIELDS = ("checkpoint_every", "log_every", "num_workers", "figure_images",
                  "torch_threads", "parallel_jobs", "bootstrap_resamples")


def _resolved(path: str | Path | None) -> str | None:
    """The absolute path as text (the same folder matches from any working directory)."""
    return None if path is None else str(Path(path).resolve())


def experiment_fingerprint(inputs: ReproductionInputs, data: PreparedData) -> dict[str, Any]:
    """What every network in ``<out>/checkpoints`` depends on: the configuration without its
    runtime fields, and the data: ``"synthetic"`` (rendered from ``config.data``) or the resolved
    CelebA root, parsing-mask folder and Helen root, with the number of CelebA images used."""
    record = configuration_fingerprint(inputs.config, without=RUNTIME_FIELDS)
    annotations = data.source.annotations
    synthetic = data.source.synthetic
    record["celeba"] = "synthetic" if synthetic else _resolved(annotations.root)
    record["parsing_masks"] = "synthetic" if synthetic else _resolved(annotations.mask_dir)
    record["helen"] = _resolved(inputs.helen_root)
    record["images"] = len(annotations)
    return record


def lfwa_fingerprint(inputs: ReproductionInputs) -> dict[str, Any]:
    """What the LFWA networks of Table 3 depend on besides :func:`experiment_fingerprint`."""
    train_set, test_set, _ = lfwa_data(inputs)
    return {"lfwa": _resolved(inputs.lfwa_root), "images": [len(train_set), len(test_set)]}


def require_same_experiment(inputs: ReproductionInputs, data: PreparedData, jobs: list[Job]) -> None:
    """Refuse (``ValueError``, before any training) to resume ``<out>/checkpoints`` with another
    configuration or data than it was started with: :func:`experiment_fingerprint` is recorded
    in ``<out>/checkpoints/experiment.json`` by the first run and compared by every later one;
    each LFWA job's folder records :func:`lfwa_fingerprint` likewise, so Table 3 can be added to
    a finished run by re-running it with ``--lfwa-root``."""
    checkpoints = Path(inputs.out_dir) / "checkpoints"
    remedy = (f"resume it with the configuration and data it was started with, or start over with "
              f"another --out or after deleting {checkpoints}")
    require_same_configuration(checkpoints, experiment_fingerprint(inputs, data), remedy=remedy)
    lfwa_job_names = [job.name for job in jobs if job.dataset == "lfwa"]
    if lfwa_job_names:
        lfwa = lfwa_fingerprint(inputs)
        for name in lfwa_job_names:
            require_same_configuration(inputs.checkpoint_dir(name), lfwa, remedy=remedy)


#: The parser SSP / SSG / Naive read: with Helen, the one trained on all 2,330 images (§4.1);
#: without Helen, Table 4's parser (trained on the parsing training images).
HELEN_WIDE_PARSER = "segmentation_all"


def parser_job_name(inputs: ReproductionInputs) -> str:
    """The job whose parser the attribute models read."""
    return HELEN_WIDE_PARSER if inputs.helen_root is not None else "segmentation"


def celeba_jobs(inputs: ReproductionInputs) -> list[Job]:
    """Table 2 and 4 jobs, longest / most depended-on first. With Helen, the attribute models'
    parser is a job of its own (all 2,330 images, §4.1) beside Table 4's (train split)."""
    parser = parser_job_name(inputs)
    parser_jobs = [Job("segmentation", "segmentation")]
    if parser != "segmentation":
        parser_jobs.append(Job(parser, "segmentation", dataset="helen_all"))
    needs_parser = (parser,)
    return [
        *parser_jobs,
        Job("joint", "joint"),
        Job("ssg", "attributes", "ssg", needs=needs_parser),
        Job("ssp", "attributes", "ssp", needs=needs_parser),
        Job("naive", "attributes", "naive", needs=needs_parser),
        Job("avgpool", "attributes", "avgpool"),
        Job("spp", "attributes", "spp"),
        Job("bbox", "attributes", "bbox"),
        Job("ssp_balanced", "attributes", "ssp", balanced_from="ssp", needs=("ssp",)),
        Job("ssg_balanced", "attributes", "ssg", balanced_from="ssg", needs=("ssg",)),
        Job("avgpool_balanced", "attributes", "avgpool", balanced_from="avgpool",
            needs=("avgpool",)),
    ]


def lfwa_jobs(inputs: ReproductionInputs) -> list[Job]:
    """Table 3: Avg. Pooling, SSG and SSP on LFWA, with the CelebA-side parser."""
    parser = parser_job_name(inputs)
    return [Job(f"lfwa_{name}", "attributes", name, dataset="lfwa",
                needs=(parser,) if name != "avgpool" else ())
            for name in ("ssg", "ssp", "avgpool")]


def all_jobs(inputs: ReproductionInputs) -> list[Job]:
    """Every job of a reproduction: CelebA's, and LFWA's when ``--lfwa-root`` is given."""
    return celeba_jobs(inputs) + (lfwa_jobs(inputs) if inputs.lfwa_root is not None else [])


def job_steps(inputs: ReproductionInputs, job: Job) -> int:
    """How many iterations ``job`` trains."""
    optim = inputs.config.optim
    if job.kind == "segmentation":
        return optim.segmentation_steps
    if job.kind == "joint":
        return optim.joint_steps
    return optim.balanced_finetune_steps if job.balanced_from else optim.attribute_steps


def build_model(inputs: ReproductionInputs, job: Job) -> torch.nn.Module:
    """A job's network, freshly initialised from the seed (the selected parser loaded if needed)."""
    architecture = inputs.config.architecture
    seed_everything(inputs.config.seed)
    if job.kind == "segmentation":
        return SegmentationNet(architecture)
    if job.kind == "joint":
        return JointAttributeParsingNet(architecture)
    parser = None
    if job.model in ("naive", "ssg", "ssp"):
        parser = SegmentationNet(architecture)
        load_trained_models(selected_checkpoint(inputs, parser_job_name(inputs)), parser)
    model = build_attribute_model(job.model, architecture, parser)
    seed_everything(inputs.config.seed)
    return model


def selected_checkpoint(inputs: ReproductionInputs, name: str) -> Path:
    """``best.pt`` of job ``name``: the checkpoint its validation metric chose (the last one
    for networks without validation: LFWA's and the Helen-wide parser)."""
    return inputs.checkpoint_dir(name) / BEST_CHECKPOINT


def load_final(inputs: ReproductionInputs, job: Job) -> torch.nn.Module:
    """A finished job's network with its selected weights (:func:`selected_checkpoint`)."""
    model = build_model(inputs, job)
    load_trained_models(selected_checkpoint(inputs, job.name), model)
    return model


def require_finished(inputs: ReproductionInputs, job: Job) -> None:
    """``ValueError`` naming the job unless it trained all its steps (``evaluate`` only reads)."""
    last = inputs.checkpoint_dir(job.name) / LAST_CHECKPOINT
    remedy = "finish it by re-running the reproduce command that started it"
    if not last.is_file() or not selected_checkpoint(inputs, job.name).is_file():
        raise ValueError(f"{inputs.checkpoint_dir(job.name)}: network {job.name!r} has no "
                         f"finished checkpoint; {remedy}")
    step = int(load_checkpoint(last)["step"])
    if step < job_steps(inputs, job):
        raise ValueError(f"{last}: network {job.name!r} stopped at step {step} of "
                         f"{job_steps(inputs, job)}; {remedy}")


def _last_training_loss(out_dir: Path) -> float | None:
    path = Path(out_dir) / "log.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        losses = [row["train/loss"] for row in csv.DictReader(handle) if row.get("train/loss")]
    return float(losses[-1]) if losses else None


def attribute_validation(dataset: Dataset, batch_size: int, device: torch.device,
                         balanced: bool, every: int) -> Validation:
    """Validation of an attribute net: mean error, AP and balanced accuracy (%) of its scores on
    ``dataset``; the checkpoint is chosen by error, or by balanced accuracy for the weighted-BCE
    fine-tuning (§4.3.1), whose purpose is that measure."""

    def evaluate(model):
        probabilities, labels = predict_attribute_probabilities(model, dataset, batch_size, device)
        scores = attribute_scores(labels, probabilities)
        return {"val_error": scores.error, "val_average_precision": scores.average_precision,
                "val_balanced_accuracy": scores.balanced_accuracy}

    if balanced:
        return Validation(evaluate, "val_balanced_accuracy", "max", every)
    return Validation(evaluate, "val_error", "min", every)


def parsing_validation(dataset: Dataset, batch_size: int, device: torch.device,
                       segmentation_of: Callable[[nn.Module], nn.Module], every: int) -> Validation:
    """Validation of a parser (``segmentation_of(model)``): mean IoU % of its full-resolution
    output on the validation masks; the checkpoint with the highest is kept."""

    def evaluate(model):
        confusion = segmentation_confusion(segmentation_of(model), dataset, len(PARTS7_LABELS),
                                           batch_size, device)
        return {"val_mean_iou": intersection_over_union(confusion)[1]}

    return Validation(evaluate, "val_mean_iou", "max", every)


def bf16_decision(inputs: ReproductionInputs, job: Job, out_dir: Path,
                  device: torch.device) -> dict:
    """``--bf16 off|on|auto`` for this network (``common.train.decide_bf16``: "auto" times a
    throwaway copy on this CPU once and keeps the decision in ``<job>/bf16.json``)."""
    image_size = tuple(inputs.config.data.image_size)
    architecture = inputs.config.architecture
    make_batch, loss_fn = timing_batch_and_loss(job.kind == "segmentation", image_size, architecture.num_regions,
                                                architecture.num_attributes)
    return decide_bf16(inputs.settings.bf16, out_dir / "bf16.json", device,
                       lambda: timing_model(build_model(inputs, job), image_size), make_batch, loss_fn,
                       batch_size=inputs.config.optim.batch_size, channels_last=inputs.settings.channels_last)


#: The network ``predict`` and ``export`` use (SSP: it has localisation maps to show).
PREDICTION_JOB = "ssp"
#: Its per-attribute decision thresholds, chosen on the validation images
#: (``evaluate.accuracy_maximising_thresholds``), in its job folder: what ``predict`` decides with.
DECISION_THRESHOLDS = "decision_thresholds.json"


def write_decision_thresholds(path: Path, thresholds: np.ndarray, n_images: int) -> None:
    """``{"attributes": [...40], "thresholds": [...40], "rule": ...}`` as JSON, atomically."""
    text = json.dumps({"attributes": list(CELEBA_ATTRIBUTES),
                       "thresholds": [float(t) for t in thresholds],
                       "rule": f"highest accuracy on the {n_images} validation images, ties to the "
                               f"threshold closest to 0.5"}, indent=1) + "\n"
    write_atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def read_decision_thresholds(path: Path) -> np.ndarray | None:
    """The 40 thresholds of :func:`write_decision_thresholds` (None when the file is missing)."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("attributes") != list(CELEBA_ATTRIBUTES) or len(record.get("thresholds", ())) != 40:
        raise ValueError(f"{path}: not 40 decision thresholds in CelebA's attribute order")
    return np.asarray(record["thresholds"], dtype=np.float64)


def run_job(inputs: ReproductionInputs, job: Job, train: bool = True) -> JobResult:
    """Train (or resume) one job, then score its selected checkpoint on the validation and
    test images. ``train=False`` (``evaluate``) trains nothing: the job must be finished."""
    if inputs.config.torch_threads is not None:
        torch.set_num_threads(inputs.config.torch_threads)
    optim, settings = inputs.config.optim, inputs.settings
    data = prepare_data(inputs)
    out_dir = inputs.checkpoint_dir(job.name)
    device = select_device(settings.device)
    eval_batch = max(2 * optim.batch_size, 32)
    steps, every = job_steps(inputs, job), inputs.config.eval_every
    wall = images_per_second = None
    if train:
        model = build_model(inputs, job)
        use_bf16 = bool(bf16_decision(inputs, job, out_dir, device)["use_bf16"])
        start = time.perf_counter()
        if job.kind == "segmentation":
            dataset = data.parser_train if job.dataset == "helen_all" else data.parsing_train
            validation = None if job.dataset == "helen_all" else parsing_validation(
                data.parsing_val, eval_batch, device, lambda net: net, every)
            result = train_segmentation(model, dataset, out_dir, optim, steps, settings,
                                        validation, use_bf16)
        elif job.kind == "joint":
            paired = PairedDataset(data.train_set, data.parsing_train, inputs.config.seed)
            validation = parsing_validation(data.parsing_val, eval_batch, device,
                                            lambda net: net.segmentation, every)
            result = train_joint(model, paired, out_dir, optim, steps, settings, validation,
                                 use_bf16)
        else:
            class_weights = None
            if job.dataset == "lfwa":
                train_set, validation = lfwa_data(inputs)[0], None
            else:
                train_set = data.train_set
                validation = attribute_validation(data.val_set, eval_batch, device,
                                                  job.balanced_from is not None, every)
            if job.balanced_from is not None:
                if not (out_dir / LAST_CHECKPOINT).is_file():  # start from the selected model
                    load_trained_models(selected_checkpoint(inputs, job.balanced_from), model)
                class_weights = imbalance_class_weights(data.train_labels)
            result = train_attributes(model, train_set, out_dir, optim, steps, settings,
                                      class_weights, validation, use_bf16)
        wall, images_per_second = time.perf_counter() - start, result.samples_per_second
    else:
        require_finished(inputs, job)
    model = build_model(inputs, job)
    selected_step = int(load_trained_models(selected_checkpoint(inputs, job.name), model)["step"])
    probabilities = labels = None
    if job.kind == "attributes":
        test_set = lfwa_data(inputs)[1] if job.dataset == "lfwa" else data.test_set
        probabilities, labels = predict_attribute_probabilities(model, test_set, eval_batch, device)
        if job.name == PREDICTION_JOB:
            val_probabilities, val_labels = predict_attribute_probabilities(
                model, data.val_set, eval_batch, device)
            write_decision_thresholds(out_dir / DECISION_THRESHOLDS,
                                      accuracy_maximising_thresholds(val_labels, val_probabilities),
                                      len(val_labels))
    return JobResult(name=job.name, trainable_parameters=count_parameters(model), steps=steps,
                     batch_size=optim.batch_size, selected_step=selected_step,
                     last_training_loss=_last_training_loss(out_dir), wall_seconds=wall,
                     train_images_per_second=images_per_second, probabilities=probabilities,
                     labels=labels)


def run_jobs(inputs: ReproductionInputs, jobs: list[Job], parallel_jobs: int = 1,
             train: bool = True) -> dict[str, JobResult]:
    """Run ``jobs`` respecting ``needs``: in this process, or ``parallel_jobs`` at a time in
    spawned worker processes (each job is seeded on its own, so the order does not matter).
    ``train=False`` only scores finished jobs (:func:`run_job`)."""
    names = {job.name for job in jobs}
    for job in jobs:
        unknown = set(job.needs) - names
        if unknown:
            raise ValueError(f"job {job.name} needs unknown jobs {sorted(unknown)}")
    results: dict[str, JobResult] = {}
    pending = list(jobs)
    if parallel_jobs <= 1:
        while pending:
            job = next(j for j in pending if set(j.needs) <= results.keys())
            pending.remove(job)
            results[job.name] = run_job(inputs, job, train)
        return results
    context = multiprocessing.get_context("spawn")
    running: dict[Future, Job] = {}
    with ProcessPoolExecutor(max_workers=parallel_jobs, mp_context=context) as pool:
        while pending or running:
            ready = [j for j in pending if set(j.needs) <= results.keys()]
            for job in ready[:parallel_jobs - len(running)]:
                pending.remove(job)
                running[pool.submit(run_job, inputs, job, train)] = job
            if not running:
                raise RuntimeError(f"jobs {[j.name for j in pending]} wait on jobs that never ran")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                results[job.name] = future.result()
    return results


EXPERIMENT_RECORD = "experiment.json"


def find_run_folder(path: str | Path) -> Path:
    """The reproduce ``--out`` folder of ``path``: that folder (holding
    ``checkpoints/experiment.json``) or its ``checkpoints`` folder; ``FileNotFoundError``
    naming what is missing otherwise."""
    path = Path(path)
    for candidate in (path, path.parent):
        if (candidate / "checkpoints" / EXPERIMENT_RECORD).is_file():
            return candidate
    raise FileNotFoundError(f"{path}: not a results folder of python -m ssp_ssg reproduce (no "
                            f"checkpoints/{EXPERIMENT_RECORD} in it or above it)")


def config_from_record(record: dict[str, Any], where: str) -> ReproduceConfig:
    """The :class:`ReproduceConfig` an ``experiment.json`` was written from: its recorded fields
    over the defaults of its scale (the runtime fields, not recorded, are the scale's)."""

    def rebuild(default, values: dict[str, Any]):
        changes = {}
        for item in dataclasses.fields(default):
            if item.name not in values:
                continue
            current, value = getattr(default, item.name), values[item.name]
            if dataclasses.is_dataclass(current):
                value = rebuild(current, value)
            elif isinstance(value, list):
                value = tuple(value)
            changes[item.name] = value
        return dataclasses.replace(default, **changes)

    try:
        return rebuild(ReproduceConfig.for_scale(record["scale"]), record)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{where}: not a configuration record of ssp_ssg ({error})") from None


def inputs_from_run(path: str | Path, settings: RunSettings,
                    synthetic_cache: Path = Path("results/.synthetic")) -> ReproductionInputs:
    """The :class:`ReproductionInputs` a finished reproduction was started with, from its
    ``checkpoints/experiment.json`` (configuration and data folders) and its LFWA networks'
    records; ``settings`` says how to run now (device, threads...). Synthetic faces are
    rendered again (deterministically) into ``synthetic_cache`` when not there."""
    out_dir = find_run_folder(path)
    record_path = out_dir / "checkpoints" / EXPERIMENT_RECORD
    record = json.loads(record_path.read_text(encoding="utf-8"))
    config = config_from_record(record, str(record_path))
    synthetic = record.get("celeba") == "synthetic"
    lfwa_record = out_dir / "checkpoints" / "lfwa_ssp" / EXPERIMENT_RECORD
    lfwa_root = json.loads(lfwa_record.read_text(encoding="utf-8"))["lfwa"] if lfwa_record.is_file() else None
    return ReproductionInputs(config=config, out_dir=out_dir, settings=settings,
                              data_root=None if synthetic else record["celeba"],
                              masks_root=None if synthetic else record["parsing_masks"],
                              helen_root=record.get("helen"), lfwa_root=lfwa_root,
                              synthetic_cache=Path(synthetic_cache))
