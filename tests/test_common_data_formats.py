"""Helen (Smith et al.), LFW attributes (Kumar et al. / LFWA), image folders, CelebAMask-HQ."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.attributes import ATTRIBUTE_INDEX, CELEBA_ATTRIBUTES, HELEN11_TO_PARTS7
from common.data.folder import list_images, read_celebamask_hq_attributes
from common.data.helen import load_helen_mask, read_helen, write_label_images
from common.data.lfwa import KUMAR_TO_CELEBA, read_lfw_attributes, read_lfwa

# ---- Helen --------------------------------------------------------------------------------


def write_helen(root, image_ids=("100032540_1", "10405146_1"), size=(6, 4)):
    (root / "images").mkdir(parents=True)
    width, height = size
    truth = {}
    for k, image_id in enumerate(image_ids):
        Image.new("RGB", size).save(root / "images" / f"{image_id}.jpg")
        labels = (np.arange(width * height).reshape(height, width) + k) % 11
        label_dir = root / "labels" / image_id
        label_dir.mkdir(parents=True)
        for label in range(11):
            soft = np.where(labels == label, 200, 30).astype(np.uint8)  # soft maps, winner brightest
            Image.fromarray(soft).save(label_dir / f"{image_id}_lbl{label:02d}.png")
        truth[image_id] = labels
    lines = [f"{i + 1} , {image_id}" for i, image_id in enumerate(image_ids)]
    (root / "testing.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return truth


def test_helen_split_and_argmax_masks(tmp_path):
    truth = write_helen(tmp_path)
    helen = read_helen(tmp_path, "testing")
    assert helen.image_ids == ["100032540_1", "10405146_1"]
    assert helen.image_paths[1] == tmp_path / "images" / "10405146_1.jpg"
    assert read_helen(tmp_path, "test").image_ids == helen.image_ids
    mask = load_helen_mask(helen.label_dirs[1])
    assert mask.dtype == np.uint8 and mask.shape == (4, 6)
    np.testing.assert_array_equal(mask, truth["10405146_1"])
    paths = write_label_images(helen, tmp_path / "parts7")
    with Image.open(paths[1]) as image:
        np.testing.assert_array_equal(np.asarray(image), HELEN11_TO_PARTS7[truth["10405146_1"]])


def test_helen_malformed_split_line_and_missing_maps(tmp_path):
    write_helen(tmp_path)
    (tmp_path / "testing.txt").write_bytes(b"1 , 100032540_1\r\n2 100032541_1\r\n")
    with pytest.raises(ValueError, match=r"testing.txt:2: expected '<number> , <image id>'"):
        read_helen(tmp_path, "testing")
    (tmp_path / "labels" / "10405146_1" / "10405146_1_lbl07.png").unlink()
    with pytest.raises(FileNotFoundError, match="10405146_1_lbl07.png"):
        load_helen_mask(tmp_path / "labels" / "10405146_1")
    with pytest.raises(FileNotFoundError, match="tuning.txt"):
        read_helen(tmp_path, "tuning")


# ---- LFW attributes ------------------------------------------------------------------------

KUMAR_NAMES = ["Male", "Asian", "Youth", "Smiling", "Attractive Man", "Attractive Woman", "Eyeglasses"]


def write_kumar(path, rows):
    lines = ["# lfw attributes file, v2", "#\tperson\timagenum\t" + "\t".join(KUMAR_NAMES)]
    lines += [f"{person}\t{number}\t" + "\t".join(f"{v:.6f}" for v in values) for person, number, values in rows]
    path.write_bytes(("\n".join(lines) + "\n").encode())


def test_kumar_lfw_attributes_binarised_at_zero_and_mapped(tmp_path):
    path = tmp_path / "lfw_attributes.txt"
    write_kumar(path, [("Aaron Eckhart", 1, [1.5, -0.3, 0.2, -1.0, 0.7, -0.9, -2.0]),
                       ("Aaron Guiel", 5, [-0.4, 0.1, -0.2, 2.0, -0.7, 0.9, 0.3])])
    lfw = read_lfw_attributes(path)
    assert lfw.image_ids == ["Aaron_Eckhart/Aaron_Eckhart_0001.jpg", "Aaron_Guiel/Aaron_Guiel_0005.jpg"]
    assert lfw.names == tuple(KUMAR_NAMES) and lfw.scores.shape == (2, 7)
    image_ids, attributes, known = read_lfwa(path)
    assert attributes.shape == (2, 40) and known.sum() == 5
    for name, expected in (("Male", [1, 0]), ("Young", [1, 0]), ("Smiling", [0, 1]), ("Eyeglasses", [0, 1]),
                           ("Attractive", [1, 1])):  # man: "Attractive Man"; woman: "Attractive Woman"
        assert known[ATTRIBUTE_INDEX[name]] and attributes[:, ATTRIBUTE_INDEX[name]].tolist() == expected
    assert np.isnan(attributes[:, ATTRIBUTE_INDEX["Bald"]]).all() and not known[ATTRIBUTE_INDEX["Bald"]]
    assert set(KUMAR_TO_CELEBA) == set(CELEBA_ATTRIBUTES)


def test_kumar_malformed_row(tmp_path):
    path = tmp_path / "lfw_attributes.txt"
    write_kumar(path, [("Aaron Eckhart", 1, [0.0] * 7), ("Aaron Guiel", 5, [0.0] * 6)])
    with pytest.raises(ValueError, match=r"lfw_attributes.txt:4: expected person, imagenum and 7 scores"):
        read_lfw_attributes(path)


def test_lfwa_in_celeba_list_attr_format(tmp_path):
    path = tmp_path / "list_attr_lfwa.txt"
    names = ["Smiling", "Male"]
    path.write_bytes(b"2\r\nSmiling Male\r\nAaron_Eckhart_0001.jpg  1 -1\r\nAaron_Guiel_0001.jpg -1  1\r\n")
    image_ids, attributes, known = read_lfwa(path)
    assert image_ids[1] == "Aaron_Guiel_0001.jpg" and known.sum() == len(names)
    assert attributes[:, ATTRIBUTE_INDEX["Smiling"]].tolist() == [1, 0]
    assert attributes[:, ATTRIBUTE_INDEX["Male"]].tolist() == [0, 1]


# ---- folders -----------------------------------------------------------------------------

def test_list_images_is_recursive_and_sorted(tmp_path):
    for relative in ("b/00002.png", "a/00001.jpg", "00000.webp", "c/d/00003.JPEG", "notes.txt"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)] == [
        "00000.webp", "a/00001.jpg", "b/00002.png", "c/d/00003.JPEG"]
    with pytest.raises(FileNotFoundError):
        list_images(tmp_path / "absent")


def test_celebamask_hq_attribute_file(tmp_path):
    path = tmp_path / "CelebAMask-HQ-attribute-anno.txt"
    rows = ["0.jpg " + " ".join(["1"] * 40), "1.jpg  " + "  ".join(["-1"] * 39 + ["1"])]
    path.write_bytes(("\r\n".join(["2", " ".join(CELEBA_ATTRIBUTES)] + rows) + "\r\n").encode())
    image_ids, attributes, names = read_celebamask_hq_attributes(path)
    assert image_ids == ["0.jpg", "1.jpg"] and names == CELEBA_ATTRIBUTES
    assert attributes.sum(1).tolist() == [40, 1]
    path.write_bytes(path.read_bytes().replace(b"1.jpg  -1", b"1.jpg  2", 1))
    with pytest.raises(ValueError, match=r"CelebAMask-HQ-attribute-anno.txt:4: column 2 is '2'"):
        read_celebamask_hq_attributes(path)
