"""SE-ResNeXt attribute classifier, Le & Lee §2.2 "Model Selection".

The network is timm's ``seresnext101_32x4d`` (Hu et al.'s squeeze-and-excitation on ResNeXt's
grouped bottlenecks) with a 40-way linear head whose logits go through a sigmoid per attribute
(§2.3, Eq. 3). It is always built with ``pretrained=False`` (nothing is downloaded); ImageNet
weights load only from a local file the user names.

:class:`AttributeClassifier` keeps, beside the network, the two per-attribute vectors the paper
derives from data — the loss weights of Eq. 4 (computed on the training split) and the decision
thresholds of §3.2 (searched on the validation set) — as buffers, so every checkpoint written by
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
from common.export import load_shipped_model, save_shipped_model

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


def _timm_key(cadene_key: str) -> str:
    """A key of Cadene's ``pretrainedmodels`` SE-ResNeXt (the layout the SE-ResNeXt weights of many
    repositories use) in timm's naming: the stem leaves ``layer0.``, ``se_module`` becomes ``se``,
    ``last_linear`` becomes ``fc``."""
    key = cadene_key.removeprefix("layer0.")
    if key.startswith("last_linear."):
        key = "fc." + key.removeprefix("last_linear.")
    return key.replace(".se_module.", ".se.")


def from_cadene_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state_dict`` with Cadene ``pretrainedmodels`` key names renamed to timm's; a dict in timm's
    layout comes back unchanged."""
    return {_timm_key(key): value for key, value in state_dict.items()}


