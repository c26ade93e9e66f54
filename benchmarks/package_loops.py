"""Each package's own training loop against a plain PyTorch eager step, and its input pipeline alone
(issue #16; part of ``python -m benchmarks.throughput --cpu``).

For a package, one measurement runs, on the same model, batch size and input:

* **package loop**: the package's own training function (the one ``reproduce`` calls, with its
  data pipeline: the decoded-image cache, augmentation, its loss) for ``steps`` steps on a
  training subset of ``steps x batch`` images; images/s as ``common.train.Trainer`` logs them
  (data loading included, the first step excluded as warm-up, validation not timed);
* **plain eager**: forward + loss + backward + the package's optimizer on one fixed batch taken
  from that dataset (``common.gpu.measure_training_throughput``: no data loading at all);
* **input pipeline**: the training dataset alone, batched by a DataLoader as the loop does, images/s.

The targets (issue #16): loop >= 1.0x plain eager (aim 1.2x: the loop may only win by overlapping
data loading, which one process on 2 cores cannot), input pipeline >= 3x the model's step rate.
Networks train in fp32 channels-first in both, so the ratio is the loop's overhead alone (a
package's bf16 choice changes both sides alike). Real data from ``--data-root`` when present,
else synthetic faces at the same size.
"""
from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from common.data.dataset import collate_skip_corrupt
from common.gpu import measure_training_throughput


@dataclass(frozen=True)
class LoopMeasurement:
    """One package network: its loop, the plain eager step and the input pipeline, images/s."""

    package: str
    network: str
    data: str
    input_size: tuple[int, int]
    batch_size: int
    steps: int
    loop_images_per_second: float
    eager_images_per_second: float
    pipeline_images_per_second: float

    @property
    def loop_vs_eager(self) -> float:
        return self.loop_images_per_second / self.eager_images_per_second

    @property
    def pipeline_vs_step(self) -> float:
        return self.pipeline_images_per_second / self.eager_images_per_second


def pipeline_images_per_second(dataset: Dataset, batch_size: int, batches: int, num_workers: int = 0) -> float:
    """Images/s of ``dataset`` batched as the training loop batches it (shuffled, the loop's collate),
    the first batch excluded."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        collate_fn=collate_skip_corrupt, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    images, start = 0, None
    for index, batch in enumerate(loader):
        if index == 0:
            start = time.perf_counter()
            continue
        images += len(batch["image"])
        if index >= batches:
            break
    return images / (time.perf_counter() - start)


def _eager(model: torch.nn.Module, batch: dict, loss_fn: Callable, optimizer_factory: Callable,
           steps: int) -> float:
    images, targets = batch["image"], batch["attributes"]
    return measure_training_throughput(model, lambda _n: (images, targets), loss_fn, batch_size=len(images),
                                       steps=steps, warmup_steps=1, device="cpu",
                                       optimizer_factory=optimizer_factory).images_per_second


def _first_batch(dataset: Dataset, batch_size: int) -> dict:
    torch.manual_seed(0)
    return collate_skip_corrupt([dataset[index] for index in range(batch_size)])


def measure_celeba_ffhq_labels(data_root: str | None, steps: int, work_dir: Path,
                               model_name: str = "reduced-x2") -> LoopMeasurement:
    """celeba_ffhq_labels' CPU scale: ``train.train_classifier`` on the cached, RandAugmented images."""
    from celeba_ffhq_labels.config import MODELS, ExperimentConfig
    from celeba_ffhq_labels.data import cached_training_datasets, load_annotations, make_splits
    from celeba_ffhq_labels.losses import attribute_loss_weights, weighted_bce_with_logits
    from celeba_ffhq_labels.models import build_classifier
    from celeba_ffhq_labels.train import train_classifier

    config = ExperimentConfig.cpu(data_root=data_root)
    if data_root is None:
        n_faces = _synthetic_faces_for(config.optim.batch_size * steps)
        config = config.with_overrides(data={"synthetic_n": n_faces, "max_images": n_faces,
                                             "synthetic_size": (109, 89)})
    config = dataclasses.replace(config, model=dataclasses.replace(MODELS[model_name],
                                                                   input_size=config.model.input_size))
    batch_size = config.optim.batch_size
    config = config.with_overrides(optim={"epochs": 1}, runtime={
        "bf16": "off", "progress": False, "tensorboard": False, "image_cache_dir": str(work_dir / "cache")})
    annotations = load_annotations(config.data_root, config.data, seed=config.seed)
    splits = make_splits(annotations, config.data)
    if len(splits.train) < batch_size * steps:
        raise ValueError(f"{len(splits.train)} training images are fewer than {steps} steps of {batch_size}")
    splits = dataclasses.replace(splits, train=splits.train[:batch_size * steps], val=splits.val[:batch_size])
    trained = train_classifier(config, annotations, splits, work_dir / "ffhq")
    datasets = cached_training_datasets(annotations, splits, config.model, config.data, work_dir / "cache",
                                        progress=False)
    weights = torch.as_tensor(attribute_loss_weights(annotations.attributes[splits.train]), dtype=torch.float32)
    eager = _eager(build_classifier(config.model), _first_batch(datasets["train"], batch_size),
                   lambda logits, targets: weighted_bce_with_logits(logits, targets, weights),
                   lambda params: torch.optim.Adam(params, lr=config.optim.learning_rate), steps)
    return LoopMeasurement("celeba_ffhq_labels", config.model.title, _data_name(data_root), config.model.input_size,
                           batch_size, steps, trained.result.samples_per_second, eager,
                           pipeline_images_per_second(datasets["train"], batch_size, steps))


