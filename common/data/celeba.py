"""CelebA (Liu et al., ICCV 2015) in its official layout, as torchvision's ``CelebA`` expects it.

``<root>/`` holds ``list_attr_celeba.txt`` (required), ``list_eval_partition.txt``,
``identity_CelebA.txt``, ``list_bbox_celeba.txt``, ``list_landmarks_align_celeba.txt`` (optional)
and an image folder (``img_align_celeba/``, or one ``img_align_celeba*`` folder such as the
89x109 copy in ``shared/data/celeba/img_align_celeba_89x109/``). Every text file is
whitespace-separated with runs of spaces and CRLF line endings. When the image folder holds only
part of the 202,599 images, only the annotated rows whose image exists are kept.

Parsing uses pandas' C tokenizer (the 202,599-row attribute file in about half a second); when
that fast path finds anything wrong, a line-by-line scan locates the first bad line so the
``ValueError`` names the file and its 1-based line number.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from common.attributes import CELEBA_ATTRIBUTES

logger = logging.getLogger(__name__)

ATTRIBUTE_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
BBOX_FILE = "list_bbox_celeba.txt"
LANDMARKS_ALIGN_FILE = "list_landmarks_align_celeba.txt"
IMAGE_DIR = "img_align_celeba"
MASK_DIR = "parsing_parts7"

#: torchvision's published md5 of each annotation file (``torchvision.datasets.CelebA.file_list``).
CELEBA_MD5: dict[str, str] = {
    ATTRIBUTE_FILE: "75e246fa4810816ffd6ee81facbd244c",
    PARTITION_FILE: "d32c9cbf5e040fd4025c592c306e6668",
    IDENTITY_FILE: "32bd1bd63d3c78cd57e08160ec5ed1e2",
    BBOX_FILE: "00566efa6fedff7a56946cd1c10f1c16",
    LANDMARKS_ALIGN_FILE: "cc24ecafdb5b50baae59b03474781f8c",
}

BBOX_COLUMNS = ("x_1", "y_1", "width", "height")
LANDMARK_COLUMNS = ("lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
                    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y")


class ChecksumError(ValueError):
    """An annotation file's md5 differs from the published one."""


@dataclass(frozen=True, eq=False)
class CelebAAnnotations:
    """CelebA annotations joined on the image name, restricted to images that exist.

    Row ``i`` of every array describes ``image_ids[i]``. Optional files that are absent give
    ``None``. ``n_annotated`` is the number of rows in the annotation files before filtering.
    """

    root: Path
    image_dir: Path | None
    image_ids: list[str]
    attributes: np.ndarray            # (N, 40) uint8 in {0, 1}, CELEBA_ATTRIBUTES order
    attribute_names: tuple[str, ...]
    partition: np.ndarray | None      # (N,) int8: 0 train, 1 val, 2 test
    identities: np.ndarray | None     # (N,) int64 identity labels
    landmarks: np.ndarray | None      # (N, 5, 2) float32 x, y in aligned-image pixels
    bboxes: np.ndarray | None         # (N, 4) int32 x, y, w, h in in-the-wild-image pixels
    mask_dir: Path | None             # <root>/parsing_parts7 (``<stem>.png`` label images)
    n_annotated: int

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_paths(self) -> list[Path]:
        if self.image_dir is None:
            raise FileNotFoundError(f"no CelebA image folder was found under {self.root}")
        return [self.image_dir / image_id for image_id in self.image_ids]

    def mask_paths(self) -> list[Path] | None:
        if self.mask_dir is None:
            return None
        return [self.mask_dir / (os.path.splitext(image_id)[0] + ".png") for image_id in self.image_ids]

    def subset(self, indices: Sequence[int] | np.ndarray) -> "CelebAAnnotations":
        """Rows ``indices`` (in that order) of every per-image field."""
        indices = np.asarray(indices, dtype=np.int64)

        def take(array):
            return None if array is None else array[indices]

        return dataclasses.replace(
            self, image_ids=[self.image_ids[i] for i in indices], attributes=self.attributes[indices],
            partition=take(self.partition), identities=take(self.identities),
            landmarks=take(self.landmarks), bboxes=take(self.bboxes))


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    return path


