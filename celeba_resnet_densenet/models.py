"""ResNet50 and DenseNet121 multi-label attribute classifiers (Velamala & Rawat, section "Deep
Learning Methods"): a torchvision backbone whose ImageNet classifier is replaced by the paper's
head — a 512-unit layer ("Number of features - 512"), dropout (0.3 / 0.5), then 40 logits.

The backbones are built with ``weights=None`` (nothing is downloaded); ImageNet weights can be
loaded from a local torchvision state-dict file.
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
import torchvision
from torch import nn

from celeba_resnet_densenet.config import BACKBONES

log = logging.getLogger(__name__)

#: Old torchvision DenseNet checkpoints name ``denselayer1.norm.1.weight`` what the current
#: module calls ``denselayer1.norm1.weight``.
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


def build_backbone(name: str) -> tuple[nn.Module, int]:
    """The torchvision network without its ImageNet classifier -> (module giving pooled features,
    feature width): ResNet50 2048, DenseNet121 1024."""
    if name == "resnet50":
        network = torchvision.models.resnet50(weights=None)
        feature_width = network.fc.in_features
        network.fc = nn.Identity()
    elif name == "densenet121":
        network = torchvision.models.densenet121(weights=None)
        feature_width = network.classifier.in_features
        network.classifier = nn.Identity()
    else:
        raise ValueError(f"unknown backbone {name!r}; choose one of {list(BACKBONES)}")
    return network, feature_width


def load_backbone_weights(backbone: nn.Module, path: str | os.PathLike) -> None:
    """Load a local torchvision ImageNet state dict (e.g. ``resnet50-0676ba61.pth``) into
    ``backbone``, skipping the ImageNet classifier (``fc.*`` / ``classifier.*``).

    Raises ``ValueError`` naming the file when backbone weights are missing or misshaped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pretrained weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    renamed = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        match = _OLD_DENSENET_KEY.match(key)
        if match:
            key = match.group(1) + match.group(2)
        if key.startswith(("fc.", "classifier.")):
            continue
        renamed[key] = value
    result = backbone.load_state_dict(renamed, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{path}: not a torchvision {type(backbone).__name__} state dict "
                         f"(missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]})")
    log.info("loaded backbone weights from %s", path)


class AttributeClassifier(nn.Module):
    """Backbone -> Linear(F, 512) -> ReLU -> Dropout(p) -> Linear(512, 40) attribute logits.

    Section "Training and Validation": 512 features, dropout 0.3 or 0.5; the sigmoid is in the
    loss (``BCEWithLogits``) and in :meth:`probabilities`.
    """

    def __init__(self, backbone: str, num_features: int = 512, dropout: float = 0.3,
                 num_attributes: int = 40, pretrained_weights: str | os.PathLike | None = None):
        super().__init__()
        self.backbone_name = backbone
        self.backbone, feature_width = build_backbone(backbone)
        if pretrained_weights is not None:
            load_backbone_weights(self.backbone, pretrained_weights)
        self.head = nn.Sequential(
            nn.Linear(feature_width, num_features),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(num_features, num_attributes),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised images -> (B, 40) attribute logits."""
        return self.head(self.backbone(images))

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(images).float())