def load_imagenet_weights(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load an ImageNet state dict (``.pth``/``.bin``/``.safetensors``, as timm saves them, or in the
    key layout of Cadene's ``pretrainedmodels``) into ``backbone``; the 1000-way head is dropped,
    every other tensor must match by name and shape (BatchNorm's ``num_batches_tracked`` counters,
    absent from older files, may be missing).

    Raises ``FileNotFoundError`` / ``ValueError`` naming the file when it is missing or does not
    belong to this architecture (a silent partial load would train a mostly random network).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights not found: {path}")
    state_dict = from_cadene_layout(timm.models.load_state_dict(str(path)))
    state_dict = {key: value for key, value in state_dict.items() if key not in _CLASSIFIER_KEYS}
    own = backbone.state_dict()
    mismatched = [key for key, value in state_dict.items()
                  if key in own and tuple(value.shape) != tuple(own[key].shape)]
    missing = sorted(key for key in set(own) - set(state_dict) - set(_CLASSIFIER_KEYS)
                     if not key.endswith("num_batches_tracked"))
    unexpected = sorted(set(state_dict) - set(own))
    if mismatched or missing or unexpected:
        raise ValueError(
            f"{path}: not weights of this architecture ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} of another shape; first: "
            f"{(mismatched + missing + unexpected)[:3]})")
    backbone.load_state_dict(state_dict, strict=False)


def model_config_to_plain(config: ModelConfig) -> dict[str, Any]:
    """``config`` as plain Python (lists, no tuples) for a model file; ``pretrained_path`` is
    dropped (the weights are in the file)."""
    plain = dataclasses.asdict(config)
    plain["timm_overrides"] = [[key, list(value) if isinstance(value, tuple) else value]
                               for key, value in config.timm_overrides]
    plain["input_size"] = list(config.input_size)
    plain["pretrained_path"] = None
    return plain


def model_config_from_plain(fields: dict[str, Any]) -> ModelConfig:
    """Inverse of :func:`model_config_to_plain`."""
    fields = dict(fields)
    fields["timm_overrides"] = tuple((key, tuple(value) if isinstance(value, list) else value)
                                     for key, value in fields["timm_overrides"])
    fields["input_size"] = tuple(fields["input_size"])
    return ModelConfig(**fields)


def save_classifier(path: str | os.PathLike, model: AttributeClassifier, config: ModelConfig,
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write the trained classifier for label transfer: architecture, weights, loss weights and
    thresholds, attribute names (atomic, loadable with ``weights_only=True``). ``metadata`` holds
    plain Python (e.g. ``"thresholds"``: the 40 validation thresholds at full precision)."""
    state = {
        "model_config": model_config_to_plain(config),
        "attribute_names": list(CELEBA_ATTRIBUTES),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    return save_checkpoint(path, state)


def load_classifier(path: str | os.PathLike) -> tuple[AttributeClassifier, ModelConfig]:
    """Inverse of :func:`save_classifier` -> (classifier in eval mode on CPU, its ModelConfig)."""
    model, config, _ = load_model_file(path)
    return model, config


#: The file a results folder's classifier is written to (``reproduce``) and read from (``label``).
CLASSIFIER_FILE = "classifier.pt"


def load_model_file(path: str | os.PathLike) -> tuple[AttributeClassifier, ModelConfig, dict[str, Any]]:
    """A classifier from any of the files ``label`` accepts -> (classifier in eval mode on CPU, its
    ModelConfig, its metadata):

    * a shipped model (``common.export`` format, written by :func:`export_classifier`);
    * a ``classifier.pt`` written by ``reproduce`` (:func:`save_classifier`);
    * a ``reproduce`` results folder (its ``classifier.pt``).

    Anything else (a training checkpoint ``train/last.pt`` / ``best.pt``, an unrelated file) raises
    ``ValueError`` naming the file and what to pass instead.
    """
    path = Path(path)
    if path.is_dir():
        if not (path / CLASSIFIER_FILE).is_file():
            raise FileNotFoundError(f"{path} is a folder without {CLASSIFIER_FILE}: pass the results "
                                    f"folder of a finished 'reproduce' run or the model file itself")
        path = path / CLASSIFIER_FILE
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    state = load_checkpoint(path, remedy=f"pass another model file (a results folder's {CLASSIFIER_FILE})")
    if isinstance(state, dict) and "compact" in state and "meta" in state:
        weights, metadata = load_shipped_model(path)
        for key in ("model_config", "attribute_names"):
            if key not in metadata:
                raise ValueError(f"{path}: a shipped model without {key!r} in its meta; not a "
                                 f"celeba_ffhq_labels model (export one with 'python -m "
                                 f"celeba_ffhq_labels export')")
        model_config, names = metadata["model_config"], metadata["attribute_names"]
    else:
        for key in ("model_config", "state_dict", "attribute_names"):
            if not isinstance(state, dict) or key not in state:
                raise ValueError(f"{path}: not a classifier written by save_classifier (no {key!r}; "
                                 f"a training checkpoint is in <out>/train/, the classifier is "
                                 f"<out>/{CLASSIFIER_FILE})")
        weights, metadata = state["state_dict"], dict(state.get("metadata", {}))
        model_config, names = state["model_config"], state["attribute_names"]
    if tuple(names) != CELEBA_ATTRIBUTES:
        raise ValueError(f"{path}: attribute names differ from CelebA's 40")
    config = model_config_from_plain(model_config)
    model = build_classifier(config)
    model.load_state_dict(weights)
    return model.eval(), config, metadata


def model_thresholds(model: AttributeClassifier, metadata: dict[str, Any]) -> np.ndarray:
    """The 40 decision thresholds of a model file: ``metadata["thresholds"]`` (full precision) when
    present, else the ``decision_thresholds`` buffer."""
    if metadata.get("thresholds") is not None:
        thresholds = np.asarray(metadata["thresholds"], dtype=np.float64)
    else:
        thresholds = model.decision_thresholds.detach().cpu().numpy().astype(np.float64)
    if thresholds.shape != (len(CELEBA_ATTRIBUTES),):
        raise ValueError(f"need {len(CELEBA_ATTRIBUTES)} thresholds, got shape {thresholds.shape}")
    return thresholds


def export_classifier(source: str | os.PathLike, target: str | os.PathLike,
                      extra_meta: dict[str, Any] | None = None) -> Path:
    """Write the classifier in ``source`` (any file :func:`load_model_file` reads) as a shipped
    model (``common.export.save_shipped_model``: int8 / fp16, at most 10 MiB, ``weights_only``):
    meta = architecture, attribute names, the full-precision thresholds, the source's metadata and
    ``extra_meta`` (plain Python)."""
    model, config, metadata = load_model_file(source)
    meta = {**metadata, **dict(extra_meta or {}),
            "model_config": model_config_to_plain(config),
            "attribute_names": list(CELEBA_ATTRIBUTES),
            "thresholds": model_thresholds(model, metadata).tolist()}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_shipped_model(target, model.state_dict(), meta)
    return target