def _first_lines(path: Path, n: int) -> list[str]:
    with open(path, "r", encoding="utf-8", newline="") as handle:
        return [handle.readline() for _ in range(n)]


def _read_count_line(path: Path, line: str) -> int:
    token = line.strip()
    if not token.isdigit():
        raise ValueError(f"{path}:1: expected the row count (is the count line missing?), got "
                         f"{line.strip()!r}")
    return int(token)


def _raise_on_duplicate_names(path: Path, header_lines: int, image_ids: list[str]) -> None:
    """Raise ``ValueError(path:line: ...)`` naming both lines of the first image listed twice."""
    duplicated = pd.Index(image_ids).duplicated()
    if not duplicated.any():
        return
    image_id = image_ids[int(np.flatnonzero(duplicated)[0])]
    line_numbers = []
    with open(path, "r", encoding="utf-8", newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line_number > header_lines and line.split()[:1] == [image_id]:
                line_numbers.append(line_number)
                if len(line_numbers) == 2:
                    break
    first, second = line_numbers
    raise ValueError(f"{path}:{second}: image {image_id!r} is listed again (first at {path}:{first})")


def _scan_for_bad_line(path: Path, header_lines: int, n_values: int, kind: type,
                       allowed: frozenset[int] | None) -> None:
    """Raise ``ValueError(path:line: ...)`` for the first malformed row (slow path, errors only)."""
    with open(path, "r", encoding="utf-8", newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line_number <= header_lines or not line.strip():
                continue
            fields = line.split()
            if len(fields) != n_values + 1:
                raise ValueError(f"{path}:{line_number}: expected an image name and {n_values} values, "
                                 f"got {len(fields)} fields")
            for column, token in enumerate(fields[1:], start=2):
                try:
                    value = kind(token)
                    if not math.isfinite(value):
                        raise ValueError(token)
                except ValueError:
                    raise ValueError(f"{path}:{line_number}: column {column} is {token!r}, "
                                     f"not {'an integer' if kind is int else 'a number'}") from None
                if allowed is not None and value not in allowed:
                    raise ValueError(f"{path}:{line_number}: column {column} is {token!r}, "
                                     f"expected one of {sorted(allowed)}")


def _read_table(path: Path, *, header_lines: int, n_values: int, kind: type = int,
                allowed: frozenset[int] | None = None) -> tuple[list[str], np.ndarray]:
    """Rows ``<image> <n_values values>`` after ``header_lines`` lines -> (names, (N, n_values)).

    An image name listed twice raises ``ValueError`` naming both lines."""
    try:
        frame = pd.read_csv(path, sep=r"\s+", header=None, skiprows=header_lines, dtype={0: str},
                            engine="c")
    except pd.errors.EmptyDataError:
        return [], np.zeros((0, n_values), dtype=np.int64 if kind is int else np.float64)
    except (pd.errors.ParserError, ValueError):
        frame = None
    if frame is not None and frame.shape[1] == n_values + 1:
        values = frame.iloc[:, 1:]
        is_kind = pd.api.types.is_integer_dtype if kind is int else pd.api.types.is_numeric_dtype
        numeric = all(is_kind(dtype) for dtype in values.dtypes)
        if numeric:
            array = values.to_numpy()
            valid = not np.isnan(array).any() if kind is float else True
            if valid and allowed is not None:
                is_allowed = np.zeros(array.shape, dtype=bool)
                for value in allowed:  # a few equality passes are ~10x faster than np.isin here
                    is_allowed |= array == value
                valid = bool(is_allowed.all())
            if valid:
                image_ids = frame[0].tolist()
                _raise_on_duplicate_names(path, header_lines, image_ids)
                return image_ids, array
    _scan_for_bad_line(path, header_lines, n_values, kind, allowed)
    raise ValueError(f"{path}: could not be parsed as rows of an image name and {n_values} values")


def _check_count(path: Path, declared: int, found: int) -> None:
    if declared != found:
        raise ValueError(f"{path}:1: the count line says {declared} rows but the file has {found}")


def read_attribute_file(path: str | os.PathLike) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """Parse a ``list_attr_celeba.txt``-style file (also CelebAMask-HQ's and LFWA's copies).

    Line 1 is the row count, line 2 the attribute names, then ``<image> <v_1> .. <v_K>`` with
    ``v`` in {-1, 1}. Returns ``(image_ids, attributes uint8 (N, K) in {0, 1}, names)``.
    """
    path = _require_file(Path(path))
    count_line, names_line = _first_lines(path, 2)
    declared = _read_count_line(path, count_line)
    names = tuple(names_line.split())
    if not names:
        raise ValueError(f"{path}:2: expected the attribute names, got an empty line")
    if len(names) > 1 and set(names[1:]) <= {"-1", "1"}:
        raise ValueError(f"{path}:2: expected the attribute names, got a data row for {names[0]!r} "
                         f"(is the attribute-names line missing?)")
    image_ids, values = _read_table(path, header_lines=2, n_values=len(names), allowed=frozenset({-1, 1}))
    _check_count(path, declared, len(image_ids))
    return image_ids, (values == 1).astype(np.uint8), names


def _read_headed_table(path: Path, columns: tuple[str, ...], kind: type) -> tuple[list[str], np.ndarray]:
    """Count line, header naming ``columns`` (optionally led by ``image_id``), then rows."""
    count_line, header_line = _first_lines(path, 2)
    declared = _read_count_line(path, count_line)
    header = tuple(header_line.split())
    if header[:1] == ("image_id",):
        header = header[1:]
    if header != columns:
        raise ValueError(f"{path}:2: expected the header {' '.join(columns)!r}, got {header_line.strip()!r}")
    image_ids, values = _read_table(path, header_lines=2, n_values=len(columns), kind=kind)
    _check_count(path, declared, len(image_ids))
    return image_ids, values


def read_partition_file(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """``list_eval_partition.txt``: ``<image> <0|1|2>`` (train / val / test) -> int8 (N,)."""
    image_ids, values = _read_table(_require_file(Path(path)), header_lines=0, n_values=1,
                                    allowed=frozenset({0, 1, 2}))
    return image_ids, values[:, 0].astype(np.int8)


def read_identity_file(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """``identity_CelebA.txt``: ``<image> <identity>`` -> int64 (N,)."""
    image_ids, values = _read_table(_require_file(Path(path)), header_lines=0, n_values=1)
    return image_ids, values[:, 0].astype(np.int64)


def read_bbox_file(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """``list_bbox_celeba.txt``: count, ``image_id x_1 y_1 width height``, rows -> int32 (N, 4)."""
    image_ids, values = _read_headed_table(_require_file(Path(path)), BBOX_COLUMNS, int)
    return image_ids, values.astype(np.int32)


def read_landmarks_file(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """``list_landmarks_align_celeba.txt``: count, 10 column names, rows -> float32 (N, 5, 2) x, y."""
    image_ids, values = _read_headed_table(_require_file(Path(path)), LANDMARK_COLUMNS, float)
    return image_ids, values.astype(np.float32).reshape(-1, 5, 2)


def file_md5(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_celeba_md5(root: str | os.PathLike) -> None:
    """Check every present annotation file under ``root`` against ``CELEBA_MD5``."""
    root = Path(root)
    for name, expected in CELEBA_MD5.items():
        path = root / name
        if not path.is_file():
            continue
        got = file_md5(path)
        if got != expected:
            raise ChecksumError(f"{path}: md5 mismatch, expected {expected} (torchvision's published "
                                f"checksum), got {got}")


def find_celeba_image_dir(root: str | os.PathLike) -> Path:
    """``<root>/img_align_celeba/``, else the single ``<root>/img_align_celeba*`` folder."""
    root = Path(root)
    official = root / IMAGE_DIR
    if official.is_dir():
        return official
    candidates = sorted(path for path in root.glob(IMAGE_DIR + "*") if path.is_dir())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise FileNotFoundError(f"no CelebA image folder ({IMAGE_DIR}/ or {IMAGE_DIR}*/) in {root}")
    raise ValueError(f"several CelebA image folders in {root}: {[c.name for c in candidates]}; "
                     f"pass image_dir= to choose one")


def _align(reference_ids: list[str], image_ids: list[str], values: np.ndarray, path: Path) -> np.ndarray:
    """Reorder ``values`` (rows of ``image_ids``) to the order of ``reference_ids``."""
    if image_ids == reference_ids:
        return values
    positions = pd.Index(image_ids).get_indexer(reference_ids)
    if (positions < 0).any():
        missing = reference_ids[int(np.flatnonzero(positions < 0)[0])]
        raise ValueError(f"{path}: no row for image {missing!r} (listed in {ATTRIBUTE_FILE}); "
                         f"{int((positions < 0).sum())} images are missing")
    return values[positions]


def read_celeba(root: str | os.PathLike, image_dir: str | os.PathLike | None = None,
                verify_md5: bool = False, require_images: bool = True) -> CelebAAnnotations:
    """Read CelebA's official annotation files under ``root`` and join them on the image name.

    ``image_dir`` defaults to :func:`find_celeba_image_dir`. With ``require_images`` (default) the
    folder must exist and only rows whose image file is in it are kept (logged as "using K of N
    annotated images"); with ``require_images=False`` every annotated row is kept and no image
    folder is needed (label statistics). ``verify_md5`` checks the files against ``CELEBA_MD5``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CelebA root folder not found: {root}")
    if verify_md5:
        verify_celeba_md5(root)
    attribute_path = root / ATTRIBUTE_FILE
    image_ids, attributes, names = read_attribute_file(attribute_path)
    if names != CELEBA_ATTRIBUTES:
        raise ValueError(f"{attribute_path}:2: attribute names differ from CelebA's 40 "
                         f"(common.attributes.CELEBA_ATTRIBUTES)")
    n_annotated = len(image_ids)

    optional = {}
    for key, name, reader in (("partition", PARTITION_FILE, read_partition_file),
                              ("identities", IDENTITY_FILE, read_identity_file),
                              ("bboxes", BBOX_FILE, read_bbox_file),
                              ("landmarks", LANDMARKS_ALIGN_FILE, read_landmarks_file)):
        path = root / name
        if path.is_file():
            file_ids, values = reader(path)
            optional[key] = _align(image_ids, file_ids, values, path)
        else:
            optional[key] = None

    if image_dir is not None:
        image_dir = Path(image_dir)
        if not image_dir.is_dir() and require_images:
            raise FileNotFoundError(f"CelebA image folder not found: {image_dir}")
    elif require_images:
        image_dir = find_celeba_image_dir(root)
    else:
        try:
            image_dir = find_celeba_image_dir(root)
        except FileNotFoundError:
            image_dir = None

    mask_dir = root / MASK_DIR
    annotations = CelebAAnnotations(
        root=root, image_dir=image_dir, image_ids=image_ids, attributes=attributes,
        attribute_names=names, mask_dir=mask_dir if mask_dir.is_dir() else None,
        n_annotated=n_annotated, **optional)
    if not require_images:
        return annotations

    present = {entry.name for entry in os.scandir(image_dir)}
    keep = np.fromiter((image_id in present for image_id in image_ids), dtype=bool, count=n_annotated)
    n_used = int(keep.sum())
    if n_used == 0:
        raise FileNotFoundError(f"none of the {n_annotated} images annotated in {attribute_path} "
                                f"is in {image_dir}")
    logger.info("using %d of %d annotated images (%s)", n_used, n_annotated, image_dir)
    if n_used == n_annotated:
        return annotations
    return annotations.subset(np.flatnonzero(keep))
