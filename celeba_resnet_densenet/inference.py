"""Attribute prediction for single images (Velamala & Rawat, section "Predictions": ``predict(path)``
prints the attributes the model finds present).

``predict(image)`` takes a path or a PIL image and returns the present attributes with their
probabilities, in CelebA's attribute order; the model is one saved by ``reproduce``
(``<out>/models/<backbone>.pt``) or by a grid point (``best_weights.pt``). The image is resized
and normalised exactly as in training (the sizes are stored in the model file).
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from celeba_resnet_densenet.train import load_point_model
from common.gpu import select_device

#: Where ``make reproduce-resnet-densenet`` leaves the selected ResNet50 (the paper's better model).
DEFAULT_CHECKPOINT = Path("results/celeba_resnet_densenet/models/resnet50.pt")


@dataclass(frozen=True)
class AttributePrediction:
    """All 40 probabilities of one image and the threshold that makes an attribute present."""

    source: str
    probabilities: dict[str, float]
    threshold: float

    @property
    def present(self) -> dict[str, float]:
        """Attributes with probability >= threshold, in CelebA's attribute order."""
        return {name: p for name, p in self.probabilities.items() if p >= self.threshold}


def open_image(source: str | os.PathLike | Image.Image) -> Image.Image:
    """An RGB PIL image from a path or a PIL image; a file PIL cannot decode raises ``ValueError``
    naming the file."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error


class AttributePredictor:
    """A saved model plus its preprocessing; call it on images."""

    def __init__(self, checkpoint: str | os.PathLike | None = None, device: str = "auto"):
        path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
        if not path.exists():
            hint = (" (run `make reproduce-resnet-densenet` first, or pass --checkpoint)"
                    if checkpoint is None else "")
            raise FileNotFoundError(f"model file not found: {path}{hint}")
        self.checkpoint = path
        self.device = select_device(device)
        self.model, self.meta = load_point_model(path, device=self.device)
        self.attribute_names = list(self.meta["attribute_names"])
        self.image_size = tuple(int(v) for v in self.meta["image_size"])
        self.mean = torch.tensor(self.meta["normalize_mean"], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(self.meta["normalize_std"], dtype=torch.float32).view(3, 1, 1)
        self.threshold = float(self.meta["threshold"])

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """Bilinear resize to the training size, [0, 1], ImageNet normalisation (as FaceDataset)."""
        height, width = self.image_size
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
        return (tensor - self.mean) / self.std

    @torch.no_grad()
    def __call__(self, sources, threshold: float | None = None) -> list[AttributePrediction]:
        """Predictions for a list of paths / PIL images (one forward pass)."""
        threshold = self.threshold if threshold is None else float(threshold)
        images = [open_image(source) for source in sources]
        batch = torch.stack([self.preprocess(image) for image in images]).to(self.device)
        probabilities = torch.sigmoid(self.model(batch).float()).cpu().numpy()
        return [AttributePrediction(
                    source=str(source) if not isinstance(source, Image.Image) else "<PIL image>",
                    probabilities={name: float(p) for name, p in zip(self.attribute_names, row)},
                    threshold=threshold)
                for source, row in zip(sources, probabilities)]


@functools.lru_cache(maxsize=4)
def _cached_predictor(checkpoint: str | None, device: str) -> AttributePredictor:
    return AttributePredictor(checkpoint, device)


def predict(image: str | os.PathLike | Image.Image, checkpoint: str | os.PathLike | None = None,
            threshold: float | None = None, device: str = "auto") -> dict[str, float]:
    """The attributes present in ``image`` -> ``{name: probability}`` in CelebA's order
    (the paper's ``predict(path)``). The model is loaded once per checkpoint and kept."""
    key = None if checkpoint is None else str(Path(checkpoint).resolve())
    return _cached_predictor(key, device)([image], threshold)[0].present


def format_prediction(prediction: AttributePrediction) -> str:
    """Human-readable lines: the image, then each present attribute with its probability."""
    lines = [f"{prediction.source}:"]
    present = prediction.present
    if not present:
        lines.append(f"  (no attribute with probability >= {prediction.threshold:.2f})")
    width = max((len(name) for name in present), default=0)
    lines += [f"  {name:<{width}}  {probability:.3f}" for name, probability in present.items()]
    return "\n".join(lines)
