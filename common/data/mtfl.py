"""MTFL (Zhang et al., ECCV 2014) in its official layout, and the crops of paper 001 §3.1.

``<root>/training.txt`` (10,000 rows) and ``testing.txt`` (2,995 rows) hold one face per line::

    path x1 x2 x3 x4 x5 y1 y2 y3 y4 y5 gender smile glasses pose

landmarks = left eye, right eye, nose, left / right mouth corner in pixels of the original image;
codes are 1-based: gender 1 male / 2 female, smile 1 smiling / 2 not, glasses 1 wearing / 2 not,
pose 1 left profile, 2 left, 3 frontal, 4 right, 5 right profile. ``training.txt`` uses Windows
backslashes in paths, lines end in CRLF, start with a space, and the file ends in a line holding
only a space. Images are at their original sizes (150x150, 250x250, 400x400, 160x216).
"""
from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

MTFL_SPLITS = ("training", "testing")
NOSE = 2  # index of the nose in the 5 landmarks


@dataclass(frozen=True, eq=False)
class MTFLAnnotations:
    """One MTFL split. Binary attributes are 0/1 with 1 = male / smiling / wearing glasses."""

    root: Path
    image_paths: list[Path]
    landmarks: np.ndarray   # (N, 5, 2) float32 x, y in original-image pixels
    gender: np.ndarray      # (N,) uint8, 1 = male
    smiling: np.ndarray     # (N,) uint8, 1 = smiling
    glasses: np.ndarray     # (N,) uint8, 1 = wearing glasses
    pose: np.ndarray        # (N,) uint8, 0 left profile, 1 left, 2 frontal, 3 right, 4 right profile

    def __len__(self) -> int:
        return len(self.image_paths)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "MTFLAnnotations":
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self, image_paths=[self.image_paths[i] for i in indices], landmarks=self.landmarks[indices],
            gender=self.gender[indices], smiling=self.smiling[indices], glasses=self.glasses[indices],
            pose=self.pose[indices])


def _parse_line(path: Path, line_number: int, fields: list[str]) -> tuple[str, list[float], list[int]]:
    if len(fields) != 15:
        raise ValueError(f"{path}:{line_number}: expected 15 fields (path, 10 coordinates, 4 codes), "
                         f"got {len(fields)}")
    try:
        coordinates = [float(token) for token in fields[1:11]]
    except ValueError:
        raise ValueError(f"{path}:{line_number}: landmark coordinates must be numbers, got "
                         f"{' '.join(fields[1:11])!r}") from None
    if not all(math.isfinite(value) for value in coordinates):
        raise ValueError(f"{path}:{line_number}: landmark coordinates must be finite numbers, got "
                         f"{' '.join(fields[1:11])!r}")
    codes = []
    for name, token, largest in zip(("gender", "smile", "glasses", "pose"), fields[11:], (2, 2, 2, 5)):
        if not token.isdigit() or not 1 <= int(token) <= largest:
            raise ValueError(f"{path}:{line_number}: {name} code is {token!r}, expected 1..{largest}")
        codes.append(int(token))
    return fields[0].replace("\\", "/"), coordinates, codes


def read_mtfl(root: str | os.PathLike, split: str = "training", require_images: bool = True) -> MTFLAnnotations:
    """Parse ``<root>/<split>.txt``; with ``require_images`` every listed image must exist."""
    if split not in MTFL_SPLITS:
        raise ValueError(f"MTFL split must be one of {MTFL_SPLITS}, got {split!r}")
    root = Path(root)
    path = root / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"MTFL annotation file not found: {path}")
    relative_paths, coordinates, codes = [], [], []
    with open(path, "r", encoding="utf-8", newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            relative_path, row_coordinates, row_codes = _parse_line(path, line_number, fields)
            relative_paths.append(relative_path)
            coordinates.append(row_coordinates)
            codes.append(row_codes)
    if not relative_paths:
        raise ValueError(f"{path}: no annotation rows")
    image_paths = [root / relative_path for relative_path in relative_paths]
    if require_images:
        missing = [p for p in image_paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} of {len(image_paths)} images listed in {path} are "
                                    f"missing, e.g. {missing[0]}")
    coordinates = np.asarray(coordinates, dtype=np.float32)
    codes = np.asarray(codes, dtype=np.uint8)
    return MTFLAnnotations(
        root=root, image_paths=image_paths,
        landmarks=np.stack([coordinates[:, :5], coordinates[:, 5:]], axis=-1),
        gender=(codes[:, 0] == 1).astype(np.uint8), smiling=(codes[:, 1] == 1).astype(np.uint8),
        glasses=(codes[:, 2] == 1).astype(np.uint8), pose=codes[:, 3] - 1)


