"""CelebA parsing (official formats: count line, header, runs of spaces, CRLF) and splits."""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.attributes import CELEBA_ATTRIBUTES
from common.data import celeba, splits
from common.data.celeba import (CELEBA_MD5, ChecksumError, find_celeba_image_dir, read_attribute_file,
                                read_celeba)


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def _attribute_row(image_id: str, values) -> str:
    # The official file right-aligns each value in 3 characters: runs of spaces between fields.
    return image_id + "".join(f"{v:>3d}" for v in values)


def write_small_celeba(root: Path, n: int = 6, n_images: int | None = None, rng=None) -> dict:
    """A CelebA root in the official layout with ``n`` annotated rows and ``n_images`` JPEGs."""
    rng = rng or np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    signs = rng.choice([-1, 1], size=(n, 40))
    identities = rng.integers(1, 4, size=n)
    partition = np.arange(n) % 3
    landmarks = rng.integers(10, 60, size=(n, 10))
    bboxes = rng.integers(0, 100, size=(n, 4))
    _write(root / celeba.ATTRIBUTE_FILE, [str(n), " ".join(CELEBA_ATTRIBUTES) + " "]
           + [_attribute_row(i, s) for i, s in zip(ids, signs)])
    _write(root / celeba.PARTITION_FILE, [f"{i} {p}" for i, p in zip(ids, partition)])
    # identity file listed in a different order: the loader must join on the name
    _write(root / celeba.IDENTITY_FILE, [f"{i} {d}" for i, d in reversed(list(zip(ids, identities)))])
    _write(root / celeba.BBOX_FILE, [str(n), "image_id x_1 y_1 width height"]
           + [f"{i}    " + "   ".join(map(str, b)) for i, b in zip(ids, bboxes)])
    _write(root / celeba.LANDMARKS_ALIGN_FILE, [str(n), " ".join(celeba.LANDMARK_COLUMNS)]
           + [f"{i}  " + "  ".join(f"{v:>3d}" for v in lm) for i, lm in zip(ids, landmarks)])
    image_dir = root / "img_align_celeba"
    image_dir.mkdir(exist_ok=True)
    for image_id in ids[: n if n_images is None else n_images]:
        Image.new("RGB", (20, 24), (100, 50, 25)).save(image_dir / image_id)
    return {"ids": ids, "attributes": (signs == 1).astype(np.uint8), "identities": identities,
            "partition": partition, "landmarks": landmarks.reshape(n, 5, 2), "bboxes": bboxes}


def test_read_celeba_parses_every_official_file(tmp_path):
    truth = write_small_celeba(tmp_path)
    annotations = read_celeba(tmp_path)
    assert annotations.image_ids == truth["ids"]
    assert annotations.attributes.dtype == np.uint8
    np.testing.assert_array_equal(annotations.attributes, truth["attributes"])
    assert annotations.attribute_names == CELEBA_ATTRIBUTES
    np.testing.assert_array_equal(annotations.partition, truth["partition"])
    assert annotations.partition.dtype == np.int8
    np.testing.assert_array_equal(annotations.identities, truth["identities"])
    assert annotations.identities.dtype == np.int64
    np.testing.assert_array_equal(annotations.landmarks, truth["landmarks"])
    assert annotations.landmarks.dtype == np.float32 and annotations.landmarks.shape == (6, 5, 2)
    np.testing.assert_array_equal(annotations.bboxes, truth["bboxes"])
    assert annotations.bboxes.dtype == np.int32
    assert annotations.mask_dir is None and annotations.mask_paths() is None
    assert annotations.image_paths()[0] == tmp_path / "img_align_celeba" / "000001.jpg"
    assert annotations.n_annotated == 6


def test_optional_files_absent_give_none_and_masks_are_found(tmp_path):
    write_small_celeba(tmp_path)
    for name in (celeba.PARTITION_FILE, celeba.IDENTITY_FILE, celeba.BBOX_FILE, celeba.LANDMARKS_ALIGN_FILE):
        (tmp_path / name).unlink()
    (tmp_path / "parsing_parts7").mkdir()
    annotations = read_celeba(tmp_path)
    assert annotations.partition is None and annotations.identities is None
    assert annotations.landmarks is None and annotations.bboxes is None
    assert annotations.mask_paths()[2] == tmp_path / "parsing_parts7" / "000003.png"


