"""CelebA for Le & Lee §2.1 / §3.1: the images, the identity-disjoint train / val / test split,
RandAugment.

Every dataset serves images resized to the model input (§3.1: "We resized the CelebA images to
224 x 224"), ImageNet-normalised, with the 40 attributes; the training set adds torchvision's
RandAugment (§2.3, "random augmentation [13]"). Without a cache folder they are
``common.data.dataset.FaceDataset`` objects (decode, resize, RandAugment on the PIL image, every
epoch); with one (``RuntimeConfig.image_cache_dir``, the CPU scale) every image is decoded and
resized once into ``common.data.cache`` and each epoch runs RandAugment
(``torchvision.transforms.v2``) on the cached uint8 pixels.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms import RandAugment, v2

from common.data.cache import CachedImageDataset, build_image_cache
from common.data.celeba import CelebAAnnotations
from common.data.dataset import FaceDataset, celeba_dataset
from common.data.sources import open_celeba_source
from common.data.splits import identity_split, official_split, random_sample

from celeba_ffhq_labels.config import IMAGENET_MEAN, IMAGENET_STD, SPLITS, DataConfig, ModelConfig

logger = logging.getLogger(__name__)


#: Names of the three sets, in order.
SET_NAMES: tuple[str, ...] = ("train", "val", "test")
#: ``Splits.rule`` of each way of splitting, as tables print it.
OFFICIAL_RULE = "official partition"
IDENTITY_RULE = "identity carve-out"


@dataclass(frozen=True)
class Splits:
    """Row indices into the annotations of the three sets, no identity in two of them.

    ``train`` fits the network; ``val`` selects the checkpoint by its hamming loss (§3.1) and is
    where the per-class thresholds are searched (§3.2); ``test`` is evaluated once with those
    choices (AUROC, hamming loss, accuracy; the paper uses its one held-out set for all three).
    """

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    rule: str                       # OFFICIAL_RULE or IDENTITY_RULE
    identities: dict[str, int] | None = None   # distinct identities per set, when known

    def sizes(self) -> dict[str, int]:
        return {name: int(len(getattr(self, name))) for name in SET_NAMES}

    def describe(self) -> str:
        """One sentence for table notes: the rule and the sizes (and identities) of the sets."""
        sizes = self.sizes()
        text = (f"Split: {self.rule}, no identity in two sets: {sizes['train']:,} train / "
                f"{sizes['val']:,} val / {sizes['test']:,} test images")
        if self.identities:
            text += (f" ({self.identities['train']:,} / {self.identities['val']:,} / "
                     f"{self.identities['test']:,} identities)")
        return text + ("; the checkpoint and the §3.2 thresholds are chosen on val, every metric "
                       "is computed on test.")

    def as_dict(self) -> dict:
        """JSON-able record for run.json."""
        return {"rule": self.rule, "sizes": self.sizes(), "identities": self.identities}


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
    """Train / val / test by ``config.split`` (:data:`celeba_ffhq_labels.config.SPLITS`): CelebA's
    official partition, or a carve-out by identity (test: ``test_fraction`` of the images, val:
    ``val_fraction`` of them out of the rest, whole identities only), or ``"auto"``: the official
    partition when the images present hold all three parts, else the identity carve-out.

    Raises ``ValueError`` naming what is missing: an official partition without val or test images,
    no identity file for a carve-out, too few identities, or an empty set.
    """
    if config.split not in SPLITS:
        raise ValueError(f"unknown split {config.split!r}; choose one of {', '.join(SPLITS)}")
    if config.split in ("auto", "official"):
        parts = (official_split(annotations.partition) if annotations.partition is not None
                 else {name: np.zeros(0, np.int64) for name in SET_NAMES})
        empty = [name for name in SET_NAMES if len(parts[name]) == 0]
        if not empty:
            return _with_identities(Splits(train=parts["train"], val=parts["val"], test=parts["test"],
                                           rule=OFFICIAL_RULE), annotations)
        if config.split == "official":
            missing = ("no list_eval_partition.txt was read" if annotations.partition is None else
                       f"the official partition has no {' / '.join(empty)} images among the "
                       f"{len(annotations)} present (e.g. shared/data holds only official-train images)")
            raise ValueError(f"{annotations.root}: {missing}; split by identity instead "
                             f"(--split identity, or --split auto)")
    return _identity_carve_out(annotations, config)


def _identity_carve_out(annotations: CelebAAnnotations, config: DataConfig) -> Splits:
    """Test first, then validation out of the rest, by whole identities (``identity_split``)."""
    if annotations.identities is None:
        raise ValueError(f"{annotations.root}: no identity_CelebA.txt, so the images cannot be split "
                         f"by identity; provide it, or CelebA's list_eval_partition.txt with train, "
                         f"val and test images present")
    identities = np.asarray(annotations.identities)
    if len(np.unique(identities)) < 3:
        raise ValueError(f"{annotations.root}: {len(np.unique(identities))} identities among "
                         f"{len(annotations)} images; an identity split into train / val / test needs "
                         f"at least 3")
    if not 0.0 < config.val_fraction < 1.0 - config.test_fraction:
        raise ValueError(f"val_fraction {config.val_fraction} must lie in (0, 1 - test_fraction = "
                         f"{1.0 - config.test_fraction:g})")
    rest, test = identity_split(identities, config.test_fraction, seed=config.split_seed)
    train_local, val_local = identity_split(identities[rest],
                                            config.val_fraction / (1.0 - config.test_fraction),
                                            seed=config.split_seed + 1)
    return _with_identities(Splits(train=rest[train_local], val=rest[val_local], test=test,
                                   rule=IDENTITY_RULE), annotations)


def _with_identities(splits: Splits, annotations: CelebAAnnotations) -> Splits:
    """``splits`` with the number of distinct identities per set (when known); checks that no set
    is empty and, with identities, that no identity is in two sets."""
    empty = [name for name, size in splits.sizes().items() if size == 0]
    if empty:
        raise ValueError(f"{annotations.root}: the {' / '.join(empty)} set of the {len(annotations)} "
                         f"images is empty; use more images")
    if annotations.identities is None:
        return splits
    per_set = {name: set(np.asarray(annotations.identities)[getattr(splits, name)].tolist())
               for name in SET_NAMES}
    shared = (per_set["train"] & per_set["val"]) | (per_set["train"] & per_set["test"]) \
        | (per_set["val"] & per_set["test"])
    if shared:
        raise ValueError(f"{annotations.root}: {len(shared)} identities are in two of train / val / "
                         f"test under the {splits.rule} (e.g. {sorted(shared)[:3]}); the partition "
                         f"file and identity_CelebA.txt disagree")
    return Splits(train=splits.train, val=splits.val, test=splits.test, rule=splits.rule,
                  identities={name: len(ids) for name, ids in per_set.items()})


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


def cached_training_datasets(annotations: CelebAAnnotations, splits: Splits, model: ModelConfig,
                             data: DataConfig, cache_dir: str | os.PathLike,
                             progress: bool = True) -> dict[str, CachedImageDataset]:
    """``{"train", "val"}`` (what training reads every epoch) over one decoded-image cache of those
    images at the model input, built on first use in ``cache_dir``: uint8 pixels -> [RandAugment on
    train] -> float [0, 1] -> ImageNet normalisation; samples carry ``"attributes"``. Unreadable
    images are left out and named once, when the cache is built. (The test images are read once,
    after training, by :func:`evaluation_dataset`.)"""
    names = ("train", "val")
    rows = np.concatenate([getattr(splits, name) for name in names])
    paths = annotations.image_paths()
    cache = build_image_cache([paths[row] for row in rows], cache_dir, tuple(model.input_size),
                              progress=progress)
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))]
    augment = [v2.RandAugment(num_ops=data.randaugment_num_ops, magnitude=data.randaugment_magnitude)]
    attributes = annotations.attributes[rows]
    datasets, start = {}, 0
    for name in names:
        count = len(getattr(splits, name))
        transform = v2.Compose((augment if name == "train" else []) + to_float)
        datasets[name] = CachedImageDataset(cache, attributes=attributes, transform=transform,
                                            indices=np.arange(start, start + count))
        start += count
    return datasets
