"""Inference on a user's own face images: the one path every paper package's inference command uses.

files and folders -> :func:`collect_images` -> decode (any PIL mode, EXIF rotation applied, corrupt
files skipped and named) -> ``preprocess`` (typically :func:`map_to_frame` from the frame the user's
faces were cropped in to the model's training frame, then the model's normalisation) -> batches ->
``model_fn`` -> :class:`InferenceResult` -> :func:`write_predictions_csv`.

Decoding is :func:`common.data.dataset.decode_image` followed by ``ImageOps.exif_transpose`` and
:func:`common.data.dataset.image_to_rgb`, so a file reads here exactly as in training, upright.
Geometry uses ``common.data.dataset``'s convention: points are ``(x, y)`` in pixel-index
coordinates (the centre of pixel ``(row r, column c)`` is ``(c, r)``).
"""
from __future__ import annotations

import csv
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

from common.data.dataset import UNREADABLE_NAMES_LIMIT, decode_image, image_to_rgb
from common.data.folder import IMAGE_SUFFIXES, list_images
from common.gpu import select_device

logger = logging.getLogger(__name__)

#: How far (relative) an image's aspect ratio may be from its frame's: sizes rounded to whole pixels.
ASPECT_TOLERANCE = 0.01
#: Box coordinates closer than this to the image border count as on it (floating-point round-off).
_BORDER_EPSILON = 1e-6


# --------------------------------------------------------------------------- listing images


def collect_images(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by ``inputs``: each an image file or a folder (searched recursively).

    Images come in the order of ``inputs``, a folder's sorted by relative path
    (:func:`common.data.folder.list_images`); a file reached twice (same resolved path) is kept
    the first time. A single path (not in a list) is accepted as one input.

    Raises:
        FileNotFoundError: an input does not exist (named).
        ValueError: a file given explicitly is not an image by its suffix (named), or no image
            was found at all (the inputs searched are named).
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [Path(item) for item in inputs]
    found: dict[Path, Path] = {}
    for item in inputs:
        if item.is_dir():
            candidates = list_images(item)
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_SUFFIXES:
                raise ValueError(f"{item}: not an image file (suffix {item.suffix!r}; images are "
                                 f"{', '.join(sorted(IMAGE_SUFFIXES))})")
            candidates = [item]
        else:
            raise FileNotFoundError(f"image file or folder not found: {item}")
        for path in candidates:
            found.setdefault(path.resolve(), path)
    if not found:
        raise ValueError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found in: "
                         f"{', '.join(str(item) for item in inputs) or '(no inputs given)'}")
    return list(found.values())


# --------------------------------------------------------------------------- face geometry


@dataclass(frozen=True)
class FaceFrame:
    """Where faces sit in the images of a dataset: an image size and the eye centres' geometry.

    Attributes:
        name: e.g. ``"celeba"``.
        width, height: the frame's size in pixels.
        eye_midpoint: ``(x, y)`` of the midpoint between the two eye centres, pixel-index coordinates.
        eye_distance: distance between the two eye centres, in pixels.

    Measured on CelebA / CelebA-HQ (issue #18): in CelebA's aligned 178x218 frame the eye centres
    are about 39 px apart with their midpoint at about (89, 111); in a 256x256 CelebA-HQ face they
    are about 64 px apart with their midpoint at about (128, 121) (:data:`FRAMES`).
    """

    name: str
    width: int
    height: int
    eye_midpoint: tuple[float, float]
    eye_distance: float

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or not self.eye_distance > 0:
            raise ValueError(f"frame {self.name!r}: size {self.width}x{self.height} and eye distance "
                             f"{self.eye_distance} must be positive")

    def scaled_to(self, width: int, height: int) -> FaceFrame:
        """The same frame at ``width`` x ``height`` pixels (e.g. CelebA's 178x218 frame at 89x109).

        The aspect ratio must be the frame's within :data:`ASPECT_TOLERANCE` (1 %), else
        ``ValueError``: another aspect ratio is another crop, not the same frame. The scale is
        uniform up to that rounding: the eye midpoint moves as a resize moves points (per axis,
        ``x -> (x + 0.5) * width / self.width - 0.5``), the eye distance scales by the mean of the
        two axes' factors.
        """
        if width <= 0 or height <= 0:
            raise ValueError(f"frame {self.name!r}: size {width}x{height} must be positive")
        aspect, own_aspect = width / height, self.width / self.height
        if abs(aspect / own_aspect - 1.0) > ASPECT_TOLERANCE:
            raise ValueError(
                f"{width}x{height} (aspect ratio {aspect:.4f}) is not the {self.name!r} frame "
                f"({self.width}x{self.height}, aspect ratio {own_aspect:.4f}) at another size: the "
                f"aspect ratios differ by more than {ASPECT_TOLERANCE:.0%}")
        scale_x, scale_y = width / self.width, height / self.height
        x, y = self.eye_midpoint
        return FaceFrame(self.name, width, height, ((x + 0.5) * scale_x - 0.5, (y + 0.5) * scale_y - 0.5),
                         self.eye_distance * (scale_x + scale_y) / 2)


