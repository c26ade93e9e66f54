"""Approach 1's bottleneck cache (§3.3; TensorFlow's retraining tutorial, ``--bottleneck_dir``).

The 2048-d InceptionV3 PreLogits of every face is computed once and stored on disk, one ``.npy``
per image, under ``<cache>/bottlenecks/<dataset>/<crop>_<input size>_<weights>/<image path>.npy``
— keyed by the image (path, size, modification time), the crop with its settings
(``mtfl_compare.data.crop_signature``), the input size and the pretrained weights — so retraining the
top layer for another attribute, or rerunning, reads them back instead of running InceptionV3.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from common.data.mtfl import MTFLAnnotations
from mtfl_compare.config import DataConfig
from mtfl_compare.data import file_stamp, load_face


@dataclass(frozen=True)
class BottleneckCache:
    """Folder of one (dataset, crop, input size, weights) combination."""

    folder: Path
    dataset_root: Path

    @classmethod
    def create(cls, cache_dir: str | os.PathLike, dataset_root: str | os.PathLike, crop: str,
               input_size: int, weights_identifier: str) -> "BottleneckCache":
        """``crop``: the crop's signature (``mtfl_compare.data.crop_signature``)."""
        dataset_root = Path(dataset_root).resolve()
        dataset_id = f"{dataset_root.name}-{hashlib.sha1(str(dataset_root).encode()).hexdigest()[:10]}"
        folder = Path(cache_dir) / "bottlenecks" / dataset_id / f"{crop}_{input_size}_{weights_identifier}"
        return cls(folder, dataset_root)

    def path_for(self, image_path: Path) -> Path:
        """``<folder>/<image path>.<size>-<mtime>.npy``: an image rewritten in place (e.g. synthetic
        faces re-rendered by an edited generator) gets a new entry instead of a stale one."""
        relative = Path(image_path).resolve().relative_to(self.dataset_root)
        return self.folder / relative.with_name(f"{relative.name}.{file_stamp(image_path)}.npy")


@dataclass
class Bottlenecks:
    features: np.ndarray      # float32 (N, 2048) for the rows that could be decoded
    rows: np.ndarray          # int64 (N,) rows of the annotations
    n_computed: int           # faces that went through InceptionV3 in this call
    n_corrupt: int            # rows skipped because their image could not be decoded


def cached_bottlenecks(annotations: MTFLAnnotations, rows: np.ndarray, crop: str, input_size: int,
                       data_config: DataConfig, cache: BottleneckCache,
                       extract: Callable[[np.ndarray], np.ndarray], batch_size: int = 32) -> Bottlenecks:
    """Bottlenecks of ``rows``: read from ``cache`` where present, else cropped, run through
    ``extract`` (uint8 faces (B, S, S, 3) -> (B, 2048)) in batches and written to the cache."""
    rows = np.asarray(rows, dtype=np.int64)
    features: dict[int, np.ndarray] = {}
    missing = []
    for row in rows:
        path = cache.path_for(annotations.image_paths[row])
        if path.is_file():
            features[int(row)] = np.load(path)
        else:
            missing.append(int(row))
    n_corrupt = 0
    n_computed = 0
    for start in range(0, len(missing), batch_size):
        batch_rows, faces = [], []
        for row in missing[start:start + batch_size]:
            face = load_face(annotations.image_paths[row], annotations.landmarks[row], crop,
                             input_size, data_config)
            if face is None:
                n_corrupt += 1
                continue
            batch_rows.append(row)
            faces.append(face)
        if not faces:
            continue
        batch_features = np.asarray(extract(np.stack(faces)), dtype=np.float32)
        n_computed += len(faces)
        for row, vector in zip(batch_rows, batch_features):
            path = cache.path_for(annotations.image_paths[row])
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp_path = path.with_name(path.stem + ".tmp.npy")
            np.save(tmp_path, vector)
            os.replace(tmp_path, path)
            features[row] = vector
    kept = np.asarray([row for row in rows if int(row) in features], dtype=np.int64)
    stacked = (np.stack([features[int(row)] for row in kept]) if len(kept)
               else np.zeros((0, 2048), np.float32))
    return Bottlenecks(stacked, kept, n_computed, n_corrupt)
