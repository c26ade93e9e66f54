"""Training of our single-generator model (§2, Eqs. 6-7), the CycleGAN baseline (§3.1) and the
attribute judge, all through ``common.train.Trainer`` (checkpoints, resume, TensorBoard, log.csv).

Each attribute gets its own G and D (§2: "Our model addresses each of the facial attributes
independently"). GAN updates use ``step_fn`` with one optimizer per network. Every run reads its
faces through ``data.open_face_images`` (the decoded-image cache when ``image_cache_dir`` is set)
and decides its precision once (:func:`decide_precision`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.attributes import ATTRIBUTE_INDEX
from common.checkpoint import configuration_fingerprint, write_atomically
from common.data.celeba import CelebAAnnotations
from common.gpu import select_device
from common.seed import seed_everything
from common.train import TrainConfig, Trainer, TrainResult, decide_bf16

from . import losses
from .config import CycleGANConfig, InversionLossConfig, OptimConfig, ReproduceConfig
from .data import (FaceImages, InversionSplit, attribute_labels, attribute_training_set, cyclegan_training_set,
                   heldout_test_set, open_face_images)
from .figures import save_sample_grid
from .models import (AttributeJudge, AuxiliaryClassifierDiscriminator, DiscriminatorOnGenerator, ImagePool,
                     PatchDiscriminator, ResnetGenerator, SkipReducedUNet)

log = logging.getLogger(__name__)


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """Freeze D while G is updated (no wasted gradients, D is stepped only by its own loss)."""
    for parameter in module.parameters():
        parameter.requires_grad_(flag)


def adam(parameters, optim: OptimConfig) -> torch.optim.Adam:
    return torch.optim.Adam(parameters, lr=optim.learning_rate, betas=(optim.beta1, optim.beta2))


def linear_decay_schedule(optimizer: torch.optim.Optimizer, optim: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Constant learning rate, then linear decay towards zero ([5] §7.1), stepped per iteration."""
    decay_start = int(optim.max_steps * optim.decay_start_fraction)
    decay_steps = max(1, optim.max_steps - decay_start)

    def factor(step: int) -> float:
        return 1.0 - max(0, step - decay_start) / (decay_steps + 1)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


#: ``ReproduceConfig`` fields that say how a run executes, not what it trains: they may differ
#: between a run and its resume (bf16 only as far as :func:`decide_precision` allows: a training
#: run keeps the precision it started with).
RUNTIME_FIELDS = ("device", "bf16", "image_cache_dir", "channels_last", "compile", "checkpoint_every")
#: The bf16 decision of a training run, in its run folder (:func:`decide_precision`).
BF16_DECISION_FILE = "bf16.json"


def experiment_fingerprint(config: ReproduceConfig, annotations: CelebAAnnotations,
                           synthetic: bool) -> dict[str, Any]:
    """What the checkpoints of a reproduction depend on, recorded in its checkpoint folder by
    ``common.checkpoint.require_same_configuration`` and compared on every resume.

    The configuration without its runtime fields and its ``evaluation`` section (Table 1 is
    recomputed from the checkpoints on every run), plus the data source: ``"synthetic"``
    (rendered from ``config.data``) or the resolved CelebA root, and the number of images used."""
    record = configuration_fingerprint(config, without=(*RUNTIME_FIELDS, "evaluation"))
    record["data_source"] = "synthetic" if synthetic else str(Path(annotations.root).resolve())
    record["images"] = len(annotations)
    return record


def train_config(out_dir: Path, config: ReproduceConfig, max_steps: int, use_bf16: bool) -> TrainConfig:
    return TrainConfig(out_dir=out_dir, max_steps=max_steps, log_every=10,
                       eval_every=config.evaluation.sample_every, checkpoint_every=config.checkpoint_every,
                       bf16=use_bf16, channels_last=config.channels_last, compile=config.compile,
                       device=config.device, seed=config.data.seed, progress=False)


def run_faces(annotations: CelebAAnnotations, split: InversionSplit, config: ReproduceConfig) -> FaceImages:
    """The faces a run reads: through the decoded-image cache in ``config.image_cache_dir`` (built
    on first use, opened by every later run) or decoded on every read."""
    return open_face_images(annotations, split, config.data.image_size, config.image_cache_dir)