#: The frames shipped models and users' images come in, measured on CelebA / CelebA-HQ (issue #18):
#: CelebA's aligned frame (the shared copy's 89x109 is it at half size) and a square CelebA-HQ /
#: FFHQ-like crop, whose face is much tighter.
FRAMES: dict[str, FaceFrame] = {
    "celeba": FaceFrame("celeba", 178, 218, eye_midpoint=(89.0, 111.0), eye_distance=39.0),
    "celeba-hq": FaceFrame("celeba-hq", 256, 256, eye_midpoint=(128.0, 121.0), eye_distance=64.0),
}


#: ``--geometry`` choices of an inference command: a frame of :data:`FRAMES`, ``"auto"`` (by aspect
#: ratio, :func:`frame_for_geometry`) or ``"resize"`` (no geometry step: stretch to the input size).
GEOMETRIES: tuple[str, ...] = ("auto", *FRAMES, "resize")


def frame_for_geometry(width: int, height: int, geometry: str,
                       name: str | os.PathLike = "<image>") -> FaceFrame | None:
    """The frame an image of ``width`` x ``height`` is cropped in under ``geometry`` (one of
    :data:`GEOMETRIES`): the frame named; for ``"auto"`` CelebA's aligned frame when the aspect
    ratio is 178:218 and CelebA-HQ's when square (within :data:`ASPECT_TOLERANCE`); ``None`` for
    ``"resize"``. Under ``"auto"`` another aspect ratio raises ``ValueError`` naming ``name`` and
    the ``--geometry`` values that say how the face is cropped."""
    if geometry not in GEOMETRIES:
        raise ValueError(f"unknown geometry {geometry!r}; choose one of {', '.join(GEOMETRIES)}")
    if geometry == "resize":
        return None
    if geometry != "auto":
        return FRAMES[geometry]
    for frame in (FRAMES["celeba"], FRAMES["celeba-hq"]):
        if abs((width / height) / (frame.width / frame.height) - 1.0) <= ASPECT_TOLERANCE:
            return frame
    raise ValueError(f"{name}: {width}x{height} is neither CelebA's aligned 178:218 frame nor a square "
                     f"(CelebA-HQ / FFHQ) face crop, so --geometry auto cannot tell how the face is "
                     f"cropped; pass --geometry celeba or --geometry celeba-hq to say which frame it is "
                     f"in, or --geometry resize to stretch it to the model input as it is")


def map_to_frame(image: Image.Image, source: FaceFrame, target: FaceFrame,
                 size: tuple[int, int]) -> Image.Image:
    """``image``, a face in ``source``'s frame, as an RGB image of ``size`` = (height, width)
    showing ``target``'s frame.

    ``image`` may have any resolution with ``source``'s aspect ratio (``source`` is scaled to
    ``image.size`` with :meth:`FaceFrame.scaled_to`, which raises ``ValueError`` otherwise) and any
    PIL mode (:func:`common.data.dataset.image_to_rgb`). A similarity transform (uniform scale and
    translation, no rotation) maps the source's eye midpoint and distance onto the target's; the
    target frame is then resized to ``size`` as training resizes it (per axis, so a model trained
    on CelebA's 178x218 frame stretched to 224x224 gets the same stretch). Both steps together are
    one bilinear ``Image.resize`` of the target frame's rectangle in the source image (antialiased:
    the filter widens with the shrink factor); where that rectangle leaves the image, the border
    pixels are replicated (edge padding), so no black border appears. With ``source == target``
    this is exactly ``image.resize((width, height), BILINEAR)``.
    """
    height, width = (int(value) for value in size)
    if height <= 0 or width <= 0:
        raise ValueError(f"output size (height, width) must be positive, got {tuple(size)}")
    image = image_to_rgb(image, "<image given to map_to_frame>")
    placed = source.scaled_to(*image.size)
    scale = placed.eye_distance / target.eye_distance  # source pixels per target-frame pixel
    # the target frame's rectangle in the source image, in continuous coordinates (pixel edges at
    # whole numbers, so pixel-index coordinate x is x + 0.5 here)
    left = placed.eye_midpoint[0] + 0.5 - (target.eye_midpoint[0] + 0.5) * scale
    top = placed.eye_midpoint[1] + 0.5 - (target.eye_midpoint[1] + 0.5) * scale
    box = (left, top, left + target.width * scale, top + target.height * scale)
    # the bilinear filter reaches max(shrink factor, 1) source pixels beyond each sample point
    margin = math.ceil(max(target.width * scale / width, target.height * scale / height, 1.0)) + 1
    pixels = np.asarray(image)
    rows = _padded_span(box[1], box[3], pixels.shape[0], margin)
    columns = _padded_span(box[0], box[2], pixels.shape[1], margin)
    region = np.pad(pixels[rows[0]:rows[1], columns[0]:columns[1]],
                    ((rows[2], rows[3]), (columns[2], columns[3]), (0, 0)), mode="edge")
    origin_x, origin_y = columns[0] - columns[2], rows[0] - rows[2]
    region_height, region_width = region.shape[:2]
    region_box = (max(box[0] - origin_x, 0.0), max(box[1] - origin_y, 0.0),
                  min(box[2] - origin_x, region_width), min(box[3] - origin_y, region_height))
    return Image.fromarray(region).resize((width, height), Image.Resampling.BILINEAR, box=region_box)


