"""common.metrics.kid: KID against a direct O(n^2) implementation of Bińkowski et al.'s / Gretton et
al.'s formulas (unpaired and paired), blockwise sums, and the property that makes it worth having
beside FID: two samples of one distribution score about 0 (negative values included) at any N,
while FID is biased upward, the more the fewer images."""
from __future__ import annotations

import numpy as np
import pytest

from common.metrics import kid as kid_module
from common.metrics.fid import fid_from_features
from common.metrics.kid import kid_from_features, kid_from_kernels, polynomial_kernel


def reference_kid(a: np.ndarray, b: np.ndarray, paired: bool) -> float:
    """Term by term, with explicit loops: k(x, y) = (x.y / d + 1)^3."""
    d = a.shape[1]

    def k(x, y):
        return (float(np.dot(x, y)) / d + 1.0) ** 3

    m, n = len(a), len(b)
    if paired:
        total = 0.0
        for i in range(m):
            for j in range(m):
                if i != j:
                    total += k(a[i], a[j]) + k(b[i], b[j]) - k(a[i], b[j]) - k(a[j], b[i])
        return total / (m * (m - 1))
    within_a = sum(k(a[i], a[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_b = sum(k(b[i], b[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    cross = sum(k(a[i], b[j]) for i in range(m) for j in range(n)) / (m * n)
    return within_a + within_b - 2.0 * cross


@pytest.mark.parametrize("m, n", [(7, 11), (12, 5), (9, 9)])
def test_unpaired_kid_equals_the_direct_formula(rng, m, n):
    a = np.abs(rng.normal(size=(m, 16)))  # pool3 features are non-negative
    b = np.abs(rng.normal(size=(n, 16))) * 1.3 + 0.1
    expected = reference_kid(a, b, paired=False)
    assert kid_from_features(a, b) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    kernels = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    assert kid_from_kernels(*kernels) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def test_paired_kid_equals_the_u_statistic_and_is_zero_for_an_identity_map(rng):
    a = np.abs(rng.normal(size=(10, 8)))
    b = a + 0.3 * rng.normal(size=a.shape)  # each b_i depends on its a_i
    expected = reference_kid(a, b, paired=True)
    assert kid_from_features(a, b, paired=True) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    kernels = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
    assert kid_from_kernels(*kernels, paired=True) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert kid_from_features(a, a, paired=True) == pytest.approx(0.0, abs=1e-12)
    # The unpaired estimator keeps k(a_i, a_i) in its cross term: for b = a it is negative.
    assert kid_from_features(a, a) < 0


def test_blockwise_sums_equal_one_block(rng, monkeypatch):
    a, b, c = rng.normal(size=(23, 6)), rng.normal(size=(17, 6)), rng.normal(size=(23, 6))
    whole = kid_from_features(a, b), kid_from_features(a, c, paired=True)
    monkeypatch.setattr(kid_module, "_BLOCK_ELEMENTS", 20)  # one or two rows per block
    assert kid_from_features(a, b) == pytest.approx(whole[0], rel=1e-12)
    assert kid_from_features(a, c, paired=True) == pytest.approx(whole[1], rel=1e-12)


def test_kid_is_about_zero_for_one_distribution_while_fid_is_biased_upward_at_small_n(rng):
    """200 pairs of disjoint samples of one Gaussian (32-d): KID averages 0 within its standard
    error, with negative values, at N = 10 and N = 40 alike; FID is positive every time and its
    mean falls as N grows (its bias)."""
    dim, repeats = 32, 200
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)

    def sample(n):
        return rng.normal(size=(n, dim)) @ mixing + 1.0

    kid, fid = {}, {}
    for n in (10, 40):
        pairs = [(sample(n), sample(n)) for _ in range(repeats)]
        kid[n] = np.array([kid_from_features(a, b) for a, b in pairs])
        fid[n] = np.array([fid_from_features(a, b) for a, b in pairs])
        standard_error = kid[n].std(ddof=1) / np.sqrt(repeats)
        assert abs(kid[n].mean()) < 3 * standard_error, (n, kid[n].mean(), standard_error)
        assert (kid[n] < 0).mean() > 0.2
        assert (fid[n] > 0).all()
    assert fid[10].mean() > 2 * fid[40].mean()
    # A real difference (mean shift) is seen by both.
    shifted = kid_from_features(sample(40), sample(40) + 0.5)
    assert shifted > 10 * kid[40].std()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="N >= 2"):
        kid_from_features(np.ones((1, 4)), np.ones((3, 4)))
    with pytest.raises(ValueError, match="feature sizes differ"):
        kid_from_features(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="paired KID"):
        kid_from_features(np.ones((3, 4)), np.ones((4, 4)), paired=True)
    with pytest.raises(ValueError, match="non-finite"):
        kid_from_features(np.full((3, 4), np.nan), np.ones((3, 4)))
    with pytest.raises(ValueError, match="kernel shapes"):
        kid_from_kernels(np.ones((3, 3)), np.ones((2, 2)), np.ones((2, 3)))