def decide_precision(config: ReproduceConfig, out_dir: Path, make_model: Callable[[], nn.Module],
                     loss_fn: Callable[[Any, torch.Tensor], torch.Tensor], *, batch_size: int,
                     label_columns: int | None = None) -> dict[str, Any]:
    """Whether the training run in ``out_dir`` trains under bf16 autocast (``config.bf16``).

    "auto" times a throwaway ``make_model()`` on one batch of ``batch_size`` random faces in
    [-1, 1] with 0/1 labels (``(batch,)``, or ``(batch, label_columns)``) in fp32 and under bf16
    (``common.train.decide_bf16``: on a CPU without native bf16 it is "off" untimed; CUDA: native
    bf16 or not); "on" / "off" are taken as given. Every mode writes its decision to
    ``out_dir/bf16.json``, and a folder holding one keeps it: a resume with "auto" reads it
    without timing, one with the opposite explicit mode raises ``ValueError``. So a run never
    changes precision half-way."""
    out_dir.mkdir(parents=True, exist_ok=True)
    record_path = out_dir / BF16_DECISION_FILE
    if record_path.is_file():
        recorded = json.loads(record_path.read_text(encoding="utf-8"))
        if config.bf16 != "auto" and recorded["use_bf16"] != (config.bf16 == "on"):
            kept = "on" if recorded["use_bf16"] else "off"
            raise ValueError(f"{out_dir} started with bf16 {kept} ({recorded['reason']}; {record_path}): "
                             f"resume it with --bf16 {kept} or auto, or delete {out_dir} to start it over "
                             f"with --bf16 {config.bf16}")
        return recorded
    size = config.data.image_size

    def make_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        labels_shape = (n,) if label_columns is None else (n, label_columns)
        return (torch.rand(n, 3, size, size, generator=generator) * 2 - 1,
                torch.randint(0, 2, labels_shape, generator=generator).float())

    decision = decide_bf16(config.bf16, record_path, select_device(config.device), make_model, make_batch,
                           loss_fn, batch_size=batch_size, channels_last=config.channels_last)
    if not record_path.is_file():  # "on" / "off": decide_bf16 keeps only what it decided itself
        text = json.dumps(decision, indent=1) + "\n"
        write_atomically(record_path, lambda temp_path: temp_path.write_text(text, encoding="utf-8"))
    return decision


class SampleGrids:
    """``evaluate_fn`` of the GAN trainers: writes the input / output grid of a fixed set of test
    faces to ``out_dir/samples/step_<n>.png`` and returns the L1 distance input-output."""

    def __init__(self, out_dir: Path, images: torch.Tensor, labels: torch.Tensor, invert_fn) -> None:
        self.out_dir, self.images, self.labels, self.invert_fn = out_dir, images, labels, invert_fn
        self.trainer: Trainer | None = None

    def __call__(self, models) -> dict[str, float]:
        device = next(next(iter(models.values())).parameters()).device
        inverted = self.invert_fn(models, self.images.to(device), self.labels.to(device)).cpu()
        step = self.trainer.step if self.trainer is not None else 0
        save_sample_grid(self.out_dir / "samples" / f"step_{step:06d}.png",
                         [("input", self.images), ("output", inverted)])
        return {"sample_l1_change": float((inverted - self.images).abs().mean())}


