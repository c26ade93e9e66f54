"""common.data hardening: every PIL mode decoded faithfully or refused by name, oversized images
reported with PIL's limit, unreadable files recorded once each, non-finite MTFL coordinates,
duplicate and missing lines in CelebA's files, and the md5 switch of open_celeba_source."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from common.attributes import CELEBA_ATTRIBUTES
from common.data import celeba
from common.data.celeba import ChecksumError, read_attribute_file, read_identity_file, read_landmarks_file
from common.data.dataset import (FaceDataset, ImageTooLargeError, UnsupportedImageError,
                                 collate_skip_corrupt, image_to_rgb)
from common.data.mtfl import read_mtfl
from common.data.sources import open_celeba_source

HEIGHT, WIDTH = 24, 20


def _gradient(high: int) -> np.ndarray:
    """(HEIGHT, WIDTH) values spread evenly over 0..high."""
    return np.linspace(0, high, HEIGHT * WIDTH).reshape(HEIGHT, WIDTH)


def _decoded(path: Path) -> np.ndarray:
    """FaceDataset's image as uint8 (H, W, 3), exactly (the tensor is uint8 / 255)."""
    image = FaceDataset([path])[0]["image"]
    return np.rint(image.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


# --- item 4: image modes -----------------------------------------------------------------------

@pytest.mark.parametrize("suffix, dtype", [(".png", "<u2"), (".tif", "<u2"), (".tif", ">u2")])
def test_sixteen_bit_grey_is_scaled_by_its_bit_depth(tmp_path, suffix, dtype):
    levels = np.arange(HEIGHT * WIDTH).reshape(HEIGHT, WIDTH) % 256
    path = tmp_path / f"grey16{suffix}"
    Image.fromarray((levels * 257).astype(dtype)).save(path)  # 8-bit level k is 16-bit 257 k
    assert Image.open(path).mode.startswith("I;16")
    decoded = _decoded(path)
    assert (decoded == levels[..., None]).all()


def test_thirty_two_bit_integer_and_float_images_are_scaled_by_their_value_range(tmp_path):
    Image.fromarray(_gradient(1000).round().astype(np.int32)).save(tmp_path / "int32.tif")
    Image.fromarray(_gradient(200).round().astype(np.int32)).save(tmp_path / "int32_8bit.tif")
    Image.fromarray(_gradient(1.0).astype(np.float32)).save(tmp_path / "float.tif")
    assert Image.open(tmp_path / "int32.tif").mode == "I" and Image.open(tmp_path / "float.tif").mode == "F"
    # I: [0, max(255, highest)] -> 0..255, so 0..1000 is stretched and 0..200 (8-bit data) kept
    np.testing.assert_array_equal(_decoded(tmp_path / "int32.tif")[..., 0],
                                  np.rint(_gradient(1000).round() * 255 / 1000))
    np.testing.assert_array_equal(_decoded(tmp_path / "int32_8bit.tif")[..., 0], _gradient(200).round())
    # F: a [0, 1] float image is scaled by 255
    np.testing.assert_array_equal(_decoded(tmp_path / "float.tif")[..., 0],
                                  np.rint(_gradient(1.0).astype(np.float32).astype(np.float64) * 255))


@pytest.mark.parametrize("mode", ["1", "L", "P", "LA", "RGBA", "CMYK"])
def test_eight_bit_modes_convert_as_pil_converts_them(tmp_path, mode):
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8))
    path = tmp_path / f"image_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    rgb.convert(mode).save(path)
    with Image.open(path) as stored:
        assert stored.mode == mode
        expected = np.asarray(stored.convert("RGB"))
    np.testing.assert_array_equal(_decoded(path), expected)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_ordinary_rgb_and_grey_images_decode_exactly_as_before(tmp_path, suffix):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / f"rgb{suffix}")
    Image.fromarray(pixels[..., 0]).save(tmp_path / f"grey{suffix}")
    for name in (f"rgb{suffix}", f"grey{suffix}"):
        with Image.open(tmp_path / name) as image:
            channels_first = np.asarray(image.convert("RGB")).transpose(2, 0, 1)
        expected = np.multiply(channels_first, np.float32(1 / 255), dtype=np.float32)
        assert torch.equal(FaceDataset([tmp_path / name])[0]["image"], torch.from_numpy(expected))


