"""MTFL inputs of Canal Garcia et al. (§1, §3.1): two binary tasks and two crops.

* Tasks: gender and smiling, each trained on its own (§3.2). Class order follows Tables 3-4:
  smiling = (S, NS), gender = (F, M).
* Crops: ``"nose"`` is the paper's 150x150 crop centred on the nose landmark (§3.1, the ``*`` rows
  of Tables 3-4); ``"original"`` is cropped but not nose-centred (a square around the 5
  landmarks, ``common.data.mtfl.face_box_crop``); ``"nose_inter_ocular"`` is the nose-centred box
  with its side scaled by the distance between the eye landmarks (not in the paper: the fixed box
  is a different zoom on every dataset, see the README's "The crop"). All come from
  ``common.data.mtfl``.
* Data: ``training.txt`` (LFW + Net, 10,000 rows) for training and validation, ``testing.txt``
  (AFLW, 2,995 rows) for testing. Without ``--data-root`` the same layout is written with
  synthetic faces (``common.synthetic.write_mtfl_layout``).

Decoded, cropped and resized images are cached as ``.npz`` keyed by the split file, the rows
(and their images' size and modification time), the crop and the size, so the CNN grid and reruns decode each image once.
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from common.data.mtfl import MTFLAnnotations, face_box_crop, nose_centred_crop, read_mtfl
from common.data.splits import random_sample, random_split
from mtfl_compare.config import CROPS, DataConfig

LOGGER = logging.getLogger(__name__)

#: Class names in the order of the paper's tables, and the label value of each class.
CLASS_NAMES = {"smiling": ("S", "NS"), "gender": ("F", "M")}
CLASS_LABELS = {"smiling": (1, 0), "gender": (0, 1)}
#: The class whose precision / recall Table 5 reports (one number per row in the paper, which
#: does not name the class; its numbers identify S / M: README, "The paper's precision and
#: recall rows").
POSITIVE_CLASS = {"smiling": "S", "gender": "M"}


def resolve_mtfl_root(data_root: str | os.PathLike) -> Path:
    """``data_root`` itself when it holds ``training.txt``, else its ``mtfl/`` sub-folder
    (so both ``../shared/data`` and ``../shared/data/mtfl`` work)."""
    root = Path(data_root)
    for candidate in (root, root / "mtfl"):
        if (candidate / "training.txt").is_file() and (candidate / "testing.txt").is_file():
            return candidate
    raise FileNotFoundError(f"no MTFL layout (training.txt and testing.txt) in {root} or {root / 'mtfl'}")


def synthetic_mtfl_root(config: DataConfig, seed: int) -> Path:
    """Synthetic faces in MTFL's layout, written once into the cache (smoke scale, tests)."""
    from common.synthetic import write_mtfl_layout

    root = Path(config.cache_dir) / f"synthetic_mtfl_{config.synthetic_train}_{config.synthetic_test}_seed{seed}"
    return write_mtfl_layout(root, config.synthetic_train, config.synthetic_test, seed=seed)


def open_mtfl(config: DataConfig, seed: int) -> tuple[MTFLAnnotations, MTFLAnnotations]:
    """(training, testing) annotations of the real data or of the synthetic stand-in."""
    root = resolve_mtfl_root(config.data_root) if config.data_root else synthetic_mtfl_root(config, seed)
    return read_mtfl(root, "training"), read_mtfl(root, "testing")


def attribute_labels(annotations: MTFLAnnotations, attribute: str) -> np.ndarray:
    """0/1 labels of ``attribute`` ("smiling": 1 = smiling, "gender": 1 = male)."""
    if attribute not in CLASS_NAMES:
        raise ValueError(f"attribute must be one of {tuple(CLASS_NAMES)}, got {attribute!r}")
    return np.asarray(getattr(annotations, attribute), dtype=np.int64)


def inter_ocular_box(landmarks: np.ndarray, config: DataConfig) -> float:
    """Side of the inter-ocular nose box: ``config.inter_ocular_box_ratio`` times the distance
    between the two eye landmarks (``ValueError`` when they are under one pixel apart)."""
    eye_distance = float(np.linalg.norm(np.asarray(landmarks, np.float64)[0] - np.asarray(landmarks, np.float64)[1]))
    if not eye_distance >= 1.0:
        raise ValueError(f"the eye landmarks are {eye_distance:.2f} px apart; the inter-ocular crop "
                         f"needs them at least 1 px apart")
    return config.inter_ocular_box_ratio * eye_distance


