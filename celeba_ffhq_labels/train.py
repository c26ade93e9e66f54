"""Training of the attribute classifier, Le & Lee §2.3 and §3.1.

The class-weighted BCE of §2.3 (weights from the training set, Eq. 4) is minimised with the
shared ``common.train.Trainer`` (checkpoints, exact resume, logging); the hamming loss on the
validation set (Eq. 7, sigmoid outputs thresholded at 0.5) is evaluated every
``eval_every_epochs`` and the checkpoint with the lowest value is kept (§3.1: "we controlled the
training process by hamming loss"). The test set is never seen here.
"""
from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit

from common.attributes import NUM_ATTRIBUTES
from common.checkpoint import configuration_fingerprint, require_same_configuration
from common.data.celeba import CelebAAnnotations
from common.gpu import select_device
from common.metrics import auroc, hamming_loss
from common.seed import seed_everything
from common.train import (BEST_CHECKPOINT, TrainConfig, Trainer, TrainResult, decide_bf16, load_trained_models,
                          predict)

from celeba_ffhq_labels.config import ExperimentConfig
from celeba_ffhq_labels.data import Splits, cached_training_datasets, evaluation_dataset, training_dataset
from celeba_ffhq_labels.losses import attribute_loss_weights, weighted_bce_with_logits
from celeba_ffhq_labels.models import AttributeClassifier, build_classifier

logger = logging.getLogger(__name__)

#: Sub-folder of the results folder holding the Trainer's checkpoints, log.csv and TensorBoard.
TRAIN_DIR = "train"
#: The bf16 decision of a run, in its training folder (``common.train.decide_bf16``).
BF16_DECISION_FILE = "bf16.json"


@dataclass
class TrainedClassifier:
    """The best checkpoint's classifier (loss weights set) and the Trainer's record of the run."""

    model: AttributeClassifier
    result: TrainResult
    train_dir: Path
    #: ``common.train.decide_bf16``'s record: whether the run trained in bf16 autocast, and why.
    bf16_decision: dict


def resolve_precision(config: ExperimentConfig, train_dir: Path) -> tuple[torch.device, dict, bool]:
    """(device, bf16 decision record, channels_last). bf16 by ``common.train.decide_bf16`` (``auto``:
    timed once on this CPU with a throwaway copy of the network, kept in ``train_dir/bf16.json``);
    channels_last ``None`` means on for CUDA and with bf16, off otherwise."""
    runtime = config.runtime
    device = select_device(runtime.device)
    height, width = config.model.input_size

    def make_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        return (torch.randn(n, 3, height, width, generator=generator),
                torch.randint(0, 2, (n, config.model.num_attributes), generator=generator).float())

    decision = decide_bf16(runtime.bf16, train_dir / BF16_DECISION_FILE, device,
                           lambda: build_classifier(config.model), make_batch,
                           lambda logits, targets: torch.nn.functional.binary_cross_entropy_with_logits(
                               logits.float(), targets),
                           batch_size=config.optim.batch_size,
                           channels_last=runtime.channels_last is not False)
    channels_last = ((device.type == "cuda" or decision["use_bf16"]) if runtime.channels_last is None
                     else runtime.channels_last)
    return device, decision, channels_last


def sigmoid_scores(model: torch.nn.Module, dataset, batch_size: int, device: torch.device,
                   progress: bool = False, num_workers: int = 0) -> dict[str, np.ndarray]:
    """``predict`` over ``dataset`` -> ``{"scores": sigmoid outputs (N, 40), "attributes", "index"}``
    (corrupt images are dropped; ``index`` says which rows remain)."""
    outputs = predict(model, dataset, batch_size=batch_size, device=device, progress=progress,
                      num_workers=num_workers)
    if "outputs" not in outputs:
        return {"scores": np.zeros((0, NUM_ATTRIBUTES)), "index": np.zeros(0, np.int64)}
    scores = expit(outputs.pop("outputs").astype(np.float64))
    return {"scores": scores, **outputs}