def test_mode_pil_cannot_convert_is_reported_with_the_file_name(tmp_path):
    with pytest.raises(UnsupportedImageError, match=r"odd\.png: PIL mode 'La' cannot be converted"):
        image_to_rgb(Image.new("La", (WIDTH, HEIGHT)), tmp_path / "odd.png")


def test_float_image_with_nan_pixels_is_reported_with_the_file_name(tmp_path):
    pixels = _gradient(1.0).astype(np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels).save(tmp_path / "nan.tif")
    with pytest.raises(UnsupportedImageError, match=r"nan\.tif: mode F image with NaN or infinite pixels"):
        FaceDataset([tmp_path / "nan.tif"])[0]


def test_image_over_the_decompression_bomb_limit_is_reported_as_too_large(tmp_path, monkeypatch):
    path = tmp_path / "large.png"
    Image.new("RGB", (WIDTH, HEIGHT)).save(path)  # 480 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # over twice the limit: an error
    with pytest.raises(ImageTooLargeError, match=r"large\.png: image too large.*MAX_IMAGE_PIXELS = 100"):
        FaceDataset([path])[0]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # over the limit only: a warning ...
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # ... turned into an error
        with pytest.raises(ImageTooLargeError, match=r"MAX_IMAGE_PIXELS = 400"):
            FaceDataset([path])[0]


# --- item 11 (a): unreadable files recorded once each ------------------------------------------

def _good_and_bad_files(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    good = tmp_path / "good.png"
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 90, dtype=np.uint8)).save(good)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros((HEIGHT, WIDTH), dtype=np.uint8)).save(mask)
    truncated_mask = tmp_path / "truncated_mask.png"
    truncated_mask.write_bytes(mask.read_bytes()[:40])
    return good, empty, mask, truncated_mask


