"""Data of §3.1: CelebA aligned faces, centre crop scaled to a square, minority-class
oversampling per attribute, and a held-out test set of positives and negatives per attribute.

Images enter the networks in [-1, 1] (tanh range of both generators). A run reads its faces
through :class:`FaceImages`: decoded from the image files on every read (``FaceDataset``), or,
with a cache folder (``ReproduceConfig.image_cache_dir``, the cpu scale), decoded, centre-square
cropped and scaled once into ``common.data.cache``, from which every later epoch, evaluation and
run reads uint8 pixels (flips with ``torchvision.transforms.v2`` on the uint8 tensor).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.transforms import v2

from common.attributes import ATTRIBUTE_INDEX
from common.data.cache import CachedImageDataset, ImageCache, build_image_cache, centre_square_crop
from common.data.celeba import CelebAAnnotations
from common.data.dataset import FaceDataset, celeba_dataset
from common.data.sources import open_celeba_source
from common.data.splits import identity_split, random_sample, random_split

from .config import DataConfig

log = logging.getLogger(__name__)

#: Maps [0, 1] to [-1, 1].
TANH_NORMALIZE = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
#: The decoded-image cache's crop (``common.data.cache.CROPS``): :class:`CentreSquareCrop`'s square.
CACHE_CROP = "centre_square"


class CentreSquareCrop:
    """§3.1 "the center part of the aligned images are cropped": the centred square whose side is
    the image width (178x178 of the 178x218 aligned images, as StarGAN [8]; 89x89 of 89x109);
    ``common.data.cache.centre_square_crop``, the crop the decoded-image cache applies."""

    def __call__(self, image: Image.Image) -> Image.Image:
        return centre_square_crop(image)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def face_transform(image_size: int) -> transforms.Compose:
    """Centre square crop, then scaled to ``image_size`` x ``image_size`` (§3.1: 128x128)."""
    return transforms.Compose([CentreSquareCrop(),
                               transforms.Resize((image_size, image_size), antialias=True)])


def face_dataset(annotations: CelebAAnnotations, indices: np.ndarray, image_size: int,
                 hflip: bool = False) -> FaceDataset:
    """Cropped, scaled faces in [-1, 1] with their 40 attributes, rows ``indices`` of ``annotations``,
    decoded from the image files on every read."""
    return celeba_dataset(annotations, indices, landmarks=None, mask_paths=None, hflip=hflip,
                          image_transform=face_transform(image_size), normalize=TANH_NORMALIZE)


@dataclass
class InversionSplit:
    """Training pool shared by all attributes and, per attribute, a test set unseen in training.

    ``test_indices[attribute]`` lists the positives first, then the negatives (rows of the
    annotations); ``test_counts[attribute] = (positives, negatives)``.
    """

    train_indices: np.ndarray
    heldout_indices: np.ndarray
    test_indices: dict[str, np.ndarray]
    test_counts: dict[str, tuple[int, int]]
    split_by_identity: bool


def make_split(annotations: CelebAAnnotations, config: DataConfig) -> InversionSplit:
    """Hold out ``heldout_fraction`` of the images (by identity when identities are known, so no
    test face's person is seen in training), cap the training pool at ``max_train_images``, and
    draw up to ``test_images_per_class`` positives and negatives per attribute from the held-out
    images (§3.1: 1,000 + 1,000; fewer when fewer exist, reported in the table notes)."""
    n = len(annotations)
    by_identity = annotations.identities is not None
    if by_identity:
        train, heldout = identity_split(annotations.identities, config.heldout_fraction, seed=config.seed)
    else:
        train, heldout = random_split(n, config.heldout_fraction, seed=config.seed)
    if config.max_train_images is not None and len(train) > config.max_train_images:
        train = train[random_sample(len(train), config.max_train_images, seed=config.seed)]
    rng = np.random.default_rng(config.seed)
    test_indices, test_counts = {}, {}
    for attribute in config.attributes:
        labels = annotations.attributes[heldout, ATTRIBUTE_INDEX[attribute]]
        chosen = []
        for value in (1, 0):
            candidates = heldout[labels == value]
            k = min(config.test_images_per_class, len(candidates))
            chosen.append(np.sort(rng.choice(candidates, size=k, replace=False)))
        if min(len(chosen[0]), len(chosen[1])) == 0:
            raise ValueError(f"attribute {attribute}: the held-out images hold "
                             f"{len(chosen[0])} positives and {len(chosen[1])} negatives; need both")
        test_indices[attribute] = np.concatenate(chosen).astype(np.int64)
        test_counts[attribute] = (len(chosen[0]), len(chosen[1]))
        if test_counts[attribute] != (config.test_images_per_class,) * 2:
            log.info("%s: test set capped at %d positives / %d negatives (asked %d each)",
                     attribute, *test_counts[attribute], config.test_images_per_class)
    return InversionSplit(train.astype(np.int64), heldout.astype(np.int64), test_indices,
                          test_counts, by_identity)


def open_split(config: DataConfig, data_root: str | os.PathLike | None) -> tuple[CelebAAnnotations, InversionSplit]:
    """The annotations of ``data_root`` (synthetic faces as ``config`` describes them when ``None``)
    and their :func:`make_split`: what a run trains and is evaluated on, and what ``export`` checks on."""
    annotations = open_celeba_source(data_root, synthetic_n=config.synthetic_n,
                                     synthetic_size=config.synthetic_size, seed=config.seed)
    return annotations, make_split(annotations, config)


def oversampled_indices(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """§3.1 / Masko & Hensman [12]: repeat the minority class until both classes are equally
    frequent (whole copies, then a seeded random remainder). Returns positions into ``labels``."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = np.flatnonzero(labels), np.flatnonzero(~labels)
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError(f"cannot oversample: {len(positives)} positives, {len(negatives)} negatives")
    minority, majority = sorted((positives, negatives), key=len)
    copies, remainder = divmod(len(majority), len(minority))
    extra = np.random.default_rng(seed).choice(minority, size=remainder, replace=False)
    return np.sort(np.concatenate([majority, np.tile(minority, copies), extra])).astype(np.int64)


class CachedFaces(CachedImageDataset):
    """Faces read from a decoded-image cache as :func:`face_dataset` serves them: float in
    [-1, 1], ``"attributes"``, and ``"index"`` = the position in the requested rows (the cache
    row in ``CachedImageDataset``). Unreadable images are left out rather than served as ``None``,
    so ``"index"`` says which requested faces a batch holds."""

    def __init__(self, cache: ImageCache, attributes: np.ndarray, cache_rows: np.ndarray, hflip: bool):
        steps = [v2.RandomHorizontalFlip()] if hflip else []
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(*TANH_NORMALIZE)]
        super().__init__(cache, attributes=attributes, transform=v2.Compose(steps), indices=cache_rows)
        self.requested_positions = np.flatnonzero(cache.readable_mask()[cache_rows])

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        sample["index"] = int(self.requested_positions[index])
        return sample


