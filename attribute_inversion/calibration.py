"""Calibration rows and paired intervals of Table 1 (not in the paper; shared/REAL_DATA_PROTOCOL.md).

Per attribute, with ``T_P`` / ``T_Q`` the test faces with / without the attribute (the paper's test
set, the generators' inputs) and ``P`` / ``Q`` *all* held-out faces with / without it:

**The paper's comparison** (§3.3.2: the real test faces against their inversions)
  - ours, CycleGAN: ``T`` vs ``G(T)`` (FID as Eq. 9; KID paired, face ``i`` with its own inversion);
  - identity ``G(x) = x``: ``T`` vs ``T``, what a generator that changes nothing scores (FID 0, KID 0,
    DFN 1): this distance rewards leaving the face alone;
  - real vs real: ``T`` vs ``T'``, held-out faces disjoint from ``T`` with ``T``'s class counts:
    what fresh real faces score at this N, the floor a perfect generator would reach
    (:func:`disjoint_real_sample`; smaller, stratified, when the held-out faces outside ``T`` run
    short; n/a when a class has none left).

**The target-domain distance** (what "inverted" means: ``G(x)`` should look like a real face of the
other domain)
  - ours, CycleGAN: ``G(T_P)`` vs ``R_Q`` and ``G(T_Q)`` vs ``R_P``, where ``R_D`` is the reference
    set of domain ``D``: every held-out face of ``D`` except the floor sample ``F_D``;
  - identity: ``T_P`` vs ``R_Q`` (an unchanged input against the domain it should have moved to);
  - real vs real: ``F_D`` vs ``R_D``: ``F_D`` holds as many held-out faces of ``D`` as the inputs
    (``|T_S|``), at most half of ``D`` (:func:`split_target_domain`), so the floor has the
    evaluated row's N wherever the domain is large enough, and the N of every row is in the table.

Unpaired KID (independent sets) for all but the paper's comparison.

**Intervals** (ours vs CycleGAN on the same input faces): percentile paired bootstrap
(``common.metrics.intervals.paired_bootstrap_difference``) resampling the input faces; FID and KID
are recomputed on every resample from the cached Inception features (the paper's comparison:
real and generated features of the resampled faces; target domain: the generated features of the
resampled inputs against the fixed reference set, which both models share) -- through their inner
products, computed once (:func:`fid_from_gram`, KID's kernel) -- mean DFN and success rate
likewise; McNemar's exact test for the paired successes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from common.metrics.fid import fid_from_features
from common.metrics.intervals import Interval, McNemarResult, mcnemar_test, paired_bootstrap_difference
from common.metrics.kid import KID_COEF0, KID_DEGREE, kid_from_features, kid_from_kernels

Statistic = Callable[[np.ndarray], float]

#: Kernel entries per block when summing a large reference set's kernel (8 bytes each: 128 MiB).
_BLOCK_ELEMENTS = 1 << 24


# --------------------------------------------------------------------------- which faces


def _rng(seed: int, *purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, *purpose])


def split_target_domain(domain_rows: np.ndarray, n_inputs: int, seed: int, purpose: int = 0
                        ) -> tuple[np.ndarray, np.ndarray]:
    """``(floor_rows, reference_rows)``: all held-out faces of one domain split at random (seeded)
    into a floor sample of ``min(n_inputs, len // 2)`` faces and the reference set (the rest)."""
    domain_rows = np.asarray(domain_rows, np.int64)
    k = min(int(n_inputs), len(domain_rows) // 2)
    order = _rng(seed, 1, purpose).permutation(len(domain_rows))
    return np.sort(domain_rows[order[:k]]), np.sort(domain_rows[order[k:]])


@dataclass
class DisjointSample:
    """The real-vs-real floor of the paper's comparison: ``side_rows`` (the test faces, or a
    stratified subset) and ``other_rows`` (disjoint held-out faces, same class counts)."""

    side_rows: np.ndarray
    other_rows: np.ndarray
    reduced: bool  # fewer than the test set: not enough held-out faces outside it


def disjoint_real_sample(test_rows: np.ndarray, test_labels: np.ndarray, heldout_rows: np.ndarray,
                         heldout_labels: np.ndarray, seed: int, purpose: int = 0) -> DisjointSample | str:
    """Held-out faces outside the test set with the test set's class counts (seeded).

    When a class has fewer faces outside the test set than inside it, both sides shrink by the same
    factor per class (the test side to a seeded stratified subset), so the two sets stay disjoint,
    equal in size and alike in class mix. Returns the reason (a string) when a class present in the
    test set has no face left outside it."""
    test_rows, test_labels = np.asarray(test_rows, np.int64), np.asarray(test_labels).astype(bool)
    heldout_rows, heldout_labels = np.asarray(heldout_rows, np.int64), np.asarray(heldout_labels).astype(bool)
    outside = ~np.isin(heldout_rows, test_rows)
    needed = {value: int((test_labels == value).sum()) for value in (True, False)}
    available = {value: heldout_rows[outside & (heldout_labels == value)] for value in (True, False)}
    factor = min([1.0] + [len(available[v]) / needed[v] for v in (True, False) if needed[v]])
    counts = {value: int(np.floor(needed[value] * factor)) for value in (True, False)}
    short = [("with" if v else "without", len(available[v]), needed[v]) for v in (True, False)
             if needed[v] and counts[v] == 0]
    if short:
        name, have, need = short[0]
        return (f"no held-out faces {name} the attribute outside the test set ({have} for {need}), "
                f"so no disjoint real set with the test set's class mix")
    rng = _rng(seed, 2, purpose)
    side, other = [], []
    for value in (True, False):
        members = test_rows[test_labels == value]
        side.append(members if counts[value] == needed[value]
                    else np.sort(rng.choice(members, size=counts[value], replace=False)))
        other.append(np.sort(rng.choice(available[value], size=counts[value], replace=False)))
    return DisjointSample(np.concatenate(side), np.concatenate(other), reduced=factor < 1.0)


# --------------------------------------------------------------------------- distances


def distances(features_a: np.ndarray, features_b: np.ndarray, paired: bool) -> dict[str, float | int]:
    """2048-d FID (``common.metrics.fid``) and KID (``common.metrics.kid``) between two feature sets."""
    return {"fid": fid_from_features(features_a, features_b),
            "kid": kid_from_features(features_a, features_b, paired=paired),
            "n_a": len(features_a), "n_b": len(features_b)}


def _off_diagonal_sum(kernel: np.ndarray) -> float:
    return float(kernel.sum() - np.trace(kernel))


def _kernel_from_gram(gram: np.ndarray, dim: int) -> np.ndarray:
    """KID's kernel ``(x.y / d + 1)^3`` from inner products (``common.metrics.kid``)."""
    return (gram / dim + KID_COEF0) ** KID_DEGREE


def _sum_of_square_roots_of_eigenvalues(symmetric: np.ndarray) -> float:
    """``Σ sqrt(λ)`` over the eigenvalues of a symmetric PSD matrix (``numpy.linalg.eigvalsh``: at
    2,000 x 2,000 about 0.5 s on one core, a third of an SVD of the unsquared matrix). Eigenvalues
    within round-off of 0 (below ``n * 1e-13`` of the largest; centring always makes at least one
    exactly 0) count as 0: a square root would turn their round-off into a visible error."""
    eigenvalues = np.linalg.eigvalsh(np.asarray(symmetric, dtype=np.float64))
    floor = float(np.abs(eigenvalues).max()) * len(eigenvalues) * 1e-13
    return float(np.sqrt(eigenvalues[eigenvalues > floor]).sum())


def _doubly_centred(matrix: np.ndarray) -> np.ndarray:
    """``H_n M H_m`` with ``H = I - 11'/k``: rows and columns of ``M`` centred."""
    return matrix - matrix.mean(axis=0, keepdims=True) - matrix.mean(axis=1, keepdims=True) + matrix.mean()


def fid_from_gram(gram_aa: np.ndarray, gram_ab: np.ndarray, sum_bb: float, trace_bb: float) -> float:
    """FID between feature sets ``a`` (n rows) and ``b`` (m rows) from inner products only: ``a a'``
    (n, n), ``a b'`` (n, m) and the sum and trace of ``b b'``. The same distance as
    ``common.metrics.fid.frechet_distance_from_samples``: the trace of the covariances' geometric
    mean is the nuclear norm of the doubly centred ``a b'`` over ``sqrt((n-1)(m-1))``, taken here as
    the square roots of the eigenvalues of ``M M'`` on the smaller side. A bootstrap resample costs
    one such eigendecomposition and no pass over the 2048 feature dimensions. Clipped at 0."""
    n, m = gram_ab.shape
    sum_aa, sum_ab = float(gram_aa.sum()), float(gram_ab.sum())
    mean_term = sum_aa / n ** 2 + sum_bb / m ** 2 - 2.0 * sum_ab / (n * m)
    spread_a = (float(np.trace(gram_aa)) - sum_aa / n) / (n - 1)
    spread_b = (trace_bb - sum_bb / m) / (m - 1)
    centred = _doubly_centred(gram_ab)
    small_side = centred @ centred.T if n <= m else centred.T @ centred
    nuclear = _sum_of_square_roots_of_eigenvalues(small_side) / np.sqrt((n - 1) * (m - 1))
    return max(float(mean_term + spread_a + spread_b - 2.0 * nuclear), 0.0)


@dataclass
class PairedDistances:
    """FID / KID of ``real[i]`` against ``generated[model][i]`` on resampled faces ``i``: the inner
    products are computed once, a resample only picks rows and columns (:func:`fid_from_gram`)."""

    real: np.ndarray
    generated: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        self._dim = self.real.shape[1]
        self._real_gram = self.real @ self.real.T
        self._grams = {model: (features @ features.T, self.real @ features.T)
                       for model, features in self.generated.items()}

    def fid(self, model: str) -> Statistic:
        real_gram = self._real_gram
        generated_gram, cross_gram = self._grams[model]

        def statistic(rows: np.ndarray) -> float:
            grid = np.ix_(rows, rows)
            resampled = generated_gram[grid]
            return fid_from_gram(real_gram[grid], cross_gram[grid], float(resampled.sum()), float(np.trace(resampled)))

        return statistic

    def kid(self, model: str) -> Statistic:
        real_kernel = _kernel_from_gram(self._real_gram, self._dim)
        generated_kernel, cross_kernel = (_kernel_from_gram(gram, self._dim) for gram in self._grams[model])

        def statistic(rows: np.ndarray) -> float:
            grid = np.ix_(rows, rows)
            return kid_from_kernels(real_kernel[grid], generated_kernel[grid], cross_kernel[grid], paired=True)

        return statistic


@dataclass
class ReferenceDistances:
    """FID / KID of feature sets (``sets[name][i]``, rows ``i`` resampled or all) against one fixed
    reference set: the target-domain rows (ours, CycleGAN, identity, floor) share its cost.

    Computed once: the reference's mean, covariance trace and within-set kernel sum (in row
    blocks: the O(m^2 d) part, paid once however many sets), and per set its inner products, its
    kernel sums against the reference and ``x S_R x'`` (``S_R`` the reference's covariance). Then
    the FID of a set A is exact at any size (equal to ``frechet_distance_from_samples`` to
    round-off): ``tr((S_A S_R)^1/2) = Σ sqrt(eig(A_c S_R A_c')) / sqrt(n - 1)`` with ``A_c`` the
    centred rows (the non-zero eigenvalues of XY and YX agree), one n x n eigendecomposition."""

    sets: dict[str, np.ndarray]
    reference: np.ndarray

    def __post_init__(self) -> None:
        reference = self.reference
        m, dim = reference.shape
        block = max(1, _BLOCK_ELEMENTS // m)
        kernel_sum = 0.0
        for start in range(0, m, block):
            kernel_sum += float(_kernel_from_gram(reference[start:start + block] @ reference.T, dim).sum())
        squared_norms = np.einsum("ij,ij->i", reference, reference)
        self._reference_within = (kernel_sum - float(_kernel_from_gram(squared_norms, dim).sum())) / (m * (m - 1))
        self._reference_mean = reference.mean(axis=0)
        centred = reference - self._reference_mean
        self._reference_spread = float(np.sum(centred ** 2)) / (m - 1)  # tr(S_R)
        covariance = centred.T @ centred / (m - 1) if m >= dim else None
        self._per_model = {}
        for model, features in self.sets.items():
            cross_kernel = np.zeros(len(features))
            for start in range(0, m, block):
                cross_kernel += _kernel_from_gram(features @ reference[start:start + block].T, dim).sum(axis=1)
            gram = features @ features.T
            if covariance is None:
                projected = features @ centred.T  # (n, m): x S_R x' = (x R_c')(x R_c')' / (m - 1)
                metric_gram = projected @ projected.T / (m - 1)
            else:
                metric_gram = features @ covariance @ features.T
            self._per_model[model] = {"gram": gram, "metric_gram": metric_gram,
                                      "mean_products": features @ self._reference_mean,
                                      "kernel": _kernel_from_gram(gram, dim), "cross_kernel": cross_kernel}

    def distances(self, name: str) -> dict[str, float | int]:
        """FID and KID of the whole set ``name`` against the reference, and both sizes."""
        everything = np.arange(len(self.sets[name]))
        return {"fid": self.fid(name)(everything), "kid": self.kid(name)(everything),
                "n_a": len(everything), "n_b": len(self.reference)}

    def fid(self, model: str) -> Statistic:
        parts = self._per_model[model]
        gram, metric_gram, mean_products = parts["gram"], parts["metric_gram"], parts["mean_products"]
        reference_norm = float(self._reference_mean @ self._reference_mean)
        reference_spread = self._reference_spread

        def statistic(rows: np.ndarray) -> float:
            n = len(rows)
            grid = np.ix_(rows, rows)
            resampled = gram[grid]
            total = float(resampled.sum())
            mean_term = total / n ** 2 - 2.0 * float(mean_products[rows].mean()) + reference_norm
            spread = (float(np.trace(resampled)) - total / n) / (n - 1)
            trace_sqrt = _sum_of_square_roots_of_eigenvalues(_doubly_centred(metric_gram[grid])) / np.sqrt(n - 1)
            return max(mean_term + spread + reference_spread - 2.0 * trace_sqrt, 0.0)

        return statistic

    def kid(self, model: str) -> Statistic:
        parts = self._per_model[model]
        generated_kernel, cross = parts["kernel"], parts["cross_kernel"]
        m, reference_within = len(self.reference), self._reference_within

        def statistic(rows: np.ndarray) -> float:
            n = len(rows)
            within = _off_diagonal_sum(generated_kernel[np.ix_(rows, rows)]) / (n * (n - 1))
            return float(within + reference_within - 2.0 * cross[rows].sum() / (n * m))

        return statistic


# --------------------------------------------------------------------------- ours vs CycleGAN


@dataclass
class Comparison:
    """One ``ours - CycleGAN`` row of the intervals table."""

    measure: str
    lower_is_better: bool
    ours: float
    cyclegan: float
    interval: Interval
    mcnemar: McNemarResult | None = None

    def reading(self) -> str:
        """What the interval establishes, in words (``REAL_DATA_PROTOCOL.md``)."""
        if not self.interval.excludes(0.0):
            return "not distinguishable at this scale (the interval contains 0)"
        ours_lower = self.interval.high < 0
        better = ours_lower == self.lower_is_better
        return (f"ours {'lower' if ours_lower else 'higher'} ({'better' if better else 'worse'}); "
                f"the interval excludes 0")


def compare(measure: str, statistic_ours: Statistic, statistic_cyclegan: Statistic, n: int, *,
            lower_is_better: bool, resamples: int, seed: int, successes: tuple[np.ndarray, np.ndarray] | None = None
            ) -> Comparison:
    """Paired bootstrap of ``ours - CycleGAN`` over ``n`` input faces (and McNemar for successes)."""
    everything = np.arange(n)
    interval = paired_bootstrap_difference(statistic_ours, statistic_cyclegan, n, n_resamples=resamples, seed=seed)
    return Comparison(measure, lower_is_better, float(statistic_ours(everything)),
                      float(statistic_cyclegan(everything)), interval,
                      mcnemar_test(*successes) if successes is not None else None)


def mean_of(values: np.ndarray) -> Statistic:
    values = np.asarray(values, np.float64)
    return lambda rows: float(values[rows].mean())
