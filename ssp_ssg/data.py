"""Data of the reproduction: CelebA attributes, face-parsing masks, their splits and datasets.

* Attributes: CelebA (§4.2) from ``common.data.sources.open_celeba_source`` — synthetic faces
  by default, the real images with ``--data-root``.
* Parsing masks (7 classes, §4.1): Helen with Smith et al.'s labels when ``--helen-root`` is
  given (its 2,000 / 230 / 100 split); otherwise the synthetic generator's exact masks
  (``parsing_parts7/``), or for real CelebA images the pseudo masks written by
  ``python -m ssp_ssg.pseudo_masks`` (a deviation: the paper parses with a net trained on Helen).
* Landmarks for the BBox baseline: CelebA's landmark file when present, else the 5 points the
  pseudo-mask step derives from mediapipe's face mesh.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from common.attributes import HELEN11_FLIP_PERMUTATION, helen11_to_parts7
from common.data.celeba import CelebAAnnotations, read_landmarks_file
from common.data.dataset import FaceDataset, celeba_dataset
from common.data.sources import open_celeba_source
from common.data.splits import identity_split, official_split, random_sample, random_split
from ssp_ssg.config import DataConfig

logger = logging.getLogger(__name__)

PSEUDO_MASK_COMMAND = ("make masks DATA={data_root}   (or: .venv-masks/bin/python -m "
                       "ssp_ssg.pseudo_masks --images {data_root} --out {masks_root})")


@dataclass(frozen=True)
class CelebAWithMasks:
    """CelebA rows that have a parsing mask and landmarks, and where they came from."""

    annotations: CelebAAnnotations
    mask_source: str            # "synthetic generator" | "pseudo (mediapipe)" | "CelebA parsing_parts7"
    landmark_source: str
    n_dropped: int              # images without a mask or landmarks (e.g. no face found)
    synthetic: bool


def _align_landmarks(image_ids: list[str], path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks of ``image_ids`` from a CelebA-format file; (values (N,5,2), found (N,) bool)."""
    file_ids, values = read_landmarks_file(path)
    row = {image_id: i for i, image_id in enumerate(file_ids)}
    found = np.array([image_id in row for image_id in image_ids], dtype=bool)
    aligned = np.zeros((len(image_ids), 5, 2), dtype=np.float32)
    aligned[found] = values[[row[i] for i, ok in zip(image_ids, found) if ok]]
    return aligned, found


def load_celeba_with_masks(data_root: str | Path | None, data: DataConfig,
                           masks_root: str | Path | None = None,
                           cache_dir: str | Path = "results/.synthetic") -> CelebAWithMasks:
    """CelebA annotations restricted to images with a 7-class mask and 5 landmarks (and to
    ``data.max_images`` of them at random when set).

    ``data_root=None`` renders synthetic faces (exact masks and landmarks from the generator).
    With real data, masks come from ``<celeba root>/parsing_parts7`` when present, else from
    ``masks_root`` (pseudo masks); landmarks from CelebA's file, else ``masks_root``'s.
    """
    annotations = open_celeba_source(data_root, synthetic_n=data.synthetic_n,
                                     synthetic_size=tuple(data.synthetic_size), seed=data.seed,
                                     cache_dir=cache_dir)
    synthetic = data_root is None
    mask_source = "synthetic generator" if synthetic else "CelebA parsing_parts7"
    if annotations.mask_dir is None:
        if masks_root is None or not (Path(masks_root) / "pseudo_masks.json").is_file():
            raise FileNotFoundError(
                f"no parsing masks for {annotations.root}: compute the pseudo masks once with\n  "
                + PSEUDO_MASK_COMMAND.format(data_root=data_root, masks_root=masks_root))
        annotations = dataclasses.replace(annotations, mask_dir=Path(masks_root))
        mask_source = "pseudo (mediapipe face mesh + selfie segmentation)"
    landmark_source = "synthetic generator" if synthetic else "CelebA landmark file"
    keep = np.array([path.is_file() for path in annotations.mask_paths()], dtype=bool)
    if annotations.landmarks is None:
        landmark_file = annotations.mask_dir / "list_landmarks_align_celeba.txt"
        if not landmark_file.is_file():
            raise FileNotFoundError(f"{landmark_file}: no landmarks for the BBox baseline "
                                    f"(written by python -m ssp_ssg.pseudo_masks)")
        landmarks, found = _align_landmarks(annotations.image_ids, landmark_file)
        annotations = dataclasses.replace(annotations, landmarks=landmarks)
        keep &= found
        landmark_source = "pseudo (mediapipe face mesh)"
    n_dropped = int((~keep).sum())
    if n_dropped:
        logger.warning("%d of %d images have no parsing mask or landmarks (no face found); "
                       "they are left out", n_dropped, len(keep))
        annotations = annotations.subset(np.flatnonzero(keep))
    if len(annotations) == 0:
        raise FileNotFoundError(f"no image of {annotations.root} has a parsing mask in "
                                f"{annotations.mask_dir}")
    if data.max_images is not None and len(annotations) > data.max_images:
        annotations = annotations.subset(random_sample(len(annotations), data.max_images, data.seed))
    return CelebAWithMasks(annotations, mask_source, landmark_source, n_dropped, synthetic)


