"""common.metrics.dfn: SFace raw-feature norms and paper 004's DFN ratio."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from common.metrics._images import CorruptImageWarning
from common.metrics.dfn import (
    CELEBA_ALIGNED_LANDMARKS,
    FaceFeatureNorm,
    dfn_summary,
    similarity_transform,
)

N_REAL_FACES = 20


@pytest.fixture(scope="module")
def face_norm() -> FaceFeatureNorm:
    return FaceFeatureNorm(batch_size=8, progress=False)


def _synthetic_images(n=6, height=109, width=89) -> np.ndarray:
    """Deterministic smooth colour images of CelebA's aligned size (no face needed for these checks)."""
    coarse = (np.random.default_rng(3).random((n, 12, 10, 3)) * 255).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC)) for image in coarse])


def test_similarity_transform_recovers_a_known_transform(rng):
    angle, scale, shift = 0.3, 1.7, np.array([5.0, -2.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = rng.normal(size=(5, 2)) * 20
    matrix = similarity_transform(source, source @ rotation.T + shift)
    np.testing.assert_allclose(matrix, np.column_stack([rotation, shift]), atol=1e-9)


def test_norms_are_positive_and_independent_of_batching_and_input_form(face_norm, tmp_path):
    images = _synthetic_images()
    norms = face_norm.norms(images)
    assert norms.shape == (6,) and np.isfinite(norms).all() and (norms > 0).all()
    np.testing.assert_allclose(FaceFeatureNorm(batch_size=4, progress=False).norms(images), norms, rtol=1e-5)
    np.testing.assert_allclose(face_norm.norms(images.transpose(0, 3, 1, 2) / 255.0), norms, rtol=1e-5)
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"{index:06d}.png")
        Image.fromarray(image).save(paths[-1])
    np.testing.assert_allclose(face_norm.norms(tmp_path), norms, rtol=1e-5)
    # The default alignment is the CelebA mean landmarks scaled to the image size.
    explicit = CELEBA_ALIGNED_LANDMARKS * [89 / 178, 109 / 218]
    np.testing.assert_allclose(face_norm.norms(images, landmarks=explicit), norms, rtol=1e-5)
    # The same pictures at twice the size give about the same norms (framing is size-independent).
    doubled = np.stack([np.asarray(Image.fromarray(image).resize((178, 218), Image.BICUBIC)) for image in images])
    np.testing.assert_allclose(face_norm.dfn(images, doubled), 1.0, atol=0.1)


def test_dfn_of_identical_images_is_one_and_corrupt_files_give_nan(face_norm, tmp_path):
    images = _synthetic_images(n=3)
    np.testing.assert_allclose(face_norm.dfn(images, images), 1.0, rtol=1e-6)
    paths = []
    for index, image in enumerate(images):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(paths[-1])
    paths[1].write_bytes(b"not an image")
    with pytest.warns(CorruptImageWarning, match="skipped 1"):
        gammas = face_norm.dfn(images, paths)
    assert np.isnan(gammas[1]) and np.allclose(gammas[[0, 2]], 1.0, rtol=1e-5)
    summary = dfn_summary(gammas)
    assert summary["n"] == 2 and summary["n_missing"] == 1 and summary["mean"] == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="landmarks"):
        face_norm.norms(images, landmarks=np.zeros((2, 5, 2)))


def test_dfn_summary_quartiles():
    summary = dfn_summary(np.array([0.5, 0.75, 1.0, 1.25, 1.5, np.nan]))
    assert summary == {"mean": 1.0, "median": 1.0, "q1": 0.75, "q3": 1.25, "iqr": 0.5, "n": 5, "n_missing": 1}


def test_norm_falls_for_blurred_noisy_and_occluded_real_faces(face_norm, shared_data):
    """What makes DFN meaningful (paper 004 §3.3.1): degraded faces have smaller feature norms."""
    image_dir = shared_data / "celeba" / "img_align_celeba_89x109"
    paths = sorted(image_dir.glob("*.jpg"))[:N_REAL_FACES]
    faces = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in paths])
    clean = face_norm.norms(faces)
    noise_rng = np.random.default_rng(0)
    blurred = np.stack([np.asarray(Image.fromarray(face).filter(ImageFilter.GaussianBlur(2))) for face in faces])
    noisy = np.clip(faces + noise_rng.normal(0, 25, faces.shape), 0, 255).astype(np.uint8)
    occluded = faces.copy()
    occluded[:, 68:93, 20:70] = 128  # grey patch over mouth and chin (89x109 images)
    ratios = {name: face_norm.norms(images) / clean
              for name, images in (("blur", blurred), ("noise", noisy), ("occlusion", occluded))}
    # Measured on these 20 faces: blur 0.73, noise 0.75, occlusion 0.92 (mean ratios).
    assert ratios["blur"].mean() < 0.85 and ratios["noise"].mean() < 0.85, {k: v.mean() for k, v in ratios.items()}
    assert ratios["occlusion"].mean() < 0.97
    assert (ratios["blur"] < 1).mean() >= 0.9 and (ratios["noise"] < 1).mean() >= 0.9
    np.testing.assert_allclose(face_norm.dfn(faces, blurred), ratios["blur"], rtol=1e-6)


def test_command_line_dfn_pairs_folders_by_name(tmp_path, capsys):
    from common.metrics.__main__ import main

    images = _synthetic_images(n=3)
    for folder in ("x", "gx"):
        (tmp_path / folder).mkdir()
        for index, image in enumerate(images):
            Image.fromarray(image).save(tmp_path / folder / f"{index}.png")
    assert main(["dfn", str(tmp_path / "x"), str(tmp_path / "gx"), "--json", str(tmp_path / "dfn.json")]) == 0
    assert "DFN over 3 pairs: mean 1.0000" in capsys.readouterr().out
    (tmp_path / "gx" / "0.png").rename(tmp_path / "gx" / "renamed.png")
    with pytest.raises(SystemExit, match="same relative image paths"):
        main(["dfn", str(tmp_path / "x"), str(tmp_path / "gx")])