def _padded_span(low: float, high: float, size: int, margin: int) -> tuple[int, int, int, int]:
    """Along one axis of an image of ``size`` pixels: ``(start, stop, before, after)``, the pixels to
    crop and how many edge pixels to add on each side so that ``[low, high]`` plus ``margin`` pixels
    is covered wherever it leaves the image (inside the image the crop reaches ``margin`` beyond)."""
    start = min(max(math.floor(low) - margin, 0), size - 1)
    stop = max(min(math.ceil(high) + margin, size), start + 1)
    before = max(math.ceil(start - low - _BORDER_EPSILON), 0)
    after = max(math.ceil(high - stop - _BORDER_EPSILON), 0)
    return start, stop, before + margin if before else 0, after + margin if after else 0


# --------------------------------------------------------------------------- prediction pass


@dataclass
class InferenceResult:
    """What :func:`run_inference` read and computed.

    Attributes:
        paths: the images that were read, in input order (as given).
        outputs: ``(len(paths), ...)`` float32, ``model_fn``'s outputs concatenated; row ``i``
            belongs to ``paths[i]``.
        unreadable: the images skipped as corrupt, truncated or empty, in input order.
    """

    paths: list[Path]
    outputs: np.ndarray
    unreadable: list[Path]


class _ImageFiles(Dataset):
    """``{"image": preprocess(upright RGB image), "index": i}`` per file; ``None`` when unreadable."""

    def __init__(self, paths: Sequence[Path], preprocess: Callable[[Image.Image], torch.Tensor]):
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict | None:
        path = self.paths[index]
        image = decode_image(path)
        if image is None:
            return None
        tensor = self.preprocess(image_to_rgb(ImageOps.exif_transpose(image), path))
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"preprocess must return a torch.Tensor, got {type(tensor).__name__} for {path}")
        return {"image": tensor, "index": index}


def _collate_readable(samples: list[dict | None]) -> tuple[int, dict | None]:
    """``(number of files tried, the readable samples collated)``; ``None`` when none was readable."""
    kept = [sample for sample in samples if sample is not None]
    return len(samples), (default_collate(kept) if kept else None)


def _to_float32(output: torch.Tensor | np.ndarray) -> np.ndarray:
    """``model_fn``'s output as a float32 numpy array on the CPU."""
    if isinstance(output, torch.Tensor):
        return output.detach().to("cpu", torch.float32).numpy()
    return np.asarray(output, dtype=np.float32)


def _name_some(paths: Sequence[Path]) -> str:
    """The first :data:`UNREADABLE_NAMES_LIMIT` paths, comma-separated, and how many more there are."""
    names = ", ".join(str(path) for path in paths[:UNREADABLE_NAMES_LIMIT])
    return names + (f", ... ({len(paths) - UNREADABLE_NAMES_LIMIT} more)"
                    if len(paths) > UNREADABLE_NAMES_LIMIT else "")


