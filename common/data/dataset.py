"""``FaceDataset``: images with optional attributes, 5-point landmarks and label masks.

Geometry conventions: landmarks are ``(x, y)`` in pixel-index coordinates (the centre of pixel
``(row r, column c)`` is ``(c, r)``), as in CelebA's and MTFL's files. Resizing from ``W x H``
to ``W' x H'`` maps ``x -> (x + 0.5) * W'/W - 0.5`` (likewise ``y``); a horizontal flip maps
``x -> W' - 1 - x`` and renames left/right points with ``LANDMARK_FLIP_PERMUTATION``; a mask's
left/right labels are renamed with ``mask_flip_permutation`` (e.g. ``HELEN11_FLIP_PERMUTATION``).

Decoding is PIL's, then :func:`image_to_rgb`: 8-bit images convert as PIL converts them,
16-bit and 32-bit grey images are scaled to 8 bits first (PIL alone would clip them to white), a
mode PIL cannot convert raises :class:`UnsupportedImageError`. An image over PIL's
decompression-bomb limit raises :class:`ImageTooLargeError`. A corrupt, truncated or empty image
(or mask) makes ``__getitem__`` return ``None`` and is recorded once per file
(:meth:`FaceDataset.unreadable_files`); pass :func:`collate_skip_corrupt` as the DataLoader's
``collate_fn`` to drop those samples.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, default_collate

from common.attributes import LANDMARK_FLIP_PERMUTATION

logger = logging.getLogger(__name__)

#: Errors PIL raises for unreadable image bytes (``FileNotFoundError`` is re-raised, not skipped).
_DECODE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError)
#: PIL modes whose pixel values are the labels themselves (``P``: palette indices).
_LABEL_MODES = ("L", "P", "I", "I;16")
#: PIL's 16-bit unsigned grey modes (16-bit PNG and TIFF), scaled by their bit depth.
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
#: How many unreadable file names :meth:`FaceDataset.unreadable_summary` lists by default.
UNREADABLE_NAMES_LIMIT = 20
#: Codes in ``FaceDataset``'s per-sample record of unreadable files.
_READABLE, _IMAGE_UNREADABLE, _MASK_UNREADABLE = 0, 1, 2


def unreadable_record(count: int, files: Sequence[str | os.PathLike]) -> dict:
    """How a run record names unreadable files: ``{"unreadable_files": count,
    "unreadable_file_names": [...]}`` (the names are the first few, ``count`` is all of them)."""
    return {"unreadable_files": count, "unreadable_file_names": [str(path) for path in files]}


class UnsupportedImageError(ValueError):
    """An image whose pixel format (PIL mode) cannot be turned into 8-bit RGB faithfully."""


class ImageTooLargeError(ValueError):
    """An image over PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``)."""


def _grey_to_8_bits(image: Image.Image, path: Path) -> np.ndarray:
    """A 16-bit (``I;16*``), 32-bit integer (``I``) or float (``F``) grey image as uint8 (H, W).

    ``I;16*`` is scaled by its bit depth (65535 -> 255). ``I`` and ``F`` carry no bit depth, so
    they are scaled by their value range, widened to include the usual range of the type:
    ``[min(0, lowest), max(255, highest)]`` for ``I`` (8-bit data stored as ``I`` is unchanged)
    and ``[min(0, lowest), max(1, highest)]`` for ``F`` (a [0, 1] float image maps to 0..255).
    """
    values = np.asarray(image).astype(np.float64)
    if image.mode in _SIXTEEN_BIT_MODES:
        low, high = 0.0, 65535.0
    else:
        if not np.isfinite(values).all():
            raise UnsupportedImageError(f"{path}: mode {image.mode} image with NaN or infinite pixels")
        usual_high = 1.0 if image.mode == "F" else 255.0
        low, high = min(0.0, float(values.min())), max(usual_high, float(values.max()))
    return np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)


def image_to_rgb(image: Image.Image, path: str | os.PathLike) -> Image.Image:
    """``image`` as 8-bit RGB; ``path`` (the file it came from) names it in errors.

    RGB is returned as is; 1, L, P, LA, PA, RGBA, CMYK, YCbCr, ... convert as PIL converts them
    (alpha is dropped); 16-bit and 32-bit grey modes are scaled to 8 bits first
    (:func:`_grey_to_8_bits`). A mode PIL cannot convert raises :class:`UnsupportedImageError`.
    """
    if image.mode == "RGB":
        return image
    if image.mode in _SIXTEEN_BIT_MODES or image.mode in ("I", "F"):
        return Image.fromarray(_grey_to_8_bits(image, Path(path))).convert("RGB")
    try:
        return image.convert("RGB")
    except ValueError as error:
        raise UnsupportedImageError(f"{path}: PIL mode {image.mode!r} cannot be converted to RGB "
                                    f"({error}); save the image as 8-bit RGB or greyscale") from None


def decode_image(path: str | os.PathLike) -> Image.Image | None:
    """Open and fully decode ``path`` (so truncation shows now), keeping its stored mode.

    Returns ``None`` for corrupt, truncated or empty files. ``FileNotFoundError`` propagates; an
    image over PIL's decompression-bomb limit (``Image.DecompressionBombError``, or
    ``Image.DecompressionBombWarning`` when warnings are errors) raises :class:`ImageTooLargeError`.
    """
    try:
        with Image.open(path) as image:
            image.load()
    except FileNotFoundError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageTooLargeError(
            f"{path}: image too large to decode ({error}); PIL's decompression-bomb limit is "
            f"PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS} pixels (an error above twice "
            f"that, a warning above it): raise it if the file is trusted, or shrink the image") from None
    except _DECODE_ERRORS as error:
        logger.debug("unreadable image %s: %s", path, error)
        return None
    return image


class FaceDataset(Dataset):
    """Face images with whatever annotations are given; ``__getitem__`` returns a dict.

    Args:
        image_paths: one image file per sample.
        attributes: (N, C) labels (0/1, or NaN where unknown) -> ``"attributes"`` float32 (C,).
        landmarks: (N, 5, 2) x, y in source-image pixels -> ``"landmarks"`` float32 (5, 2) in
            output pixels.
        mask_paths: label images (PNG in mode L, P, I or I;16; the pixel value is the label)
            -> ``"mask"`` int64 (H, W).
        image_size: output ``(height, width)`` (an int means square); ``None`` keeps the size.
            The mask must have the image's size; both are resized jointly (bilinear / nearest).
        hflip: random horizontal flip of image, mask and landmarks together: ``True`` flips
            with probability 0.5, a float gives the probability (``1.0`` always flips). The coin
            is drawn from torch's global generator (seeded per DataLoader worker).
        image_transform: a callable on the (resized, flipped) PIL image, e.g.
            ``torchvision.transforms.RandAugment()``; it must return a PIL image or a tensor
            (uint8 in 0..255, or float in [0, 1]). It acts on the image only, so use photometric
            transforms when masks or landmarks must stay aligned.
        normalize: ``(mean, std)`` per channel, applied to the [0, 1] image last.
        mask_flip_permutation: ``perm[label]`` = the label after a horizontal flip.

    Unreadable (corrupt, truncated or empty) images and masks give ``None`` samples and are
    recorded once per file in shared memory, so reads in DataLoader worker processes count too:
    :meth:`unreadable_count`, :meth:`unreadable_files`, :meth:`unreadable_summary`.
    """

    def __init__(self, image_paths: Sequence[str | os.PathLike], attributes: np.ndarray | None = None,
                 landmarks: np.ndarray | None = None,
                 mask_paths: Sequence[str | os.PathLike] | None = None,
                 image_size: int | tuple[int, int] | None = None, hflip: bool | float = False,
                 image_transform: Callable | None = None,
                 normalize: tuple[Sequence[float], Sequence[float]] | None = None,
                 mask_flip_permutation: Sequence[int] | None = None):
        self.image_paths = [Path(path) for path in image_paths]
        n = len(self.image_paths)
        self.attributes = None if attributes is None else torch.as_tensor(
            np.asarray(attributes, dtype=np.float32))
        self.landmarks = None if landmarks is None else np.asarray(landmarks, dtype=np.float32)
        self.mask_paths = None if mask_paths is None else [Path(path) for path in mask_paths]
        for name, values in (("attributes", self.attributes), ("landmarks", self.landmarks),
                             ("mask_paths", self.mask_paths)):
            if values is not None and len(values) != n:
                raise ValueError(f"{name} has {len(values)} rows but there are {n} images")
        if self.landmarks is not None and self.landmarks.shape[1:] != (5, 2):
            raise ValueError(f"landmarks must be (N, 5, 2), got {self.landmarks.shape}")
        if isinstance(image_size, int):
            image_size = (image_size, image_size)
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        if isinstance(hflip, bool):
            self.flip_probability = 0.5 if hflip else 0.0
        else:
            self.flip_probability = float(hflip)
            if not 0.0 <= self.flip_probability <= 1.0:
                raise ValueError(f"hflip probability must be in [0, 1], got {hflip}")
        self.image_transform = image_transform
        if normalize is not None:
            mean, std = normalize
            normalize = (torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1),
                         torch.tensor(std, dtype=torch.float32).view(-1, 1, 1))
        self.normalize = normalize
        self.mask_flip_lookup = (None if mask_flip_permutation is None
                                 else np.asarray(mask_flip_permutation, dtype=np.int64))
        # one code per sample (which of its files is unreadable), in shared memory: forked or
        # spawned DataLoader workers write here too
        self._unreadable = torch.zeros(n, dtype=torch.uint8).share_memory_()

    def __len__(self) -> int:
        return len(self.image_paths)

    def _record_unreadable(self, index: int, code: int) -> None:
        if int(self._unreadable[index]) == _READABLE:
            self._unreadable[index] = code
            logger.warning("skipping unreadable (corrupt, truncated or empty) file %s",
                           self._unreadable_path(index, code))

    def _unreadable_path(self, index: int, code: int) -> Path:
        return self.image_paths[index] if code == _IMAGE_UNREADABLE else self.mask_paths[index]

    def unreadable_count(self) -> int:
        """How many files (images or masks) were found unreadable so far, each counted once."""
        return len(self.unreadable_files())

    def unreadable_files(self, limit: int | None = None) -> list[Path]:
        """The files found unreadable so far, each once, in dataset order; the first ``limit``."""
        indices = torch.nonzero(self._unreadable).flatten().tolist()
        paths = dict.fromkeys(self._unreadable_path(index, int(self._unreadable[index])) for index in indices)
        return list(paths)[:limit]

    def unreadable_summary(self, limit: int = UNREADABLE_NAMES_LIMIT) -> dict:
        """For a run record: ``{"unreadable_files": count, "unreadable_file_names": first `limit`}``."""
        return unreadable_record(self.unreadable_count(), self.unreadable_files(limit))

    def __getitem__(self, index: int) -> dict | None:
        image = decode_image(self.image_paths[index])
        if image is None:
            self._record_unreadable(index, _IMAGE_UNREADABLE)
            return None
        image = image_to_rgb(image, self.image_paths[index])
        mask = None
        if self.mask_paths is not None:
            # the stored mode is kept: converting a palette mask would turn label indices into greys
            mask = decode_image(self.mask_paths[index])
            if mask is None:
                self._record_unreadable(index, _MASK_UNREADABLE)
                return None
            if mask.mode not in _LABEL_MODES:
                raise ValueError(f"{self.mask_paths[index]}: a mask must be a single-channel label image "
                                 f"(mode {'/'.join(_LABEL_MODES)}), got mode {mask.mode}")
            if mask.size != image.size:
                raise ValueError(f"{self.mask_paths[index]}: mask is {mask.size[0]}x{mask.size[1]}, "
                                 f"image {self.image_paths[index]} is {image.size[0]}x{image.size[1]}")
        source_width, source_height = image.size
        if self.image_size is not None and self.image_size != (source_height, source_width):
            height, width = self.image_size
            image = image.resize((width, height), Image.Resampling.BILINEAR)
            if mask is not None:
                mask = mask.resize((width, height), Image.Resampling.NEAREST)
        width, height = image.size
        flip = self.flip_probability > 0 and float(torch.rand(())) < self.flip_probability
        if flip:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        if self.image_transform is not None:
            image = self.image_transform(image)
        sample = {"image": self._to_tensor(image), "index": index}
        if self.attributes is not None:
            sample["attributes"] = self.attributes[index]
        if self.landmarks is not None:
            points = self.landmarks[index].copy()
            points[:, 0] = (points[:, 0] + 0.5) * (width / source_width) - 0.5
            points[:, 1] = (points[:, 1] + 0.5) * (height / source_height) - 0.5
            if flip:
                points[:, 0] = width - 1 - points[:, 0]
                points = points[list(LANDMARK_FLIP_PERMUTATION)]
            sample["landmarks"] = torch.from_numpy(points)
        if mask is not None:
            labels = np.asarray(mask, dtype=np.int64)
            if flip:
                labels = labels[:, ::-1]
                if self.mask_flip_lookup is not None:
                    labels = self.mask_flip_lookup[labels]
            sample["mask"] = torch.from_numpy(np.ascontiguousarray(labels))
        return sample

    def _to_tensor(self, image) -> torch.Tensor:
        if isinstance(image, Image.Image):
            # numpy does the HWC -> CHW copy and scaling: torch ops on the permuted view are ~10x slower
            channels_first = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
            tensor = torch.from_numpy(np.multiply(channels_first, np.float32(1 / 255), dtype=np.float32))
        elif isinstance(image, torch.Tensor):
            tensor = image.float().div(255.0) if image.dtype == torch.uint8 else image.float()
            tensor = tensor.contiguous()
        else:
            raise TypeError(f"image_transform must return a PIL image or a tensor, got {type(image)}")
        if self.normalize is not None:
            mean, std = self.normalize
            tensor = (tensor - mean) / std
        return tensor


_corrupt_skipped = 0
_warned = False


def corrupt_samples_skipped() -> int:
    """How many samples :func:`collate_skip_corrupt` has dropped in this process.

    A corrupt file read in several epochs counts once per read; which files, each counted once
    and across worker processes: :meth:`FaceDataset.unreadable_summary`.
    """
    return _corrupt_skipped


def collate_skip_corrupt(batch: list[dict | None]) -> dict | None:
    """``default_collate`` after dropping ``None`` samples (corrupt images); counts and warns once.

    The count lives in the process that collates: with ``num_workers=0`` that is the main process
    (read it with :func:`corrupt_samples_skipped`); with workers each worker process counts and
    warns once for itself and the main process sees only the smaller batches. A batch whose
    samples are all corrupt collates to ``None``, which the caller must skip.
    """
    global _corrupt_skipped, _warned
    kept = [sample for sample in batch if sample is not None]
    n_dropped = len(batch) - len(kept)
    if n_dropped:
        _corrupt_skipped += n_dropped
        if not _warned:
            _warned = True
            warnings.warn(f"skipped {n_dropped} corrupt or truncated image(s) in a batch; further "
                          f"skips are counted silently (common.data.dataset.corrupt_samples_skipped(); "
                          f"the files: FaceDataset.unreadable_files())", RuntimeWarning, stacklevel=2)
    if not kept:
        return None
    return default_collate(kept)


def celeba_dataset(annotations, indices: Sequence[int] | np.ndarray | None = None, **kwargs) -> FaceDataset:
    """A :class:`FaceDataset` over ``annotations`` (a ``CelebAAnnotations``), rows ``indices``.

    Attributes, landmarks (when the file was read) and ``parsing_parts7`` masks (when present)
    are included; a keyword argument overrides any of them (e.g. ``mask_paths=None``).
    """
    if indices is not None:
        annotations = annotations.subset(indices)
    arguments = {"attributes": annotations.attributes, "landmarks": annotations.landmarks,
                 "mask_paths": annotations.mask_paths()}
    arguments.update(kwargs)
    return FaceDataset(annotations.image_paths(), **arguments)
