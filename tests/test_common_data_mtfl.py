"""MTFL parsing (backslash paths, leading spaces, CRLF, trailing space line) and paper 001's crops."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.data.mtfl import face_box_crop, nose_centred_crop, read_mtfl

ROWS = [
    # path, x1..x5, y1..y5, gender smile glasses pose
    ("lfw_5590\\Aaron_Eckhart_0001.jpg", [107.25, 147.75, 126.25, 106.25, 140.75],
     [108.75, 113.25, 143.75, 158.75, 162.75], [1, 2, 2, 3]),
    ("net_7876\\prefix_0001.jpg", [10, 20, 15, 11, 19], [10, 11, 15, 20, 21], [2, 1, 1, 5]),
    ("AFLW/0001-image20056.jpg", [40, 80, 60, 45, 75], [50, 50, 70, 90, 90], [2, 2, 2, 1]),
]


def write_mtfl(root, rows=ROWS, name="training.txt"):
    lines = [f"{path} " + " ".join(f"{v:f}" for v in xs + ys) + " " + " ".join(map(str, codes))
             for path, xs, ys, codes in rows]
    # official quirks: every line but the first starts with a space, CRLF, a final line " "
    (root / name).write_bytes(("\r\n ".join(lines) + "\r\n ").encode())
    for path, *_ in rows:
        image_path = root / path.replace("\\", "/")
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (250, 250)).save(image_path)


def test_read_mtfl_official_quirks_and_code_mapping(tmp_path):
    write_mtfl(tmp_path)
    annotations = read_mtfl(tmp_path, "training")
    assert len(annotations) == 3
    assert annotations.image_paths[0] == tmp_path / "lfw_5590" / "Aaron_Eckhart_0001.jpg"
    assert annotations.landmarks.shape == (3, 5, 2) and annotations.landmarks.dtype == np.float32
    np.testing.assert_array_equal(annotations.landmarks[0, 2], [126.25, 143.75])  # the nose, x then y
    assert annotations.gender.tolist() == [1, 0, 0]   # 1 = male
    assert annotations.smiling.tolist() == [0, 1, 0]  # 1 = smiling
    assert annotations.glasses.tolist() == [0, 1, 0]  # 1 = wearing glasses
    assert annotations.pose.tolist() == [2, 4, 0]     # 0 = left profile .. 4 = right profile
    assert annotations.subset([2]).pose.tolist() == [0]


@pytest.mark.parametrize("row, message", [
    (("a.jpg", [1, 2, 3, 4, 5], [1, 2, 3, 4], [1, 1, 1, 1]), "expected 15 fields"),
    (("a.jpg", [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 3, 1, 1]), "smile code is '3'"),
    (("a.jpg", [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 1, 1, 6]), "pose code is '6'"),
])
def test_malformed_mtfl_row_names_file_and_line(tmp_path, row, message):
    write_mtfl(tmp_path, ROWS[:2] + [row])
    with pytest.raises(ValueError, match=rf"training.txt:3: {message}"):
        read_mtfl(tmp_path, "training")


def test_missing_mtfl_images_and_files(tmp_path):
    write_mtfl(tmp_path, name="testing.txt")
    (tmp_path / "AFLW" / "0001-image20056.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="1 of 3 images listed"):
        read_mtfl(tmp_path, "testing")
    assert len(read_mtfl(tmp_path, "testing", require_images=False)) == 3
    with pytest.raises(FileNotFoundError, match="training.txt"):
        read_mtfl(tmp_path, "training")


def _image_with_white_nose(width, height, nose):
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[nose[1], nose[0]] = 255
    return Image.fromarray(pixels)


def test_nose_centred_crop_puts_the_nose_in_the_middle():
    nose = (30, 20)
    landmarks = np.array([[20, 10], [40, 10], nose, [22, 30], [38, 30]], dtype=np.float32)
    crop, points = nose_centred_crop(_image_with_white_nose(100, 80, nose), landmarks, size=40)
    assert crop.size == (40, 40)
    np.testing.assert_array_equal(points[2], [19, 19])  # (40 - 1) / 2 rounded down
    np.testing.assert_array_equal(points - points[2], landmarks - landmarks[2])  # no scaling
    assert np.asarray(crop)[19, 19].tolist() == [255, 255, 255]
    assert np.asarray(crop).sum() == 3 * 255


def test_nose_centred_crop_pads_past_the_border():
    nose = (3, 77)
    crop, points = nose_centred_crop(_image_with_white_nose(100, 80, nose),
                                     np.array([[0, 70], [6, 70], nose, [1, 79], [5, 79]], np.float32), size=40)
    pixels = np.asarray(crop)
    np.testing.assert_array_equal(points[2], [19, 19])
    assert pixels[19, 19].tolist() == [255, 255, 255]
    assert (pixels[:, :16] == 0).all() and (pixels[23:] == 0).all()  # left and bottom padding


def test_nose_centred_crop_with_a_larger_box_is_resized():
    nose = (50, 40)
    landmarks = np.array([[40, 30], [60, 30], nose, [42, 50], [58, 50]], dtype=np.float32)
    crop, points = nose_centred_crop(_image_with_white_nose(100, 80, nose), landmarks, size=30, box_size=60)
    assert crop.size == (30, 30)
    np.testing.assert_allclose(points[1] - points[0], [10, 0])  # halved
    weights = np.asarray(crop).sum(-1).astype(float)
    rows, columns = np.indices(weights.shape)
    centroid = [(columns * weights).sum() / weights.sum(), (rows * weights).sum() / weights.sum()]
    np.testing.assert_allclose(centroid, points[2], atol=0.05)


def test_face_box_crop_is_centred_on_the_landmark_box_not_the_nose():
    landmarks = np.array([[40, 30], [60, 30], [56, 38], [42, 50], [58, 50]], dtype=np.float32)
    crop, points = face_box_crop(Image.new("RGB", (100, 80)), landmarks, size=150, scale=2.5)
    assert crop.size == (150, 150)
    # landmark box 40..60 x 30..50, side 2.5 * 20 = 50 -> scaled by 3, box centre at the crop centre
    np.testing.assert_allclose(points[1] - points[0], [60, 0], atol=1e-4)
    np.testing.assert_allclose((points.min(0) + points.max(0)) / 2, [74.5, 74.5], atol=1.5)
    assert abs(points[2, 0] - 74.5) > 5  # the nose is off-centre


@pytest.mark.real_data
def test_real_mtfl(shared_data):
    import time

    timings = {}
    for split, expected in (("training", 10_000), ("testing", 2_995)):
        start = time.perf_counter()
        annotations = read_mtfl(shared_data / "mtfl", split)  # raises if any image is missing
        timings[split] = time.perf_counter() - start
        assert len(annotations) == expected
        assert set(annotations.gender.tolist()) == {0, 1} and set(annotations.pose.tolist()) == set(range(5))
        assert all(path.is_file() for path in annotations.image_paths)
    print(f"MTFL parse incl. image existence check: training {timings['training']:.2f} s, "
          f"testing {timings['testing']:.2f} s")
    with Image.open(annotations.image_paths[0]) as image:
        crop, points = nose_centred_crop(image, annotations.landmarks[0])
    assert crop.size == (150, 150) and np.allclose(points[2], 74.5, atol=0.5)
