"""Decoded-image cache: decode and resize every image once, then read uint8 pixels from a memmap.

:func:`build_image_cache` decodes each image with :func:`~common.data.dataset.decode_image` and
:func:`~common.data.dataset.image_to_rgb` (the decoding :class:`~common.data.dataset.FaceDataset`
uses), optionally crops it (:data:`CROPS`), resizes it with PIL to ``(height, width)`` and writes
all of them to one ``.npy`` file of shape (N, H, W, 3) uint8, plus a small JSON sidecar. Later
epochs and later runs memory-map that file (:class:`ImageCache`) and never open the images again;
:class:`CachedImageDataset` serves uint8 CHW tensors from it, for augmentation with
``torchvision.transforms.v2`` on uint8 tensors.

**Key.** A cache is identified by the SHA-1 of: the ordered list of absolute image paths, each
file's size and modification time (``st_mtime_ns``), the target size, the resample filter, the
crop (when there is one), the Pillow version and :data:`DECODER_VERSION`. The digest is the file
name, so a changed image, list or setting makes a new cache and a stale one is never read; old
caches stay in the folder until deleted.

**Atomicity.** The array and the sidecar are each written to a temp file in the cache folder,
flushed to disk and renamed into place (``os.replace``), the sidecar last. Only a cache whose
sidecar exists and whose array matches it (shape, dtype, length) is read, so a build that is
interrupted or killed leaves nothing that is later taken for complete (a killed process may leave
a ``*.tmp`` file, which is never read and can be deleted).

**Unreadable images** (corrupt, truncated or empty files, for which ``decode_image`` returns
``None``) get an all-zero row; their index and path are recorded once in the sidecar, the build
logs their count and the first :data:`~common.data.dataset.UNREADABLE_NAMES_LIMIT` names, and
:class:`CachedImageDataset` skips them. A missing file, an unsupported pixel format or an image
over PIL's decompression-bomb limit raises, as in ``FaceDataset``.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import PIL
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from common.data.dataset import UNREADABLE_NAMES_LIMIT, decode_image, image_to_rgb, unreadable_record

logger = logging.getLogger(__name__)

#: Bump when decoding or resizing changes the cached pixels: every existing cache is then rebuilt.
DECODER_VERSION = 1
#: PIL resample filters a cache may use, by name (``PIL.Image.Resampling`` members).
RESAMPLE_FILTERS = ("nearest", "box", "bilinear", "hamming", "bicubic", "lanczos")
#: The default filter: PIL's bilinear, as ``FaceDataset`` resizes (antialiased when shrinking,
#: its support grows with the reduction factor).
DEFAULT_RESAMPLE = "bilinear"
#: Crops a cache may apply to the decoded image before resizing it, by name.
#: ``"centre_square"``: the centred square whose side is the shorter image side
#: (:func:`centre_square_crop`).
CROPS = ("centre_square",)

_ARRAY_SUFFIX = ".npy"
_SIDECAR_SUFFIX = ".json"
_NPY_VERSION = (1, 0)


def _normalise_size(image_size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    height, width = (int(value) for value in image_size)
    if height <= 0 or width <= 0:
        raise ValueError(f"image_size must be positive (height, width), got {image_size}")
    return height, width


def _resample_filter(resample: str) -> Image.Resampling:
    if resample not in RESAMPLE_FILTERS:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLE_FILTERS)}, got {resample!r}")
    return Image.Resampling[resample.upper()]


def _check_crop(crop: str | None) -> None:
    if crop is not None and crop not in CROPS:
        raise ValueError(f"crop must be None or one of {', '.join(CROPS)}, got {crop!r}")


def centre_square_crop(image: Image.Image) -> Image.Image:
    """The centred square of ``image`` whose side is its shorter side; the offset is rounded as
    ``torchvision.transforms.functional.center_crop`` rounds it (``round((size - side) / 2)``)."""
    width, height = image.size
    side = min(width, height)
    left, top = int(round((width - side) / 2.0)), int(round((height - side) / 2.0))
    return image.crop((left, top, left + side, top + side))


def image_cache_key(image_paths: Sequence[str | os.PathLike], image_size: int | tuple[int, int],
                    resample: str = DEFAULT_RESAMPLE, crop: str | None = None) -> str:
    """The SHA-1 hex digest naming the cache of ``image_paths`` at ``image_size`` (height, width).

    Covers the ordered absolute paths, each file's size and ``st_mtime_ns`` (one ``os.stat`` per
    file; the images are not opened), the size, the filter, the crop (only when there is one, so
    uncropped caches keep their keys), the Pillow version and :data:`DECODER_VERSION`. A missing
    image raises ``FileNotFoundError``.
    """
    height, width = _normalise_size(image_size)
    _resample_filter(resample)
    _check_crop(crop)
    digest = hashlib.sha1()
    settings = {"decoder_version": DECODER_VERSION, "pillow": PIL.__version__,
                "image_size": [height, width], "resample": resample}
    if crop is not None:
        settings["crop"] = crop
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for path in image_paths:
        status = os.stat(path)
        # NUL cannot occur in a path, so the records cannot run into each other
        digest.update(f"\0{os.path.abspath(path)}\0{status.st_size}\0{status.st_mtime_ns}".encode())
    return digest.hexdigest()


def _cache_paths(cache_dir: Path, image_size: tuple[int, int], key: str) -> tuple[Path, Path]:
    stem = f"decoded_{image_size[0]}x{image_size[1]}_{key}"
    return cache_dir / f"{stem}{_ARRAY_SUFFIX}", cache_dir / f"{stem}{_SIDECAR_SUFFIX}"


class ImageCache:
    """A complete decoded-image cache: N images as one read-only (N, H, W, 3) uint8 memmap.

    Made by :func:`build_image_cache` or :func:`open_image_cache`. The memmap is opened on first
    use in each process and left out when the object is pickled, so DataLoader workers (forked or
    spawned) map the file themselves instead of receiving a copy of the array.

    Attributes:
        array_path, sidecar_path: the cache's two files.
        image_paths: the source images, in cache row order.
        image_size: ``(height, width)``.
        resample: the PIL filter's name.
        unreadable_indices: sorted int64 rows whose image was unreadable (their rows are zeros).
        crop: the crop applied before resizing (a name in :data:`CROPS`), or ``None``.
    """

    def __init__(self, array_path: Path, sidecar_path: Path, image_paths: Sequence[Path],
                 image_size: tuple[int, int], resample: str, unreadable_indices: np.ndarray,
                 crop: str | None = None):
        self.array_path = array_path
        self.sidecar_path = sidecar_path
        self.image_paths = list(image_paths)
        self.image_size = image_size
        self.resample = resample
        self.crop = crop
        self.unreadable_indices = np.asarray(unreadable_indices, dtype=np.int64)
        self._readable = np.ones(len(self.image_paths), dtype=bool)
        self._readable[self.unreadable_indices] = False
        self._array: np.ndarray | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_array"] = None
        return state

    def __len__(self) -> int:
        return len(self.image_paths)

    @property
    def array(self) -> np.ndarray:
        """The whole read-only (N, H, W, 3) uint8 memmap; unreadable images' rows are zeros."""
        if self._array is None:
            self._array = np.load(self.array_path, mmap_mode="r")
        return self._array

    def readable_mask(self) -> np.ndarray:
        """(N,) bool: ``True`` where the image was decoded."""
        return self._readable.copy()

    def image(self, index: int) -> np.ndarray:
        """Image ``index`` as a read-only (H, W, 3) uint8 view; ``ValueError`` if it was unreadable."""
        if not self._readable[index]:
            raise ValueError(f"{self.image_paths[index]} (cache row {index}) was unreadable when the "
                             f"cache was built")
        return self.array[index]

    def unreadable_count(self) -> int:
        """How many images were unreadable."""
        return len(self.unreadable_indices)

    def unreadable_files(self, limit: int | None = None) -> list[Path]:
        """The unreadable images, in row order; the first ``limit``."""
        return [self.image_paths[index] for index in self.unreadable_indices[:limit]]

    def unreadable_summary(self, limit: int = UNREADABLE_NAMES_LIMIT) -> dict:
        """For a run record: ``{"unreadable_files": count, "unreadable_file_names": first `limit`}``."""
        return unreadable_record(self.unreadable_count(), self.unreadable_files(limit))