def measure_celeba_resnet_densenet(data_root: str | None, steps: int, work_dir: Path,
                                   backbone: str = "densenet121") -> LoopMeasurement:
    """celeba_resnet_densenet's CPU scale: ``train.train_grid_point`` on the cached, flipped images."""
    from celeba_resnet_densenet.config import ExperimentConfig
    from celeba_resnet_densenet.data import cached_split_datasets, load_sample, split_attributes
    from celeba_resnet_densenet.train import GridPoint, build_criterion, build_model, train_grid_point

    config = ExperimentConfig.cpu(backbones=(backbone,))
    if data_root is None:
        n_faces = _synthetic_faces_for(config.optim.batch_size * steps)
        config = dataclasses.replace(config, data=dataclasses.replace(
            config.data, sample_size=n_faces, synthetic_n=n_faces, synthetic_size=(109, 89)))
    config = dataclasses.replace(config, data_root=data_root, runtime=dataclasses.replace(
        config.runtime, progress=False, tensorboard=False, channels_last=False))
    batch_size = config.optim.batch_size
    sample = load_sample(config.data, config.data_root)
    datasets = cached_split_datasets(sample, config.data, work_dir / "cache", progress=False)
    if len(datasets["train"]) < batch_size * steps:
        raise ValueError(f"{len(datasets['train'])} training images are fewer than {steps} steps of {batch_size}")
    datasets = {"train": Subset(datasets["train"], range(batch_size * steps)),
                "val": Subset(datasets["val"], range(min(batch_size, len(datasets["val"]))))}
    train_labels = split_attributes(sample, "train")
    point = GridPoint(config.grid.learning_rates[-1], config.grid.dropouts[0])
    record = train_grid_point(config, backbone, point, datasets, train_labels, work_dir / backbone, epochs=1)
    criterion = build_criterion(config, train_labels)
    eager = _eager(build_model(config, backbone, point.dropout), _first_batch(datasets["train"], batch_size),
                   criterion, lambda params: torch.optim.Adam(params, lr=point.learning_rate), steps)
    return LoopMeasurement("celeba_resnet_densenet", backbone, _data_name(data_root), tuple(config.data.image_size),
                           batch_size, steps, record["train_images_per_second"], eager,
                           pipeline_images_per_second(datasets["train"], batch_size, steps))


def _synthetic_faces_for(train_images: int) -> int:
    """Synthetic faces enough for ``train_images`` training images after a 70 / 10 / 20 split."""
    return int(train_images / 0.6) + 64


def _data_name(data_root: str | None) -> str:
    return "synthetic faces" if data_root is None else f"CelebA ({data_root})"


#: package -> measurement, for every package whose loop this bench runs.
MEASUREMENTS: dict[str, Callable[[str | None, int, Path], LoopMeasurement]] = {
    "celeba_ffhq_labels": measure_celeba_ffhq_labels,
    "celeba_resnet_densenet": measure_celeba_resnet_densenet,
}
#: Packages whose loop is not measured yet, and why (shown in the table).
NOT_MEASURED: dict[str, str] = {
    "ssp_ssg": "n/a: not wired into this bench yet (its data pipeline is images + pseudo masks, no cache)",
    "attribute_inversion": "n/a: not wired into this bench yet (GAN loop: two to four networks per step)",
    "mtfl_compare": "n/a: TensorFlow / tf-slim loop, outside common.train",
}


def measure_loops(data_root: str | None, steps: int, packages: list[str] | None = None) -> list[LoopMeasurement]:
    """Every package of :data:`MEASUREMENTS` (or ``packages``), each in a scratch folder."""
    measured = []
    for package in packages or list(MEASUREMENTS):
        with tempfile.TemporaryDirectory(prefix=f"loop-{package}-") as scratch:
            result = MEASUREMENTS[package](data_root, steps, Path(scratch))
        print(f"{package:24s} loop {result.loop_images_per_second:7.2f} img/s  eager "
              f"{result.eager_images_per_second:7.2f}  ({result.loop_vs_eager:.2f}x)  input pipeline "
              f"{result.pipeline_images_per_second:8.1f} ({result.pipeline_vs_step:.1f}x the step)", flush=True)
        measured.append(result)
    return measured


def loops_markdown(measured: list[LoopMeasurement]) -> str:
    """The loop table (Markdown) with the targets and the packages not measured."""
    lines = ["| package | network | data | input | batch | steps | package loop img/s | plain eager img/s | "
             "loop / eager | input pipeline img/s | pipeline / step |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in measured:
        lines.append(f"| {m.package} | {m.network} | {m.data} | {m.input_size[0]}x{m.input_size[1]} | {m.batch_size} | "
                     f"{m.steps} | {m.loop_images_per_second:.2f} | {m.eager_images_per_second:.2f} | "
                     f"{m.loop_vs_eager:.2f}x | {m.pipeline_images_per_second:.1f} | {m.pipeline_vs_step:.1f}x |")
    for package, reason in NOT_MEASURED.items():
        lines.append(f"| {package} | {reason} | | | | | | | | | |")
    met = [m.package for m in measured if m.loop_vs_eager >= 1.0 and m.pipeline_vs_step >= 3.0]
    lines += ["", f"Targets (issue #16): loop / eager >= 1.0x and pipeline / step >= 3x; met by "
                  f"{', '.join(met) if met else 'none'} of the {len(measured)} measured. Both sides fp32, "
                  "channels-first, the package's optimiser; eager = one fixed batch, no data loading."]
    return "\n".join(lines) + "\n"


def as_records(measured: list[LoopMeasurement]) -> list[dict]:
    return [{**dataclasses.asdict(m), "loop_vs_eager": m.loop_vs_eager, "pipeline_vs_step": m.pipeline_vs_step}
            for m in measured]