@pytest.mark.parametrize("num_workers", [0, 2])
def test_unreadable_files_are_counted_once_each_and_named(tmp_path, num_workers):
    good, empty, mask, truncated_mask = _good_and_bad_files(tmp_path)
    data = FaceDataset([good, empty, good, good, empty], mask_paths=[mask, mask, truncated_mask, mask, mask])
    loader = DataLoader(data, batch_size=2, collate_fn=collate_skip_corrupt, num_workers=num_workers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _epoch in range(3):
            assert sum(len(batch["index"]) for batch in loader if batch is not None) == 2
    assert data.unreadable_count() == 2  # samples 1, 2 and 4; sample 4 is sample 1's file again
    assert data.unreadable_files() == [empty, truncated_mask]
    assert data.unreadable_summary(limit=1) == {"unreadable_files": 2, "unreadable_file_names": [str(empty)]}


# --- item 5: MTFL coordinates ------------------------------------------------------------------

@pytest.mark.parametrize("token", ["nan", "inf", "-inf", "NaN"])
def test_mtfl_non_finite_coordinate_is_rejected_with_file_and_line(tmp_path, token):
    rows = [" lfw_5590\\a.jpg 10 20 15 11 19 10 11 15 20 21 1 2 2 3",
            f" lfw_5590\\b.jpg 10 20 {token} 11 19 10 11 15 20 21 1 2 2 3"]
    path = tmp_path / "training.txt"
    path.write_bytes(("\r\n".join(rows) + "\r\n ").encode())
    with pytest.raises(ValueError, match=r"training\.txt:2: landmark coordinates must be finite"):
        read_mtfl(tmp_path, "training", require_images=False)


# --- item 6: CelebA duplicate names and missing header lines -----------------------------------

def _write_lines(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def _attribute_lines(image_ids: list[str]) -> list[str]:
    rows = [image_id + "".join(f"{v:>3d}" for v in np.where(np.arange(40) % (i + 2) == 0, 1, -1))
            for i, image_id in enumerate(image_ids)]
    return [str(len(rows)), " ".join(CELEBA_ATTRIBUTES)] + rows


def test_duplicate_image_in_attribute_file_names_both_lines(tmp_path):
    path = _write_lines(tmp_path / celeba.ATTRIBUTE_FILE,
                        _attribute_lines(["000001.jpg", "000002.jpg", "000003.jpg", "000002.jpg"]))
    with pytest.raises(ValueError, match=rf"{celeba.ATTRIBUTE_FILE}:6: image '000002.jpg' is listed again "
                                         rf"\(first at .*{celeba.ATTRIBUTE_FILE}:4\)"):
        read_attribute_file(path)


def test_duplicate_image_in_headerless_and_headed_files_names_both_lines(tmp_path):
    identity = _write_lines(tmp_path / celeba.IDENTITY_FILE, ["000001.jpg 5", "000002.jpg 5", "000001.jpg 6"])
    with pytest.raises(ValueError, match=r"identity_CelebA\.txt:3: image '000001.jpg' is listed again "
                                         r"\(first at .*identity_CelebA\.txt:1\)"):
        read_identity_file(identity)
    landmark_rows = [f"{name} " + " ".join(["10"] * 10) for name in ("000001.jpg", "000001.jpg")]
    landmarks = _write_lines(tmp_path / celeba.LANDMARKS_ALIGN_FILE,
                             ["2", " ".join(celeba.LANDMARK_COLUMNS)] + landmark_rows)
    with pytest.raises(ValueError, match=r"align_celeba\.txt:4: image '000001.jpg' is listed again "
                                         r"\(first at .*align_celeba\.txt:3\)"):
        read_landmarks_file(landmarks)


def test_missing_header_lines_are_reported_at_their_line(tmp_path):
    lines = _attribute_lines(["000001.jpg", "000002.jpg"])
    no_names = _write_lines(tmp_path / "no_names.txt", lines[:1] + lines[2:])
    with pytest.raises(ValueError, match=r"no_names\.txt:2: expected the attribute names, got a data row "
                                         r"for '000001.jpg' \(is the attribute-names line missing\?\)"):
        read_attribute_file(no_names)
    no_count = _write_lines(tmp_path / "no_count.txt", lines[1:])
    with pytest.raises(ValueError, match=r"no_count\.txt:1: expected the row count "
                                         r"\(is the count line missing\?\)"):
        read_attribute_file(no_count)


# --- item 11 (b): md5 verification from open_celeba_source ---------------------------------------

def test_open_celeba_source_verifies_md5_on_request(tmp_path):
    root = tmp_path / "celeba"
    (root / celeba.IMAGE_DIR).mkdir(parents=True)
    _write_lines(root / celeba.ATTRIBUTE_FILE, _attribute_lines(["000001.jpg"]))
    Image.new("RGB", (WIDTH, HEIGHT)).save(root / celeba.IMAGE_DIR / "000001.jpg")
    assert len(open_celeba_source(tmp_path)) == 1
    with pytest.raises(ChecksumError, match=rf"{celeba.ATTRIBUTE_FILE}: md5 mismatch"):
        open_celeba_source(tmp_path, verify_md5=True)
    with pytest.raises(ValueError, match="synthetic faces have none"):
        open_celeba_source(None, verify_md5=True, cache_dir=tmp_path / "synthetic")


@pytest.mark.parametrize("package", ["ssp_ssg", "celeba_ffhq_labels", "celeba_resnet_densenet", "attribute_inversion"])
def test_verify_md5_flag_checks_before_training_and_refuses_synthetic_data(package, tmp_path):
    """``--verify-md5`` runs before anything is trained: on synthetic faces (no published
    checksums) it stops at once with a clear error and writes nothing."""
    import subprocess
    import sys

    out_dir = tmp_path / "out"
    completed = subprocess.run([sys.executable, "-m", package, "reproduce", "--verify-md5", "--out", str(out_dir)],
                               capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert completed.returncode != 0
    assert "synthetic faces have none (give a data root)" in completed.stderr
    assert not out_dir.exists()


def test_verify_celeba_checksums_names_a_mismatching_file(tmp_path):
    from common.data.celeba import ChecksumError
    from common.data.sources import verify_celeba_checksums
    from common.synthetic import write_celeba_layout

    root = write_celeba_layout(tmp_path / "celeba", 8, seed=0, height=32, width=24)
    with pytest.raises(ChecksumError, match="list_"):
        verify_celeba_checksums(root)