def test_partial_image_folder_keeps_rows_with_images_and_logs_count(tmp_path, caplog):
    truth = write_small_celeba(tmp_path, n=10, n_images=4)
    with caplog.at_level(logging.INFO, logger="common.data.celeba"):
        annotations = read_celeba(tmp_path)
    assert len(annotations) == 4 and annotations.n_annotated == 10
    assert annotations.image_ids == truth["ids"][:4]
    np.testing.assert_array_equal(annotations.identities, truth["identities"][:4])
    np.testing.assert_array_equal(annotations.landmarks, truth["landmarks"][:4])
    assert "using 4 of 10 annotated images" in caplog.text
    assert len(read_celeba(tmp_path, require_images=False)) == 10


def test_subset_selects_rows_of_every_field(tmp_path):
    truth = write_small_celeba(tmp_path)
    part = read_celeba(tmp_path).subset([4, 1])
    assert part.image_ids == [truth["ids"][4], truth["ids"][1]]
    np.testing.assert_array_equal(part.attributes, truth["attributes"][[4, 1]])
    np.testing.assert_array_equal(part.bboxes, truth["bboxes"][[4, 1]])
    assert part.n_annotated == 6


@pytest.mark.parametrize("bad_row, message", [
    ("000003.jpg" + "  1" * 39, r"list_attr_celeba.txt:5: expected an image name and 40 values"),
    ("000003.jpg" + "  1" * 41, r"list_attr_celeba.txt:5: expected an image name and 40 values"),
    ("000003.jpg" + "  1" * 39 + "  0", r"list_attr_celeba.txt:5: column 41 is '0'"),
    ("000003.jpg" + "  x" + "  1" * 39, r"list_attr_celeba.txt:5: column 2 is 'x'"),
])
def test_malformed_attribute_line_names_file_and_line(tmp_path, bad_row, message):
    write_small_celeba(tmp_path)
    path = tmp_path / celeba.ATTRIBUTE_FILE
    lines = path.read_bytes().decode().split("\r\n")
    lines[4] = bad_row  # 1-based line 5 = the third image
    path.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(ValueError, match=message):
        read_attribute_file(path)


def test_count_line_must_match_rows(tmp_path):
    write_small_celeba(tmp_path)
    path = tmp_path / celeba.ATTRIBUTE_FILE
    path.write_bytes(path.read_bytes().replace(b"6\r\n", b"7\r\n", 1))
    with pytest.raises(ValueError, match=r"list_attr_celeba.txt:1: the count line says 7 rows but the file has 6"):
        read_attribute_file(path)


def test_malformed_partition_and_landmark_lines(tmp_path):
    write_small_celeba(tmp_path)
    partition = tmp_path / celeba.PARTITION_FILE
    partition.write_bytes(partition.read_bytes().replace(b"000002.jpg 1", b"000002.jpg 7"))
    with pytest.raises(ValueError, match=r"list_eval_partition.txt:2: column 2 is '7'"):
        read_celeba(tmp_path)
    write_small_celeba(tmp_path)
    landmarks = tmp_path / celeba.LANDMARKS_ALIGN_FILE
    lines = landmarks.read_bytes().decode().split("\r\n")
    lines[3] = lines[3].rsplit(" ", 1)[0]
    landmarks.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(ValueError, match=r"list_landmarks_align_celeba.txt:4: expected an image name and 10"):
        read_celeba(tmp_path)


def test_row_missing_from_identity_file_is_an_error(tmp_path):
    write_small_celeba(tmp_path)
    identity = tmp_path / celeba.IDENTITY_FILE
    lines = [line for line in identity.read_bytes().decode().split("\r\n") if not line.startswith("000004")]
    identity.write_bytes("\r\n".join(lines).encode())
    with pytest.raises(ValueError, match=r"identity_CelebA.txt: no row for image '000004.jpg'"):
        read_celeba(tmp_path)


def test_md5_mismatch_names_file_expected_and_got(tmp_path):
    write_small_celeba(tmp_path)
    got = hashlib.md5((tmp_path / celeba.ATTRIBUTE_FILE).read_bytes()).hexdigest()
    with pytest.raises(ChecksumError, match=rf"list_attr_celeba.txt: md5 mismatch, expected "
                                            rf"{CELEBA_MD5[celeba.ATTRIBUTE_FILE]} .*got {got}"):
        read_celeba(tmp_path, verify_md5=True)


