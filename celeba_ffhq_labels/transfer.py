"""Label transfer to high-resolution faces, Le & Lee §3.2 (FFHQ, Fig. 4).

For every image of a folder (FFHQ, CelebA-HQ, any size, downscaled to the model input): the 40
soft labels (sigmoid outputs) and the 40 hard labels (soft label >= the attribute's threshold
from the grid search). Inference is batched, with a progress bar. A file PIL cannot decode is
written as a row with status ``unreadable`` and empty labels; it never stops the run.

CSV columns: ``image`` (path relative to the folder), ``status`` (``ok`` / ``unreadable``),
``soft_<Attribute>`` x 40 (6 decimals), ``hard_<Attribute>`` x 40 (0/1).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.attributes import CELEBA_ATTRIBUTES
from common.data.folder import list_images
from common.metrics import apply_thresholds

from celeba_ffhq_labels.config import ModelConfig
from celeba_ffhq_labels.data import folder_dataset
from celeba_ffhq_labels.train import sigmoid_scores

STATUS_OK = "ok"
STATUS_UNREADABLE = "unreadable"
CSV_COLUMNS: tuple[str, ...] = (("image", "status")
                                + tuple(f"soft_{name}" for name in CELEBA_ATTRIBUTES)
                                + tuple(f"hard_{name}" for name in CELEBA_ATTRIBUTES))


@dataclass(frozen=True)
class LabelledFolder:
    """What :func:`label_folder` wrote: relative paths, their soft/hard labels, the unreadable."""

    csv_path: Path
    images: list[str]                 # every image found, relative to the folder
    soft_labels: np.ndarray           # (n_readable, 40) for the readable images, in order
    hard_labels: np.ndarray           # (n_readable, 40) uint8
    readable: np.ndarray              # (n_images,) bool
    thresholds: np.ndarray            # (40,)

    @property
    def unreadable(self) -> list[str]:
        return [image for image, ok in zip(self.images, self.readable) if not ok]

    def label_rows(self, images: list[str]) -> np.ndarray:
        """Rows of ``soft_labels`` / ``hard_labels`` holding ``images`` (relative paths, readable)."""
        row_of = {image: row for row, image in
                  enumerate(image for image, ok in zip(self.images, self.readable) if ok)}
        missing = [image for image in images if image not in row_of]
        if missing:
            raise KeyError(f"not among the readable images: {missing[:3]}")
        return np.array([row_of[image] for image in images], dtype=np.int64)


def label_folder(model: torch.nn.Module, model_config: ModelConfig, image_dir: str | os.PathLike,
                 out_csv: str | os.PathLike, thresholds: np.ndarray, batch_size: int = 64,
                 device: torch.device | str = "cpu", progress: bool = True,
                 num_workers: int = 0) -> LabelledFolder:
    """Soft and hard labels for every image under ``image_dir`` (recursive), written to ``out_csv``."""
    image_dir = Path(image_dir)
    paths = list_images(image_dir)
    if not paths:
        raise FileNotFoundError(f"no jpg/png/webp images under {image_dir}")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if thresholds.shape != (len(CELEBA_ATTRIBUTES),):
        raise ValueError(f"need {len(CELEBA_ATTRIBUTES)} thresholds, got shape {thresholds.shape}")
    device = torch.device(device) if isinstance(device, str) else device
    predicted = sigmoid_scores(model, folder_dataset(paths, model_config), batch_size, device,
                               progress=progress, num_workers=num_workers)
    scores, kept = predicted["scores"], predicted["index"].astype(np.int64)
    readable = np.zeros(len(paths), dtype=bool)
    readable[kept] = True
    hard = apply_thresholds(scores, thresholds)
    relative = [path.relative_to(image_dir).as_posix() for path in paths]

    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    row_of = {int(index): row for row, index in enumerate(kept)}
    temporary = out_csv.with_name(out_csv.name + ".tmp")
    with open(temporary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for index, name in enumerate(relative):
            row = row_of.get(index)
            if row is None:
                writer.writerow([name, STATUS_UNREADABLE] + [""] * (2 * len(CELEBA_ATTRIBUTES)))
            else:
                writer.writerow([name, STATUS_OK] + [f"{value:.6f}" for value in scores[row]]
                                + [int(value) for value in hard[row]])
    os.replace(temporary, out_csv)
    return LabelledFolder(csv_path=out_csv, images=relative, soft_labels=scores, hard_labels=hard,
                          readable=readable, thresholds=thresholds)


def write_hq_faces(folder: str | os.PathLike, n: int, seed: int, size: tuple[int, int],
                   with_corrupt_file: bool = True) -> tuple[list[Path], np.ndarray]:
    """Synthetic "HQ" faces (``common.synthetic.render_face`` at ``size`` = (height, width), larger
    than CelebA's) as PNG files, the stand-in for FFHQ in the smoke pipeline; plus, when asked,
    one truncated file that shows how unreadable images appear in the CSV.

    Returns (the face files, their true attributes (n, 40)).
    """
    from PIL import Image

    from common.synthetic import render_face

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths, attributes = [], []
    height, width = size
    for index in range(n):
        face = render_face(index, seed=seed, height=height, width=width)
        path = folder / f"hq_{index:05d}.png"
        Image.fromarray(face.image).save(path)
        paths.append(path)
        attributes.append(face.attributes)
    if with_corrupt_file:
        corrupt = folder / "unreadable_example.png"
        corrupt.write_bytes(paths[0].read_bytes()[:200])  # a PNG cut off after its header
    return paths, np.asarray(attributes, dtype=np.uint8).reshape(n, len(CELEBA_ATTRIBUTES))
