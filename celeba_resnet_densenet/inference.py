"""Attribute prediction on your own images (Velamala & Rawat, section "Predictions": ``predict(path)``
prints the attributes the model finds present), on the shared ``common.inference`` path.

The model is the one shipped with the package (:data:`SHIPPED_MODEL`, see ``pretrained/MODEL_CARD.md``)
unless a checkpoint is given: a shipped-format file (``common.export``) or a ``models/<backbone>.pt``
written by ``reproduce``. Each model file stores its input size, normalisation and per-attribute
decision thresholds (chosen on validation), so an image is prepared exactly as in training:

decode (any PIL mode, EXIF rotation applied) -> map the face from its source geometry to CelebA's
aligned frame (``--geometry``, ``common.inference.frame_for_geometry``) -> bilinear resize to the training size ->
ImageNet normalisation -> the network -> sigmoid -> present where probability >= threshold.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from celeba_resnet_densenet.train import load_point_model
from common.data.dataset import decode_image, image_to_rgb
from common.gpu import select_device
from common.inference import (FRAMES, GEOMETRIES, collect_images, frame_for_geometry, map_to_frame, run_inference,
                              write_predictions_csv)

#: The model shipped with the package (DenseNet121 from the committed real-data run; model card beside it).
SHIPPED_MODEL = Path(__file__).resolve().parent / "pretrained" / "densenet121_celeba_cpu.pt"


@dataclass(frozen=True)
class AttributePrediction:
    """All 40 probabilities of one image and the per-attribute thresholds that make one present."""

    source: str
    probabilities: dict[str, float]
    thresholds: dict[str, float]

    @property
    def present(self) -> dict[str, float]:
        """Attributes with probability >= their threshold, in CelebA's attribute order."""
        return {name: p for name, p in self.probabilities.items() if p >= self.thresholds[name]}


class AttributePredictor:
    """A model file plus its preprocessing; call it on images or run it over folders."""

    def __init__(self, checkpoint: str | os.PathLike | None = None, device: str = "auto",
                 geometry: str = "auto"):
        path = Path(checkpoint) if checkpoint is not None else SHIPPED_MODEL
        if not path.exists():
            raise FileNotFoundError(f"model file not found: {path}")
        if geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {geometry!r}; choose one of {GEOMETRIES}")
        self.checkpoint, self.geometry = path, geometry
        self.device = select_device(device)
        self.model, self.meta = load_point_model(path, self.device)
        self.attribute_names = list(self.meta["attribute_names"])
        self.image_size = tuple(int(v) for v in self.meta["image_size"])
        self.mean = torch.tensor(self.meta["normalize_mean"], dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(self.meta["normalize_std"], dtype=torch.float32).view(3, 1, 1)
        thresholds = self.meta.get("thresholds", [self.meta.get("threshold", 0.5)] * len(self.attribute_names))
        self.thresholds = np.asarray(thresholds, dtype=np.float64)

    def preprocess(self, image: Image.Image, path: str | os.PathLike = "<image>") -> torch.Tensor:
        """Geometry step, bilinear resize to the training size, [0, 1], ImageNet normalisation."""
        height, width = self.image_size
        frame = frame_for_geometry(image.width, image.height, self.geometry, path)
        if frame is None:
            image = image.resize((width, height), Image.BILINEAR)
        else:
            image = map_to_frame(image, frame.scaled_to(image.width, image.height), FRAMES["celeba"],
                                 (height, width))
        tensor = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div_(255.0)
        return (tensor - self.mean) / self.std

    @torch.no_grad()
    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) prepared images -> (B, 40) probabilities."""
        return torch.sigmoid(self.model(batch.to(self.device)).float()).cpu()

    def __call__(self, sources: Sequence[str | os.PathLike | Image.Image]) -> list[AttributePrediction]:
        """Predictions for a list of paths / PIL images (one forward pass); an unreadable file raises
        ``ValueError`` naming it."""
        tensors = []
        for source in sources:
            if isinstance(source, Image.Image):
                tensors.append(self.preprocess(image_to_rgb(source, "<PIL image>"), "<PIL image>"))
                continue
            image = decode_image(source)
            if image is None:
                raise ValueError(f"{source}: not a readable image (corrupt, truncated or empty)")
            tensors.append(self.preprocess(image_to_rgb(image, source), source))
        return self._predictions([str(s) if not isinstance(s, Image.Image) else "<PIL image>" for s in sources],
                                 self.probabilities(torch.stack(tensors)).numpy())

    def _predictions(self, names: Sequence[str], probabilities: np.ndarray) -> list[AttributePrediction]:
        thresholds = dict(zip(self.attribute_names, self.thresholds.tolist()))
        return [AttributePrediction(name, dict(zip(self.attribute_names, row.tolist())), thresholds)
                for name, row in zip(names, probabilities)]

    def predict_folder(self, inputs: Sequence[str | os.PathLike], out_csv: str | os.PathLike, *,
                       batch_size: int = 32, progress: bool = True) -> tuple[Path, list[AttributePrediction],
                                                                           list[Path]]:
        """Every image under ``inputs`` (files or folders) -> a CSV with one row per readable image:
        the 40 probabilities and the 40 decisions (1 = present at the model's threshold).
        Returns (CSV path, predictions, unreadable files skipped)."""
        paths = collect_images(inputs)
        result = run_inference(paths, lambda image: self.preprocess(image), self.probabilities,
                               batch_size=batch_size, progress=progress, description="faces")
        decisions = (result.outputs >= self.thresholds).astype(np.int64)
        values = np.concatenate([result.outputs.astype(object), decisions.astype(object)], axis=1)
        columns = [f"{name}_probability" for name in self.attribute_names]
        columns += [f"{name}_present" for name in self.attribute_names]
        common_root = Path(os.path.commonpath([str(path.resolve().parent) for path in result.paths]))
        csv_path = write_predictions_csv(out_csv, result.paths, columns, values, root=common_root)
        return csv_path, self._predictions([str(p) for p in result.paths], result.outputs), result.unreadable


@functools.lru_cache(maxsize=4)
def _cached_predictor(checkpoint: str | None, device: str, geometry: str) -> AttributePredictor:
    return AttributePredictor(checkpoint, device, geometry)


def predict(image: str | os.PathLike | Image.Image, checkpoint: str | os.PathLike | None = None,
            device: str = "auto", geometry: str = "auto") -> dict[str, float]:
    """The attributes present in ``image`` -> ``{name: probability}`` in CelebA's order (the paper's
    ``predict(path)``), with the shipped model unless ``checkpoint`` is given; loaded once and kept."""
    key = None if checkpoint is None else str(Path(checkpoint).resolve())
    return _cached_predictor(key, device, geometry)([image])[0].present


def format_prediction(prediction: AttributePrediction) -> str:
    """Human-readable lines: the image, then each present attribute with its probability."""
    lines = [f"{prediction.source}:"]
    present = prediction.present
    if not present:
        lines.append("  (no attribute at or above its threshold)")
    width = max((len(name) for name in present), default=0)
    lines += [f"  {name:<{width}}  {probability:.3f}" for name, probability in present.items()]
    return "\n".join(lines)