def test_missing_folders_and_files_raise_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="CelebA root folder not found"):
        read_celeba(tmp_path / "nowhere")
    write_small_celeba(tmp_path)
    with pytest.raises(FileNotFoundError, match="CelebA image folder not found"):
        read_celeba(tmp_path, image_dir=tmp_path / "missing_images")
    (tmp_path / celeba.ATTRIBUTE_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt"):
        read_celeba(tmp_path)


def test_find_image_dir_accepts_one_img_align_celeba_variant(tmp_path):
    (tmp_path / "img_align_celeba_89x109").mkdir()
    assert find_celeba_image_dir(tmp_path) == tmp_path / "img_align_celeba_89x109"
    (tmp_path / "img_align_celeba_png").mkdir()
    with pytest.raises(ValueError, match="several CelebA image folders"):
        find_celeba_image_dir(tmp_path)
    (tmp_path / "img_align_celeba").mkdir()
    assert find_celeba_image_dir(tmp_path) == tmp_path / "img_align_celeba"
    with pytest.raises(FileNotFoundError, match="no CelebA image folder"):
        find_celeba_image_dir(tmp_path / "img_align_celeba")


def test_splits_are_deterministic_and_disjoint():
    train, test = splits.random_split(1000, test_fraction=0.2, seed=3)
    assert len(test) == 200 and len(train) == 800 and train.dtype == np.int64
    assert not set(train) & set(test) and set(train) | set(test) == set(range(1000))
    again_train, again_test = splits.random_split(1000, test_fraction=0.2, seed=3)
    np.testing.assert_array_equal(test, again_test)
    assert not np.array_equal(test, splits.random_split(1000, 0.2, seed=4)[1])
    sample = splits.random_sample(1000, 50, seed=1)
    assert len(set(sample)) == 50 and np.array_equal(sample, splits.random_sample(1000, 50, seed=1))
    with pytest.raises(ValueError):
        splits.random_sample(10, 11)
    parts = splits.official_split(np.array([0, 2, 1, 0, 2], dtype=np.int8))
    assert {k: v.tolist() for k, v in parts.items()} == {"train": [0, 3], "val": [2], "test": [1, 4]}


def test_identity_split_has_no_identity_on_both_sides(rng):
    identities = rng.integers(0, 300, size=3000)
    train, test = splits.identity_split(identities, test_fraction=0.2, seed=0)
    assert not set(identities[train]) & set(identities[test])
    assert len(train) + len(test) == 3000
    assert abs(len(test) / 3000 - 0.2) < 0.01
    np.testing.assert_array_equal(test, splits.identity_split(identities, 0.2, seed=0)[1])


@pytest.mark.real_data
def test_real_celeba_parse(shared_data):
    root = shared_data / "celeba"
    start = time.perf_counter()
    image_ids, attributes, names = read_attribute_file(root / celeba.ATTRIBUTE_FILE)
    attribute_seconds = time.perf_counter() - start
    assert len(image_ids) == 202_599 and attributes.shape == (202_599, 40)
    assert names == CELEBA_ATTRIBUTES and set(np.unique(attributes)) == {0, 1}
    start = time.perf_counter()
    annotations = read_celeba(root, verify_md5=True)
    total_seconds = time.perf_counter() - start
    print(f"list_attr_celeba.txt parse: {attribute_seconds:.2f} s; read_celeba with md5: {total_seconds:.2f} s")
    assert annotations.n_annotated == 202_599 and len(annotations) == 10_000
    assert annotations.image_dir.name == "img_align_celeba_89x109"
    assert annotations.image_ids[0] == "000001.jpg" and annotations.image_ids[-1] == "010000.jpg"
    np.testing.assert_array_equal(annotations.attributes, attributes[:10_000])
    assert (annotations.partition == 0).all()
    assert len(np.unique(annotations.identities)) == 5_429
    assert all(path.is_file() for path in annotations.image_paths()[::500])
    train, test = splits.identity_split(annotations.identities, 0.2, seed=0)
    assert not set(annotations.identities[train]) & set(annotations.identities[test])