def cosine_schedule(max_steps: int):
    """Learning-rate factor for ``LambdaLR``: cosine decay from 1 to 0 over ``max_steps``."""
    return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, max_steps) / max_steps))


def _experiment_fingerprint(config: ExperimentConfig) -> dict:
    """The parts of the configuration that determine the trained weights (not the runtime)."""
    # without how it runs, how it is evaluated and what it labels afterwards
    return configuration_fingerprint(config, without=("runtime", "transfer", "evaluation"))


def train_classifier(config: ExperimentConfig, annotations: CelebAAnnotations, splits: Splits,
                     out_dir: str | Path) -> TrainedClassifier:
    """Train (or resume) the classifier of ``config`` on ``splits.train``; return the checkpoint
    with the lowest validation hamming loss (``splits.val``). Checkpoints go to ``out_dir/train``."""
    train_dir = Path(out_dir) / TRAIN_DIR
    require_same_configuration(train_dir, _experiment_fingerprint(config),
                               remedy="choose another --out or pass --restart")
    device, bf16_decision, channels_last = resolve_precision(config, train_dir)
    bf16 = bool(bf16_decision["use_bf16"])
    optim = config.optim

    seed_everything(config.seed)
    model = build_classifier(config.model)
    model.set_loss_weights(attribute_loss_weights(annotations.attributes[splits.train]))

    if config.runtime.image_cache_dir is None:
        train_set = training_dataset(annotations, splits.train, config.model, config.data)
        val_set = evaluation_dataset(annotations, splits.val, config.model)
    else:
        cached = cached_training_datasets(annotations, splits, config.model, config.data,
                                          config.runtime.image_cache_dir, progress=config.runtime.progress)
        train_set, val_set = cached["train"], cached["val"]
    steps_per_epoch = len(train_set) // optim.batch_size
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training images give no full batch of {optim.batch_size}")
    max_steps = steps_per_epoch * optim.epochs

    optimizer = torch.optim.Adam(model.parameters(), lr=optim.learning_rate,
                                 weight_decay=optim.weight_decay)
    scheduler = (torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_schedule(max_steps))
                 if optim.cosine_schedule else None)

    def loss_fn(network: AttributeClassifier, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        logits = network(batch["image"])
        return weighted_bce_with_logits(logits, batch["attributes"], model.loss_weights), {}

    def evaluate_fn(network: AttributeClassifier) -> dict[str, float]:
        val = sigmoid_scores(network, val_set, optim.eval_batch_size, device,
                             num_workers=config.runtime.num_workers)
        labels = val["attributes"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # attributes without positives give NaN, by design
            mean_auroc = float(np.nanmean(auroc(labels, val["scores"])))
        predictions = (val["scores"] >= optim.monitor_threshold).astype(np.uint8)
        return {"hamming_loss": hamming_loss(labels, predictions), "mean_auroc": mean_auroc}

    trainer = Trainer(
        model, optimizer, train_set,
        TrainConfig(out_dir=train_dir, max_steps=max_steps, log_every=min(10, steps_per_epoch),
                    eval_every=steps_per_epoch * optim.eval_every_epochs, bf16=bf16,
                    channels_last=channels_last, compile=config.runtime.compile,
                    device=str(device), seed=config.seed, best_metric="hamming_loss",
                    best_mode="min", tensorboard=config.runtime.tensorboard,
                    progress=config.runtime.progress),
        batch_size=optim.batch_size, loss_fn=loss_fn, schedulers=scheduler,
        evaluate_fn=evaluate_fn, num_workers=config.runtime.num_workers)
    result = trainer.fit(resume=True)
    load_trained_models(train_dir / BEST_CHECKPOINT, model)
    logger.info("best validation hamming loss %.4f (%d steps)", result.best_value, result.step)
    return TrainedClassifier(model=model.eval(), result=result, train_dir=train_dir,
                             bf16_decision=bf16_decision)
