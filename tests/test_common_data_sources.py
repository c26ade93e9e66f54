"""open_celeba_source: synthetic faces (cached, keyed by parameters) or a real CelebA root."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import common.synthetic
from common.attributes import CELEBA_ATTRIBUTES
from common.data.sources import open_celeba_source, synthetic_celeba_key


def _write_minimal_celeba(root: Path, n: int, height: int, width: int) -> None:
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    rows = [f"{i:06d}.jpg" + "  1" * 40 for i in range(1, n + 1)]
    (root / "list_attr_celeba.txt").write_bytes(
        ("\r\n".join([str(n), " ".join(CELEBA_ATTRIBUTES)] + rows) + "\r\n").encode())
    for i in range(1, n + 1):
        Image.new("RGB", (width, height)).save(root / "img_align_celeba" / f"{i:06d}.jpg")


def test_synthetic_source_calls_the_writer_once_per_parameter_set(tmp_path, monkeypatch):
    calls = []

    def fake_write_celeba_layout(root, n, seed=0, height=218, width=178):
        calls.append((Path(root), n, seed, height, width))
        _write_minimal_celeba(Path(root), n, height, width)
        return Path(root)

    monkeypatch.setattr(common.synthetic, "write_celeba_layout", fake_write_celeba_layout, raising=False)
    annotations = open_celeba_source(None, synthetic_n=5, synthetic_size=(30, 20), seed=7, cache_dir=tmp_path)
    assert calls == [(tmp_path / synthetic_celeba_key(5, 7, 30, 20), 5, 7, 30, 20)]
    assert len(annotations) == 5 and annotations.attributes.shape == (5, 40)
    assert synthetic_celeba_key(5, 7, 30, 20) != synthetic_celeba_key(5, 8, 30, 20)


def test_data_root_with_celeba_subfolder_or_celeba_root(tmp_path):
    _write_minimal_celeba(tmp_path / "celeba", 3, 12, 10)
    assert len(open_celeba_source(tmp_path)) == 3
    assert open_celeba_source(tmp_path / "celeba").root == tmp_path / "celeba"
    with pytest.raises(FileNotFoundError, match="data root not found"):
        open_celeba_source(tmp_path / "absent")


def test_synthetic_source_with_the_real_generator(tmp_path):
    if not hasattr(importlib.import_module("common.synthetic"), "write_celeba_layout"):
        pytest.skip("common.synthetic.write_celeba_layout is not written yet (another helper's file)")
    first = open_celeba_source(None, synthetic_n=8, synthetic_size=(109, 89), seed=0, cache_dir=tmp_path)
    second = open_celeba_source(None, synthetic_n=8, synthetic_size=(109, 89), seed=0, cache_dir=tmp_path)
    assert len(first) == 8 and first.image_ids == second.image_ids
    np.testing.assert_array_equal(first.attributes, second.attributes)
    assert first.landmarks is not None and first.identities is not None and first.mask_dir is not None
    with Image.open(first.image_paths()[0]) as image:
        assert image.size == (89, 109)


@pytest.mark.real_data
def test_real_data_root(shared_data):
    annotations = open_celeba_source(shared_data)
    assert len(annotations) == 10_000 and annotations.n_annotated == 202_599


def test_loaders_read_every_synthetic_layout(synthetic_celeba_root, tmp_path):
    """The synthetic writers and these loaders agree on the official formats."""
    from common.data.celeba import read_celeba
    from common.data.dataset import celeba_dataset
    from common.data.helen import load_helen_mask, read_helen
    from common.data.mtfl import read_mtfl
    from common.synthetic import render_face, write_helen_layout, write_mtfl_layout

    celeba = read_celeba(synthetic_celeba_root)
    assert len(celeba) == 64 and celeba.mask_dir is not None and celeba.bboxes is not None
    face = render_face(3, seed=0, height=109, width=89)
    np.testing.assert_array_equal(celeba.attributes[3], face.attributes)
    np.testing.assert_allclose(celeba.landmarks[3], np.rint(face.landmarks))
    sample = celeba_dataset(celeba, indices=[3], hflip=1.0)[0]
    assert sample["mask"].shape == (109, 89) and sample["image"].shape == (3, 109, 89)
    np.testing.assert_array_equal(sample["mask"].numpy(), face.mask_parts7[:, ::-1])

    helen_root = write_helen_layout(tmp_path / "helen", n=12, seed=0, height=64, width=52)
    helen = read_helen(helen_root, "exemplars")
    assert len(helen) >= 1
    mask = load_helen_mask(helen.label_dirs[0])
    assert mask.shape == (64, 52) and mask.max() <= 10

    mtfl_root = write_mtfl_layout(tmp_path / "mtfl", n_train=6, n_test=3, seed=0)
    train, test = read_mtfl(mtfl_root, "training"), read_mtfl(mtfl_root, "testing")
    assert (len(train), len(test)) == (6, 3)
    assert set(train.pose.tolist()) <= set(range(5)) and train.landmarks.shape == (6, 5, 2)
