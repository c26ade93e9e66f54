"""Plain image folders (FFHQ, CelebA-HQ) and CelebAMask-HQ's attribute file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.attributes import CELEBA_ATTRIBUTES
from common.data.celeba import read_attribute_file

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Every jpg / jpeg / png / webp file under ``folder`` (recursive), sorted by relative path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    paths = [Path(directory) / name for directory, _, names in os.walk(folder)
             for name in names if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES]
    return sorted(paths, key=lambda path: path.relative_to(folder).as_posix())


def read_celebamask_hq_attributes(path: str | os.PathLike) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """``CelebAMask-HQ-attribute-anno.txt``: count line, CelebA's 40 names, ``0.jpg v1..v40`` (±1).

    Returns ``(image_ids, attributes uint8 (N, 40) in {0, 1}, names)``.
    """
    image_ids, attributes, names = read_attribute_file(path)
    if names != CELEBA_ATTRIBUTES:
        raise ValueError(f"{path}:2: attribute names differ from CelebA's 40")
    return image_ids, attributes, names
