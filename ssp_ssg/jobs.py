"""The training runs of a reproduction as independent jobs, run in order or two at a time.

Each job trains one network in ``<out>/checkpoints/<name>`` (resuming from ``last.pt``),
then scores it on the held-out images. Jobs only share files: the parser's checkpoint for
SSP / SSG / Naive, a trained model's checkpoint for its weighted-BCE fine-tuning. So on a
2-core CPU two single-threaded jobs train side by side (``parallel_jobs``), which is faster
than one job on two threads for these small nets and keeps every run deterministic.
"""
from __future__ import annotations

import csv
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from common.checkpoint import configuration_fingerprint, require_same_configuration
from common.data.dataset import FaceDataset
from common.gpu import select_device
from common.seed import seed_everything
from common.train import load_trained_models
from ssp_ssg.config import ReproduceConfig
from ssp_ssg.data import (CelebAWithMasks, HelenParsingDataset, PairedDataset, Splits,
                          attribute_dataset, load_celeba_with_masks, make_splits, parsing_dataset)
from ssp_ssg.evaluate import predict_attribute_probabilities
from ssp_ssg.losses import imbalance_class_weights
from ssp_ssg.models import (JointAttributeParsingNet, SegmentationNet, build_attribute_model,
                            count_parameters)
from ssp_ssg.train import RunSettings, train_attributes, train_joint, train_segmentation


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
    dataset: str = "celeba"          # or "lfwa" (Table 3)
    balanced_from: str | None = None  # weighted-BCE fine-tuning of this job's weights
    needs: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobResult:
    name: str
    trainable_parameters: int
    steps: int
    batch_size: int
    last_training_loss: float | None
    wall_seconds: float
    train_images_per_second: float | None
    probabilities: np.ndarray | None = None   # held-out sigmoid scores (attribute jobs)
    labels: np.ndarray | None = None


@dataclass
class PreparedData:
    source: CelebAWithMasks
    splits: Splits
    train_set: Dataset
    test_set: Dataset
    parsing_train: Dataset
    parsing_test: Dataset
    parsing_source: str
    train_labels: np.ndarray


_PREPARED: dict[ReproductionInputs, PreparedData] = {}


