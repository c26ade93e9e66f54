"""common.inference: listing a user's images, face-frame mapping, the prediction pass, the CSV."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.inference import (FRAMES, FaceFrame, InferenceResult, collect_images, map_to_frame,
                              run_inference, write_predictions_csv)

CELEBA, HQ = FRAMES["celeba"], FRAMES["celeba-hq"]


def _save(path: Path, image: Image.Image, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def _touch_image(path: Path) -> Path:
    return _save(path, Image.new("RGB", (4, 4), (1, 2, 3)))


# --------------------------------------------------------------------------- collect_images


def test_collect_images_order_recursion_and_dedup(tmp_path):
    folder = tmp_path / "faces"
    b = _touch_image(folder / "b.png")
    a = _touch_image(folder / "a.jpg")
    c = _touch_image(folder / "sub" / "deeper" / "c.jpeg")
    d = _touch_image(folder / "sub" / "d.webp")
    (folder / "notes.txt").write_text("not an image")
    single = _touch_image(tmp_path / "single.PNG")

    # explicit file first, then the folder (sorted by relative path, recursive), repeats dropped
    found = collect_images([single, folder, folder / "sub" / ".." / "b.png", str(folder), single])
    assert found == [single, a, b, d, c]
    # a file of the folder given first keeps its place; the folder adds the rest
    assert collect_images([d, folder]) == [d, a, b, c]
    # one path on its own is one input
    assert collect_images(folder / "sub") == [d, c]  # "d.webp" < "deeper/c.jpeg"


def test_collect_images_errors_name_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        collect_images([missing])
    text = tmp_path / "labels.txt"
    text.write_text("x")
    with pytest.raises(ValueError, match="labels.txt"):
        collect_images([text])
    empty = tmp_path / "empty_folder"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.md").write_text("x")
    other = tmp_path / "other_empty"
    other.mkdir()
    with pytest.raises(ValueError, match="no image files.*empty_folder.*other_empty"):
        collect_images([empty, other])


# --------------------------------------------------------------------------- run_inference


def _to_tensor(image: Image.Image) -> torch.Tensor:
    """(3, H, W) float 0..255: module level so DataLoader workers can use it."""
    return torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)


def _mean_pixel(images: torch.Tensor) -> torch.Tensor:
    return images.mean(dim=(1, 2, 3)).unsqueeze(1)


def _write_mixed_folder(folder: Path) -> tuple[list[Path], dict[str, float], list[Path]]:
    """Uniform images in many PIL modes (with their mean RGB value after conversion), a truncated
    JPEG and an empty file; returns (all paths in collect order, expected means by name, unreadable)."""
    size = (12, 10)
    palette = Image.new("P", size, 0)
    palette.putpalette([10, 20, 30] + [0, 0, 0] * 255)
    sixteen = Image.fromarray(np.full((10, 12), 128 * 257, dtype=np.uint16))
    assert sixteen.mode == "I;16"
    images = {
        "a_rgb.png": (Image.new("RGB", size, (200, 10, 30)), 80.0),
        "b_l.png": (Image.new("L", size, 100), 100.0),
        "c_la.png": (Image.new("LA", size, (50, 255)), 50.0),
        "d_p.png": (palette, 20.0),
        "e_rgba.png": (Image.new("RGBA", size, (0, 90, 180, 128)), 90.0),
        "f_i16.png": (sixteen, 128.0),
        "g_cmyk.jpg": (Image.new("CMYK", size, (0, 0, 0, 0)), 255.0),
    }
    for name, (image, _) in images.items():
        _save(folder / name, image, **({"quality": 100} if name.endswith(".jpg") else {}))
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    _save(folder / "nested" / "h_full.jpg", Image.fromarray(noise[:10, :12]))
    _save(folder / "big.jpg", Image.fromarray(noise))
    data = (folder / "big.jpg").read_bytes()
    (folder / "big.jpg").unlink()
    truncated = folder / "nested" / "i_truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])  # header intact, scan data cut
    empty = folder / "z_empty.png"
    empty.write_bytes(b"")
    expected = {name: mean for name, (_, mean) in images.items()}
    expected["h_full.jpg"] = float(np.asarray(Image.open(folder / "nested" / "h_full.jpg"),
                                              dtype=np.float64).mean())
    return collect_images([folder]), expected, [truncated, empty]


@pytest.mark.parametrize("num_workers", [0, 1])
def test_run_inference_rows_follow_paths_and_skip_unreadable(tmp_path, caplog, num_workers):
    paths, expected, unreadable = _write_mixed_folder(tmp_path / "mixed")
    with caplog.at_level(logging.WARNING, logger="common.inference"):
        result = run_inference(paths, _to_tensor, _mean_pixel, batch_size=2, num_workers=num_workers,
                               progress=False)
    assert isinstance(result, InferenceResult)
    assert result.unreadable == unreadable
    assert result.paths == [path for path in paths if path not in unreadable]
    assert result.outputs.dtype == np.float32 and result.outputs.shape == (len(result.paths), 1)
    for path, row in zip(result.paths, result.outputs):
        assert row[0] == pytest.approx(expected[path.name], abs=1.5), path.name
    warning = "\n".join(record.getMessage() for record in caplog.records)
    assert "2 unreadable" in warning and "i_truncated.jpg" in warning and "z_empty.png" in warning


def test_run_inference_applies_exif_rotation(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red
    pixels[:, 20:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    path = _save(tmp_path / "phone.jpg", Image.fromarray(pixels), exif=exif, quality=95)

    def shape_and_halves(images: torch.Tensor) -> np.ndarray:
        _, _, height, width = images.shape
        red = images[:, 0]
        return np.array([[height, width, float(red[:, : height // 2].mean()),
                          float(red[:, height // 2:].mean())]])

    result = run_inference([path], _to_tensor, shape_and_halves, batch_size=1, progress=False)
    height, width, top_red, bottom_red = result.outputs[0]
    assert (height, width) == (40, 20)  # upright: portrait
    assert top_red > 200 and bottom_red < 50  # the stored left side is now on top


def test_run_inference_numpy_output_device_and_progress(tmp_path):
    paths = [_save(tmp_path / f"{i}.png", Image.new("L", (6, 6), 10 * i)) for i in range(5)]
    result = run_inference(paths, _to_tensor, lambda images: images.numpy()[:, :1, 0, 0].astype(np.float64),
                           batch_size=2, device="cpu", progress=True, description="faces")
    assert result.outputs.dtype == np.float32
    np.testing.assert_allclose(result.outputs[:, 0], [0, 10, 20, 30, 40])
    assert result.paths == paths and result.unreadable == []


def test_run_inference_errors(tmp_path):
    broken = [tmp_path / "a.png", tmp_path / "b.jpg", tmp_path / "c.png"]
    broken[0].write_bytes(b"")
    broken[1].write_bytes(b"\xff\xd8\xff not really a jpeg")
    broken[2].write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match=r"none of the 3 image\(s\) could be read.*a\.png"):
        run_inference(broken, _to_tensor, _mean_pixel, batch_size=2, progress=False)
    good = _save(tmp_path / "good.png", Image.new("RGB", (4, 4)))
    with pytest.raises(ValueError, match="one row per image"):
        run_inference([good, good], _to_tensor, lambda images: images.sum(), progress=False)
    with pytest.raises(ValueError, match="no images"):
        run_inference([], _to_tensor, _mean_pixel, progress=False)


# --------------------------------------------------------------------------- face geometry


def test_scaled_to():
    half = CELEBA.scaled_to(89, 109)
    assert (half.width, half.height) == (89, 109)
    assert half.eye_distance == pytest.approx(19.5)
    assert half.eye_midpoint == pytest.approx((44.25, 55.25))  # (x + 0.5) / 2 - 0.5
    assert CELEBA.scaled_to(178, 218) == CELEBA
    assert HQ.scaled_to(1024, 1024).eye_distance == pytest.approx(256.0)
    CELEBA.scaled_to(179, 218)  # within 1 %: a rounded size of the same frame
    with pytest.raises(ValueError, match="aspect ratio"):
        CELEBA.scaled_to(218, 218)
    with pytest.raises(ValueError, match="positive"):
        FaceFrame("bad", 10, 10, (5.0, 5.0), 0.0)


def _smooth_image(width: int, height: int, mode: str = "RGB") -> Image.Image:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([127 + 100 * np.sin(x / 9.0), 127 + 100 * np.cos(y / 7.0),
                       127 + 100 * np.sin((x + y) / 13.0)], axis=-1)
    return Image.fromarray(np.rint(pixels).astype(np.uint8)).convert(mode)


@pytest.mark.parametrize("image_size, out_size", [((178, 218), (109, 89)), ((89, 109), (224, 224)),
                                                   ((178, 218), (218, 178))])
def test_map_to_frame_same_frame_is_a_resize(image_size, out_size):
    image = _smooth_image(*image_size)
    mapped = map_to_frame(image, CELEBA, CELEBA, out_size)
    assert mapped.mode == "RGB" and mapped.size == (out_size[1], out_size[0])
    resized = image.resize((out_size[1], out_size[0]), Image.Resampling.BILINEAR)
    difference = np.abs(np.asarray(mapped, dtype=np.int16) - np.asarray(resized, dtype=np.int16))
    assert difference.max() <= 1


def test_map_to_frame_converts_any_mode_and_checks_aspect():
    grey = _smooth_image(64, 64, "L")
    mapped = map_to_frame(grey, HQ, CELEBA, (109, 89))
    assert mapped.mode == "RGB" and mapped.size == (89, 109)
    with pytest.raises(ValueError, match="aspect ratio"):
        map_to_frame(_smooth_image(178, 218), HQ, CELEBA, (109, 89))


def _eye_image(frame: FaceFrame) -> Image.Image:
    """Grey background with a red blob on the left eye centre and a green one on the right."""
    y, x = np.mgrid[0:frame.height, 0:frame.width].astype(np.float64)
    sigma = frame.eye_distance / 20
    pixels = np.full((frame.height, frame.width, 3), 100.0)
    (mx, my), half = frame.eye_midpoint, frame.eye_distance / 2
    for channel, cx in ((0, mx - half), (1, mx + half)):
        pixels[..., channel] += 150 * np.exp(-((x - cx) ** 2 + (y - my) ** 2) / (2 * sigma ** 2))
    return Image.fromarray(np.rint(pixels).astype(np.uint8))


def _blob_centres(image: Image.Image) -> list[tuple[float, float]]:
    pixels = np.asarray(image, dtype=np.float64)
    y, x = np.mgrid[0:pixels.shape[0], 0:pixels.shape[1]]
    centres = []
    for channel in (0, 1):
        weight = np.clip(pixels[..., channel] - pixels[..., 2] - 10, 0, None)
        centres.append((float((weight * x).sum() / weight.sum()), float((weight * y).sum() / weight.sum())))
    return centres


@pytest.mark.parametrize("hq_side", [256, 1024])
def test_map_to_frame_puts_hq_eyes_on_celeba_eyes(hq_side):
    source = HQ.scaled_to(hq_side, hq_side)
    mapped = map_to_frame(_eye_image(source), HQ, CELEBA, (218, 178))
    (mx, my), half = CELEBA.eye_midpoint, CELEBA.eye_distance / 2
    left, right = _blob_centres(mapped)
    assert left == pytest.approx((mx - half, my), abs=0.5)
    assert right == pytest.approx((mx + half, my), abs=0.5)
    # and the model's own (smaller) input size: the same frame at 89x109
    (mx, my), half = CELEBA.scaled_to(89, 109).eye_midpoint, CELEBA.scaled_to(89, 109).eye_distance / 2
    left, right = _blob_centres(map_to_frame(_eye_image(source), HQ, CELEBA, (109, 89)))
    assert left == pytest.approx((mx - half, my), abs=0.5)
    assert right == pytest.approx((mx + half, my), abs=0.5)


def test_map_to_frame_celeba_eyes_onto_hq_eyes():
    mapped = map_to_frame(_eye_image(CELEBA), CELEBA, HQ, (256, 256))
    left, right = _blob_centres(mapped)
    assert left == pytest.approx((96.0, 121.0), abs=0.5)
    assert right == pytest.approx((160.0, 121.0), abs=0.5)


def test_map_to_frame_pads_with_edge_colours():
    top, bottom, left, right = (250, 10, 10), (10, 250, 10), (10, 10, 250), (250, 250, 10)
    middle = (100, 150, 200)
    pixels = np.empty((256, 256, 3), dtype=np.uint8)
    pixels[:] = middle
    pixels[:, :20] = left
    pixels[:, 236:] = right
    pixels[:20] = top
    pixels[236:] = bottom
    # the CelebA frame reaches beyond every side of a CelebA-HQ crop
    mapped = np.asarray(map_to_frame(Image.fromarray(pixels), HQ, CELEBA, (218, 178))).astype(np.int16)
    assert np.abs(mapped[0] - top).max() <= 1  # whole top row, corners included
    assert np.abs(mapped[-1] - bottom).max() <= 1
    eye_row = int(CELEBA.eye_midpoint[1])
    assert np.abs(mapped[eye_row, 0] - left).max() <= 1
    assert np.abs(mapped[eye_row, -1] - right).max() <= 1
    assert mapped.sum(axis=-1).min() >= 250  # no black anywhere


# --------------------------------------------------------------------------- write_predictions_csv


def _read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_write_predictions_csv(tmp_path):
    root = tmp_path / "photos"
    paths = [root / "x" / "a.png", tmp_path / "elsewhere" / "b, c.jpg"]
    values = np.array([[0.123456789, 1.0], [0.5, -2.25]], dtype=np.float32)
    out = tmp_path / "out" / "deep" / "predictions.csv"
    written = write_predictions_csv(out, paths, ["Smiling", "Young"], values, root=root,
                                    extra={"label": ["yes", "no"], "count": [3, np.int64(4)]}, digits=3)
    assert written == out
    assert _read_csv(out) == [["image", "label", "count", "Smiling", "Young"],
                              ["x/a.png", "yes", "3", "0.123", "1.000"],
                              [paths[1].as_posix(), "no", "4", "0.500", "-2.250"]]
    assert sorted(path.name for path in out.parent.iterdir()) == ["predictions.csv"]  # no temp file left

    # relative paths under a relative root, and overwriting
    relative = [Path("photos") / "a.png"]
    write_predictions_csv(out, relative, ["p"], np.array([[1]]), root=Path("photos"))
    assert _read_csv(out) == [["image", "p"], ["a.png", "1"]]
    write_predictions_csv(out, relative, ["p"], np.array([[0.25]]))
    assert _read_csv(out) == [["image", "p"], ["photos/a.png", "0.250000"]]
    assert sorted(path.name for path in out.parent.iterdir()) == ["predictions.csv"]


def test_write_predictions_csv_rejects_bad_shapes(tmp_path):
    out = tmp_path / "p.csv"
    paths = [Path("a.png"), Path("b.png")]
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        write_predictions_csv(out, paths, ["s", "t"], np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"expected \(2, 3\)"):
        write_predictions_csv(out, paths, ["s", "t", "u"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        write_predictions_csv(out, paths, ["s"], np.zeros(2))
    with pytest.raises(ValueError, match="extra column 'label'"):
        write_predictions_csv(out, paths, ["s"], np.zeros((2, 1)), extra={"label": ["x"]})
    with pytest.raises(ValueError, match="repeat"):
        write_predictions_csv(out, paths, ["image"], np.zeros((2, 1)))
    assert not out.exists() and list(tmp_path.iterdir()) == []
