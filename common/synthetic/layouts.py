"""Write synthetic faces in the official layouts of CelebA, Helen (Smith et al.) and MTFL.

Every writer renders into a temporary sibling folder and renames it into place, with a
``synthetic.json`` that records the parameters, :data:`GENERATOR_VERSION` and a digest of the
generator's source; a folder whose ``synthetic.json`` matches is reused as is, so an interrupted
write (or one by an older generator) is never mistaken for a finished one. All text files use CRLF, like the originals."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from common.attributes import ATTRIBUTE_INDEX, CELEBA_ATTRIBUTES, CELEBA_LANDMARKS
from common.synthetic.render import (
    GENERATOR_VERSION, IMAGES_PER_IDENTITY, TEMPLATE_HEIGHT, TEMPLATE_WIDTH, render_face)

JPEG_QUALITY = 95
#: Each identity falls in one of ten slots: 0-7 train, 8 validation, 9 test (80/10/10).
_SPLIT_OF_SLOT = (0, 0, 0, 0, 0, 0, 0, 0, 1, 2)
#: MTFL's head-pose codes 1..5 (left profile .. right profile) and their rates in MTFL's
#: training.txt (136, 1113, 7445, 1111, 195 of 10,000 faces).
_MTFL_POSE_RATE = np.array([136, 1113, 7445, 1111, 195]) / 10000.0
#: Yaw drawn for each MTFL pose code (negative: the face turns towards the image's left).
_MTFL_POSE_YAW = (-0.9, -0.45, 0.0, 0.45, 0.9)


def identity_partition(identity: int, seed: int = 0) -> int:
    """CelebA partition code (0 train, 1 val, 2 test) of a 1-based synthetic identity.

    Ten consecutive identities fill the ten slots of ``_SPLIT_OF_SLOT`` in a seeded order,
    so every ten identities give exactly 8 / 1 / 1 and no identity spans two partitions."""
    slots = np.random.default_rng([seed, 20151211]).permutation(10)
    return _SPLIT_OF_SLOT[slots[(identity - 1) % 10]]


def _crlf(lines: Iterable[str]) -> str:
    return "".join(f"{line}\r\n" for line in lines)


def _progress(iterable, total: int, description: str, enabled: bool):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=description, unit="face")


def _write_atomically(root: Path, parameters: dict, write: Callable[[Path], None]) -> Path:
    """Reuse ``root`` when its ``synthetic.json`` equals ``parameters``; else build it anew.

    ``root`` may be absent or an empty folder; a folder holding an older synthetic dataset
    (a different ``synthetic.json``) is replaced; any other non-empty folder is refused."""
    root = Path(root)
    record = root / "synthetic.json"
    if record.is_file() and json.loads(record.read_text()) == parameters:
        return root
    if root.exists() and any(root.iterdir()) and not record.is_file():
        raise FileExistsError(f"{root} is not empty and holds no synthetic.json; "
                              "refusing to write synthetic faces over it")
    root.parent.mkdir(parents=True, exist_ok=True)
    temporary = root.parent / f".{root.name}.partial-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        write(temporary)
        (temporary / "synthetic.json").write_text(json.dumps(parameters, indent=2) + "\n")
        if root.exists() and any(root.iterdir()):
            retired = root.parent / f".{root.name}.retired-{uuid.uuid4().hex[:8]}"
            os.replace(root, retired)
            shutil.rmtree(retired, ignore_errors=True)
        os.replace(temporary, root)   # an empty ``root`` is replaced atomically
    except OSError:
        # Another process finished the same dataset first: use it if it matches.
        if record.is_file() and json.loads(record.read_text()) == parameters:
            shutil.rmtree(temporary, ignore_errors=True)
            return root
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return root


def _source_digest() -> str:
    """SHA-1 of the code that decides every pixel and label (this module, the renderer, the
    attribute marginals and their CelebA table), so a cached dataset written by an edited generator
    is never reused even when :data:`GENERATOR_VERSION` was not bumped."""
    digest = hashlib.sha1()
    for name in ("render.py", "layouts.py", "marginals.py", "celeba_statistics.py"):
        digest.update((Path(__file__).with_name(name)).read_bytes())
    return digest.hexdigest()


def _parameters(layout: str, **values) -> dict:
    return {"generator": "common.synthetic", "version": GENERATOR_VERSION, "source_sha1": _source_digest(),
            "layout": layout, "images_per_identity": IMAGES_PER_IDENTITY, **values}


def _save_jpeg(image: np.ndarray, path: Path) -> None:
    Image.fromarray(image).save(path, quality=JPEG_QUALITY)


def _face_box(mask_helen11: np.ndarray) -> tuple[int, int, int, int]:
    """``x, y, w, h`` of the face (every label except background and hair)."""
    rows = np.flatnonzero(((mask_helen11 > 0) & (mask_helen11 < 10)).any(1))
    cols = np.flatnonzero(((mask_helen11 > 0) & (mask_helen11 < 10)).any(0))
    if rows.size == 0:
        return 0, 0, mask_helen11.shape[1], mask_helen11.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


# --------------------------------------------------------------------------- CelebA
def write_celeba_layout(root: str | Path, n: int, seed: int = 0, height: int = TEMPLATE_HEIGHT,
                        width: int = TEMPLATE_WIDTH, progress: bool = False) -> Path:
    """``n`` synthetic faces in CelebA's official layout under ``root`` (returned).

    Writes ``img_align_celeba/000001.jpg ...`` (JPEG quality 95), ``list_attr_celeba.txt``,
    ``list_eval_partition.txt`` (by identity, 80/10/10), ``identity_CelebA.txt``,
    ``list_landmarks_align_celeba.txt``, ``list_bbox_celeba.txt`` (the face box in the
    aligned image: no unaligned originals exist), ``parsing_parts7/<stem>.png`` and
    ``parsing_helen11/<stem>.png`` (uint8 label maps) and ``synthetic.json``."""
    if n < 1:
        raise ValueError(f"write_celeba_layout needs n >= 1, got {n}")
    parameters = _parameters("celeba", n=n, seed=seed, height=height, width=width)

    def write(folder: Path) -> None:
        images = folder / "img_align_celeba"
        parts7 = folder / "parsing_parts7"
        helen11 = folder / "parsing_helen11"
        for directory in (images, parts7, helen11):
            directory.mkdir()
        attribute_rows, partition_rows, identity_rows, landmark_rows, bbox_rows = ([] for _ in
                                                                                    range(5))
        for index in _progress(range(n), n, "synthetic CelebA", progress):
            face = render_face(index, seed, height, width)
            stem = f"{index + 1:06d}"
            name = f"{stem}.jpg"
            _save_jpeg(face.image, images / name)
            Image.fromarray(face.mask_parts7).save(parts7 / f"{stem}.png")
            Image.fromarray(face.mask_helen11).save(helen11 / f"{stem}.png")
            signs = " ".join(f"{1 if value else -1:2d}" for value in face.attributes)
            attribute_rows.append(f"{name} {signs}")
            partition_rows.append(f"{name} {identity_partition(face.identity, seed)}")
            identity_rows.append(f"{name} {face.identity}")
            points = np.rint(face.landmarks).astype(int).ravel()
            landmark_rows.append(name + "".join(f"{value:6d}" for value in points))
            x, y, w, h = _face_box(face.mask_helen11)
            bbox_rows.append(f"{name}{x:6d}{y:4d}{w:4d}{h:4d}")
        landmark_header = " ".join(f"{point}_{axis}" for point in CELEBA_LANDMARKS
                                   for axis in "xy")
        files = {
            "list_attr_celeba.txt": [str(n), " ".join(CELEBA_ATTRIBUTES) + " "] + attribute_rows,
            "list_eval_partition.txt": partition_rows,
            "identity_CelebA.txt": identity_rows,
            "list_landmarks_align_celeba.txt": [str(n), landmark_header] + landmark_rows,
            "list_bbox_celeba.txt": [str(n), "image_id x_1 y_1 width height"] + bbox_rows,
        }
        for file_name, lines in files.items():
            (folder / file_name).write_bytes(_crlf(lines).encode())

    return _write_atomically(Path(root), parameters, write)


# --------------------------------------------------------------------------- Helen
def helen_image_id(index: int) -> str:
    """Helen-style image id (``<number>_<k>``) of synthetic face ``index``."""
    return f"{1000000 + index}_1"


def write_helen_layout(root: str | Path, n: int, seed: int = 0, height: int = TEMPLATE_HEIGHT,
                       width: int = TEMPLATE_WIDTH, progress: bool = False) -> Path:
    """``n`` faces in Smith et al.'s ``SmithCVPR2013_dataset_resized`` layout.

    ``images/<id>.jpg``, ``labels/<id>/<id>_lbl00.png .. _lbl10.png`` (one 0/255 map per
    ``HELEN11_LABELS`` entry) and the split lists ``exemplars.txt`` (train),
    ``tuning.txt`` (validation), ``testing.txt`` with rows ``k , <id>`` (identity-disjoint)."""
    if n < 1:
        raise ValueError(f"write_helen_layout needs n >= 1, got {n}")
    parameters = _parameters("helen", n=n, seed=seed, height=height, width=width)

    def write(folder: Path) -> None:
        (folder / "images").mkdir()
        splits: dict[int, list[str]] = {0: [], 1: [], 2: []}
        for index in _progress(range(n), n, "synthetic Helen", progress):
            face = render_face(index, seed, height, width)
            image_id = helen_image_id(index)
            _save_jpeg(face.image, folder / "images" / f"{image_id}.jpg")
            label_dir = folder / "labels" / image_id
            label_dir.mkdir(parents=True)
            for label in range(11):
                plane = np.where(face.mask_helen11 == label, 255, 0).astype(np.uint8)
                Image.fromarray(plane).save(label_dir / f"{image_id}_lbl{label:02d}.png")
            splits[identity_partition(face.identity, seed)].append(image_id)
        for split, file_name in ((0, "exemplars.txt"), (1, "tuning.txt"), (2, "testing.txt")):
            rows = [f"{k} , {image_id}" for k, image_id in enumerate(splits[split], start=1)]
            (folder / file_name).write_bytes(_crlf(rows).encode())

    return _write_atomically(Path(root), parameters, write)


# --------------------------------------------------------------------------- MTFL
def _mtfl_rows(folder: Path, indices: range, seed: int, sub_folder: str, separator: str,
               size_range: tuple[int, int], scale_range: tuple[float, float],
               progress: bool, description: str) -> list[str]:
    rows = []
    for index in _progress(indices, len(indices), description, progress):
        rng = np.random.default_rng([seed, index, 2])
        size = int(rng.integers(size_range[0], size_range[1] + 1))
        scale = size / 200.0 * rng.uniform(*scale_range)
        pose = int(rng.choice(5, p=_MTFL_POSE_RATE))
        yaw = _MTFL_POSE_YAW[pose] + rng.uniform(-0.1, 0.1)
        centre = size / 2 + rng.uniform(-0.08, 0.08, 2) * size
        face = render_face(index, seed, size, size, yaw=yaw,
                           placement=(scale, float(centre[0]), float(centre[1])))
        name = f"synthetic_{index + 1:06d}.jpg"
        _save_jpeg(face.image, folder / sub_folder / name)
        a = face.attributes
        codes = (2 - a[ATTRIBUTE_INDEX["Male"]], 2 - a[ATTRIBUTE_INDEX["Smiling"]],
                 2 - a[ATTRIBUTE_INDEX["Eyeglasses"]], pose + 1)
        coordinates = list(face.landmarks[:, 0]) + list(face.landmarks[:, 1])
        rows.append(f"{sub_folder}{separator}{name} "
                    + " ".join(f"{value:.6f}" for value in coordinates)
                    + " " + " ".join(str(int(code)) for code in codes))
    return rows


def write_mtfl_layout(root: str | Path, n_train: int, n_test: int, seed: int = 0,
                      progress: bool = False) -> Path:
    """Synthetic faces in MTFL's layout (Zhang et al., ECCV'14): ``training.txt`` /
    ``testing.txt`` with ``path x1..x5 y1..y5 gender smile glasses pose`` rows (1-based
    codes: gender 1 male / 2 female, smile and glasses 1 yes / 2 no, pose 1 left profile ..
    5 right profile), CRLF, a leading space on every row after the first, exactly as the
    original files. Training images are ``lfw_5590\\<name>.jpg`` (backslash, as in MTFL),
    150-250 px squares; test images ``AFLW/<name>.jpg``, 150 px. Each face is placed at a
    random offset and scale in its image, so a nose-centred crop is meaningful. Training and
    testing identities are disjoint (test indices start after the training identities)."""
    if n_train < 1 or n_test < 1:
        raise ValueError(f"write_mtfl_layout needs n_train, n_test >= 1, got {n_train}, {n_test}")
    parameters = _parameters("mtfl", n_train=n_train, n_test=n_test, seed=seed)
    test_start = -(-n_train // IMAGES_PER_IDENTITY) * IMAGES_PER_IDENTITY

    def write(folder: Path) -> None:
        (folder / "lfw_5590").mkdir()
        (folder / "AFLW").mkdir()
        training = _mtfl_rows(folder, range(n_train), seed, "lfw_5590", "\\", (150, 250),
                              (0.8, 1.15), progress, "synthetic MTFL training")
        testing = _mtfl_rows(folder, range(test_start, test_start + n_test), seed, "AFLW", "/",
                             (150, 150), (0.85, 1.1), progress, "synthetic MTFL testing")
        for file_name, rows in (("training.txt", training), ("testing.txt", testing)):
            (folder / file_name).write_bytes(("\r\n ".join(rows) + "\r\n ").encode())

    return _write_atomically(Path(root), parameters, write)
