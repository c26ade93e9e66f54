"""The image inputs FID and DFN accept, turned into batches of float RGB tensors in [0, 255].

Accepted:
* a folder (every jpg/png/webp below it, sorted by relative path) or a list of image files;
  unreadable or truncated files are skipped, counted in ``ImageSource.skipped`` and reported in one
  warning, never fatal;
* a ``torch.Tensor`` or ``numpy.ndarray`` of shape ``(N, 3, H, W)`` or ``(N, H, W, 3)``: uint8 in
  [0, 255], or floating point in [0, 1] (the ``FaceDataset`` convention; map generator outputs in
  [-1, 1] with ``(x + 1) / 2`` first).
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from common.data.folder import list_images

#: Slack for float inputs that leave [0, 1] by rounding (e.g. bilinear resizing).
_FLOAT_RANGE_TOLERANCE = 1e-3


class CorruptImageWarning(UserWarning):
    """Some image files could not be decoded and were skipped."""


class ImageSource:
    """Batches over images given as a folder, a list of files or an array (see module docstring)."""

    def __init__(self, images: str | os.PathLike | Sequence[str | os.PathLike] | torch.Tensor | np.ndarray):
        self.paths: list[Path] | None = None
        self.array: torch.Tensor | np.ndarray | None = None
        self.skipped: list[Path] = []
        if isinstance(images, (str, os.PathLike)):
            path = Path(images)
            if path.is_dir():
                self.paths = list_images(path)
                if not self.paths:
                    raise ValueError(f"no jpg/jpeg/png/webp images found under {path}")
            elif path.is_file():
                self.paths = [path]
            else:
                raise FileNotFoundError(f"image folder or file not found: {path}")
        elif isinstance(images, (torch.Tensor, np.ndarray)):
            if images.ndim != 4 or 3 not in (images.shape[1], images.shape[-1]):
                raise ValueError(f"image arrays must be (N, 3, H, W) or (N, H, W, 3), got shape "
                                 f"{tuple(images.shape)}")
            dtype_ok = (images.dtype in (torch.uint8, np.uint8) or
                        (images.is_floating_point() if isinstance(images, torch.Tensor)
                         else np.issubdtype(images.dtype, np.floating)))
            if not dtype_ok:
                raise ValueError(f"image arrays must be uint8 in [0, 255] or float in [0, 1], got {images.dtype}")
            self.array = images
        elif isinstance(images, Sequence) and all(isinstance(item, (str, os.PathLike)) for item in images):
            self.paths = [Path(item) for item in images]
        else:
            raise TypeError(f"images must be a folder, a list of image files, or a 4-D tensor/array; "
                            f"got {type(images).__name__}")

    def __len__(self) -> int:
        return len(self.paths) if self.paths is not None else int(self.array.shape[0])

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, torch.Tensor | list[torch.Tensor]]]:
        """Yield ``(indices, images)``: the positions in the input and either one ``(B, 3, H, W)``
        float32 tensor or, for files of differing sizes, a list of ``(3, H, W)`` tensors; values in
        [0, 255], RGB. Skipped files are missing from ``indices``."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            if self.array is not None:
                yield np.arange(start, stop), self._array_batch(start, stop)
                continue
            indices, loaded = [], []
            for index in range(start, stop):
                image = self._read(self.paths[index])
                if image is not None:
                    indices.append(index)
                    loaded.append(image)
            if loaded:
                same_size = all(image.shape == loaded[0].shape for image in loaded)
                yield np.asarray(indices), torch.stack(loaded) if same_size else loaded
        if self.skipped:
            warnings.warn(f"skipped {len(self.skipped)} unreadable image(s), first: {self.skipped[0]}",
                          CorruptImageWarning, stacklevel=3)

    def _array_batch(self, start: int, stop: int) -> torch.Tensor:
        batch = self.array[start:stop]
        batch = torch.from_numpy(np.ascontiguousarray(batch)) if isinstance(batch, np.ndarray) else batch
        if batch.shape[1] != 3:
            batch = batch.permute(0, 3, 1, 2)
        if batch.dtype == torch.uint8:
            return batch.float()
        batch = batch.float()
        low, high = float(batch.min()), float(batch.max())
        if low < -_FLOAT_RANGE_TOLERANCE or high > 1 + _FLOAT_RANGE_TOLERANCE:
            raise ValueError(f"float images must lie in [0, 1], found [{low:.3f}, {high:.3f}] in images "
                             f"{start}..{stop - 1}; map [-1, 1] generator outputs with (x + 1) / 2")
        return batch.clamp(0, 1) * 255.0

    def _read(self, path: Path) -> torch.Tensor | None:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            self.skipped.append(path)
            return None
        return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float()