def fixed_samples(faces: FaceImages, split: InversionSplit, attribute: str,
                  config: ReproduceConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``grid_images / 2`` positives and negatives of the test set (Fig. 2 columns)."""
    dataset = heldout_test_set(faces, split, attribute)
    positives, negatives = split.test_counts[attribute]
    half = config.evaluation.grid_images // 2
    chosen = [*range(min(half, positives)), *range(positives, positives + min(half, negatives))]
    samples = [dataset[i] for i in chosen]
    samples = [s for s in samples if s is not None]
    images = torch.stack([s["image"] for s in samples])
    labels = torch.stack([attribute_labels(s["attributes"][None], attribute)[0] for s in samples])
    return images, labels


# --------------------------------------------------------------------------- ours


def build_inversion_models(config: ReproduceConfig) -> dict[str, nn.Module]:
    size = config.data.image_size
    return {"generator": SkipReducedUNet(size, config.generator),
            "discriminator": AuxiliaryClassifierDiscriminator(size, config.discriminator)}


def invert_with_generator(models, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Ours needs no label: G(x) is the inverted face (§2)."""
    return models["generator"](images)


def inversion_step(trainer: Trainer, batch: dict, attribute: str,
                   weights: InversionLossConfig) -> dict[str, float]:
    """One D update (Eq. 7) then one G update (Eq. 6)."""
    generator, discriminator = trainer.models["generator"], trainer.models["discriminator"]
    real = batch["image"]
    labels = attribute_labels(batch["attributes"], attribute)
    inverted_labels = 1.0 - labels

    with trainer.autocast():
        fake = generator(real)
        real_source, real_attribute, _ = discriminator(real)
        fake_source, _, _ = discriminator(fake.detach())
        d_adversarial = losses.discriminator_adversarial_loss(real_source, fake_source)
        d_classification = losses.attribute_classification_loss(real_attribute, labels)
        d_loss = losses.discriminator_objective(d_adversarial, d_classification, weights)
    trainer.backward_and_step(d_loss, "discriminator")

    raw_discriminator = trainer.raw_models["discriminator"]
    set_requires_grad(raw_discriminator, False)
    try:
        with trainer.autocast():
            reconstruction = generator(fake)
            with torch.no_grad():
                _, _, real_features = discriminator(real)
            source, attribute_logits, features = discriminator(torch.cat([fake, reconstruction]))
            batch_size = real.shape[0]
            terms = losses.InversionGeneratorTerms(
                adversarial=losses.generator_adversarial_loss(source[:batch_size], weights.generator_adversarial),
                classification_fake=losses.attribute_classification_loss(attribute_logits[:batch_size],
                                                                         inverted_labels),
                reconstruction=losses.reconstruction_loss(real, reconstruction),
                feature_matching=losses.feature_matching_loss(
                    real_features, [feature[batch_size:] for feature in features]))
            g_loss = terms.total(weights)
        trainer.backward_and_step(g_loss, "generator")
    finally:
        set_requires_grad(raw_discriminator, True)

    with torch.no_grad():
        real_accuracy = ((real_attribute > 0).float() == labels).float().mean()
        fake_flipped = ((attribute_logits[:batch_size] > 0).float() == inverted_labels).float().mean()
    logs = {"d_loss": d_loss, "d_adversarial": d_adversarial, "d_cls_real": d_classification,
            "g_loss": g_loss, "g_adversarial": terms.adversarial, "g_cls_fake": terms.classification_fake,
            "g_rec": terms.reconstruction, "g_fm": terms.feature_matching,
            "d_cls_accuracy_real": real_accuracy, "d_cls_inverted_fake": fake_flipped}
    return {name: value.item() for name, value in logs.items()}


def inversion_timing_loss(outputs: tuple, labels: torch.Tensor) -> torch.Tensor:
    """G's adversarial and inverted-label classification terms of Eq. 6 on ``D(G(x))``
    (``DiscriminatorOnGenerator``): the loss the ``--bf16 auto`` calibration times."""
    source, attribute_logits, _ = outputs
    return (losses.generator_adversarial_loss(source.float())
            + losses.attribute_classification_loss(attribute_logits.float(), 1.0 - labels))


def train_inversion(annotations: CelebAAnnotations, split: InversionSplit, attribute: str,
                    config: ReproduceConfig, out_dir: Path) -> tuple[dict[str, nn.Module], TrainResult]:
    """Train our G and D for one attribute; resumes from ``out_dir/last.pt``.

    ``--bf16 auto`` times ``D(G(x))`` trained as one network under G's adversarial and
    classification terms (:func:`inversion_timing_loss`): every layer of both networks forward
    and backward, as in the real step (:func:`inversion_step`), which runs G on x and on G(x) and
    D on x and G(x) for D's update and on x, G(x) and G(G(x)) for G's; the calibration's ratio is
    that of the same layers, weighted one pass each."""
    size = config.data.image_size
    use_bf16 = bool(decide_precision(
        config, out_dir, lambda: DiscriminatorOnGenerator(SkipReducedUNet(size, config.generator),
                                                          AuxiliaryClassifierDiscriminator(size, config.discriminator)),
        inversion_timing_loss, batch_size=config.optim.batch_size)["use_bf16"])
    faces = run_faces(annotations, split, config)
    seed_everything(config.data.seed)  # the initial weights
    models = build_inversion_models(config)
    optimizers = {"generator": adam(models["generator"].parameters(), config.optim),
                  "discriminator": adam(models["discriminator"].parameters(), config.optim)}
    schedulers = {name: linear_decay_schedule(optimizer, config.optim) for name, optimizer in optimizers.items()}
    images, labels = fixed_samples(faces, split, attribute, config)
    grids = SampleGrids(out_dir, images, labels, invert_with_generator)
    trainer = Trainer(models, optimizers, attribute_training_set(faces, split, attribute, config.data),
                      train_config(out_dir, config, config.optim.max_steps, use_bf16),
                      batch_size=config.optim.batch_size, schedulers=schedulers, evaluate_fn=grids,
                      step_fn=lambda trainer, batch: inversion_step(trainer, batch, attribute, config.losses))
    grids.trainer = trainer
    result = trainer.fit()
    return models, result


# --------------------------------------------------------------------------- CycleGAN


def build_cyclegan_models(config: ReproduceConfig) -> dict[str, nn.Module]:
    """[5]: G_AB (negative -> positive), G_BA (positive -> negative), D_A, D_B."""
    cyclegan = config.cyclegan
    return {"generator_ab": ResnetGenerator(cyclegan), "generator_ba": ResnetGenerator(cyclegan),
            "discriminator_a": PatchDiscriminator(cyclegan), "discriminator_b": PatchDiscriminator(cyclegan)}


def invert_with_cyclegan(models, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CycleGAN needs the label to pick the direction: G_AB for negatives, G_BA for positives."""
    positive = labels.bool().view(-1, 1, 1, 1)
    return torch.where(positive, models["generator_ba"](images), models["generator_ab"](images))


def cyclegan_step(trainer: Trainer, batch: dict, config: CycleGANConfig,
                  pools: dict[str, ImagePool]) -> dict[str, float]:
    """One update of both generators, then of both discriminators, as in [5]'s reference code."""
    models, raw = trainer.models, trainer.raw_models
    real_a, real_b = batch["image_a"], batch["image_b"]
    discriminators = [raw["discriminator_a"], raw["discriminator_b"]]
    for module in discriminators:
        set_requires_grad(module, False)
    try:
        with trainer.autocast():
            fake_b = models["generator_ab"](real_a)
            fake_a = models["generator_ba"](real_b)
            reconstructed_a = models["generator_ba"](fake_b)
            reconstructed_b = models["generator_ab"](fake_a)
            use_identity = config.lambda_identity > 0
            identity_a = models["generator_ba"](real_a) if use_identity else None
            identity_b = models["generator_ab"](real_b) if use_identity else None
            g_loss, terms = losses.cyclegan_generator_loss(
                models["discriminator_b"](fake_b), models["discriminator_a"](fake_a), real_a, real_b,
                reconstructed_a, reconstructed_b, identity_a, identity_b, config)
        trainer.backward_and_step(g_loss, "generator")
    finally:
        for module in discriminators:
            set_requires_grad(module, True)

    with trainer.autocast():
        d_loss_a = losses.cyclegan_discriminator_loss(models["discriminator_a"](real_a),
                                                      models["discriminator_a"](pools["pool_a"].query(fake_a)))
        d_loss_b = losses.cyclegan_discriminator_loss(models["discriminator_b"](real_b),
                                                      models["discriminator_b"](pools["pool_b"].query(fake_b)))
    trainer.backward_and_step(d_loss_a + d_loss_b, "discriminator")
    logs = {"g_loss": g_loss, **{f"g_{name}": value for name, value in terms.items()},
            "d_loss_a": d_loss_a, "d_loss_b": d_loss_b}
    return {name: value.item() for name, value in logs.items()}


def train_cyclegan(annotations: CelebAAnnotations, split: InversionSplit, attribute: str,
                   config: ReproduceConfig, out_dir: Path) -> tuple[dict[str, nn.Module], TrainResult]:
    """Train the CycleGAN baseline for one attribute on the same training pool as ours.

    ``--bf16 auto`` times ``D_B(G_AB(a))`` (the other direction has the same networks) trained as
    one network under G's LSGAN term, as :func:`train_inversion` times ours."""
    use_bf16 = bool(decide_precision(
        config, out_dir, lambda: DiscriminatorOnGenerator(ResnetGenerator(config.cyclegan),
                                                          PatchDiscriminator(config.cyclegan)),
        lambda logits, _labels: losses.lsgan_loss(logits.float(), True),
        batch_size=config.optim.batch_size)["use_bf16"])
    faces = run_faces(annotations, split, config)
    seed_everything(config.data.seed)  # the initial weights
    models = build_cyclegan_models(config)
    generator_parameters = [*models["generator_ab"].parameters(), *models["generator_ba"].parameters()]
    discriminator_parameters = [*models["discriminator_a"].parameters(),
                                *models["discriminator_b"].parameters()]
    optimizers = {"generator": adam(generator_parameters, config.optim),
                  "discriminator": adam(discriminator_parameters, config.optim)}
    schedulers = {name: linear_decay_schedule(optimizer, config.optim) for name, optimizer in optimizers.items()}
    size = config.data.image_size
    pools = {name: ImagePool(config.cyclegan.pool_size, (3, size, size)) for name in ("pool_a", "pool_b")}
    images, labels = fixed_samples(faces, split, attribute, config)
    grids = SampleGrids(out_dir, images, labels, invert_with_cyclegan)
    trainer = Trainer(models, optimizers, cyclegan_training_set(faces, split, attribute, config.data),
                      train_config(out_dir, config, config.optim.max_steps, use_bf16),
                      batch_size=config.optim.batch_size, schedulers=schedulers, evaluate_fn=grids,
                      extra_state=pools,
                      step_fn=lambda trainer, batch: cyclegan_step(trainer, batch, config.cyclegan, pools))
    for pool in pools.values():
        pool.to(trainer.device)
    grids.trainer = trainer
    result = trainer.fit()
    return models, result


# --------------------------------------------------------------------------- judge


def train_judge(annotations: CelebAAnnotations, split: InversionSplit, config: ReproduceConfig,
                out_dir: Path) -> tuple[AttributeJudge, TrainResult]:
    """Train the attribute judge on the training pool (never on test images), one logit per
    studied attribute, positives weighted by the negative/positive ratio against imbalance."""
    attributes = config.data.attributes
    columns = [ATTRIBUTE_INDEX[name] for name in attributes]
    labels = annotations.attributes[split.train_indices][:, columns].astype(np.float64)
    positive_fraction = labels.mean(axis=0).clip(1e-3, 1 - 1e-3)
    pos_weight = torch.tensor((1 - positive_fraction) / positive_fraction, dtype=torch.float32)
    use_bf16 = bool(decide_precision(
        config, out_dir, lambda: AttributeJudge(len(attributes), config.judge.channels),
        lambda logits, targets: F.binary_cross_entropy_with_logits(logits.float(), targets, pos_weight=pos_weight),
        batch_size=config.judge.batch_size, label_columns=len(attributes))["use_bf16"])
    faces = run_faces(annotations, split, config)
    seed_everything(config.data.seed)  # the initial weights
    judge = AttributeJudge(len(attributes), config.judge.channels)
    column_index = torch.tensor(columns)

    def loss_fn(model, batch):
        logits = model(batch["image"])
        targets = batch["attributes"][:, column_index.to(logits.device)]
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight.to(logits.device))
        accuracy = ((logits > 0).float() == targets).float().mean()
        return loss, {"accuracy": float(accuracy)}

    dataset = faces.dataset(split.train_indices, hflip=config.data.hflip)
    judge_config = config.judge
    train_cfg = train_config(out_dir, config, judge_config.max_steps, use_bf16)
    train_cfg.eval_every = 0
    trainer = Trainer(judge, torch.optim.Adam(judge.parameters(), lr=judge_config.learning_rate), dataset,
                      train_cfg, batch_size=min(judge_config.batch_size, len(dataset)), loss_fn=loss_fn)
    result = trainer.fit()
    return judge, result