def _square_crop(image: Image.Image, landmarks: np.ndarray, centre_x: float, centre_y: float,
                 box_size: float, size: int) -> tuple[Image.Image, np.ndarray]:
    """Crop the ``box_size`` square centred on pixel ``(centre_x, centre_y)``, resize to ``size``.

    Pixel-index coordinates: pixel ``(x, y)`` covers ``[x, x+1) x [y, y+1)``, so its centre sits at
    the middle of a box whose left edge is ``x + 0.5 - box/2``; the edge is rounded to whole pixels
    (so no interpolation when ``box_size == size``), which puts the centre within half a pixel of
    the crop's centre. Parts of the box outside the image are black.
    """
    side = int(round(box_size))
    if side < 1:
        raise ValueError(f"crop box must be at least 1 pixel, got {box_size}")
    left = math.floor(centre_x + 1.0 - side / 2)  # round half up of the box's left edge x + 0.5 - side/2
    top = math.floor(centre_y + 1.0 - side / 2)
    crop = image.crop((left, top, left + side, top + side))  # PIL fills outside the image with 0
    points = np.asarray(landmarks, dtype=np.float32) - np.array([left, top], dtype=np.float32)
    if side != size:
        crop = crop.resize((size, size), Image.Resampling.BILINEAR)
        points = (points + 0.5) * (size / side) - 0.5
    return crop, points


def nose_centred_crop(image: Image.Image, landmarks: np.ndarray, size: int = 150,
                      box_size: float | None = None) -> tuple[Image.Image, np.ndarray]:
    """Paper 001 §3.1 "Pre-Processing": a ``size`` x ``size`` crop whose centre is the nose.

    The paper crops "using the nose landmark as the center of the image" to 150x150 pixels for
    all of LFW, Net and AFLW. By default the box is ``size`` pixels of the original image (the
    paper's literal crop); ``box_size`` crops a box of that many original pixels and resizes it
    to ``size``. Where the box passes the image border the crop is padded with black.
    Returns the crop and the 5 landmarks in crop pixels (the nose lands on the centre, pixel
    ``(size - 1) / 2`` rounded down for even sizes).
    """
    nose_x, nose_y = np.asarray(landmarks, dtype=np.float32)[NOSE]
    return _square_crop(image, landmarks, float(nose_x), float(nose_y),
                        size if box_size is None else box_size, size)


def face_box_crop(image: Image.Image, landmarks: np.ndarray, size: int = 150,
                  scale: float = 2.5) -> tuple[Image.Image, np.ndarray]:
    """The crop of paper 001's "original" inputs (§4, Tables 3-4): cropped, not nose-centred.

    The paper says only that these files "are still cropped but not centered on the nose"; we
    take the square centred on the centre of the 5 landmarks' bounding box, with side
    ``scale`` times the box's larger extent (2.5 covers forehead to chin on MTFL faces), resized
    to ``size``. Border overflow is padded with black. Returns the crop and landmarks in it.
    """
    points = np.asarray(landmarks, dtype=np.float32)
    low, high = points.min(axis=0), points.max(axis=0)
    centre_x, centre_y = (low + high) / 2
    extent = float(max(high - low))
    return _square_crop(image, points, float(centre_x), float(centre_y), max(scale * extent, 1.0), size)