class FaceImages:
    """The cropped, scaled faces of one run (§3.1), as datasets of chosen annotation rows.

    Without a cache every read decodes the image file (:func:`face_dataset`). With one
    (:func:`open_face_images`), ``cached_rows`` (sorted annotation rows) were decoded, cropped
    and scaled once, and :meth:`dataset` reads their uint8 pixels (:class:`CachedFaces`). Either
    way a flip draws one number from torch's global generator per sample (``FaceDataset``'s
    ``torch.rand`` and ``v2.RandomHorizontalFlip``), which ``common.train`` checkpoints, so a
    resumed run repeats its flips."""

    def __init__(self, annotations: CelebAAnnotations, image_size: int, cache: ImageCache | None = None,
                 cached_rows: np.ndarray | None = None) -> None:
        if (cache is None) != (cached_rows is None):
            raise ValueError("give a cache together with the annotation rows it holds, or neither")
        if cache is not None and len(cache) != len(cached_rows):
            raise ValueError(f"the cache holds {len(cache)} images for {len(cached_rows)} rows")
        self.annotations, self.image_size, self.cache = annotations, image_size, cache
        self.cached_rows = None if cached_rows is None else np.asarray(cached_rows, dtype=np.int64)
        self.cached_attributes = None if cached_rows is None else annotations.attributes[self.cached_rows]

    def dataset(self, indices: np.ndarray, hflip: bool = False) -> Dataset:
        """Faces of annotation rows ``indices`` (repeats allowed), flipped at random when ``hflip``."""
        indices = np.asarray(indices, dtype=np.int64)
        if self.cache is None:
            return face_dataset(self.annotations, indices, self.image_size, hflip)
        cache_rows = np.searchsorted(self.cached_rows, indices)
        missing = (cache_rows >= len(self.cached_rows)) | (
            self.cached_rows[np.minimum(cache_rows, len(self.cached_rows) - 1)] != indices)
        if missing.any():
            raise KeyError(f"{int(missing.sum())} requested rows are not in the image cache "
                           f"(e.g. row {int(indices[missing][0])})")
        return CachedFaces(self.cache, self.cached_attributes, cache_rows, hflip)

    def describe(self) -> dict:
        """For the run record: the cache file and its unreadable images, or that there is none."""
        if self.cache is None:
            return {"image_cache": None}
        return {"image_cache": str(self.cache.array_path), "cached_images": len(self.cache),
                **self.cache.unreadable_summary()}


