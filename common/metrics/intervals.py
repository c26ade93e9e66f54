"""Confidence intervals and paired tests for real-data evaluation (NumPy + SciPy only).

Protocol: every headline number or comparison carries a 95 % interval, and every comparison of two
models is *paired* over the same test units (images).

* A single proportion (accuracy of one attribute, a detection rate, ...) gets a Wilson score
  interval: :func:`wilson_interval`.
* Any other statistic (mean accuracy over attributes, AUROC, mAP, NME, ...) gets a percentile
  bootstrap over test units: :func:`bootstrap_interval`. A difference between two models gets the
  paired bootstrap: :func:`paired_bootstrap_difference` evaluates both statistics on the *same*
  resampled units, so unit-level difficulty cancels and the interval is much narrower than one
  built from two independent intervals.
* Paired correct/incorrect outcomes are compared with the exact McNemar test (:func:`mcnemar_test`);
  paired real-valued per-unit scores with the Wilcoxon signed-rank test
  (:func:`wilcoxon_signed_rank`).

Conventions:

* Bootstrap statistics are functions of an ``int64`` index array: ``statistic(indices)`` gets
  ``n`` row indices into the caller's test set, drawn with replacement, and returns a float
  (typically ``lambda idx: accuracy(y_true[idx], y_pred[idx])``). The caller keeps its arrays; the
  bootstrap never copies them. The estimate is always the statistic on the full test set
  (``statistic(np.arange(n))``), never the bootstrap mean.
* Resamples on which the statistic is undefined (NaN: e.g. AUROC when a resample has no positive)
  are dropped before taking percentiles; when more than 1 % are dropped the ``method`` string of the
  result says how many. If every resample is NaN the bounds are NaN.
* Resampling is reproducible: the same ``seed`` and ``n`` give identical resamples, so
  two statistics bootstrapped with the same seed see the same resampled test sets.
* Results are frozen dataclasses with ``as_dict()`` for JSON results files and
  :meth:`Interval.format` (``"0.812 [0.805, 0.819]"``) for tables.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats

__all__ = [
    "Interval",
    "McNemarResult",
    "bootstrap_interval",
    "mcnemar_test",
    "paired_bootstrap_difference",
    "wilcoxon_signed_rank",
    "wilson_interval",
]

#: Index elements generated per scipy bootstrap batch (8 bytes each: ~32 MB), so that a large test
#: set (FFHQ: 70 000 images x 2000 resamples) is not materialised as one index matrix. Batching does
#: not change the resamples: scipy draws the batches sequentially from the same generator.
_BATCH_ELEMENTS = 4_000_000

#: Fraction of NaN resamples above which the ``method`` string reports the number dropped.
_NAN_REPORT_FRACTION = 0.01


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``."""

    estimate: float  #: the statistic on the full (un-resampled) data
    low: float
    high: float
    confidence: float  #: e.g. 0.95
    n: int  #: number of units (images / trials) it was computed over
    method: str  #: e.g. "Wilson", "paired bootstrap (percentile, 2000 resamples)"

    def excludes(self, value: float = 0.0) -> bool:
        """True when ``value`` lies outside ``[low, high]`` (a NaN bound never excludes anything)."""
        return bool(value < self.low or value > self.high)

    def format(self, digits: int = 3) -> str:
        """``"0.812 [0.805, 0.819]"`` with ``digits`` decimals; ``"n/a"`` when the estimate is NaN."""
        if np.isnan(self.estimate):
            return "n/a"
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def as_dict(self) -> dict:
        """The fields as a plain dict of Python ``float`` / ``int`` / ``str`` (JSON-able)."""
        return {"estimate": float(self.estimate), "low": float(self.low), "high": float(self.high),
                "confidence": float(self.confidence), "n": int(self.n), "method": str(self.method)}


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test of two classifiers' paired correct/incorrect outcomes."""

    a_only: int  #: units A got right and B got wrong
    b_only: int  #: units B got right and A got wrong
    n: int  #: number of paired units
    p_value: float
    method: str  #: "exact binomial (two-sided)"

    def as_dict(self) -> dict:
        """The fields as a plain dict of Python ``int`` / ``float`` / ``str`` (JSON-able)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval (no continuity correction) for the proportion ``successes / n``.

    Computed by ``scipy.stats.binomtest(successes, n).proportion_ci(method="wilson")``. Raises
    ``ValueError`` when ``n == 0`` or ``successes`` lies outside ``[0, n]``.
    """
    successes, n = int(successes), int(n)
    if n <= 0:
        raise ValueError(f"wilson_interval needs n >= 1 trials, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    _check_confidence(confidence)
    ci = stats.binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Interval(estimate=successes / n, low=float(ci.low), high=float(ci.high),
                    confidence=float(confidence), n=n, method="Wilson")


def _percentile_bootstrap(statistic: Callable[[np.ndarray], float], n: int, n_resamples: int,
                          confidence: float, seed: int, label: str) -> Interval:
    """Shared body of :func:`bootstrap_interval` and :func:`paired_bootstrap_difference`."""
    if n < 2:
        raise ValueError(f"a bootstrap needs n >= 2 units, got n={n}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    _check_confidence(confidence)
    indices = np.arange(n, dtype=np.int64)
    with warnings.catch_warnings():
        # scipy warns (with a BCa-worded message) when NaN resamples make its own interval NaN;
        # the interval is recomputed below without them.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap((indices,), statistic, vectorized=False, method="percentile",
                                 n_resamples=n_resamples, batch=max(1, _BATCH_ELEMENTS // n),
                                 confidence_level=confidence, rng=np.random.default_rng(seed))
    distribution = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    n_nan = int(np.isnan(distribution).sum())
    # Same quantiles as scipy's percentile interval (identical when nothing is dropped); NaN when
    # every resample is NaN.
    alpha = (1.0 - confidence) / 2.0
    low, high = stats.quantile(distribution, np.array([alpha, 1.0 - alpha]), nan_policy="omit")
    dropped = f", {n_nan} with NaN statistic dropped" if n_nan > _NAN_REPORT_FRACTION * n_resamples else ""
    return Interval(estimate=float(statistic(indices)), low=float(low), high=float(high),
                    confidence=float(confidence), n=n,
                    method=f"{label} (percentile, {n_resamples} resamples{dropped})")


def bootstrap_interval(statistic: Callable[[np.ndarray], float], n: int, *, n_resamples: int = 2000,
                       confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over ``n`` test units.

    ``statistic(indices)`` receives an ``int64`` array of ``n`` row indices drawn with replacement
    from ``range(n)`` and returns a float; the estimate is ``statistic(np.arange(n))``. The resamples
    are drawn and evaluated by ``scipy.stats.bootstrap((np.arange(n),), statistic,
    vectorized=False, method="percentile", rng=np.random.default_rng(seed))`` (so the data the
    statistic sees is the resampled index array itself); the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of that bootstrap distribution
    after dropping NaN resamples (``scipy.stats.quantile(..., nan_policy="omit")``, equal to
    scipy's own percentile interval when none is NaN). Raises ``ValueError`` when ``n < 2``.
    """
    return _percentile_bootstrap(statistic, n, n_resamples, confidence, seed, "bootstrap")


def paired_bootstrap_difference(statistic_a: Callable[[np.ndarray], float],
                                statistic_b: Callable[[np.ndarray], float], n: int, *,
                                n_resamples: int = 2000, confidence: float = 0.95,
                                seed: int = 0) -> Interval:
    """Paired percentile bootstrap interval of ``statistic_a - statistic_b`` over ``n`` test units.

    Both statistics are evaluated on the *same* resampled index array in every resample (paired
    over test units), as in :func:`bootstrap_interval`; a resample where either is NaN is dropped.
    The estimate is the difference on the full test set. The interval excluding 0
    (:meth:`Interval.excludes`) is the protocol's criterion for "A differs from B".
    """
    def difference(indices: np.ndarray) -> float:
        return float(statistic_a(indices)) - float(statistic_b(indices))

    return _percentile_bootstrap(difference, n, n_resamples, confidence, seed, "paired bootstrap")


def _paired_1d(name_a: str, a, name_b: str, b) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` as arrays, checked to be 1-D and of equal length."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must be 1-D arrays of equal length, "
                         f"got shapes {a.shape} and {b.shape}")
    return a, b


def _as_bool(name: str, values: np.ndarray) -> np.ndarray:
    if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name} must be bool or 0/1 values")
    return values.astype(bool)


def mcnemar_test(correct_a, correct_b) -> McNemarResult:
    """Exact (binomial) two-sided McNemar test of paired per-unit correctness of models A and B.

    ``correct_a`` / ``correct_b`` are 1-D bool or 0/1 arrays over the same test units (``ValueError``
    naming the shapes otherwise). The p-value is ``scipy.stats.binomtest(a_only, a_only + b_only,
    0.5).pvalue`` over the discordant units only; it is 1.0 when there are none.
    """
    correct_a, correct_b = _paired_1d("correct_a", correct_a, "correct_b", correct_b)
    correct_a, correct_b = _as_bool("correct_a", correct_a), _as_bool("correct_b", correct_b)
    a_only = int(np.count_nonzero(correct_a & ~correct_b))
    b_only = int(np.count_nonzero(correct_b & ~correct_a))
    discordant = a_only + b_only
    p_value = float(stats.binomtest(a_only, discordant, 0.5).pvalue) if discordant else 1.0
    return McNemarResult(a_only=a_only, b_only=b_only, n=int(correct_a.size), p_value=p_value,
                         method="exact binomial (two-sided)")


def wilcoxon_signed_rank(scores_a, scores_b) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test on paired per-unit scores.

    ``scipy.stats.wilcoxon(scores_a, scores_b, zero_method="wilcox")``: units with a zero difference
    are discarded. scipy's default ``method="auto"`` gives the exact p-value for up to 50 units
    without ties or zeros; with ties or zeros it permutes exhaustively up to 13 units and uses the
    normal approximation beyond. Returns 1.0 when every difference is zero. The inputs must be 1-D
    and of equal length (``ValueError`` naming the shapes otherwise).
    """
    scores_a, scores_b = _paired_1d("scores_a", scores_a, "scores_b", scores_b)
    scores_a, scores_b = scores_a.astype(np.float64), scores_b.astype(np.float64)
    if not np.any(scores_a != scores_b):
        return 1.0
    result = stats.wilcoxon(scores_a, scores_b, zero_method="wilcox", alternative="two-sided")
    return float(result.pvalue)