def run_inference(paths: Sequence[Path], preprocess: Callable[[Image.Image], torch.Tensor],
                  model_fn: Callable[[torch.Tensor], torch.Tensor | np.ndarray], *, batch_size: int = 32,
                  num_workers: int = 0, progress: bool = True, description: str = "images",
                  device: str | torch.device | None = None) -> InferenceResult:
    """Run ``model_fn`` over the images at ``paths`` in batches, in order.

    Each file is decoded (:func:`common.data.dataset.decode_image`), turned upright by its EXIF
    orientation (``ImageOps.exif_transpose``), converted to 8-bit RGB
    (:func:`common.data.dataset.image_to_rgb`) and given to ``preprocess``, which returns the
    model's input tensor for one image (e.g. :func:`map_to_frame`, then to a tensor, normalised).
    The tensors are stacked ``batch_size`` at a time by a DataLoader (``num_workers`` processes;
    with workers, ``preprocess`` must be picklable unless processes fork) and given to
    ``model_fn`` under ``torch.inference_mode()``; it returns one row per image (tensor or array).

    Corrupt, truncated and empty files are skipped and listed in ``InferenceResult.unreadable``;
    at the end one logging warning gives their count and names (the first 20). A missing file, an
    image over PIL's decompression-bomb limit or an unsupported pixel mode raises, as in training.

    Args:
        device: where batches go before ``model_fn`` (``"auto"``: :func:`common.gpu.select_device`);
            ``None`` leaves them on the CPU for ``model_fn`` to move.
        progress: show a tqdm bar (``description`` labels it), counting files.

    Raises:
        ValueError: no paths, ``batch_size < 1``, ``model_fn`` returned a number of rows other
            than the batch's, or no image was readable (the count is given).
    """
    paths = [Path(path) for path in paths]
    if not paths:
        raise ValueError("run_inference: no images given")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if isinstance(device, str):
        device = select_device(device)
    loader = DataLoader(_ImageFiles(paths, preprocess), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=_collate_readable,
                        pin_memory=device is not None and device.type == "cuda")
    read: list[int] = []
    outputs: list[np.ndarray] = []
    with tqdm(total=len(paths), desc=description, unit="image", disable=not progress) as bar:
        for tried, batch in loader:
            bar.update(tried)
            if batch is None:
                continue
            images = batch["image"] if device is None else batch["image"].to(device, non_blocking=True)
            with torch.inference_mode():
                output = _to_float32(model_fn(images))
            if output.ndim == 0 or output.shape[0] != len(images):
                raise ValueError(f"model_fn returned shape {output.shape} for a batch of {len(images)} "
                                 f"images; it must return one row per image")
            outputs.append(output)
            read.extend(batch["index"].tolist())
    readable = set(read)
    unreadable = [path for index, path in enumerate(paths) if index not in readable]
    if not read:
        raise ValueError(f"none of the {len(paths)} image(s) could be read (all corrupt, truncated or "
                         f"empty): {_name_some(unreadable)}")
    if unreadable:
        logger.warning("skipped %d unreadable (corrupt, truncated or empty) image(s): %s",
                       len(unreadable), _name_some(unreadable))
    return InferenceResult(paths=[paths[index] for index in read], outputs=np.concatenate(outputs),
                           unreadable=unreadable)


# --------------------------------------------------------------------------- predictions table


def _image_name(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies under it (as given, else both resolved), POSIX."""
    if root is not None:
        for candidate, base in ((path, root), (path.resolve(), root.resolve())):
            try:
                return candidate.relative_to(base).as_posix()
            except ValueError:
                continue
    return path.as_posix()


def _cell(value: object, digits: int) -> str:
    """A CSV cell: floats with ``digits`` decimals, anything else as ``str`` gives it."""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.{digits}f}"
    return str(value)


def write_predictions_csv(path: str | os.PathLike, result_paths: Sequence[Path], columns: Sequence[str],
                          values: np.ndarray, *, root: Path | None = None,
                          extra: Mapping[str, Sequence] | None = None, digits: int = 6) -> Path:
    """Write one CSV row per image: ``image``, then the ``extra`` columns, then ``columns``.

    Args:
        path: the CSV file; its folder is created. Written atomically (a temporary file in the
            same folder, then ``os.replace``), so a reader never sees half a file.
        result_paths: the images (``InferenceResult.paths``); the ``image`` cell is the path
            relative to ``root`` when given and the image lies under it, else the path as given,
            with ``/`` separators.
        columns: one name per column of ``values``.
        values: ``(len(result_paths), len(columns))``; floats are written with ``digits`` decimals.
        extra: further columns by name (e.g. a predicted label), each one cell per image, placed
            after ``image``; float cells are formatted like ``values``.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        ValueError: ``values`` or an ``extra`` column does not have one row per image and one
            column per name, or a column name repeats.
    """
    path = Path(path)
    root = None if root is None else Path(root)
    values = np.asarray(values)
    columns = [str(column) for column in columns]
    n = len(result_paths)
    if values.shape != (n, len(columns)):
        raise ValueError(f"values has shape {values.shape}, expected ({n}, {len(columns)}): one row per "
                         f"image and one column per name in columns")
    extra_columns = {str(name): list(cells) for name, cells in (extra or {}).items()}
    for name, cells in extra_columns.items():
        if len(cells) != n:
            raise ValueError(f"extra column {name!r} has {len(cells)} cells for {n} images")
    header = ["image", *extra_columns, *columns]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ValueError(f"column names repeat: {repeated}")
    rows = [[_image_name(Path(image), root),
             *(_cell(cells[i], digits) for cells in extra_columns.values()),
             *(_cell(value, digits) for value in values[i])]
            for i, image in enumerate(result_paths)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp_path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([header, *rows])
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path