def crop_face(image: Image.Image, landmarks: np.ndarray, crop: str, output_size: int,
              config: DataConfig) -> np.ndarray:
    """One face as uint8 (output_size, output_size, 3).

    ``"nose"``: the 150-pixel box centred on the nose (§3.1); ``"nose_inter_ocular"``: the box
    centred on the nose with side :func:`inter_ocular_box`; ``"original"``: the non-centred face
    box. Each is cropped to 150 pixels (black where the box leaves the image), then resized to
    the network input. Returns the image array.
    """
    image = image.convert("RGB")
    if crop == "nose":
        cropped, _ = nose_centred_crop(image, landmarks, size=config.crop_box)
    elif crop == "nose_inter_ocular":
        cropped, _ = nose_centred_crop(image, landmarks, size=config.crop_box,
                                       box_size=inter_ocular_box(landmarks, config))
    elif crop == "original":
        cropped, _ = face_box_crop(image, landmarks, size=config.crop_box, scale=config.face_box_scale)
    else:
        raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")
    if cropped.size != (output_size, output_size):
        cropped = cropped.resize((output_size, output_size), Image.BILINEAR)
    return np.asarray(cropped, dtype=np.uint8)


def load_face(path: Path, landmarks: np.ndarray, crop: str, output_size: int,
              config: DataConfig) -> np.ndarray | None:
    """:func:`crop_face` of the image file, or ``None`` when the file is corrupt or truncated."""
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError, SyntaxError) as error:
        LOGGER.warning("skipping corrupt image %s (%s)", path, error)
        return None
    try:
        return crop_face(image, landmarks, crop, output_size, config)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None


@dataclass
class CroppedFaces:
    """Cropped faces of some MTFL rows. ``rows`` index the split's annotations; rows whose image
    could not be decoded are dropped and counted in ``n_corrupt``."""

    images: np.ndarray        # uint8 (N, S, S, 3)
    rows: np.ndarray          # int64 (N,)
    n_corrupt: int

    def __len__(self) -> int:
        return len(self.rows)


def file_stamp(path: str | os.PathLike) -> str:
    """``<size>-<mtime_ns>`` of a file (``missing`` if absent): part of every cache key, so a
    re-written image never meets a crop or bottleneck computed from its old pixels."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return "missing"
    return f"{status.st_size}-{status.st_mtime_ns}"


def _cache_key(annotations: MTFLAnnotations, rows: np.ndarray, crop: str, size: int,
               config: DataConfig) -> str:
    digest = hashlib.sha1()
    digest.update(str(Path(annotations.root).resolve()).encode())
    for path in annotations.image_paths:
        digest.update(str(path).encode())
    for row in np.asarray(rows, dtype=np.int64):
        digest.update(file_stamp(annotations.image_paths[row]).encode())
    digest.update(np.ascontiguousarray(annotations.landmarks).tobytes())
    digest.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    digest.update(f"{crop_signature(crop, config)}|{size}".encode())
    return digest.hexdigest()[:16]


def crop_signature(crop: str, config: DataConfig) -> str:
    """The crop with every setting it depends on, e.g. ``"nose_inter_ocular-150-3.3333"``: part
    of the crop and bottleneck cache keys, so changing a setting never reads stale crops."""
    if crop == "nose":
        return f"nose-{config.crop_box}"
    if crop == "nose_inter_ocular":
        return f"nose_inter_ocular-{config.crop_box}-{config.inter_ocular_box_ratio:.4f}"
    if crop == "original":
        return f"original-{config.crop_box}-{config.face_box_scale:g}"
    raise ValueError(f"crop must be one of {CROPS}, got {crop!r}")


def load_cropped_faces(annotations: MTFLAnnotations, rows: np.ndarray, crop: str, size: int,
                       config: DataConfig, use_cache: bool = True) -> CroppedFaces:
    """Decode, crop and resize the given rows (cached in ``config.cache_dir/crops``)."""
    rows = np.asarray(rows, dtype=np.int64)
    cache_path = Path(config.cache_dir) / "crops" / f"{crop}_{size}_{_cache_key(annotations, rows, crop, size, config)}.npz"
    if use_cache and cache_path.is_file():
        with np.load(cache_path) as stored:
            return CroppedFaces(stored["images"], stored["rows"], int(stored["n_corrupt"]))
    images, kept = [], []
    for row in rows:
        face = load_face(annotations.image_paths[row], annotations.landmarks[row], crop, size, config)
        if face is not None:
            images.append(face)
            kept.append(row)
    n_corrupt = len(rows) - len(kept)
    if n_corrupt:
        warnings.warn(f"{n_corrupt} of {len(rows)} images could not be decoded and were skipped",
                      stacklevel=2)
    faces = CroppedFaces(np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8),
                         np.asarray(kept, dtype=np.int64), n_corrupt)
    if use_cache:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = cache_path.with_name(cache_path.stem + ".tmp.npz")
        np.savez(tmp_path, images=faces.images, rows=faces.rows, n_corrupt=faces.n_corrupt)
        os.replace(tmp_path, cache_path)
    return faces


def subsample_rows(n: int, limit: int | None, seed: int) -> np.ndarray:
    """All rows, or ``limit`` of them drawn at random (CPU and smoke scales)."""
    if limit is None or limit >= n:
        return np.arange(n, dtype=np.int64)
    return random_sample(n, limit, seed=seed)


def train_validation_split(n: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (train, validation) within ``n`` training examples (§3.3: 10 %, §3.4: 20 %)."""
    return random_split(n, test_fraction=validation_fraction, seed=seed)
