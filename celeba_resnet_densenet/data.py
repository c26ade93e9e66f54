"""The CelebA sample of Velamala & Rawat (section "Training and Validation": "we only used a
sample size of 29500 images"), its train / validation / test split and the image pipeline.

Split: the paper names training, validation and test data without proportions, and its example
test image (182639.jpg) lies in CelebA's official test partition, so the official partition is
used whenever the sample contains all three parts. The shared 10,000-image copy holds official
training images only; there validation and test are carved out by identity (no person on two
sides) with ``DataConfig.val_fraction`` / ``test_fraction``.

Pixels: with ``RuntimeConfig.image_cache_dir`` set (the CPU scale), the sample's images are decoded
and resized once into ``common.data.cache`` and every epoch reads uint8 pixels from it, flipped and
normalised with ``torchvision.transforms.v2`` (:func:`cached_split_datasets`); otherwise
``FaceDataset`` decodes each image every time it is read. Both resize with PIL's bilinear filter to
``DataConfig.image_size`` and normalise with ImageNet statistics, so a model sees the same pixels.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from celeba_resnet_densenet.config import IMAGENET_MEAN, IMAGENET_STD, DataConfig
import torch
from torchvision.transforms import v2

from common.data.cache import CachedImageDataset, build_image_cache
from common.data.celeba import CelebAAnnotations
from common.data.dataset import FaceDataset, celeba_dataset
from common.data.sources import open_celeba_source
from common.data.splits import identity_split, official_split, random_sample, random_split

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class AttributeSample:
    """The sampled images and the indices (into ``annotations``) of each split."""

    annotations: CelebAAnnotations
    splits: dict[str, np.ndarray]
    split_rule: str          # "official partition" or "identity carve-out" / "random carve-out"
    n_available: int         # images that exist before sampling
    synthetic: bool

    def describe(self) -> dict:
        return {"n_available": self.n_available, "n_sampled": len(self.annotations),
                "split_rule": self.split_rule, "synthetic": self.synthetic,
                **{f"n_{name}": int(len(indices)) for name, indices in self.splits.items()}}


def load_sample(config: DataConfig, data_root: str | None,
                cache_dir: str | Path = "results/.synthetic") -> AttributeSample:
    """Open real CelebA (``data_root``) or synthetic faces, draw the seeded sample of
    ``config.sample_size`` images (capped by what exists) and split it."""
    source = open_celeba_source(data_root, synthetic_n=config.synthetic_n,
                                synthetic_size=tuple(config.synthetic_size), seed=config.seed,
                                cache_dir=cache_dir)
    n_available = len(source)
    n_sample = min(config.sample_size, n_available)
    if n_sample < config.sample_size:
        log.warning("sample of %d images requested, only %d exist: using all of them",
                    config.sample_size, n_available)
    annotations = source.subset(random_sample(n_available, n_sample, seed=config.seed))
    splits, rule = split_sample(annotations, config.val_fraction, config.test_fraction, config.seed)
    for name in SPLITS:
        if len(splits[name]) == 0:
            raise ValueError(f"the {name} split of the {n_sample}-image sample is empty; "
                             f"use a larger sample")
    return AttributeSample(annotations, splits, rule, n_available, synthetic=data_root is None)


def split_sample(annotations: CelebAAnnotations, val_fraction: float, test_fraction: float,
                 seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Official partition when the sample has train, val and test images, else a carve-out by
    identity (or at random when identities are unknown) -> (indices per split, rule used)."""
    if annotations.partition is not None:
        official = official_split(annotations.partition)
        if all(len(official[name]) > 0 for name in SPLITS):
            return official, "official partition"
    n = len(annotations)
    if annotations.identities is not None and len(np.unique(annotations.identities)) >= 3:
        train_val, test = identity_split(annotations.identities, test_fraction, seed=seed)
        train_local, val_local = identity_split(annotations.identities[train_val],
                                                val_fraction / (1.0 - test_fraction), seed=seed + 1)
        rule = "identity carve-out"
    else:
        train_val, test = random_split(n, test_fraction, seed=seed)
        train_local, val_local = random_split(len(train_val), val_fraction / (1.0 - test_fraction),
                                              seed=seed + 1)
        rule = "random carve-out"
    return {"train": train_val[train_local], "val": train_val[val_local], "test": test}, rule


def image_normalization() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) fed to both torchvision backbones."""
    return IMAGENET_MEAN, IMAGENET_STD


def split_datasets(sample: AttributeSample, config: DataConfig) -> dict[str, FaceDataset]:
    """One ``FaceDataset`` per split: images resized to ``config.image_size``, ImageNet-normalised,
    with the 40 attributes (no landmarks or masks)."""
    datasets = {}
    for name in SPLITS:
        datasets[name] = celeba_dataset(
            sample.annotations, sample.splits[name], landmarks=None, mask_paths=None,
            image_size=tuple(config.image_size), hflip=config.hflip and name == "train",
            normalize=image_normalization())
    return datasets


def cached_split_datasets(sample: AttributeSample, config: DataConfig, cache_dir: str | Path,
                          progress: bool = True) -> dict[str, CachedImageDataset]:
    """One ``CachedImageDataset`` per split over a decoded-image cache of the whole sample (built
    on first use in ``cache_dir``): uint8 pixels -> [horizontal flip on train when
    ``config.hflip``] -> float [0, 1] -> ImageNet normalisation; samples carry ``"attributes"``."""
    cache = build_image_cache(sample.annotations.image_paths(), cache_dir, tuple(config.image_size),
                              progress=progress)
    mean, std = image_normalization()
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    datasets = {}
    for name in SPLITS:
        flip = [v2.RandomHorizontalFlip()] if config.hflip and name == "train" else []
        datasets[name] = CachedImageDataset(cache, attributes=sample.annotations.attributes,
                                            transform=v2.Compose(flip + to_float),
                                            indices=sample.splits[name])
    return datasets


def split_attributes(sample: AttributeSample, split: str) -> np.ndarray:
    """(n, 40) uint8 labels of one split."""
    return sample.annotations.attributes[sample.splits[split]]
