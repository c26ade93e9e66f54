"""common.metrics.intervals: Wilson / bootstrap intervals and paired tests against closed forms."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

from common.metrics import intervals
from common.metrics.intervals import (
    Interval,
    McNemarResult,
    bootstrap_interval,
    mcnemar_test,
    paired_bootstrap_difference,
    wilcoxon_signed_rank,
    wilson_interval,
)


def _wilson_closed_form(k: int, n: int, confidence: float) -> tuple[float, float]:
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = k / n
    denominator = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denominator
    half = z / denominator * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


# ---------------------------------------------------------------- Wilson


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (3, 10), (812, 1000), (1, 19962), (50, 51)])
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_wilson_matches_closed_form(k, n, confidence):
    result = wilson_interval(k, n, confidence)
    low, high = _wilson_closed_form(k, n, confidence)
    assert result.low == pytest.approx(low, abs=1e-12)
    assert result.high == pytest.approx(high, abs=1e-12)
    assert result.estimate == k / n
    assert (result.n, result.confidence, result.method) == (n, confidence, "Wilson")
    assert 0.0 <= result.low <= result.estimate <= result.high <= 1.0


def test_wilson_boundaries_and_widening():
    assert wilson_interval(0, 20).low == pytest.approx(0.0, abs=1e-15)
    assert wilson_interval(20, 20).high == pytest.approx(1.0, abs=1e-15)
    narrow, wide = wilson_interval(30, 100, 0.9), wilson_interval(30, 100, 0.99)
    assert wide.low < narrow.low and wide.high > narrow.high


@pytest.mark.parametrize("k,n", [(0, 0), (-1, 10), (11, 10)])
def test_wilson_rejects_invalid_counts(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)


def test_wilson_rejects_invalid_confidence():
    with pytest.raises(ValueError, match="confidence"):
        wilson_interval(3, 10, confidence=95)


# ---------------------------------------------------------------- bootstrap


@pytest.fixture(scope="module")
def normal_data() -> np.ndarray:
    return np.random.default_rng(1234).normal(loc=2.0, scale=3.0, size=400)


def test_bootstrap_mean_close_to_t_interval(normal_data):
    x = normal_data
    result = bootstrap_interval(lambda idx: float(x[idx].mean()), x.size)
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    assert result.estimate == x.mean()
    assert result.low == pytest.approx(x.mean() - half, abs=0.15 * half)
    assert result.high == pytest.approx(x.mean() + half, abs=0.15 * half)
    assert (result.n, result.confidence) == (400, 0.95)
    assert result.method == "bootstrap (percentile, 2000 resamples)"


def test_bootstrap_statistic_receives_resampled_index_array():
    seen = []

    def statistic(idx):
        seen.append(idx.copy())
        return float(idx.mean())

    bootstrap_interval(statistic, 37, n_resamples=50)
    assert len(seen) == 51  # 50 resamples + the full-data estimate
    for idx in seen:
        assert idx.dtype == np.int64 and idx.shape == (37,)
        assert idx.min() >= 0 and idx.max() < 37
    assert any(np.unique(idx).size < 37 for idx in seen)  # drawn with replacement
    assert sum(np.array_equal(idx, np.arange(37)) for idx in seen) == 1


def test_bootstrap_equals_scipy_percentile_interval(normal_data):
    x = normal_data

    def statistic(idx):
        return float(np.median(x[idx]))

    result = bootstrap_interval(statistic, x.size, n_resamples=500, confidence=0.9, seed=7)
    reference = stats.bootstrap((np.arange(x.size),), statistic, vectorized=False, method="percentile",
                                n_resamples=500, confidence_level=0.9, rng=np.random.default_rng(7))
    assert (result.low, result.high) == (reference.confidence_interval.low,
                                         reference.confidence_interval.high)


def test_bootstrap_confidence_and_seed(normal_data):
    x = normal_data

    def statistic(idx):
        return float(x[idx].mean())

    narrow = bootstrap_interval(statistic, x.size, n_resamples=500, confidence=0.8)
    wide = bootstrap_interval(statistic, x.size, n_resamples=500, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high
    same = bootstrap_interval(statistic, x.size, n_resamples=500, confidence=0.8)
    assert same == narrow
    other = bootstrap_interval(statistic, x.size, n_resamples=500, confidence=0.8, seed=1)
    assert (other.low, other.high) != (narrow.low, narrow.high)
    assert other.estimate == narrow.estimate


def test_bootstrap_batching_does_not_change_resamples(normal_data, monkeypatch):
    x = normal_data

    def statistic(idx):
        return float(x[idx].mean())

    whole = bootstrap_interval(statistic, x.size, n_resamples=300)
    monkeypatch.setattr(intervals, "_BATCH_ELEMENTS", 7 * x.size)  # batches of 7 resamples
    assert bootstrap_interval(statistic, x.size, n_resamples=300) == whole


def test_bootstrap_rejects_invalid_arguments():
    with pytest.raises(ValueError, match="n >= 2"):
        bootstrap_interval(lambda idx: 0.0, 1)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_interval(lambda idx: 0.0, 10, confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_interval(lambda idx: 0.0, 10, n_resamples=0)


# ---------------------------------------------------------------- NaN resamples


def _recording(statistic):
    """``statistic`` plus the list of values it returned."""
    values = []

    def wrapped(idx):
        values.append(statistic(idx))
        return values[-1]

    return wrapped, values


def test_bootstrap_drops_nan_resamples_and_reports_them():
    # An AUROC-like statistic: undefined when a resample draws none of the 3 positives (~5 %).
    n = 100
    positive = np.zeros(n, dtype=bool)
    positive[[5, 40, 77]] = True
    score = np.random.default_rng(0).random(n)

    def mean_positive_score(idx):
        chosen = positive[idx]
        return float(score[idx][chosen].mean()) if chosen.any() else float("nan")

    statistic, values = _recording(mean_positive_score)
    result = bootstrap_interval(statistic, n)
    resampled = np.array(values[:-1])  # the last call is the full-data estimate
    n_nan = int(np.isnan(resampled).sum())
    assert 20 < n_nan < 300
    assert result.method == f"bootstrap (percentile, 2000 resamples, {n_nan} with NaN statistic dropped)"
    finite = resampled[~np.isnan(resampled)]
    assert (result.low, result.high) == pytest.approx(tuple(np.percentile(finite, [2.5, 97.5])), abs=1e-12)
    assert result.estimate == pytest.approx(score[positive].mean())


def test_bootstrap_few_nan_resamples_not_reported():
    # NaN when unit 0 is drawn 5 times or more: P ~ 0.4 %, below the 1 % reporting threshold.
    statistic, values = _recording(lambda idx: float("nan") if np.sum(idx == 0) >= 5 else float(idx.mean()))
    result = bootstrap_interval(statistic, 200)
    assert 0 < int(np.isnan(values).sum()) <= 20
    assert result.method == "bootstrap (percentile, 2000 resamples)"
    assert np.isfinite(result.low) and np.isfinite(result.high)


def test_bootstrap_all_resamples_nan_gives_nan_bounds():
    n = 30
    result = bootstrap_interval(lambda idx: 0.5 if np.array_equal(idx, np.arange(n)) else float("nan"), n,
                                n_resamples=200)
    assert result.estimate == 0.5
    assert np.isnan(result.low) and np.isnan(result.high)
    assert "200 with NaN statistic dropped" in result.method
    assert not result.excludes(0.0)


# ---------------------------------------------------------------- paired bootstrap


def test_paired_difference_much_narrower_than_unpaired():
    rng = np.random.default_rng(5)
    n = 500
    difficulty = rng.normal(0.0, 1.0, n)  # shared per-unit component
    score_b = difficulty + rng.normal(0.0, 0.01, n)
    score_a = score_b + 0.05 + rng.normal(0.0, 0.01, n)

    def mean_a(idx):
        return float(score_a[idx].mean())

    def mean_b(idx):
        return float(score_b[idx].mean())

    paired = paired_bootstrap_difference(mean_a, mean_b, n)
    assert paired.estimate == pytest.approx(score_a.mean() - score_b.mean(), abs=1e-12)
    assert paired.excludes(0.0)
    assert paired.low < 0.05 < paired.high
    assert paired.method == "paired bootstrap (percentile, 2000 resamples)"
    interval_a = bootstrap_interval(mean_a, n, seed=1)
    interval_b = bootstrap_interval(mean_b, n, seed=2)
    unpaired_width = np.hypot(interval_a.high - interval_a.low, interval_b.high - interval_b.low)
    assert paired.high - paired.low < 0.05 * unpaired_width
    assert not (interval_a.low > interval_b.high)  # unpaired, the two intervals overlap


def test_paired_difference_of_identical_statistics_is_exactly_zero(normal_data):
    x = normal_data

    def statistic(idx):
        return float(np.sin(x[idx]).mean())

    result = paired_bootstrap_difference(statistic, statistic, x.size, n_resamples=300)
    assert (result.estimate, result.low, result.high) == (0.0, 0.0, 0.0)
    assert not result.excludes(0.0)


def test_paired_difference_uses_same_indices_for_both_statistics():
    calls_a, calls_b = [], []
    paired_bootstrap_difference(lambda idx: calls_a.append(idx.copy()) or 0.0,
                                lambda idx: calls_b.append(idx.copy()) or 0.0, 25, n_resamples=40)
    assert len(calls_a) == len(calls_b) == 41
    assert all(np.array_equal(a, b) for a, b in zip(calls_a, calls_b))


def test_paired_difference_drops_resamples_where_either_is_nan():
    n = 60
    statistic_a = lambda idx: float("nan") if np.sum(idx == 0) >= 3 else float(idx.mean())  # noqa: E731
    statistic_b = lambda idx: float("nan") if np.sum(idx == 1) >= 3 else 1.0  # noqa: E731
    result = paired_bootstrap_difference(statistic_a, statistic_b, n)
    assert "with NaN statistic dropped" in result.method
    assert np.isfinite(result.low) and np.isfinite(result.high)
    assert result.estimate == pytest.approx((n - 1) / 2 - 1.0)


# ---------------------------------------------------------------- McNemar


def test_mcnemar_textbook_example():
    # 20 both right, 10 only A right, 2 only B right, 5 both wrong.
    correct_a = np.array([1] * 20 + [1] * 10 + [0] * 2 + [0] * 5)
    correct_b = np.array([1] * 20 + [0] * 10 + [1] * 2 + [0] * 5)
    result = mcnemar_test(correct_a, correct_b)
    assert (result.a_only, result.b_only, result.n) == (10, 2, 37)
    assert result.p_value == pytest.approx(2 * (1 + 12 + 66) / 2**12, rel=1e-12)  # 0.0386
    assert round(result.p_value, 4) == 0.0386
    assert result.method == "exact binomial (two-sided)"
    swapped = mcnemar_test(correct_b.astype(bool), correct_a.astype(bool))
    assert (swapped.a_only, swapped.b_only) == (2, 10)
    assert swapped.p_value == pytest.approx(result.p_value, rel=1e-12)


def test_mcnemar_no_discordant_pairs():
    outcomes = np.array([True, False, True, True])
    result = mcnemar_test(outcomes, outcomes.copy())
    assert (result.a_only, result.b_only, result.n, result.p_value) == (0, 0, 4, 1.0)


@pytest.mark.parametrize("a,b", [(np.ones(5), np.ones(6)), (np.ones((2, 3)), np.ones((2, 3)))])
def test_mcnemar_rejects_bad_shapes(a, b):
    with pytest.raises(ValueError, match=r"shapes \(.*\) and \(.*\)"):
        mcnemar_test(a, b)


def test_mcnemar_rejects_non_binary_values():
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_test(np.array([0, 1, 2]), np.array([0, 1, 1]))


def test_mcnemar_as_dict_is_json_able():
    result = mcnemar_test(np.array([1, 1, 0, 1]), np.array([0, 1, 1, 0]))
    assert isinstance(result, McNemarResult)
    assert json.loads(json.dumps(result.as_dict())) == {
        "a_only": 2, "b_only": 1, "n": 4, "p_value": 1.0, "method": "exact binomial (two-sided)"}


# ---------------------------------------------------------------- Wilcoxon


def test_wilcoxon_exact_small_sample():
    # Five positive, distinct differences: exact two-sided p = 2 / 2**5.
    a = np.array([1.1, 2.3, 3.6, 4.0, 5.5])
    b = a - np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert wilcoxon_signed_rank(a, b) == pytest.approx(2 / 32, rel=1e-12)
    assert wilcoxon_signed_rank(b, a) == pytest.approx(2 / 32, rel=1e-12)


def test_wilcoxon_zero_differences_discarded_and_all_zero():
    # 10 non-zero differences (negative ones have ranks 3 and 7: T = 10) plus 4 zeros. With zeros and
    # 14 > 13 units scipy uses the normal approximation over the 10 non-zero ones ("wilcox"; "pratt"
    # would rank the zeros too and give 0.060).
    d = np.array([0.1, 0.2, -0.3, 0.4, 0.5, 0.6, -0.7, 0.8, 0.9, 1.0, 0.0, 0.0, 0.0, 0.0])
    b = np.linspace(-1.0, 1.0, d.size)
    n = 10
    z = (10 - n * (n + 1) / 4) / np.sqrt(n * (n + 1) * (2 * n + 1) / 24)
    assert wilcoxon_signed_rank(b + d, b) == pytest.approx(2 * stats.norm.cdf(z), rel=1e-6)  # 0.0745
    assert wilcoxon_signed_rank(b, b.copy()) == 1.0


def test_wilcoxon_detects_shift_and_checks_shapes():
    rng = np.random.default_rng(3)
    b = rng.normal(size=200)
    assert wilcoxon_signed_rank(b + 0.3 + rng.normal(0, 0.1, 200), b) < 1e-10
    with pytest.raises(ValueError, match="shapes"):
        wilcoxon_signed_rank(np.ones(3), np.ones(4))


# ---------------------------------------------------------------- Interval


def test_interval_format_excludes_as_dict():
    interval = Interval(estimate=0.8123, low=0.8051, high=0.8194, confidence=0.95, n=19962, method="Wilson")
    assert interval.format() == "0.812 [0.805, 0.819]"
    assert interval.format(1) == "0.8 [0.8, 0.8]"
    assert interval.excludes() and interval.excludes(0.9) and interval.excludes(0.80)
    assert not interval.excludes(0.81) and not interval.excludes(0.8051) and not interval.excludes(0.8194)
    as_dict = interval.as_dict()
    assert as_dict == {"estimate": 0.8123, "low": 0.8051, "high": 0.8194, "confidence": 0.95,
                       "n": 19962, "method": "Wilson"}
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert all(type(value) in (float, int, str) for value in as_dict.values())
    with pytest.raises(dataclasses.FrozenInstanceError):
        interval.low = 0.0  # type: ignore[misc]


def test_interval_format_nan_estimate_and_numpy_fields():
    nan = Interval(float("nan"), float("nan"), float("nan"), 0.95, 10, "bootstrap")
    assert nan.format() == "n/a"
    assert not nan.excludes(0.0)
    result = wilson_interval(np.int64(3), np.int64(10))
    assert all(type(value) in (float, int, str) for value in result.as_dict().values())
    assert json.loads(json.dumps(result.as_dict()))["n"] == 10
