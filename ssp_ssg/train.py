"""Training of the segmentation, attribute and joint nets on ``common.train.Trainer`` (§5).

AdaGrad, mini-batch 32, learning rate 0.001, weight decay 0.0005, random horizontal flips;
40K iterations for attribute nets, 75K for the segmentation net. Every run writes
checkpoints to its own folder and resumes from ``last.pt`` when restarted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    num_workers: int = 0
    tensorboard: bool = True
    progress: bool = True

    def train_config(self, out_dir: Path, max_steps: int) -> TrainConfig:
        return TrainConfig(out_dir=out_dir, max_steps=max_steps, log_every=self.log_every,
                           checkpoint_every=self.checkpoint_every, bf16=self.bf16,
                           channels_last=self.channels_last, compile=self.compile,
                           device=self.device, seed=self.seed, tensorboard=self.tensorboard,
                           progress=self.progress)


def adagrad(model: nn.Module, optim: OptimConfig) -> torch.optim.Adagrad:
    """AdaGrad over the trainable parameters (§5); a frozen segmentation net is excluded."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adagrad(parameters, lr=optim.learning_rate,
                               weight_decay=optim.weight_decay)


def attribute_logits(model: nn.Module, batch: dict) -> torch.Tensor:
    """Run an attribute model on a batch; the BBox baseline also takes the landmarks."""
    target = model.module if hasattr(model, "module") else model
    target = getattr(target, "_orig_mod", target)  # torch.compile wrapper
    if getattr(target, "uses_landmarks", False):
        return model(batch["image"], batch["landmarks"])
    return model(batch["image"])


def train_segmentation(net: SegmentationNet, dataset: Dataset, out_dir: Path, optim: OptimConfig,
                       steps: int, settings: RunSettings) -> TrainResult:
    """Face parsing with deep supervision: one softmax loss per scale, equal weights (§3.2)."""

    def loss_fn(model, batch):
        total, per_scale = deep_supervision_loss(model(batch["image"]), batch["mask"])
        return total, {f"loss_{name}": float(loss.detach()) for name, loss in per_scale.items()}

    trainer = Trainer(net, adagrad(net, optim), dataset, settings.train_config(out_dir, steps),
                      batch_size=optim.batch_size, loss_fn=loss_fn,
                      num_workers=settings.num_workers)
    return trainer.fit()


def train_attributes(model: nn.Module, dataset: Dataset, out_dir: Path, optim: OptimConfig,
                     steps: int, settings: RunSettings,
                     class_weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> TrainResult:
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

    trainer = Trainer(model, adagrad(model, optim), dataset, settings.train_config(out_dir, steps),
                      batch_size=optim.batch_size, loss_fn=loss_fn,
                      num_workers=settings.num_workers)
    return trainer.fit()


def train_joint(model: JointAttributeParsingNet, dataset: Dataset, out_dir: Path,
                optim: OptimConfig, steps: int, settings: RunSettings) -> TrainResult:
    """§4.4: attribute loss (CelebA batch) + deep-supervised parsing loss (parsing batch)."""

    def loss_fn(model_, batch):
        attributes = attribute_loss(model_.attributes(batch["image"]), batch["attributes"])
        parsing, _ = deep_supervision_loss(model_.segmentation(batch["parsing_image"]),
                                           batch["parsing_mask"])
        return attributes + parsing, {"loss_attributes": float(attributes.detach()),
                                      "loss_parsing": float(parsing.detach())}

    trainer = Trainer(model, adagrad(model, optim), dataset, settings.train_config(out_dir, steps),
                      batch_size=optim.batch_size, loss_fn=loss_fn,
                      num_workers=settings.num_workers)
    return trainer.fit()