def open_face_images(annotations: CelebAAnnotations, split: InversionSplit, image_size: int,
                     cache_dir: str | os.PathLike | None = None) -> FaceImages:
    """A run's faces. With ``cache_dir``, every image of the training pool and the held-out set
    is decoded, centre-square cropped and scaled to ``image_size`` once into the cache there
    (built on first use; a later run with the same images and size opens it without decoding)."""
    if cache_dir is None:
        return FaceImages(annotations, image_size)
    rows = np.union1d(split.train_indices, split.heldout_indices)
    paths = annotations.image_paths()
    cache = build_image_cache([paths[row] for row in rows], cache_dir, image_size, progress=False,
                              crop=CACHE_CROP)
    return FaceImages(annotations, image_size, cache, rows)


def attribute_training_set(faces: FaceImages, split: InversionSplit, attribute: str,
                           config: DataConfig) -> Dataset:
    """The training images of one attribute for our model: the shared pool, minority oversampled."""
    indices = split.train_indices
    if config.oversample_minority:
        labels = faces.annotations.attributes[indices, ATTRIBUTE_INDEX[attribute]]
        indices = indices[oversampled_indices(labels, seed=config.seed)]
    return faces.dataset(indices, hflip=config.hflip)


class UnpairedDomains(Dataset):
    """CycleGAN's unaligned data [5]: item ``i`` pairs image ``i mod |A|`` of domain A (negatives)
    with a seeded random image of domain B (positives); the length is ``max(|A|, |B|)``."""

    def __init__(self, domain_a: Dataset, domain_b: Dataset, seed: int = 0) -> None:
        self.domain_a, self.domain_b = domain_a, domain_b
        length = max(len(domain_a), len(domain_b))
        self.partner = np.random.default_rng(seed).integers(0, len(domain_b), size=length)

    def __len__(self) -> int:
        return len(self.partner)

    def __getitem__(self, index: int) -> dict | None:
        sample_a = self.domain_a[index % len(self.domain_a)]
        sample_b = self.domain_b[int(self.partner[index])]
        if sample_a is None or sample_b is None:
            return None
        return {"image_a": sample_a["image"], "image_b": sample_b["image"], "index": index}


def cyclegan_training_set(faces: FaceImages, split: InversionSplit, attribute: str,
                          config: DataConfig) -> UnpairedDomains:
    """Domain A = training images without ``attribute``, domain B = with it (same pool as ours)."""
    labels = faces.annotations.attributes[split.train_indices, ATTRIBUTE_INDEX[attribute]].astype(bool)
    domain_a = faces.dataset(split.train_indices[~labels], hflip=config.hflip)
    domain_b = faces.dataset(split.train_indices[labels], hflip=config.hflip)
    if len(domain_a) == 0 or len(domain_b) == 0:
        raise ValueError(f"attribute {attribute}: training pool has {len(domain_b)} positives and "
                         f"{len(domain_a)} negatives; CycleGAN needs both domains")
    return UnpairedDomains(domain_a, domain_b, seed=config.seed)


def heldout_test_set(faces: FaceImages, split: InversionSplit, attribute: str) -> Dataset:
    """The held-out test images of ``attribute`` (positives, then negatives), no augmentation."""
    return faces.dataset(split.test_indices[attribute])


def attribute_labels(batch_attributes: torch.Tensor, attribute: str) -> torch.Tensor:
    """The 0/1 label column of ``attribute`` from a batch's (B, 40) ``"attributes"``."""
    return batch_attributes[:, ATTRIBUTE_INDEX[attribute]]
