"""Helen face parsing in Smith et al.'s layout (CVPR 2013, ``SmithCVPR2013_dataset_resized``).

::

    images/<id>.jpg
    labels/<id>/<id>_lbl00.png .. <id>_lbl10.png   soft maps, one per label of HELEN11_LABELS
    exemplars.txt (2,000) / tuning.txt (230) / testing.txt (100)   lines "<n> , <id>"

The hard label of a pixel is the argmax over the 11 maps. ``helen11_to_parts7`` maps it onto
the 7 regions of Kalayeh et al. (paper 002, §4.1).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from common.attributes import HELEN11_LABELS, helen11_to_parts7

#: split name -> list file; "train" / "val" / "test" are accepted as aliases.
HELEN_SPLIT_FILES = {"exemplars": "exemplars.txt", "tuning": "tuning.txt", "testing": "testing.txt"}
HELEN_SPLIT_ALIASES = {"train": "exemplars", "val": "tuning", "test": "testing"}


@dataclass(frozen=True, eq=False)
class HelenAnnotations:
    root: Path
    image_ids: list[str]
    image_paths: list[Path]
    label_dirs: list[Path]

    def __len__(self) -> int:
        return len(self.image_ids)

    def subset(self, indices: Sequence[int] | np.ndarray) -> "HelenAnnotations":
        indices = [int(i) for i in indices]
        return dataclasses.replace(self, image_ids=[self.image_ids[i] for i in indices],
                                   image_paths=[self.image_paths[i] for i in indices],
                                   label_dirs=[self.label_dirs[i] for i in indices])


def read_helen_split_file(path: str | os.PathLike) -> list[str]:
    """Image ids of a split list (lines ``"1 , 100032540_1"``; blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Helen split list not found: {path}")
    image_ids = []
    with open(path, "r", encoding="utf-8", newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parts = [part.strip() for part in line.split(",")]
            if len(parts) != 2 or not parts[0].isdigit() or not parts[1] or " " in parts[1]:
                raise ValueError(f"{path}:{line_number}: expected '<number> , <image id>', got {line.strip()!r}")
            image_ids.append(parts[1])
    return image_ids


def read_helen(root: str | os.PathLike, split: str) -> HelenAnnotations:
    """The images and label folders of one split (``exemplars`` / ``tuning`` / ``testing``)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Helen root folder not found: {root}")
    split = HELEN_SPLIT_ALIASES.get(split, split)
    if split not in HELEN_SPLIT_FILES:
        raise ValueError(f"Helen split must be one of {sorted(HELEN_SPLIT_FILES)} (or train/val/test), "
                         f"got {split!r}")
    image_ids = read_helen_split_file(root / HELEN_SPLIT_FILES[split])
    image_paths = [root / "images" / f"{image_id}.jpg" for image_id in image_ids]
    label_dirs = [root / "labels" / image_id for image_id in image_ids]
    for image_path, label_dir in zip(image_paths, label_dirs):
        if not image_path.is_file():
            raise FileNotFoundError(f"Helen image not found: {image_path}")
        if not label_dir.is_dir():
            raise FileNotFoundError(f"Helen label folder not found: {label_dir}")
    return HelenAnnotations(root=root, image_ids=image_ids, image_paths=image_paths, label_dirs=label_dirs)


def load_helen_mask(label_dir: str | os.PathLike) -> np.ndarray:
    """uint8 (H, W) in 0..10: the argmax over ``<id>_lbl00.png`` .. ``<id>_lbl10.png``."""
    label_dir = Path(label_dir)
    maps = []
    for label in range(len(HELEN11_LABELS)):
        path = label_dir / f"{label_dir.name}_lbl{label:02d}.png"
        if not path.is_file():
            raise FileNotFoundError(f"Helen label map not found: {path}")
        with Image.open(path) as image:
            maps.append(np.asarray(image.convert("L")))
    shapes = {m.shape for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"{label_dir}: label maps have different sizes {sorted(shapes)}")
    return np.argmax(np.stack(maps), axis=0).astype(np.uint8)


def write_label_images(annotations: HelenAnnotations, out_dir: str | os.PathLike,
                       parts7: bool = True) -> list[Path]:
    """Write each hard mask as ``<out_dir>/<id>.png`` (7-class when ``parts7``) for ``FaceDataset``.

    Existing files are kept, so the conversion runs once per folder.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for image_id, label_dir in zip(annotations.image_ids, annotations.label_dirs):
        path = out_dir / f"{image_id}.png"
        if not path.is_file():
            mask = load_helen_mask(label_dir)
            temporary = path.with_suffix(".tmp.png")
            Image.fromarray(helen11_to_parts7(mask) if parts7 else mask).save(temporary)
            os.replace(temporary, path)
        paths.append(path)
    return paths
