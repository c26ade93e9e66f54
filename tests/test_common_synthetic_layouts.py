"""Tests of ``common.synthetic``'s dataset writers (CelebA, Helen, MTFL layouts) and its CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.attributes import CELEBA_ATTRIBUTES, helen11_to_parts7
from common.synthetic import (
    GENERATOR_VERSION, render_face, write_celeba_layout, write_helen_layout, write_mtfl_layout)

REPO_ROOT = Path(__file__).resolve().parents[1]
CELEBA_FILES = ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt",
                "list_landmarks_align_celeba.txt", "list_bbox_celeba.txt")


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory) -> Path:
    return write_celeba_layout(tmp_path_factory.mktemp("celeba") / "synthetic", n=24, seed=3,
                               height=109, width=89)


def _lines(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data.endswith(b"\r\n"), path
    assert b"\n" not in data.replace(b"\r\n", b""), f"{path} has a bare LF"
    return data.decode().split("\r\n")[:-1]


def test_celeba_layout_has_the_official_files_and_headers(celeba_root):
    for name in CELEBA_FILES:
        assert (celeba_root / name).is_file(), name
    attributes = _lines(celeba_root / "list_attr_celeba.txt")
    assert attributes[0] == "24"
    assert attributes[1].split() == list(CELEBA_ATTRIBUTES)
    assert len(attributes) == 26
    first = attributes[2]
    assert first.startswith("000001.jpg ") and len(first.split()) == 41
    assert set(first.split()[1:]) <= {"1", "-1"}
    landmarks = _lines(celeba_root / "list_landmarks_align_celeba.txt")
    assert landmarks[0] == "24" and landmarks[1].split()[0] == "lefteye_x"
    assert len(landmarks[2].split()) == 11
    bboxes = _lines(celeba_root / "list_bbox_celeba.txt")
    assert bboxes[1] == "image_id x_1 y_1 width height" and len(bboxes[2].split()) == 5
    images = sorted(p.name for p in (celeba_root / "img_align_celeba").iterdir())
    assert images == [f"{i:06d}.jpg" for i in range(1, 25)]
    assert Image.open(celeba_root / "img_align_celeba" / "000001.jpg").size == (89, 109)
    record = json.loads((celeba_root / "synthetic.json").read_text())
    assert record["version"] == GENERATOR_VERSION and record["n"] == 24


def test_celeba_layout_rows_match_the_rendered_faces(celeba_root):
    rows = [line.split() for line in _lines(celeba_root / "list_attr_celeba.txt")[2:]]
    partitions = dict(line.split() for line in _lines(celeba_root / "list_eval_partition.txt"))
    identities = dict(line.split() for line in _lines(celeba_root / "identity_CelebA.txt"))
    landmarks = [line.split() for line in
                 _lines(celeba_root / "list_landmarks_align_celeba.txt")[2:]]
    for index in (0, 5, 23):
        face = render_face(index, seed=3, height=109, width=89)
        name = f"{index + 1:06d}.jpg"
        values = np.array(rows[index][1:], int)
        np.testing.assert_array_equal(values > 0, face.attributes.astype(bool))
        assert int(identities[name]) == face.identity
        np.testing.assert_array_equal(np.array(landmarks[index][1:], int),
                                      np.rint(face.landmarks).astype(int).ravel())
        stem = name[:-4]
        helen = np.asarray(Image.open(celeba_root / "parsing_helen11" / f"{stem}.png"))
        parts = np.asarray(Image.open(celeba_root / "parsing_parts7" / f"{stem}.png"))
        np.testing.assert_array_equal(helen, face.mask_helen11)
        np.testing.assert_array_equal(parts, helen11_to_parts7(helen))
    by_identity: dict[str, set[str]] = {}
    for name, identity in identities.items():
        by_identity.setdefault(identity, set()).add(partitions[name])
    assert all(len(codes) == 1 for codes in by_identity.values())
    assert set(partitions.values()) <= {"0", "1", "2"}


def test_identity_partition_is_80_10_10():
    from common.synthetic import identity_partition

    codes = np.array([identity_partition(identity, seed=0) for identity in range(1, 1001)])
    np.testing.assert_array_equal(np.bincount(codes), [800, 100, 100])


def test_celeba_layout_is_reused_and_rewritten_only_when_parameters_change(tmp_path):
    root = tmp_path / "data"
    write_celeba_layout(root, n=3, seed=0, height=64, width=64)
    image = root / "img_align_celeba" / "000001.jpg"
    stamp = image.stat().st_mtime_ns
    os.utime(image, ns=(stamp - 10**9, stamp - 10**9))
    write_celeba_layout(root, n=3, seed=0, height=64, width=64)
    assert image.stat().st_mtime_ns == stamp - 10**9, "a matching folder must be reused"
    write_celeba_layout(root, n=4, seed=0, height=64, width=64)
    assert json.loads((root / "synthetic.json").read_text())["n"] == 4
    assert len(list((root / "img_align_celeba").iterdir())) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporaries left"
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="foreign"):
        write_celeba_layout(foreign, n=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (write_celeba_layout(empty, n=2, height=64, width=64) / "synthetic.json").is_file()


def test_celeba_layout_written_by_an_edited_generator_is_rebuilt(tmp_path):
    """A cache from older rendering code under the same GENERATOR_VERSION must not be reused (it
    once made a package's smoke tables differ between a developer's checkout and a clean clone)."""
    root = write_celeba_layout(tmp_path / "data", n=2, seed=0, height=64, width=64)
    record = json.loads((root / "synthetic.json").read_text())
    assert len(record["source_sha1"]) == 40
    fresh = (root / "img_align_celeba" / "000001.jpg").read_bytes()
    (root / "img_align_celeba" / "000001.jpg").write_bytes(b"pixels of an older renderer")
    (root / "synthetic.json").write_text(json.dumps({**record, "source_sha1": "0" * 40}))
    write_celeba_layout(root, n=2, seed=0, height=64, width=64)
    assert (root / "img_align_celeba" / "000001.jpg").read_bytes() == fresh
    assert json.loads((root / "synthetic.json").read_text()) == record


def test_helen_layout(tmp_path):
    root = write_helen_layout(tmp_path / "helen", n=10, seed=1, height=96, width=80)
    listed = []
    for split in ("exemplars.txt", "tuning.txt", "testing.txt"):
        for k, line in enumerate(_lines(root / split) if (root / split).stat().st_size else [],
                                 start=1):
            number, comma, image_id = line.split()
            assert number == str(k) and comma == ","
            listed.append(image_id)
    assert len(listed) == 10 and len(set(listed)) == 10
    image_id = listed[0]
    assert Image.open(root / "images" / f"{image_id}.jpg").size == (80, 96)
    planes = np.stack([np.asarray(Image.open(root / "labels" / image_id
                                             / f"{image_id}_lbl{k:02d}.png"))
                       for k in range(11)])
    assert set(np.unique(planes)) <= {0, 255}
    assert (planes.sum(0) == 255).all(), "exactly one label per pixel"
    index = int(image_id.split("_")[0]) - 1000000
    np.testing.assert_array_equal(planes.argmax(0),
                                  render_face(index, 1, 96, 80).mask_helen11)


def test_mtfl_layout(tmp_path):
    root = write_mtfl_layout(tmp_path / "mtfl", n_train=6, n_test=3, seed=2)
    for split, folder, separator, count in (("training.txt", "lfw_5590", "\\", 6),
                                            ("testing.txt", "AFLW", "/", 3)):
        text = (root / split).read_bytes().decode()
        rows = text.split("\r\n")
        assert rows[-1] == " " and not rows[0].startswith(" ")
        assert all(row.startswith(" ") for row in rows[1:-1])
        rows = rows[:-1]
        assert len(rows) == count
        for row in rows:
            fields = row.split()
            assert len(fields) == 15 and fields[0].startswith(folder + separator)
            image = Image.open(root / fields[0].replace("\\", "/"))
            width, height = image.size
            assert 150 <= width <= 250 and width == height
            xs, ys = np.array(fields[1:6], float), np.array(fields[6:11], float)
            assert (xs > 0).all() and (xs < width).all() and (ys > 0).all() and (ys < height).all()
            assert xs[0] < xs[1] and ys[2] < ys[3]
            gender, smile, glasses, pose = map(int, fields[11:])
            assert gender in (1, 2) and smile in (1, 2) and glasses in (1, 2)
            assert 1 <= pose <= 5


def test_cli_writes_a_dataset(tmp_path):
    out = tmp_path / "cli"
    completed = subprocess.run(
        [sys.executable, "-m", "common.synthetic", "--out", str(out), "--n", "3",
         "--height", "64", "--width", "64", "--seed", "1"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert len(list((out / "img_align_celeba").iterdir())) == 3
    assert json.loads((out / "synthetic.json").read_text())["seed"] == 1


def test_sample_grid(tmp_path):
    from common.synthetic.figure import save_sample_grid

    sweeps = ((0, {"Eyeglasses": 0}, [("+ Eyeglasses", {"Eyeglasses": 1})]),)
    path = save_sample_grid(tmp_path / "grid.png", n=4, columns=4, height=64, width=64,
                            sweeps=sweeps)
    with Image.open(path) as image:
        assert image.size[0] > 200 and image.size[1] > 200
