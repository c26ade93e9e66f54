"""FaceDataset: joint resize / flip of image, landmarks and mask; transforms; corrupt images."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.transforms import RandAugment

from common.attributes import CELEBA_ATTRIBUTES, HELEN11_FLIP_PERMUTATION
from common.data import dataset as dataset_module
from common.data.celeba import read_celeba
from common.data.dataset import FaceDataset, celeba_dataset, collate_skip_corrupt

WIDTH, HEIGHT = 20, 24
#: lefteye, righteye, nose, leftmouth, rightmouth (x, y); the right eye is marked in the image.
LANDMARKS = np.array([[[6, 8], [13, 8], [10, 13], [7, 18], [13, 18]]], dtype=np.float32)
MARKED_LANDMARK = 1


def _marked_face(tmp_path: Path) -> tuple[Path, Path]:
    """A black PNG with one white pixel at the right-eye landmark, and a mask with
    Helen label 2 (left_eyebrow) on columns 0..4 and label 10 (hair) on the top row."""
    pixels = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    x, y = LANDMARKS[0, MARKED_LANDMARK].astype(int)
    pixels[y, x] = 255
    image_path = tmp_path / "face.png"
    Image.fromarray(pixels).save(image_path)
    labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    labels[:, :5] = 2
    labels[0, :] = 10
    mask_path = tmp_path / "face_mask.png"
    Image.fromarray(labels).save(mask_path)
    return image_path, mask_path


def _brightness_centroid(image: torch.Tensor) -> tuple[float, float]:
    weights = image.sum(0).numpy().astype(np.float64)
    rows, columns = np.indices(weights.shape)
    return float((columns * weights).sum() / weights.sum()), float((rows * weights).sum() / weights.sum())


def test_without_options_image_is_float_in_unit_range(tmp_path):
    image_path, _ = _marked_face(tmp_path)
    sample = FaceDataset([image_path])[0]
    assert set(sample) == {"image", "index"}
    assert sample["image"].dtype == torch.float32 and sample["image"].shape == (3, HEIGHT, WIDTH)
    assert sample["image"].max() == 1.0 and sample["image"].min() == 0.0


def test_flip_moves_landmarks_and_renames_left_right(tmp_path):
    image_path, mask_path = _marked_face(tmp_path)
    data = FaceDataset([image_path], landmarks=LANDMARKS, mask_paths=[mask_path], hflip=1.0,
                       mask_flip_permutation=HELEN11_FLIP_PERMUTATION)
    sample = data[0]
    # the marked right eye is now the (mirrored) left eye, and the white pixel is under it
    lefteye_x, lefteye_y = sample["landmarks"][0].tolist()
    assert (lefteye_x, lefteye_y) == (WIDTH - 1 - 13, 8)
    assert sample["image"][:, int(lefteye_y), int(lefteye_x)].tolist() == [1.0, 1.0, 1.0]
    assert sample["landmarks"][2].tolist() == [WIDTH - 1 - 10, 13]  # the nose stays the nose
    mask = sample["mask"]
    assert mask.dtype == torch.int64 and mask.shape == (HEIGHT, WIDTH)
    # left_eyebrow (2) on the left columns became right_eyebrow (3) on the right columns
    assert (mask[1:, -5:] == 3).all() and (mask[1:, :-5] == 0).all() and (mask[0] == 10).all()
    unflipped = FaceDataset([image_path], landmarks=LANDMARKS, mask_paths=[mask_path])[0]
    np.testing.assert_array_equal(unflipped["landmarks"].numpy(), LANDMARKS[0])
    assert (unflipped["mask"][1:, :5] == 2).all()


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_resize_scales_landmarks_with_the_image(tmp_path, flip):
    image_path, mask_path = _marked_face(tmp_path)
    data = FaceDataset([image_path], landmarks=LANDMARKS, mask_paths=[mask_path],
                       image_size=(3 * HEIGHT, 2 * WIDTH), hflip=flip)
    sample = data[0]
    assert sample["image"].shape == (3, 3 * HEIGHT, 2 * WIDTH) and sample["mask"].shape == (3 * HEIGHT, 2 * WIDTH)
    marked = 0 if flip else MARKED_LANDMARK
    centroid = _brightness_centroid(sample["image"])
    np.testing.assert_allclose(centroid, sample["landmarks"][marked].numpy(), atol=0.05)
    label_columns = (sample["mask"][5] == 2).nonzero().flatten().tolist()
    # nearest: 5 columns -> 10 columns; without mask_flip_permutation the label itself is kept
    assert label_columns == (list(range(30, 40)) if flip else list(range(10)))


def test_attributes_normalize_and_index(tmp_path):
    image_path, _ = _marked_face(tmp_path)
    attributes = np.zeros((2, 40), dtype=np.uint8)
    attributes[1, 3] = 1
    data = FaceDataset([image_path, image_path], attributes=attributes,
                       normalize=([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]))
    sample = data[1]
    assert sample["index"] == 1 and sample["attributes"].dtype == torch.float32
    assert sample["attributes"][3] == 1.0 and sample["attributes"].sum() == 1.0
    assert sample["image"].min() == -2.0 and sample["image"].max() == 2.0


def test_randaugment_acts_on_the_pil_image(tmp_path):
    rng = np.random.default_rng(0)
    image_path = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)).save(image_path)
    plain = FaceDataset([image_path], image_size=32)[0]["image"]
    augmented_data = FaceDataset([image_path], image_size=32, image_transform=RandAugment(num_ops=2, magnitude=15))
    torch.manual_seed(0)
    augmented = [augmented_data[0]["image"] for _ in range(4)]
    assert all(a.shape == (3, 32, 32) and a.dtype == torch.float32 for a in augmented)
    assert any(not torch.equal(a, plain) for a in augmented)


def test_corrupt_images_are_skipped_counted_and_warned_once(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_module, "_corrupt_skipped", 0)
    monkeypatch.setattr(dataset_module, "_warned", False)
    good = tmp_path / "good.jpg"
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    data = FaceDataset([good, truncated, good, garbage], attributes=np.zeros((4, 40), np.uint8))
    assert data[1] is None and data[3] is None
    loader = DataLoader(data, batch_size=2, collate_fn=collate_skip_corrupt, num_workers=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(loader)
    assert [batch["index"].tolist() for batch in batches] == [[0], [2]]
    assert batches[0]["image"].shape == (1, 3, HEIGHT, WIDTH)
    assert dataset_module.corrupt_samples_skipped() == 2
    assert len([w for w in caught if "corrupt" in str(w.message)]) == 1
    assert collate_skip_corrupt([None, None]) is None
    with pytest.raises(FileNotFoundError):
        FaceDataset([tmp_path / "missing.jpg"])[0]


def test_palette_mask_keeps_its_indices_and_rgb_mask_is_refused(tmp_path):
    image_path, _ = _marked_face(tmp_path)
    labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    labels[5:10, 3:7] = 6
    palette_mask = Image.fromarray(labels).convert("P")
    palette_mask.putpalette([255 - i for i in range(256)] * 3)  # grey levels unlike the indices
    palette_mask.save(tmp_path / "palette.png")
    sample = FaceDataset([image_path], mask_paths=[tmp_path / "palette.png"])[0]
    np.testing.assert_array_equal(sample["mask"].numpy(), labels)
    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "rgb_mask.png")
    with pytest.raises(ValueError, match="rgb_mask.png: a mask must be a single-channel label image"):
        FaceDataset([image_path], mask_paths=[tmp_path / "rgb_mask.png"])[0]


def test_celeba_dataset_uses_annotations(tmp_path):
    ids = [f"{i:06d}.jpg" for i in range(1, 5)]
    rows = [name + "".join(f"{v:>3d}" for v in ([1] * 20 + [-1] * 20 if i % 2 else [-1] * 40))
            for i, name in enumerate(ids)]
    (tmp_path / "list_attr_celeba.txt").write_bytes(
        ("\r\n".join(["4", " ".join(CELEBA_ATTRIBUTES)] + rows) + "\r\n").encode())
    (tmp_path / "img_align_celeba").mkdir()
    (tmp_path / "parsing_parts7").mkdir()
    for name in ids:
        Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "img_align_celeba" / name)
        Image.new("L", (WIDTH, HEIGHT), 4).save(tmp_path / "parsing_parts7" / name.replace(".jpg", ".png"))
    annotations = read_celeba(tmp_path)
    data = celeba_dataset(annotations, indices=[1, 2], image_size=16)
    assert len(data) == 2
    sample = data[0]
    assert sample["attributes"][:20].sum() == 20 and sample["attributes"][20:].sum() == 0
    assert sample["image"].shape == (3, 16, 16) and (sample["mask"] == 4).all()
    assert "mask" not in celeba_dataset(annotations, mask_paths=None)[0]
