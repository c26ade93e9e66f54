"""Training of the segmentation, attribute and joint nets on ``common.train.Trainer`` (§5).

AdaGrad, mini-batch 32, learning rate 0.001, weight decay 0.0005, random horizontal flips;
40K iterations for attribute nets, 75K for the segmentation net. Every run writes
checkpoints to its own folder and resumes from ``last.pt`` when restarted. A
:class:`Validation` scores the network on the validation images every ``eval_every`` steps and
at the end; the best checkpoint by its metric is kept as ``best.pt`` (our choice: the paper does
not say how its final models were picked).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from common.train import TrainConfig, Trainer, TrainResult
from ssp_ssg.config import OptimConfig
from ssp_ssg.losses import attribute_loss, deep_supervision_loss
from ssp_ssg.models import JointAttributeParsingNet, SegmentationNet


@dataclass(frozen=True)
class RunSettings:
    """What every training run of one reproduction shares (device, logging, precision)."""

    device: str = "auto"
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 1_000
    #: ``--bf16``: "off", "on" or "auto" (decided per network, ``common.train.decide_bf16``).
    bf16: str = "off"
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0
    tensorboard: bool = True
    progress: bool = True

    def train_config(self, out_dir: Path, max_steps: int, validation: "Validation | None",
                     use_bf16: bool) -> TrainConfig:
        return TrainConfig(out_dir=out_dir, max_steps=max_steps, log_every=self.log_every,
                           eval_every=0 if validation is None else validation.every,
                           checkpoint_every=self.checkpoint_every, bf16=use_bf16,
                           channels_last=self.channels_last, compile=self.compile,
                           device=self.device, seed=self.seed, tensorboard=self.tensorboard,
                           progress=self.progress,
                           best_metric=None if validation is None else validation.metric,
                           best_mode="max" if validation is None else validation.mode)


@dataclass(frozen=True)
class Validation:
    """How a network is scored on the validation images: ``evaluate(model) -> {metric: value}``
    (``common.train.Trainer``'s ``evaluate_fn``) every ``every`` steps (0: at the end only) and
    at the end; ``metric`` ("max" or "min" by ``mode``) picks ``best.pt``."""

    evaluate: Callable[[Any], dict[str, float]]
    metric: str
    mode: str
    every: int = 0


def _trainer(model: nn.Module, dataset: Dataset, out_dir: Path, optim: OptimConfig, steps: int,
             settings: RunSettings, loss_fn, validation: Validation | None,
             use_bf16: bool) -> Trainer:
    optimizer = adagrad(model, optim)
    return Trainer(model, optimizer, dataset,
                   settings.train_config(out_dir, steps, validation, use_bf16),
                   batch_size=optim.batch_size, loss_fn=loss_fn,
                   schedulers=lr_schedule(optimizer, optim, steps),
                   evaluate_fn=None if validation is None else validation.evaluate,
                   num_workers=settings.num_workers)


def adagrad(model: nn.Module, optim: OptimConfig) -> torch.optim.Adagrad:
    """AdaGrad over the trainable parameters (§5); a frozen segmentation net is excluded."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adagrad(parameters, lr=optim.learning_rate,
                               weight_decay=optim.weight_decay)


def lr_schedule(optimizer: torch.optim.Optimizer, optim: OptimConfig,
                steps: int) -> torch.optim.lr_scheduler.LRScheduler | None:
    """``optim.lr_schedule``: none for the paper's constant lr (§5); for "cosine", the lr falls
    from ``optim.learning_rate`` to 0 over the network's ``steps`` (stepped once per step by
    ``common.train.Trainer``, saved in its checkpoints)."""
    if optim.lr_schedule == "constant":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, steps))


def attribute_logits(model: nn.Module, batch: dict) -> torch.Tensor:
    """Run an attribute model on a batch; the BBox baseline also takes the landmarks."""
    target = model.module if hasattr(model, "module") else model
    target = getattr(target, "_orig_mod", target)  # torch.compile wrapper
    if getattr(target, "uses_landmarks", False):
        return model(batch["image"], batch["landmarks"])
    return model(batch["image"])


def train_segmentation(net: SegmentationNet, dataset: Dataset, out_dir: Path, optim: OptimConfig,
                       steps: int, settings: RunSettings, validation: Validation | None = None,
                       use_bf16: bool = False) -> TrainResult:
    """Face parsing with deep supervision: one softmax loss per scale, equal weights (§3.2)."""

    def loss_fn(model, batch):
        total, per_scale = deep_supervision_loss(model(batch["image"]), batch["mask"])
        return total, {f"loss_{name}": float(loss.detach()) for name, loss in per_scale.items()}

    return _trainer(net, dataset, out_dir, optim, steps, settings, loss_fn, validation,
                    use_bf16).fit()


def train_attributes(model: nn.Module, dataset: Dataset, out_dir: Path, optim: OptimConfig,
                     steps: int, settings: RunSettings,
                     class_weights: tuple[torch.Tensor, torch.Tensor] | None = None,
                     validation: Validation | None = None, use_bf16: bool = False) -> TrainResult:
    """Sigmoid cross entropy over the 40 attributes (§3.1.1); weighted when ``class_weights``."""
    device_weights = None

    def loss_fn(model_, batch):
        nonlocal device_weights
        weights = None
        if class_weights is not None:
            if device_weights is None:
                device_weights = tuple(w.to(batch["attributes"].device) for w in class_weights)
            weights = device_weights
        return attribute_loss(attribute_logits(model_, batch), batch["attributes"], weights), {}

    return _trainer(model, dataset, out_dir, optim, steps, settings, loss_fn, validation,
                    use_bf16).fit()


def train_joint(model: JointAttributeParsingNet, dataset: Dataset, out_dir: Path,
                optim: OptimConfig, steps: int, settings: RunSettings,
                validation: Validation | None = None, use_bf16: bool = False) -> TrainResult:
    """§4.4: attribute loss (CelebA batch) + deep-supervised parsing loss (parsing batch)."""

    def loss_fn(model_, batch):
        attributes = attribute_loss(model_.attributes(batch["image"]), batch["attributes"])
        parsing, _ = deep_supervision_loss(model_.segmentation(batch["parsing_image"]),
                                           batch["parsing_mask"])
        return attributes + parsing, {"loss_attributes": float(attributes.detach()),
                                      "loss_parsing": float(parsing.detach())}

    return _trainer(model, dataset, out_dir, optim, steps, settings, loss_fn, validation,
                    use_bf16).fit()