def _npy_data_matches(array_path: Path, shape: tuple[int, ...]) -> bool:
    """Whether ``array_path`` is a C-order uint8 ``.npy`` of ``shape`` holding all its bytes."""
    try:
        with open(array_path, "rb") as file:
            if np.lib.format.read_magic(file) != _NPY_VERSION:
                return False
            stored_shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
            data_offset = file.tell()
            file_bytes = os.fstat(file.fileno()).st_size
    except (OSError, ValueError):
        return False
    return (tuple(stored_shape) == shape and not fortran_order and dtype == np.uint8
            and file_bytes == data_offset + int(np.prod(shape)))


def open_image_cache(image_paths: Sequence[str | os.PathLike], cache_dir: str | os.PathLike,
                     image_size: int | tuple[int, int], resample: str = DEFAULT_RESAMPLE,
                     crop: str | None = None) -> ImageCache | None:
    """The complete cache of ``image_paths`` in ``cache_dir``, or ``None`` when there is none.

    Only file metadata is read (see :func:`image_cache_key`), never the images. A sidecar whose
    array is missing or does not match it is reported and treated as no cache.
    """
    image_paths = [Path(path) for path in image_paths]
    image_size = _normalise_size(image_size)
    return _open_cache(image_paths, Path(cache_dir), image_size, resample, crop,
                       image_cache_key(image_paths, image_size, resample, crop))


