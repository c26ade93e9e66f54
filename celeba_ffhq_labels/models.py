"""SE-ResNeXt attribute classifier, Le & Lee §2.2 "Model Selection".

The network is timm's ``seresnext101_32x4d`` (Hu et al.'s squeeze-and-excitation on ResNeXt's
grouped bottlenecks) with a 40-way linear head whose logits go through a sigmoid per attribute
(§2.3, Eq. 3). It is always built with ``pretrained=False`` (nothing is downloaded); ImageNet
weights load only from a local file the user names.

:class:`AttributeClassifier` keeps, beside the network, the two per-attribute vectors the paper
derives from data — the loss weights of Eq. 4 (computed on the training split) and the decision
thresholds of §3.2 (searched on the held-out split) — as buffers, so every checkpoint written by
``common.train`` and the exported ``classifier.pt`` carry them with the weights.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from torch import nn

from common.attributes import CELEBA_ATTRIBUTES
from common.checkpoint import load_checkpoint, save_checkpoint

from celeba_ffhq_labels.config import ModelConfig

#: Keys of timm's ResNet-family classifier (the ImageNet head that a local weight file carries).
_CLASSIFIER_KEYS = ("fc.weight", "fc.bias")


class AttributeClassifier(nn.Module):
    """``backbone(images) -> (N, 40)`` attribute logits, plus the paper's per-attribute vectors.

    Buffers:
        loss_weights: Eq. 4's ``w_t = N / (M N_t)`` (ones until set from the training split).
        decision_thresholds: §3.2's per-class thresholds on ``sigmoid(logits)`` (0.5 until searched).
    """

    def __init__(self, backbone: nn.Module, num_attributes: int = len(CELEBA_ATTRIBUTES)):
        super().__init__()
        self.backbone = backbone
        self.register_buffer("loss_weights", torch.ones(num_attributes))
        self.register_buffer("decision_thresholds", torch.full((num_attributes,), 0.5))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def set_loss_weights(self, weights: np.ndarray) -> None:
        self.loss_weights.copy_(torch.as_tensor(np.asarray(weights, dtype=np.float32)))

    def set_decision_thresholds(self, thresholds: np.ndarray) -> None:
        self.decision_thresholds.copy_(torch.as_tensor(np.asarray(thresholds, dtype=np.float32)))


def build_backbone(config: ModelConfig) -> nn.Module:
    """timm's ``config.arch`` with a ``config.num_attributes``-way head, randomly initialised, then
    (optionally) ImageNet weights from ``config.pretrained_path``."""
    backbone = timm.create_model(config.arch, pretrained=False, num_classes=config.num_attributes,
                                 **dict(config.timm_overrides))
    if config.pretrained_path is not None:
        load_imagenet_weights(backbone, config.pretrained_path)
    return backbone


def build_classifier(config: ModelConfig) -> AttributeClassifier:
    """The §2.2 classifier for ``config`` (see :func:`build_backbone`)."""
    return AttributeClassifier(build_backbone(config), config.num_attributes)


def load_imagenet_weights(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load an ImageNet state dict (``.pth``/``.bin``/``.safetensors``, as timm saves them) into
    ``backbone``; the 1000-way head is dropped, every other tensor must match by name and shape.

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or does not
    belong to this architecture (a silent partial load would train a mostly random network).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights not found: {path}")
    state_dict = timm.models.load_state_dict(str(path))
    state_dict = {key: value for key, value in state_dict.items() if key not in _CLASSIFIER_KEYS}
    own = backbone.state_dict()
    mismatched = [key for key, value in state_dict.items()
                  if key in own and tuple(value.shape) != tuple(own[key].shape)]
    missing = sorted(set(own) - set(state_dict) - set(_CLASSIFIER_KEYS))
    unexpected = sorted(set(state_dict) - set(own))
    if mismatched or missing or unexpected:
        raise ValueError(
            f"{path}: not weights of this architecture ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} of another shape; first: "
            f"{(mismatched + missing + unexpected)[:3]})")
    backbone.load_state_dict(state_dict, strict=False)


def save_classifier(path: str | os.PathLike, model: AttributeClassifier, config: ModelConfig,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write the trained classifier for label transfer: architecture, weights, loss weights and
    thresholds, attribute names (atomic, loadable with ``weights_only=True``)."""
    model_config = dataclasses.asdict(config)
    model_config["timm_overrides"] = [[key, list(value) if isinstance(value, tuple) else value]
                                      for key, value in config.timm_overrides]
    model_config["input_size"] = list(config.input_size)
    model_config["pretrained_path"] = None  # the weights are in this file
    state = {
        "model_config": model_config,
        "attribute_names": list(CELEBA_ATTRIBUTES),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    return save_checkpoint(path, state)


def load_classifier(path: str | os.PathLike) -> tuple[AttributeClassifier, ModelConfig]:
    """Inverse of :func:`save_classifier` -> (classifier in eval mode on CPU, its ModelConfig)."""
    state = load_checkpoint(path)
    for key in ("model_config", "state_dict", "attribute_names"):
        if key not in state:
            raise ValueError(f"{path}: not a classifier written by save_classifier (no {key!r}; "
                             f"a training checkpoint is in <out>/train/, the classifier is "
                             f"<out>/classifier.pt)")
    if tuple(state["attribute_names"]) != CELEBA_ATTRIBUTES:
        raise ValueError(f"{path}: attribute names differ from CelebA's 40")
    fields = dict(state["model_config"])
    fields["timm_overrides"] = tuple((key, tuple(value) if isinstance(value, list) else value)
                                     for key, value in fields["timm_overrides"])
    fields["input_size"] = tuple(fields["input_size"])
    config = ModelConfig(**fields)
    model = build_classifier(config)
    model.load_state_dict(state["state_dict"])
    return model.eval(), config