def prepare_data(inputs: ReproductionInputs) -> PreparedData:
    """Attribute and parsing datasets of a reproduction (built once per process)."""
    if inputs in _PREPARED:
        return _PREPARED[inputs]
    data = inputs.config.data
    source = load_celeba_with_masks(inputs.data_root, data, inputs.masks_root,
                                    inputs.synthetic_cache)
    annotations = source.annotations
    splits = make_splits(annotations, data)
    size = tuple(data.image_size)
    if inputs.helen_root is not None:
        parsing_train = HelenParsingDataset(inputs.helen_root, "train", size, flip_probability=0.5)
        parsing_test = HelenParsingDataset(inputs.helen_root, "test", size)
        parsing_source = "Helen, Smith et al.'s labels mapped to 7 classes (train / test split)"
    else:
        parsing_train = parsing_dataset(annotations, splits.parsing_train, size, train=True)
        parsing_test = parsing_dataset(annotations, splits.parsing_test, size, train=False)
        parsing_source = (f"{source.mask_source} masks of {len(parsing_train)} training / "
                          f"{len(parsing_test)} held-out CelebA images (no Helen here)")
    prepared = PreparedData(
        source=source, splits=splits,
        train_set=attribute_dataset(annotations, splits.train, size, train=True),
        test_set=attribute_dataset(annotations, splits.test, size, train=False),
        parsing_train=parsing_train, parsing_test=parsing_test, parsing_source=parsing_source,
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

    def dataset(indices, train_mode):
        return FaceDataset([paths[i] for i in indices], attributes=attributes[indices],
                           image_size=size, hflip=train_mode)

    _LFWA[inputs] = (dataset(train, True), dataset(test, False), known)
    return _LFWA[inputs]


#: ``ReproduceConfig`` fields that say how a reproduction executes or what it draws, not what
#: its networks learn: they may differ between a run and its resume.
RUNTIME_FIELDS = ("eval_every", "checkpoint_every", "log_every", "num_workers", "figure_images",
                  "torch_threads", "parallel_jobs")


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


def celeba_jobs() -> list[Job]:
    """Table 2 and 4 jobs, longest / most depended-on first."""
    parser_needed = ("segmentation",)
    return [
        Job("segmentation", "segmentation"),
        Job("joint", "joint"),
        Job("ssg", "attributes", "ssg", needs=parser_needed),
        Job("ssp", "attributes", "ssp", needs=parser_needed),
        Job("naive", "attributes", "naive", needs=parser_needed),
        Job("avgpool", "attributes", "avgpool"),
        Job("spp", "attributes", "spp"),
        Job("bbox", "attributes", "bbox"),
        Job("ssp_balanced", "attributes", "ssp", balanced_from="ssp", needs=("ssp",)),
        Job("ssg_balanced", "attributes", "ssg", balanced_from="ssg", needs=("ssg",)),
        Job("avgpool_balanced", "attributes", "avgpool", balanced_from="avgpool",
            needs=("avgpool",)),
    ]


def lfwa_jobs() -> list[Job]:
    """Table 3: Avg. Pooling, SSG and SSP on LFWA, with the CelebA-side parser."""
    return [Job(f"lfwa_{name}", "attributes", name, dataset="lfwa",
                needs=("segmentation",) if name != "avgpool" else ())
            for name in ("ssg", "ssp", "avgpool")]


def build_model(inputs: ReproductionInputs, job: Job) -> torch.nn.Module:
    """A job's network, freshly initialised from the seed (parser weights loaded if needed)."""
    architecture = inputs.config.architecture
    seed_everything(inputs.config.seed)
    if job.kind == "segmentation":
        return SegmentationNet(architecture)
    if job.kind == "joint":
        return JointAttributeParsingNet(architecture)
    parser = None
    if job.model in ("naive", "ssg", "ssp"):
        parser = SegmentationNet(architecture)
        load_trained_models(inputs.checkpoint_dir("segmentation") / "last.pt", parser)
    model = build_attribute_model(job.model, architecture, parser)
    seed_everything(inputs.config.seed)
    return model


def load_final(inputs: ReproductionInputs, job: Job) -> torch.nn.Module:
    """A finished job's network with its final weights."""
    model = build_model(inputs, job)
    load_trained_models(inputs.checkpoint_dir(job.name) / "last.pt", model)
    return model


def _last_training_loss(out_dir: Path) -> float | None:
    path = Path(out_dir) / "log.csv"
    if not path.is_file():
        return None
    with path.open(newline="") as handle:
        losses = [row["train/loss"] for row in csv.DictReader(handle) if row.get("train/loss")]
    return float(losses[-1]) if losses else None


def run_job(inputs: ReproductionInputs, job: Job) -> JobResult:
    """Train (or resume) one job and score it on the held-out images."""
    if inputs.config.torch_threads is not None:
        torch.set_num_threads(inputs.config.torch_threads)
    optim, settings = inputs.config.optim, inputs.settings
    data = prepare_data(inputs)
    out_dir = inputs.checkpoint_dir(job.name)
    model = build_model(inputs, job)
    start = time.perf_counter()
    if job.kind == "segmentation":
        result = train_segmentation(model, data.parsing_train, out_dir, optim,
                                    optim.segmentation_steps, settings)
    elif job.kind == "joint":
        paired = PairedDataset(data.train_set, data.parsing_train, inputs.config.seed)
        result = train_joint(model, paired, out_dir, optim, optim.joint_steps, settings)
    else:
        if job.dataset == "lfwa":
            train_set, test_set, _ = lfwa_data(inputs)
        else:
            train_set, test_set = data.train_set, data.test_set
        class_weights, steps = None, optim.attribute_steps
        if job.balanced_from is not None:
            if not (out_dir / "last.pt").is_file():  # start from the trained model
                load_trained_models(inputs.checkpoint_dir(job.balanced_from) / "last.pt", model)
            class_weights = imbalance_class_weights(data.train_labels)
            steps = optim.balanced_finetune_steps
        result = train_attributes(model, train_set, out_dir, optim, steps, settings,
                                  class_weights)
    wall = time.perf_counter() - start
    probabilities = labels = None
    if job.kind == "attributes":
        device = select_device(settings.device)
        probabilities, labels = predict_attribute_probabilities(
            model, test_set, max(2 * optim.batch_size, 32), device)
    return JobResult(name=job.name, trainable_parameters=count_parameters(model),
                     steps=int(result.step), batch_size=optim.batch_size,
                     last_training_loss=_last_training_loss(out_dir), wall_seconds=wall,
                     train_images_per_second=result.samples_per_second,
                     probabilities=probabilities, labels=labels)


def run_jobs(inputs: ReproductionInputs, jobs: list[Job], parallel_jobs: int = 1
             ) -> dict[str, JobResult]:
    """Run ``jobs`` respecting ``needs``: in this process, or ``parallel_jobs`` at a time in
    spawned worker processes (each job is seeded on its own, so the order does not matter)."""
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
            results[job.name] = run_job(inputs, job)
        return results
    context = multiprocessing.get_context("spawn")
    running: dict[Future, Job] = {}
    with ProcessPoolExecutor(max_workers=parallel_jobs, mp_context=context) as pool:
        while pending or running:
            ready = [j for j in pending if set(j.needs) <= results.keys()]
            for job in ready[:parallel_jobs - len(running)]:
                pending.remove(job)
                running[pool.submit(run_job, inputs, job)] = job
            if not running:
                raise RuntimeError(f"jobs {[j.name for j in pending]} wait on jobs that never ran")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                results[job.name] = future.result()
    return results
