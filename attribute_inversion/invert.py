"""``python -m attribute_inversion invert``: our trained generator on a user's own face images.

Every image goes through ``common.inference`` (decoded in any PIL mode with EXIF rotation; corrupt,
truncated or empty files skipped and named), is mapped from its face frame (``--geometry``:
CelebA's aligned frame, or a CelebA-HQ / FFHQ-like square crop) to the generator's training frame
(the centred square of CelebA's aligned frame, ``checkpoints.TRAINING_FRAME``) at the generator's
resolution, and inverted. Written to ``--out``: each inverted face as a PNG under the input's
relative name (``.png``), ``comparison.png`` (input as the generator saw it | its inversion, side
by side, the first ``--grid-images`` faces) and ``invert.json`` (generator used, counts, skipped files).
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.utils import make_grid

from common.checkpoint import write_atomically
from common.inference import FRAMES, FaceFrame, collect_images, map_to_frame, run_inference

from .checkpoints import TRAINING_FRAME, LoadedGenerator, load_generator

log = logging.getLogger(__name__)

#: The generator's face frame (``checkpoints.TRAINING_FRAME``) as a ``common.inference.FaceFrame``.
GENERATOR_FRAME = FaceFrame(TRAINING_FRAME["name"], TRAINING_FRAME["width"], TRAINING_FRAME["height"],
                            tuple(TRAINING_FRAME["eye_midpoint"]), TRAINING_FRAME["eye_distance"])
GRID_PAIRS_PER_ROW = 4


def output_names(inputs: Sequence[str | os.PathLike]) -> tuple[list[Path], list[Path]]:
    """``(images, names)``: every image named by ``inputs`` (``common.inference.collect_images``
    rules) and the relative PNG name of its inversion: the path under its folder for a folder
    input, the file name for a file input, with the suffix ``.png``. Two images that would write
    the same name raise ``ValueError`` naming both."""
    images: list[Path] = []
    names: list[Path] = []
    seen: dict[Path, Path] = {}
    resolved: set[Path] = set()
    for item in inputs:
        item = Path(item)
        found = collect_images([item])  # raises for a missing input or a non-image file
        base = item if item.is_dir() else item.parent
        for path in found:
            if path.resolve() in resolved:
                continue
            resolved.add(path.resolve())
            name = path.relative_to(base).with_suffix(".png") if item.is_dir() else Path(path.name).with_suffix(".png")
            if name in seen:
                raise ValueError(f"{seen[name]} and {path} would both be written as {name}; "
                                 f"give them in separate runs or rename one")
            seen[name] = path
            images.append(path)
            names.append(name)
    return images, names


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """(N,3,H,W) in [-1, 1] -> (N,H,W,3) uint8."""
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)


def save_comparison_grid(path: Path, inputs: np.ndarray, inverted: np.ndarray) -> Path:
    """Pairs (input | inverted), ``GRID_PAIRS_PER_ROW`` pairs per row, white padding; images in [-1, 1]."""
    pairs = np.stack([inputs, inverted], axis=1).reshape(-1, *inputs.shape[1:])
    grid = make_grid((torch.from_numpy(pairs).clamp(-1, 1) + 1) / 2,
                     nrow=2 * min(GRID_PAIRS_PER_ROW, len(inputs)), padding=2, pad_value=1.0)
    image = Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda temp: image.save(temp, format="PNG"))
    return path


@dataclass
class InvertResult:
    written: list[Path]
    unreadable: list[Path]
    grid: Path
    generator: LoadedGenerator


def invert_images(inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike, attribute: str,
                  checkpoint: str | os.PathLike | None = None, geometry: str = "celeba", device: str = "auto",
                  batch_size: int = 32, grid_images: int = 16, progress: bool = True) -> InvertResult:
    """Invert ``attribute`` on every image under ``inputs`` with our generator (module docstring).

    ``checkpoint``: see ``checkpoints.load_generator`` (default: the shipped generator). Raises
    ``ValueError`` for an unknown ``geometry`` or when no image is readable,
    ``FileNotFoundError`` for a missing input or generator."""
    if geometry not in FRAMES:
        raise ValueError(f"unknown geometry {geometry!r}; choose one of {', '.join(FRAMES)}")
    loaded = load_generator(attribute, checkpoint)
    images, names = output_names(inputs)
    name_of = dict(zip(images, names))
    size = loaded.image_size
    source = FRAMES[geometry]
    generator = loaded.generator

    def preprocess(image: Image.Image) -> torch.Tensor:
        face = map_to_frame(image, source, GENERATOR_FRAME, (size, size))
        return TF.to_tensor(face) * 2.0 - 1.0  # [-1, 1], as in training (data.TANH_NORMALIZE)

    def model_fn(batch: torch.Tensor) -> torch.Tensor:
        return torch.cat([batch, generator(batch).clamp(-1, 1)], dim=1)

    from common.gpu import select_device

    target = select_device(device)
    generator.to(target)
    result = run_inference(images, preprocess, model_fn, batch_size=batch_size, progress=progress,
                           description=f"inverting {attribute}", device=target)
    out_dir = Path(out_dir)
    faces_in, faces_out = result.outputs[:, :3], result.outputs[:, 3:]
    written = []
    for path, face in zip(result.paths, _to_uint8(faces_out)):
        target_path = out_dir / name_of[path]
        target_path.parent.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(face)
        write_atomically(target_path, lambda temp, picture=picture: picture.save(temp, format="PNG"))
        written.append(target_path)
    shown = max(1, min(grid_images, len(result.paths)))
    grid = save_comparison_grid(out_dir / "comparison.png", faces_in[:shown], faces_out[:shown])
    record = {"attribute": attribute, "generator": loaded.source, "generator_description": loaded.description,
              "image_size": size, "geometry": geometry, "inputs": [str(item) for item in inputs],
              "images": len(images), "inverted": len(written),
              "unreadable": [str(path) for path in result.unreadable], "grid": grid.name,
              "grid_images": shown}
    text = json.dumps(record, indent=1) + "\n"
    write_atomically(out_dir / "invert.json", lambda temp: temp.write_text(text, encoding="utf-8"))
    return InvertResult(written, result.unreadable, grid, loaded)