def _open_cache(image_paths: list[Path], cache_dir: Path, image_size: tuple[int, int], resample: str,
                crop: str | None, key: str) -> ImageCache | None:
    """:func:`open_image_cache` for an already computed ``key``."""
    array_path, sidecar_path = _cache_paths(cache_dir, image_size, key)
    try:
        record = json.loads(sidecar_path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable image-cache record %s (%s); the cache will be rebuilt",
                       sidecar_path, error)
        return None
    shape = (len(image_paths), *image_size, 3)
    if record.get("key") != key or not _npy_data_matches(array_path, shape):
        logger.warning("image cache %s does not match its record %s; the cache will be rebuilt",
                       array_path, sidecar_path.name)
        return None
    unreadable = np.array([entry["index"] for entry in record["unreadable"]], dtype=np.int64)
    logger.info("reading decoded images from %s (%d images, %d unreadable)", array_path,
                len(image_paths), len(unreadable))
    return ImageCache(array_path, sidecar_path, image_paths, image_size, resample, unreadable, crop)


def _replace_durably(temp_path: Path, path: Path) -> None:
    """Rename the flushed ``temp_path`` onto ``path`` and flush the folder entry."""
    os.replace(temp_path, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _write_file_atomically(path: Path, write: Callable) -> None:
    """``write(binary_file)`` into a temp file beside ``path``, fsync it, then rename it onto ``path``."""
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temp_path = Path(temp_name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        _replace_durably(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)


def _log_unreadable(unreadable: list[dict], n_images: int) -> None:
    names = [entry["name"] for entry in unreadable[:UNREADABLE_NAMES_LIMIT]]
    more = len(unreadable) - len(names)
    logger.warning("%d of %d images are unreadable (corrupt, truncated or empty) and will be "
                   "skipped: %s%s", len(unreadable), n_images, ", ".join(names),
                   f" and {more} more" if more else "")


def build_image_cache(image_paths: Sequence[str | os.PathLike], cache_dir: str | os.PathLike,
                      image_size: int | tuple[int, int], resample: str = DEFAULT_RESAMPLE,
                      progress: bool = True, crop: str | None = None) -> ImageCache:
    """Open the cache of ``image_paths`` in ``cache_dir``, building it first if there is none.

    Args:
        image_paths: the images, in the order of the cache rows.
        cache_dir: folder for the caches (created if missing); one ``.npy`` + ``.json`` per key.
        image_size: output ``(height, width)``; an int means square. The build needs
            ``N * height * width * 3`` bytes free there (checked first; ``OSError`` otherwise).
        resample: a name in :data:`RESAMPLE_FILTERS` (default: PIL's bilinear, as ``FaceDataset``).
        progress: show a tqdm bar while decoding.
        crop: a name in :data:`CROPS` to crop each decoded image before resizing, or ``None``.

    The build runs in this process. Processes that build the same key at once (e.g. every
    ``torchrun`` rank) each write a complete cache and the last rename wins; build it on one rank
    and wait on a barrier to decode only once.
    """
    image_paths = [Path(path) for path in image_paths]
    if not image_paths:
        raise ValueError("no images to cache")
    image_size = _normalise_size(image_size)
    resample_filter = _resample_filter(resample)
    cache_dir = Path(cache_dir)
    key = image_cache_key(image_paths, image_size, resample, crop)
    cache = _open_cache(image_paths, cache_dir, image_size, resample, crop, key)
    if cache is not None:
        return cache
    cache_dir.mkdir(parents=True, exist_ok=True)
    array_path, sidecar_path = _cache_paths(cache_dir, image_size, key)
    height, width = image_size
    shape = (len(image_paths), height, width, 3)
    data_bytes = int(np.prod(shape))
    free_bytes = shutil.disk_usage(cache_dir).free
    if free_bytes < data_bytes:
        raise OSError(f"the decoded-image cache needs {data_bytes / 2**30:.2f} GiB in {cache_dir}, "
                      f"only {free_bytes / 2**30:.2f} GiB is free")
    unreadable: list[dict] = []
    blank = np.zeros((height, width, 3), dtype=np.uint8)
    start = time.perf_counter()

    def write_images(file) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
                  "shape": shape}
        np.lib.format.write_array_header_1_0(file, header)
        for index, path in enumerate(tqdm(image_paths, desc="decoding images", unit="image",
                                          disable=not progress)):
            image = decode_image(path)
            if image is None:
                unreadable.append({"index": index, "name": str(path)})
                file.write(blank.data)
                continue
            image = image_to_rgb(image, path)
            if crop is not None:
                image = centre_square_crop(image)
            resized = image.resize((width, height), resample_filter)
            file.write(np.asarray(resized, dtype=np.uint8).data)

    _write_file_atomically(array_path, write_images)
    elapsed = time.perf_counter() - start
    record = {"key": key, "decoder_version": DECODER_VERSION, "pillow": PIL.__version__,
              "n_images": len(image_paths), "image_size": [height, width], "resample": resample,
              "crop": crop, "array_file": array_path.name, "build_seconds": round(elapsed, 3),
              "unreadable": unreadable}
    _write_file_atomically(sidecar_path, lambda file: file.write(json.dumps(record, indent=1).encode()))
    logger.info("decoded %d images into %s in %.1f s", len(image_paths), array_path, elapsed)
    if unreadable:
        _log_unreadable(unreadable, len(image_paths))
    return ImageCache(array_path, sidecar_path, image_paths, image_size, resample,
                      np.array([entry["index"] for entry in unreadable], dtype=np.int64), crop)


class CachedImageDataset(Dataset):
    """Images from an :class:`ImageCache` as uint8 CHW tensors, with optional labels.

    Args:
        cache: the decoded images.
        attributes: (N, C) labels per cache row -> ``"attributes"`` float32 (C,).
        transform: a callable on the uint8 (3, H, W) tensor, e.g. a ``torchvision.transforms.v2``
            pipeline (end it with ``v2.ToDtype(torch.float32, scale=True)`` for a [0, 1] float
            image); its output is ``"image"``.
        indices: the cache rows to serve (e.g. a split), in order; default all.

    ``__getitem__(i)`` returns ``{"image", "index", "attributes"?}`` where ``"index"`` is the
    cache row (the position in ``cache.image_paths``). Rows whose image was unreadable are left
    out of the dataset (never served as black images); :meth:`unreadable_summary` names them.

    Randomness: the dataset draws no random numbers itself. A random ``transform`` draws from
    torch's global generator in the process that calls ``__getitem__``: with ``num_workers=0``
    that is the main process, whose generator ``common.train`` checkpoints, so a resumed run
    repeats the same draws; with workers under ``common.train.Trainer``, every sample's draws are
    seeded from (seed, rank, epoch, sample index), so a mid-epoch resume is exact too.
    """

    def __init__(self, cache: ImageCache, attributes: np.ndarray | None = None,
                 transform: Callable | None = None,
                 indices: Sequence[int] | np.ndarray | None = None):
        self.cache = cache
        rows = np.arange(len(cache)) if indices is None else np.asarray(indices)
        rows = rows.astype(np.int64)
        if rows.ndim != 1 or (rows.size and (rows.min() < 0 or rows.max() >= len(cache))):
            raise ValueError(f"indices must be a 1-D sequence of cache rows in [0, {len(cache)})")
        readable = cache.readable_mask()[rows]
        self.rows = rows[readable]
        self.unreadable_rows = rows[~readable]
        if len(self.unreadable_rows):
            logger.info("CachedImageDataset: leaving out %d unreadable images", len(self.unreadable_rows))
        self.attributes = None if attributes is None else torch.as_tensor(
            np.asarray(attributes, dtype=np.float32))
        if self.attributes is not None and len(self.attributes) != len(cache):
            raise ValueError(f"attributes has {len(self.attributes)} rows but the cache has "
                             f"{len(cache)} images")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = int(self.rows[index])
        # one copy out of the read-only memmap, doing the HWC -> CHW transpose
        image = torch.from_numpy(np.ascontiguousarray(self.cache.array[row].transpose(2, 0, 1)))
        if self.transform is not None:
            image = self.transform(image)
        sample = {"image": image, "index": row}
        if self.attributes is not None:
            sample["attributes"] = self.attributes[row]
        return sample

    def unreadable_count(self) -> int:
        """How many of the requested rows were left out as unreadable."""
        return len(self.unreadable_rows)

    def unreadable_files(self, limit: int | None = None) -> list[Path]:
        """The images left out as unreadable, in request order; the first ``limit``."""
        return [self.cache.image_paths[row] for row in self.unreadable_rows[:limit]]

    def unreadable_summary(self, limit: int = UNREADABLE_NAMES_LIMIT) -> dict:
        """For a run record: ``{"unreadable_files": count, "unreadable_file_names": first `limit`}``."""
        return unreadable_record(self.unreadable_count(), self.unreadable_files(limit))
