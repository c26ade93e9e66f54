"""Decoded-image cache: pixels, keying, atomic builds, unreadable files, DataLoader workers."""
from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, get_worker_info
from torchvision.transforms import v2

from common.data import cache as cache_module
from common.data.cache import (CachedImageDataset, ImageCache, build_image_cache, image_cache_key,
                               open_image_cache)
from common.data.dataset import FaceDataset, decode_image, image_to_rgb

#: Cache size (height, width): smaller than every source image, so the filter matters.
SIZE = (6, 5)
#: Rows of the fixture's corrupt, empty and truncated files.
UNREADABLE = [1, 4, 6]


def _pattern(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth RGB image (so JPEG keeps it recognisable) with a seeded offset."""
    rows, columns = np.mgrid[0:height, 0:width]
    offset = np.random.default_rng(seed).integers(0, 60, size=3)
    channels = [(rows * 9 + offset[0]), (columns * 11 + offset[1]), (rows * 5 + columns * 5 + offset[2])]
    return (np.stack(channels, axis=-1) % 256).astype(np.uint8)


def _write_jpeg(path: Path, seed: int, height: int = 14, width: int = 12) -> Path:
    Image.fromarray(_pattern(height, width, seed)).save(path, quality=95)
    return path


@pytest.fixture
def image_paths(tmp_path) -> list[Path]:
    """Eight tiny images: RGB JPEG, garbage, L PNG, 16-bit PNG, empty, palette PNG, truncated
    JPEG, RGBA PNG (unreadable at rows ``UNREADABLE``)."""
    folder = tmp_path / "images"
    folder.mkdir()
    rgb = _write_jpeg(folder / "rgb.jpg", seed=0)
    garbage = folder / "garbage.jpg"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8).tobytes())
    grey = folder / "grey.png"
    Image.fromarray(_pattern(11, 9, seed=2)[..., 0]).save(grey)
    deep = folder / "deep.png"
    Image.fromarray((_pattern(13, 10, seed=3)[..., 1].astype(np.uint16) * 257)).save(deep)
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    palette = folder / "palette.png"
    palette_image = Image.fromarray(_pattern(12, 12, seed=4))
    palette_image.convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(palette)
    truncated = folder / "truncated.jpg"
    whole = _write_jpeg(folder / "whole.jpg", seed=5, height=40, width=40).read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    rgba = folder / "rgba.png"
    Image.fromarray(np.dstack([_pattern(10, 8, seed=6), np.full((10, 8), 200, np.uint8)])).save(rgba)
    return [rgb, garbage, grey, deep, empty, palette, truncated, rgba]


def _direct(path: Path, size=SIZE, resample=Image.Resampling.BILINEAR) -> np.ndarray:
    """Decode and resize one image without the cache."""
    return np.asarray(image_to_rgb(decode_image(path), path).resize((size[1], size[0]), resample))


def _cache_files(cache_dir: Path) -> list[str]:
    return sorted(path.name for path in cache_dir.iterdir())


def test_cached_pixels_equal_direct_decode_and_resize(image_paths, tmp_path):
    assert decode_image(image_paths[3]).mode.startswith("I;16")  # the fixture really is 16-bit
    assert decode_image(image_paths[5]).mode == "P"
    cache = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    assert cache.array.shape == (8, *SIZE, 3) and cache.array.dtype == np.uint8
    assert cache.unreadable_indices.tolist() == UNREADABLE
    for index, path in enumerate(image_paths):
        if index in UNREADABLE:
            assert not cache.array[index].any()
            with pytest.raises(ValueError, match=path.name):
                cache.image(index)
        else:
            np.testing.assert_array_equal(cache.image(index), _direct(path))
    lanczos = build_image_cache(image_paths, tmp_path / "cache", SIZE, resample="lanczos", progress=False)
    np.testing.assert_array_equal(lanczos.image(0),
                                  _direct(image_paths[0], resample=Image.Resampling.LANCZOS))
    assert not np.array_equal(lanczos.image(0), cache.image(0))


def test_dataset_gives_face_dataset_pixels_as_uint8_chw(image_paths, tmp_path):
    cache = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    dataset = CachedImageDataset(cache)
    readable = [path for index, path in enumerate(image_paths) if index not in UNREADABLE]
    reference = FaceDataset(readable, image_size=SIZE)
    assert len(dataset) == len(readable) == 5
    for position in range(len(dataset)):
        image = dataset[position]["image"]
        assert image.dtype == torch.uint8 and image.shape == (3, *SIZE)
        expected = torch.round(reference[position]["image"] * 255).to(torch.uint8)
        torch.testing.assert_close(image, expected, rtol=0, atol=0)


def test_centre_square_crop_is_torchvision_centre_crop_before_the_resize(image_paths, tmp_path):
    """The crop is keyed (an uncropped cache keeps its key) and its pixels are torchvision's
    ``center_crop`` to the shorter side, then the resize; the fixture's odd offsets round alike."""
    import torchvision.transforms.functional as TF

    assert image_cache_key(image_paths, SIZE, crop=None) == image_cache_key(image_paths, SIZE)
    assert image_cache_key(image_paths, SIZE, crop="centre_square") != image_cache_key(image_paths, SIZE)
    with pytest.raises(ValueError, match="crop"):
        image_cache_key(image_paths, SIZE, crop="centre")
    cropped = build_image_cache(image_paths, tmp_path / "cache", 4, progress=False, crop="centre_square")
    assert cropped.crop == "centre_square" and cropped.array.shape == (8, 4, 4, 3)
    assert open_image_cache(image_paths, tmp_path / "cache", 4) is None  # the uncropped one is not built
    for index, path in enumerate(image_paths):
        if index in UNREADABLE:
            continue
        image = image_to_rgb(decode_image(path), path)
        side = min(image.size)
        expected = TF.center_crop(image, [side, side]).resize((4, 4), Image.Resampling.BILINEAR)
        np.testing.assert_array_equal(cropped.image(index), np.asarray(expected), err_msg=path.name)
    assert json.loads(cropped.sidecar_path.read_text())["crop"] == "centre_square"


def test_second_open_reads_no_image_file(image_paths, tmp_path, monkeypatch):
    first = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    dataset = CachedImageDataset(first)
    before = [dataset[position]["image"].clone() for position in range(len(dataset))]

    def refuse(*args, **kwargs):
        raise AssertionError("an image file was opened")

    monkeypatch.setattr(Image, "open", refuse)
    again = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    assert again.array_path == first.array_path and again.unreadable_indices.tolist() == UNREADABLE
    reopened = CachedImageDataset(again)
    for position, image in enumerate(before):
        assert torch.equal(reopened[position]["image"], image)
    with pytest.raises(AssertionError, match="opened"):
        FaceDataset(image_paths)[0]  # the patch is live: a decode would have failed


def test_new_content_makes_a_new_cache(image_paths, tmp_path):
    old = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    _write_jpeg(image_paths[0], seed=10)
    assert open_image_cache(image_paths, tmp_path / "cache", SIZE) is None
    new = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    assert new.array_path != old.array_path
    np.testing.assert_array_equal(new.image(0), _direct(image_paths[0]))
    assert not np.array_equal(new.image(0), old.image(0))


def test_touched_file_changed_size_filter_or_order_change_the_key(image_paths, tmp_path):
    key = image_cache_key(image_paths, SIZE)
    assert image_cache_key(image_paths, SIZE) == key
    assert image_cache_key(image_paths, (SIZE[0], SIZE[1] + 1)) != key
    assert image_cache_key(image_paths, SIZE, resample="bicubic") != key
    assert image_cache_key(image_paths[::-1], SIZE) != key
    assert image_cache_key(image_paths[:-1], SIZE) != key
    status = image_paths[2].stat()
    os.utime(image_paths[2], ns=(status.st_atime_ns, status.st_mtime_ns + 1))
    assert image_cache_key(image_paths, SIZE) != key
    with pytest.raises(ValueError, match="resample"):
        image_cache_key(image_paths, SIZE, resample="antialias")


def test_a_different_size_is_a_separate_cache(image_paths, tmp_path):
    small = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    large = build_image_cache(image_paths, tmp_path / "cache", 8, progress=False)
    assert large.array_path != small.array_path and large.array.shape == (8, 8, 8, 3)
    np.testing.assert_array_equal(large.image(2), _direct(image_paths[2], size=(8, 8)))
    assert open_image_cache(image_paths, tmp_path / "cache", SIZE).array_path == small.array_path


def test_interrupted_decoding_leaves_no_cache(image_paths, tmp_path, monkeypatch):
    calls = []

    def decode_then_fail(path):
        calls.append(path)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return decode_image(path)

    monkeypatch.setattr(cache_module, "decode_image", decode_then_fail)
    with pytest.raises(KeyboardInterrupt):
        build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    assert _cache_files(tmp_path / "cache") == []
    assert open_image_cache(image_paths, tmp_path / "cache", SIZE) is None


def test_build_stopped_before_the_record_is_not_read_as_complete(image_paths, tmp_path, monkeypatch):
    replace = cache_module._replace_durably

    def stop_before_record(temp_path, path):
        if path.suffix == ".json":
            raise KeyboardInterrupt
        replace(temp_path, path)

    monkeypatch.setattr(cache_module, "_replace_durably", stop_before_record)
    with pytest.raises(KeyboardInterrupt):
        build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    assert [Path(name).suffix for name in _cache_files(tmp_path / "cache")] == [".npy"]
    assert open_image_cache(image_paths, tmp_path / "cache", SIZE) is None
    monkeypatch.undo()
    cache = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    np.testing.assert_array_equal(cache.image(7), _direct(image_paths[7]))


def test_truncated_array_under_a_record_is_rebuilt(image_paths, tmp_path, caplog):
    cache = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    with open(cache.array_path, "r+b") as file:
        file.truncate(cache.array_path.stat().st_size - 1)
    with caplog.at_level(logging.WARNING, logger="common.data.cache"):
        assert open_image_cache(image_paths, tmp_path / "cache", SIZE) is None
    assert "does not match" in caplog.text
    rebuilt = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    np.testing.assert_array_equal(rebuilt.image(7), _direct(image_paths[7]))


def test_unreadable_images_are_recorded_once_and_named(image_paths, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="common.data.cache"):
        cache = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
        build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("3 of 8 images are unreadable")
    for index in UNREADABLE:
        assert str(image_paths[index]) in warnings[0]
    record = json.loads(cache.sidecar_path.read_text())
    assert record["unreadable"] == [{"index": index, "name": str(image_paths[index])} for index in UNREADABLE]
    assert cache.unreadable_summary() == {
        "unreadable_files": 3, "unreadable_file_names": [str(image_paths[index]) for index in UNREADABLE]}
    dataset = CachedImageDataset(cache)
    assert [dataset[position]["index"] for position in range(len(dataset))] == [0, 2, 3, 5, 7]
    assert dataset.unreadable_summary() == cache.unreadable_summary()


def test_log_names_only_the_first_twenty_unreadable(image_paths, tmp_path, caplog):
    empties = []
    for number in range(22):
        empties.append(tmp_path / "images" / f"empty_{number:02d}.jpg")
        empties[-1].write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger="common.data.cache"):
        cache = build_image_cache([image_paths[0], *empties], tmp_path / "cache", SIZE, progress=False)
    assert cache.unreadable_count() == 22
    message = caplog.records[-1].getMessage()
    assert "empty_19.jpg" in message and "empty_20.jpg" not in message and message.endswith("and 2 more")


