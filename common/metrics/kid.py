"""Kernel Inception Distance (KID; Bińkowski, Sutherland, Arbel, Gretton, "Demystifying MMD GANs",
ICLR 2018): the squared maximum mean discrepancy (MMD²) between two sets of Inception features
under the cubic polynomial kernel

    k(x, y) = (x · y / d + 1) ** 3,        d = feature dimension (2048 for pool3),

estimated without bias. Features are the same as FID's (``common.metrics.fid.InceptionFeatureExtractor``),
so both distances come from one feature pass.

Why beside FID: FID's plug-in estimate is biased upward, strongly so at small N (two samples of the
*same* distribution score well above 0, more the fewer images there are; Bińkowski et al. §2.3,
App. D), so FIDs computed from different numbers of images cannot be compared. KID's estimator is
unbiased for any N: two samples of the same distribution score around 0, negative values included.

Two estimators (Gretton, Borgwardt, Rasch, Schölkopf, Smola, "A Kernel Two-Sample Test", JMLR 13,
2012, Lemma 6), both unbiased for MMD²:

* **unpaired** (``paired=False``; two independent samples ``a`` (m rows) and ``b`` (n rows), m ≠ n
  allowed)::

      1/(m(m-1)) Σ_{i≠j} k(a_i,a_j) + 1/(n(n-1)) Σ_{i≠j} k(b_i,b_j) - 2/(mn) Σ_{i,j} k(a_i,b_j)

  This is Bińkowski et al.'s KID (their reference code's default ``mmd_est="unbiased"``, there for
  m = n).
* **paired** (``paired=True``; m = n, row ``i`` of ``b`` paired with row ``i`` of ``a``, e.g. a face
  and its translation)::

      1/(m(m-1)) Σ_{i≠j} [k(a_i,a_j) + k(b_i,b_j) - k(a_i,b_j) - k(a_j,b_i)]

  the U-statistic over pairs (their code's ``mmd_est="u-statistic"``): it leaves out the terms
  ``k(a_i, b_i)`` of a pair, so it stays unbiased when ``b_i`` depends on ``a_i``, where the
  unpaired estimator's cross term would be pulled up by each pair's similarity and KID down. It is
  exactly 0 for ``b = a`` (an identity translation).

No subsets: Bińkowski et al. average the estimate over random subsets of 1,000 images to bound the
cost; we use every image (the full-set U-statistic, which has the smallest variance). Kernel sums
are accumulated in row blocks, so memory stays bounded for large sets (time is O(N² d)).
"""
from __future__ import annotations

import numpy as np

from common.metrics.fid import check_feature_pair

__all__ = [
    "KID_COEF0",
    "KID_DEGREE",
    "kid_from_features",
    "kid_from_kernels",
    "polynomial_kernel",
]

#: Bińkowski et al.'s kernel: degree 3, coefficient 1, gamma = 1 / feature dimension.
KID_DEGREE = 3
KID_COEF0 = 1.0
#: Kernel entries computed at once when summing in blocks (8 bytes each: 128 MiB).
_BLOCK_ELEMENTS = 1 << 24


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = KID_DEGREE, gamma: float | None = None,
                      coef0: float = KID_COEF0) -> np.ndarray:
    """``(len(x), len(y))`` matrix ``(gamma * x_i · y_j + coef0) ** degree``; ``gamma`` defaults
    to ``1 / d`` (KID's kernel)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef0) ** degree


def _check_features(features_a, features_b, paired: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both feature sets as float64 (N, D) arrays, checked as FID checks them; ``paired``: one row of
    ``features_b`` per row of ``features_a``."""
    features_a, features_b = check_feature_pair(features_a, features_b)
    if paired and len(features_a) != len(features_b):
        raise ValueError(f"paired KID needs one row of features_b per row of features_a, got "
                         f"{len(features_a)} and {len(features_b)}")
    return features_a, features_b


def _kernel_sum(x: np.ndarray, y: np.ndarray) -> float:
    """``Σ_ij k(x_i, y_j)``, computed ``_BLOCK_ELEMENTS`` kernel entries at a time."""
    block = max(1, _BLOCK_ELEMENTS // max(1, len(y)))
    return float(sum(polynomial_kernel(x[start:start + block], y).sum() for start in range(0, len(x), block)))


def _paired_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``k(x_i, y_i)`` for each row ``i`` (the kernel matrix's diagonal, without the matrix)."""
    return (np.einsum("ij,ij->i", x, y) / x.shape[1] + KID_COEF0) ** KID_DEGREE


def kid_from_features(features_a: np.ndarray, features_b: np.ndarray, *, paired: bool = False) -> float:
    """KID (unbiased MMD² under the cubic polynomial kernel) between two ``(N, D)`` feature sets.

    ``paired=False``: two independent samples (sizes may differ); ``paired=True``: equal sizes,
    row ``i`` of ``features_b`` belongs to row ``i`` of ``features_a`` (module docstring). Both sets
    need at least 2 finite rows of the same dimension (``ValueError`` otherwise). The value can be
    negative: it is an unbiased estimate of a non-negative quantity.
    """
    a, b = _check_features(features_a, features_b, paired)
    m, n = len(a), len(b)
    within_a = _kernel_sum(a, a) - _paired_kernel(a, a).sum()
    within_b = _kernel_sum(b, b) - _paired_kernel(b, b).sum()
    cross = _kernel_sum(a, b)
    if paired:
        cross -= _paired_kernel(a, b).sum()
        return float((within_a + within_b - 2.0 * cross) / (m * (m - 1)))
    return float(within_a / (m * (m - 1)) + within_b / (n * (n - 1)) - 2.0 * cross / (m * n))


def kid_from_kernels(kernel_aa: np.ndarray, kernel_bb: np.ndarray, kernel_ab: np.ndarray, *,
                     paired: bool = False) -> float:
    """KID from precomputed kernel matrices ``k(a_i, a_j)`` (m, m), ``k(b_i, b_j)`` (n, n) and
    ``k(a_i, b_j)`` (m, n), e.g. rows and columns of a whole test set's kernels picked by a
    bootstrap resample. The diagonal left out is positional: in a resample that draws image ``i``
    twice, the two copies count as two different rows, as in the resampled feature sets."""
    kernel_aa, kernel_bb, kernel_ab = (np.asarray(k, np.float64) for k in (kernel_aa, kernel_bb, kernel_ab))
    m, n = len(kernel_aa), len(kernel_bb)
    if kernel_aa.shape != (m, m) or kernel_bb.shape != (n, n) or kernel_ab.shape != (m, n) or min(m, n) < 2:
        raise ValueError(f"kernel shapes {kernel_aa.shape}, {kernel_bb.shape}, {kernel_ab.shape} are not "
                         f"(m, m), (n, n), (m, n) with m, n >= 2")
    within_a = kernel_aa.sum() - np.trace(kernel_aa)
    within_b = kernel_bb.sum() - np.trace(kernel_bb)
    if paired:
        if m != n:
            raise ValueError(f"paired KID needs m = n, got {m} and {n}")
        return float((within_a + within_b - 2.0 * (kernel_ab.sum() - np.trace(kernel_ab))) / (m * (m - 1)))
    return float(within_a / (m * (m - 1)) + within_b / (n * (n - 1)) - 2.0 * kernel_ab.sum() / (m * n))