@dataclass(frozen=True)
class Splits:
    """Row indices into the annotations: attribute train / validation / test and the parsing
    images drawn from each side (no Helen)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    parsing_train: np.ndarray
    parsing_val: np.ndarray
    parsing_test: np.ndarray
    description: str


def _draw(indices: np.ndarray, count: int | None, seed: int) -> np.ndarray:
    """``count`` of ``indices`` at random (all of them when ``count`` is None or larger)."""
    if count is None or count >= len(indices):
        return indices
    return indices[random_sample(len(indices), count, seed)]


def make_splits(annotations: CelebAAnnotations, data: DataConfig) -> Splits:
    """Train / validation / test: CelebA's official partition when the images present hold all
    three, otherwise whole identities held out (``test_fraction`` for test, then
    ``val_fraction`` of all images for validation out of the rest; at random when identities
    are unknown).

    The paper trains on the official train split and tests on the test split (§4.2); we pick
    each network's checkpoint on the validation split. The shared copy holds official-train
    images only, so there the three sets are carved by identity. The parsing images (no
    Helen) are drawn from each side: the parser never sees a validation or test face.

    Raises ``ValueError`` naming the empty set when a split is empty.
    """
    official = official_split(annotations.partition) if annotations.partition is not None else None
    if official is not None and all(len(official[name]) for name in ("train", "val", "test")):
        train, val, test = official["train"], official["val"], official["test"]
        description = "official partition: train / val / test"
    else:
        if not 0.0 < data.val_fraction < 1.0 - data.test_fraction:
            raise ValueError(f"val_fraction {data.val_fraction} must lie in (0, 1 - test_fraction = "
                             f"{1.0 - data.test_fraction:g})")
        val_share = data.val_fraction / (1.0 - data.test_fraction)
        if annotations.identities is not None and len(np.unique(annotations.identities)) >= 3:
            identities = np.asarray(annotations.identities)
            rest, test = identity_split(identities, data.test_fraction, data.seed)
            train_local, val_local = identity_split(identities[rest], val_share, data.seed + 1)
            description = "identity split"
        else:
            rest, test = random_split(len(annotations), data.test_fraction, data.seed)
            train_local, val_local = random_split(len(rest), val_share, data.seed + 1)
            description = "random split (no identities)"
        train, val = rest[train_local], rest[val_local]
        description += (f", {data.test_fraction:.0%} of images for test and "
                        f"{data.val_fraction:.0%} for validation")
    for name, indices in (("train", train), ("validation", val), ("test", test)):
        if len(indices) == 0:
            raise ValueError(f"{annotations.root}: the {name} set of the {len(annotations)} images "
                             f"is empty ({description}); use more images")
    return Splits(train, val, test,
                  parsing_train=_draw(train, data.parsing_train_images, data.seed + 1),
                  parsing_val=_draw(val, data.parsing_val_images, data.seed + 1),
                  parsing_test=_draw(test, data.parsing_test_images, data.seed + 1),
                  description=description)


def attribute_dataset(annotations: CelebAAnnotations, indices: np.ndarray,
                      image_size: tuple[int, int], hflip: bool) -> FaceDataset:
    """Images, 40 attributes and 5 landmarks; a random horizontal flip when ``hflip`` (§5)."""
    return celeba_dataset(annotations, indices, image_size=tuple(image_size), hflip=hflip,
                          mask_paths=None)


def parsing_dataset(annotations: CelebAAnnotations, indices: np.ndarray,
                    image_size: tuple[int, int], hflip: bool) -> FaceDataset:
    """Images and 7-class masks. The 7 classes have no left/right pair, so a flip needs no
    relabelling (Helen's 11 labels do; see :class:`HelenParsingDataset`)."""
    return celeba_dataset(annotations, indices, image_size=tuple(image_size), hflip=hflip,
                          attributes=None, landmarks=None)


def hflip_labels(mask: np.ndarray, flip_permutation) -> np.ndarray:
    """Mirror a label map and rename left/right labels: ``perm[label]`` after the flip."""
    return np.asarray(flip_permutation, dtype=mask.dtype)[mask[:, ::-1]]


class HelenParsingDataset(Dataset):
    """Helen (Smith et al.'s 11 labels) mapped to the 7 classes of §4.1, over one or more of its
    splits (``"train"`` / ``"val"`` / ``"test"``: 2,000 / 230 / 100 images; all three together
    are the 2,330 the attribute models' parser learns from, §4.1).

    A horizontal flip swaps the left/right eye and eyebrow labels in the 11-label space
    (``HELEN11_FLIP_PERMUTATION``) before the mapping, so it stays correct if a finer scheme
    is ever kept.
    """

    def __init__(self, helen_root: str | Path, splits: str | Sequence[str],
                 image_size: tuple[int, int], flip_probability: float = 0.0):
        from common.data.helen import read_helen

        if isinstance(splits, str):
            splits = (splits,)
        parts = [read_helen(helen_root, split) for split in splits]
        self.annotations = dataclasses.replace(
            parts[0], image_ids=[i for part in parts for i in part.image_ids],
            image_paths=[p for part in parts for p in part.image_paths],
            label_dirs=[d for part in parts for d in part.label_dirs])
        self.image_size = tuple(image_size)
        self.flip_probability = flip_probability

    def __len__(self) -> int:
        return len(self.annotations)

    def __getitem__(self, index: int):
        from common.data.helen import load_helen_mask

        try:
            with Image.open(self.annotations.image_paths[index]) as handle:
                image = handle.convert("RGB")
        except OSError:
            return None  # corrupt image: dropped and counted by collate_skip_corrupt
        mask = load_helen_mask(self.annotations.label_dirs[index])
        height, width = self.image_size
        image = image.resize((width, height), Image.BILINEAR)
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        if self.flip_probability > 0 and float(torch.rand(())) < self.flip_probability:
            pixels = pixels[:, ::-1]
            mask = hflip_labels(mask, HELEN11_FLIP_PERMUTATION)
        return {"image": torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))),
                "mask": torch.from_numpy(helen11_to_parts7(mask).astype(np.int64)),
                "index": index}


class PairedDataset(Dataset):
    """Joint training (§4.4): item ``i`` pairs attribute sample ``i`` with a parsing sample.

    The parsing set is usually much smaller; it is cycled in a fresh order each epoch
    (``set_epoch``, called by ``common.train.Trainer``).
    """

    def __init__(self, attributes: Dataset, parsing: Dataset, seed: int = 0):
        self.attributes, self.parsing, self.seed = attributes, parsing, seed
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng(self.seed * 1_000_003 + epoch)
        repeats = -(-len(self.attributes) // len(self.parsing))
        self.parsing_order = np.concatenate([rng.permutation(len(self.parsing))
                                             for _ in range(repeats)])

    def __len__(self) -> int:
        return len(self.attributes)

    def __getitem__(self, index: int):
        attribute_sample = self.attributes[index]
        parsing_sample = self.parsing[int(self.parsing_order[index])]
        if attribute_sample is None or parsing_sample is None:
            return None
        return {"image": attribute_sample["image"], "attributes": attribute_sample["attributes"],
                "parsing_image": parsing_sample["image"], "parsing_mask": parsing_sample["mask"],
                "index": index}