def test_indices_select_rows_and_attributes_follow_cache_rows(image_paths, tmp_path):
    cache = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    attributes = np.arange(8 * 2, dtype=np.float32).reshape(8, 2)
    dataset = CachedImageDataset(cache, attributes=attributes, indices=[6, 5, 0])
    assert len(dataset) == 2
    sample = dataset[0]
    assert sample["index"] == 5 and sample["attributes"].tolist() == [10.0, 11.0]
    assert torch.equal(sample["image"], torch.from_numpy(_direct(image_paths[5]).transpose(2, 0, 1).copy()))
    assert dataset.unreadable_files() == [image_paths[6]]
    with pytest.raises(ValueError, match="cache rows"):
        CachedImageDataset(cache, indices=[8])
    with pytest.raises(ValueError, match="attributes"):
        CachedImageDataset(cache, attributes=attributes[:7])


def test_transform_randomness_comes_only_from_torch_generator(image_paths, tmp_path):
    cache = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    plain = CachedImageDataset(cache)
    state = torch.get_rng_state()
    unflipped = [plain[position]["image"] for position in range(len(plain))]
    assert torch.equal(torch.get_rng_state(), state)  # no hidden draws without a transform

    augmented = CachedImageDataset(cache, transform=v2.Compose(
        [v2.RandomHorizontalFlip(p=0.5), v2.ToDtype(torch.float32, scale=True)]))

    def epoch(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [augmented[position]["image"] for position in range(len(augmented))]

    first, repeat = epoch(3), epoch(3)
    assert all(torch.equal(a, b) for a, b in zip(first, repeat))
    as_float = [v2.functional.to_dtype(image, torch.float32, scale=True) for image in unflipped]
    flipped = [torch.equal(image, as_float[k].flip(-1)) for k, image in enumerate(first)]
    kept = [torch.equal(image, as_float[k]) for k, image in enumerate(first)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_cache_pickles_without_its_array(image_paths, tmp_path):
    cache = build_image_cache(image_paths, tmp_path / "cache", 64, progress=False)
    dataset = CachedImageDataset(cache)
    reference = dataset[0]["image"]
    assert cache._array is not None  # mapped by the read above
    payload = pickle.dumps(dataset)
    assert len(payload) < cache.array.nbytes / 20
    copy = pickle.loads(payload)
    assert isinstance(copy.cache, ImageCache) and copy.cache._array is None
    assert torch.equal(copy[0]["image"], reference)


def test_dataloader_workers_map_the_cache_themselves(image_paths, tmp_path):
    cache = build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    attributes = np.eye(8, dtype=np.float32)
    dataset = CachedImageDataset(cache, attributes=attributes)

    def check_unmapped(worker_id: int) -> None:
        assert get_worker_info().dataset.cache._array is None

    loader = DataLoader(dataset, batch_size=2, num_workers=2, worker_init_fn=check_unmapped)
    batches = list(loader)
    assert cache._array is None  # the main process never mapped it: the workers did
    indices = torch.cat([batch["index"] for batch in batches]).tolist()
    assert indices == [0, 2, 3, 5, 7]
    images = torch.cat([batch["image"] for batch in batches])
    expected = torch.from_numpy(np.stack([_direct(image_paths[index]) for index in indices]))
    assert torch.equal(images, expected.permute(0, 3, 1, 2))
    labels = torch.cat([batch["attributes"] for batch in batches])
    assert torch.equal(labels, torch.from_numpy(attributes[indices]))


def test_disk_space_is_checked_before_decoding(image_paths, tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module.shutil, "disk_usage", lambda path: SimpleNamespace(free=100))
    with pytest.raises(OSError, match="needs .* GiB"):
        build_image_cache(image_paths, tmp_path / "cache", SIZE, progress=False)
    assert _cache_files(tmp_path / "cache") == []
