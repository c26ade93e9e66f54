"""Label transfer to other faces, Le & Lee §3.2 (FFHQ, Fig. 4): ``python -m celeba_ffhq_labels label``.

For every image (files or folders, recursive): the 40 soft labels (sigmoid outputs) and the 40 hard
labels (soft label >= the attribute's threshold, searched on the validation set), on the shared
path for users' own images, ``common.inference``:

decode (any PIL mode, EXIF rotation applied; a corrupt file is skipped, counted and named) ->
**geometry step**: the face is mapped from the frame it is cropped in to CelebA's aligned frame,
the one the model was trained on (``common.inference.map_to_frame``) -> bilinear resize to the
model input (both in one resize) -> ImageNet normalisation -> the network -> sigmoid.

Why the geometry step: high-resolution face sets crop the face much tighter than CelebA's aligned
frame. In a 256x256 CelebA-HQ face the eye centres are about 64 px apart at y = 121; in CelebA's
178x218 frame about 39 px apart at y = 111 (``common.inference.FRAMES``). A model trained on CelebA
sees an HQ face resized as it is at a larger scale than any training face, with its chin and hair
cut off. ``--geometry`` says which frame the images are in: ``auto`` (by aspect ratio: 178:218 is
CelebA's aligned frame, square is CelebA-HQ's / FFHQ's; anything else is an error naming the file),
``celeba``, ``celeba-hq``, or ``resize`` (no geometry step: stretch the image to the input).

CSV columns: ``image`` (path relative to the folder given), ``status`` (``ok`` / ``unreadable``),
``geometry`` (the frame assumed, or ``resize``), ``soft_<Attribute>`` x 40 (6 decimals),
``hard_<Attribute>`` x 40 (0/1). Unreadable files keep their row, with empty label cells.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import ExifTags, Image

from common.attributes import CELEBA_ATTRIBUTES
from common.inference import (FRAMES, GEOMETRIES, FaceFrame, collect_images, frame_for_geometry, map_to_frame,
                              run_inference, write_predictions_csv)
from common.metrics import apply_thresholds

from celeba_ffhq_labels.config import IMAGENET_MEAN, IMAGENET_STD, SHIPPED_MODEL_NAME, ModelConfig
from celeba_ffhq_labels.models import AttributeClassifier, load_model_file, model_thresholds

#: The labeller shipped with the package: the classifier of the committed real-data run at CPU
#: scale (the reduced SE-ResNeXt), exported with ``python -m celeba_ffhq_labels export``. Not
#: shipped yet: ``label`` then says so and how to train one.
SHIPPED_MODEL = Path(__file__).resolve().parent / "pretrained" / SHIPPED_MODEL_NAME
#: The frame every model of this package was trained on (CelebA's aligned images, resized).
TRAINING_FRAME: FaceFrame = FRAMES["celeba"]

STATUS_OK = "ok"
STATUS_UNREADABLE = "unreadable"
SOFT_COLUMNS: tuple[str, ...] = tuple(f"soft_{name}" for name in CELEBA_ATTRIBUTES)
HARD_COLUMNS: tuple[str, ...] = tuple(f"hard_{name}" for name in CELEBA_ATTRIBUTES)
CSV_COLUMNS: tuple[str, ...] = ("image", "status", "geometry") + SOFT_COLUMNS + HARD_COLUMNS
#: EXIF orientations that turn the stored image by 90 degrees (its width and height swap).
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


def no_shipped_model_message(path: Path | None = None) -> str:
    """What ``label`` says when no ``--checkpoint`` is given and no labeller ships yet."""
    path = SHIPPED_MODEL if path is None else path
    return (f"no labeller ships with this package yet (expected {path}). Train one and pass it: "
            f"python -m celeba_ffhq_labels reproduce --scale cpu --data-root ../shared/data --out "
            f"results/celeba_ffhq_labels_cpu (about an hour on 2 CPU cores; --scale smoke trains a "
            f"toy one on synthetic faces in a minute), then label --checkpoint "
            f"results/celeba_ffhq_labels_cpu/classifier.pt (or the results folder itself)")


def geometry_name(frame: FaceFrame | None) -> str:
    """The CSV's ``geometry`` cell: the frame's name, or ``"resize"``."""
    return "resize" if frame is None else frame.name


def upright_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of the image at ``path`` once its EXIF rotation is applied, from its header
    alone; ``None`` when PIL cannot open it (it is then reported as unreadable when decoded)."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(ExifTags.Base.Orientation)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def image_geometries(paths: Sequence[Path], geometry: str) -> list[str | None]:
    """The geometry of every image before anything is decoded (``None`` where the header cannot be
    read), so that a folder with images ``auto`` cannot place fails at once, naming all of them
    (the first 20), instead of after a long run."""
    names: list[str | None] = []
    failures: list[str] = []
    for path in paths:
        size = upright_size(path)
        if size is None:
            names.append(None)
            continue
        try:
            names.append(geometry_name(frame_for_geometry(*size, geometry, path)))
        except ValueError:
            names.append(None)
            failures.append(f"{path} ({size[0]}x{size[1]})")
    if failures:
        listed = "; ".join(failures[:20]) + (f"; ... ({len(failures) - 20} more)" if len(failures) > 20 else "")
        raise ValueError(f"--geometry {geometry}: {len(failures)} image(s) are neither CelebA's aligned "
                         f"178:218 frame nor square: {listed}. Pass --geometry celeba or celeba-hq to "
                         f"say which frame they are in, or --geometry resize to stretch them as they are")
    return names


@dataclass(frozen=True)
class LabelledImages:
    """What :meth:`Labeller.label` wrote: every image found, its soft / hard labels, the unreadable."""

    csv_path: Path
    images: list[str]                 # every image found, as named in the CSV
    soft_labels: np.ndarray           # (n_readable, 40) float32 for the readable images, in order
    hard_labels: np.ndarray           # (n_readable, 40) uint8
    readable: np.ndarray              # (n_images,) bool
    geometries: list[str]             # (n_images,) the frame assumed per image ("" when unreadable)
    thresholds: np.ndarray            # (40,)

    @property
    def unreadable(self) -> list[str]:
        return [image for image, ok in zip(self.images, self.readable) if not ok]

    def label_rows(self, images: list[str]) -> np.ndarray:
        """Rows of ``soft_labels`` / ``hard_labels`` holding ``images`` (names, readable ones)."""
        row_of = {image: row for row, image in
                  enumerate(image for image, ok in zip(self.images, self.readable) if ok)}
        missing = [image for image in images if image not in row_of]
        if missing:
            raise KeyError(f"not among the readable images: {missing[:3]}")
        return np.array([row_of[image] for image in images], dtype=np.int64)


class Labeller:
    """A trained classifier with its input size, normalisation and validation thresholds: prepares
    images as training did (after the geometry step) and labels them."""

    def __init__(self, model: AttributeClassifier, model_config: ModelConfig, thresholds: np.ndarray, *,
                 geometry: str = "auto", source: str = "<in memory>"):
        if geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {geometry!r}; choose one of {', '.join(GEOMETRIES)}")
        thresholds = np.asarray(thresholds, dtype=np.float64)
        if thresholds.shape != (len(CELEBA_ATTRIBUTES),):
            raise ValueError(f"need {len(CELEBA_ATTRIBUTES)} thresholds, got shape {thresholds.shape}")
        self.model = model.eval()
        self.model_config = model_config
        self.thresholds = thresholds
        self.geometry = geometry
        self.source = source
        self.input_size = tuple(int(side) for side in model_config.input_size)
        self.mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None, *, geometry: str = "auto",
                  device: str | torch.device = "cpu",
                  thresholds: np.ndarray | None = None) -> "Labeller":
        """The classifier in ``path`` (a shipped model, a ``classifier.pt`` or a results folder:
        ``models.load_model_file``); ``None``: the shipped :data:`SHIPPED_MODEL`, and when it is
        absent a ``FileNotFoundError`` saying how to train one. ``thresholds`` replace the file's."""
        if path is None:
            if not SHIPPED_MODEL.is_file():
                raise FileNotFoundError(no_shipped_model_message(SHIPPED_MODEL))
            path = SHIPPED_MODEL
        model, config, metadata = load_model_file(path)
        model = model.to(device)
        return cls(model, config, model_thresholds(model, metadata) if thresholds is None else thresholds,
                   geometry=geometry, source=str(path))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, image: Image.Image, geometry: str | None = None) -> torch.Tensor:
        """An upright RGB face -> the model's normalised (3, H, W) input: the geometry step (the
        face mapped from its frame to CelebA's, then resized to the input in the same bilinear
        resize; with CelebA's frame this is exactly training's resize) or, for ``"resize"``, a
        bilinear stretch to the input; then [0, 1] and ImageNet normalisation, as in training."""
        height, width = self.input_size
        frame = frame_for_geometry(image.width, image.height, geometry or self.geometry)
        if frame is None:
            image = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
        else:
            image = map_to_frame(image, frame, TRAINING_FRAME, (height, width))
        channels_first = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
        tensor = torch.from_numpy(np.multiply(channels_first, np.float32(1 / 255), dtype=np.float32))
        return (tensor - self.mean) / self.std

    def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) prepared images -> (B, 40) sigmoid outputs."""
        return torch.sigmoid(self.model(batch.to(self.device)).float())

    def label(self, inputs: str | os.PathLike | Sequence[str | os.PathLike], out_csv: str | os.PathLike, *,
              batch_size: int = 64, num_workers: int = 0, progress: bool = True) -> LabelledImages:
        """Soft and hard labels for every image of ``inputs`` (files and folders, recursive), written
        to ``out_csv`` (one row per image found, unreadable ones included)."""
        inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        paths = collect_images(inputs)
        geometries = image_geometries(paths, self.geometry)
        geometry = self.geometry
        result = run_inference(paths, lambda image: self.preprocess(image, geometry), self.probabilities,
                               batch_size=batch_size, num_workers=num_workers, progress=progress,
                               description="faces")
        read = {path: row for row, path in enumerate(result.paths)}
        readable = np.array([path in read for path in paths], dtype=bool)
        soft = result.outputs.astype(np.float32)
        hard = apply_thresholds(soft, self.thresholds)
        cells = np.full((len(paths), 2 * len(CELEBA_ATTRIBUTES)), "", dtype=object)
        for index, path in enumerate(paths):
            row = read.get(path)
            if row is not None:
                cells[index] = [float(value) for value in soft[row]] + [int(value) for value in hard[row]]
        root = Path(inputs[0]) if len(inputs) == 1 and Path(inputs[0]).is_dir() else \
            Path(os.path.commonpath([str(path.resolve().parent) for path in paths]))
        status = [STATUS_OK if ok else STATUS_UNREADABLE for ok in readable]
        geometry_cells = [(name or "") if ok else "" for name, ok in zip(geometries, readable)]
        csv_path = write_predictions_csv(out_csv, paths, SOFT_COLUMNS + HARD_COLUMNS, cells, root=root,
                                         extra={"status": status, "geometry": geometry_cells})
        with open(csv_path, newline="", encoding="utf-8") as handle:
            names = [row[0] for row in list(csv.reader(handle))[1:]]
        return LabelledImages(csv_path=csv_path, images=names, soft_labels=soft, hard_labels=hard,
                              readable=readable, geometries=geometry_cells, thresholds=self.thresholds)


def write_hq_faces(folder: str | os.PathLike, n: int, seed: int, size: tuple[int, int],
                   with_corrupt_file: bool = True) -> tuple[list[Path], np.ndarray]:
    """Synthetic "HQ" faces (``common.synthetic.render_face`` at ``size`` = (height, width), larger
    than CelebA's, in CelebA's aligned frame) as PNG files, the stand-in for FFHQ in the smoke
    pipeline; plus, when asked, one truncated file that shows how unreadable images appear in the CSV.

    Returns (the face files, their true attributes (n, 40)).
    """
    from common.synthetic import render_face

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths, attributes = [], []
    height, width = size
    for index in range(n):
        face = render_face(index, seed=seed, height=height, width=width)
        path = folder / f"hq_{index:05d}.png"
        Image.fromarray(face.image).save(path)
        paths.append(path)
        attributes.append(face.attributes)
    if with_corrupt_file:
        corrupt = folder / "unreadable_example.png"
        corrupt.write_bytes(paths[0].read_bytes()[:200])  # a PNG cut off after its header
    return paths, np.asarray(attributes, dtype=np.uint8).reshape(n, len(CELEBA_ATTRIBUTES))
