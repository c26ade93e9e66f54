"""CelebA for Le & Lee §2.1 / §3.1: the images, the 80/20 random split, RandAugment.

All datasets are ``common.data.dataset.FaceDataset`` objects: images resized to the model input
(§3.1: "We resized the CelebA images to 224 x 224"), ImageNet-normalised, with the 40 attributes.
The training set adds torchvision's RandAugment (§2.3, "random augmentation [13]").
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torchvision.transforms import RandAugment

from common.data.celeba import CelebAAnnotations
from common.data.dataset import FaceDataset, celeba_dataset
from common.data.sources import open_celeba_source
from common.data.splits import official_split, random_sample, random_split

from celeba_ffhq_labels.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig, ModelConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Splits:
    """Row indices into the annotations.

    ``train`` fits the network; ``monitor`` is the held-out split whose hamming loss selects the
    checkpoint and on which the per-class thresholds are searched (§3.1, §3.2); ``test`` is where
    AUROC is reported. With the paper's random split ``monitor`` and ``test`` are the same 20 %
    (the paper uses its test set for all three); with the official partition they are val / test.
    """

    train: np.ndarray
    monitor: np.ndarray
    test: np.ndarray
    kind: str

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "monitor": len(self.monitor), "test": len(self.test)}


def load_annotations(data_root: str | os.PathLike | None, config: DataConfig, seed: int = 0,
                     cache_dir: str | os.PathLike = "results/.synthetic") -> CelebAAnnotations:
    """Real CelebA under ``data_root`` or synthetic faces (``None``), optionally a seeded random
    sample of ``config.max_images`` of them."""
    annotations = open_celeba_source(data_root, synthetic_n=config.synthetic_n,
                                     synthetic_size=config.synthetic_size, seed=seed,
                                     cache_dir=cache_dir)
    n_available = len(annotations)
    if config.max_images is not None and config.max_images < n_available:
        annotations = annotations.subset(random_sample(n_available, config.max_images,
                                                       seed=config.split_seed))
        logger.info("using a random sample of %d of %d images", config.max_images, n_available)
    return annotations


def make_splits(annotations: CelebAAnnotations, config: DataConfig) -> Splits:
    """§3.1's random 80/20 split (``config.split == "random"``) or CelebA's official partition."""
    if config.split == "random":
        train, test = random_split(len(annotations), config.test_fraction, seed=config.split_seed)
        return Splits(train=train, monitor=test, test=test, kind="random")
    if config.split == "official":
        parts = official_split(annotations.partition)
        empty = [name for name, indices in parts.items() if len(indices) == 0]
        if empty:
            raise ValueError(
                f"{annotations.root}: the official partition has no {' / '.join(empty)} images among "
                f"the {len(annotations)} present (e.g. shared/data holds only official-train "
                f"images); use the paper's random split (--split random)")
        return Splits(train=parts["train"], monitor=parts["val"], test=parts["test"], kind="official")
    raise ValueError(f"unknown split {config.split!r}; choose 'random' or 'official'")


def training_dataset(annotations: CelebAAnnotations, indices: np.ndarray, model: ModelConfig,
                     data: DataConfig) -> FaceDataset:
    """Training images at the model input with RandAugment (§2.3) on the resized PIL image."""
    augment = RandAugment(num_ops=data.randaugment_num_ops, magnitude=data.randaugment_magnitude)
    return celeba_dataset(annotations, indices, landmarks=None, mask_paths=None,
                          image_size=model.input_size, image_transform=augment,
                          normalize=(IMAGENET_MEAN, IMAGENET_STD))


def evaluation_dataset(annotations: CelebAAnnotations, indices: np.ndarray,
                       model: ModelConfig) -> FaceDataset:
    """Held-out images at the model input, no augmentation."""
    return celeba_dataset(annotations, indices, landmarks=None, mask_paths=None,
                          image_size=model.input_size, normalize=(IMAGENET_MEAN, IMAGENET_STD))


def folder_dataset(image_paths: list[Path], model: ModelConfig) -> FaceDataset:
    """Unlabelled faces of any size (FFHQ's 1024x1024, CelebA-HQ) downscaled to the model input
    (§3.1: "we reduced the resolution of FFHQ from 1024 x 1024 to inference the model")."""
    return FaceDataset(image_paths, image_size=model.input_size,
                       normalize=(IMAGENET_MEAN, IMAGENET_STD))
