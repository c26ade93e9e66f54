"""The paper's comparisons, each with a paired 95 % bootstrap interval over the test images.

Kalayeh et al. claim (Table 2, §4.3.1) that SSP + SSG, SSP and SSG each beat the average-pooling
basic net in classification error and average precision, and (after weighted-BCE fine-tuning) in
balanced accuracy, and report SPPNet*, the Naive approach and BBox beside it; Table 4 (§4.4)
claims that joint training with attributes raises the parser's mean IoU. For each comparison
"A vs B" this module computes, on our test split:

* the difference A − B of the table's measure (error %, AP %, balanced accuracy %, mean IoU %),
  exactly the difference of the two table cells;
* a paired percentile bootstrap interval of it (``common.metrics.intervals``: both models are
  scored on the same resampled test images);
* for error, the Wilcoxon signed-rank test of the per-image error rates, and per attribute the
  exact McNemar test of the paired correct / wrong decisions (how many of the 40 attributes
  favour A or B at p < 0.05 / 40, Bonferroni).

The protocol: "A beats B" only where the interval excludes 0 in A's favour; otherwise "not
distinguishable at this scale".

A resample is a multiset of test images; the statistics take it as per-image counts (weights), so
AP is the weighted AP of scikit-learn's ``average_precision_score(..., sample_weight=counts)``
(computed here for all attributes at once: :class:`ResampledAveragePrecision`). A resample where a
measure is undefined (an attribute without positives, or without one class for balanced
accuracy) is dropped by the bootstrap, which says so when more than 1 % are.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from common.metrics.intervals import (mcnemar_test, paired_bootstrap_difference,
                                      wilcoxon_signed_rank)
from common.tables import Table, cell_or_na, na

#: Bonferroni-corrected level of the per-attribute McNemar tests.
MCNEMAR_LEVEL = 0.05 / 40


class ResampledAveragePrecision:
    """Mean average precision (%) over the attributes ``columns`` of ``scores`` (N, A) against
    0/1 ``labels`` (N, A), for any per-image weights ``counts`` (N,) (a bootstrap resample).

    AP of one attribute = sum over images k of w_k y_k P(k) / sum_k w_k y_k, where P(k) is the
    weighted precision at the threshold equal to image k's score (all images scoring at least as
    high count): scikit-learn's step-wise AP with ``sample_weight``. The score order and the
    tie groups are computed once; each call is a few cumulative sums. NaN when an attribute has
    no positive weight."""

    def __init__(self, labels: np.ndarray, scores: np.ndarray, columns: Sequence[int]):
        columns = np.asarray(columns, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)[:, columns]
        labels = np.asarray(labels, dtype=np.float64)[:, columns]
        self.order = np.argsort(-scores, axis=0, kind="stable")
        sorted_scores = np.take_along_axis(scores, self.order, axis=0)
        self.sorted_labels = np.take_along_axis(labels, self.order, axis=0)
        # for every position, the last position of its group of tied scores
        n = len(scores)
        is_last = np.ones_like(sorted_scores, dtype=bool)
        is_last[:-1] = sorted_scores[:-1] != sorted_scores[1:]
        positions = np.where(is_last, np.arange(n)[:, None], n)
        self.group_end = np.minimum.accumulate(positions[::-1], axis=0)[::-1]

    def __call__(self, counts: np.ndarray) -> float:
        weights = np.asarray(counts, dtype=np.float64)[self.order]
        weighted_positives = weights * self.sorted_labels
        true_positives = np.cumsum(weighted_positives, axis=0)
        total = np.cumsum(weights, axis=0)
        precision = np.divide(true_positives, total, out=np.zeros_like(total), where=total > 0)
        at_group_end = np.take_along_axis(precision, self.group_end, axis=0)
        positives = weighted_positives.sum(axis=0)
        if np.any(positives == 0):
            return float("nan")
        return float(100.0 * np.mean((weighted_positives * at_group_end).sum(axis=0) / positives))


def resampled_balanced_accuracy(labels: np.ndarray, decisions: np.ndarray,
                                columns: Sequence[int]) -> Callable[[np.ndarray], float]:
    """``counts -> mean over the attributes columns of (TPR + TNR) / 2`` in %, decisions 0/1;
    NaN when a weighted class is empty for one of them."""
    columns = np.asarray(columns, dtype=np.int64)
    labels = np.asarray(labels, dtype=np.float64)[:, columns]
    decisions = np.asarray(decisions, dtype=np.float64)[:, columns]
    true_positive, true_negative = labels * decisions, (1 - labels) * (1 - decisions)

    def statistic(counts: np.ndarray) -> float:
        counts = np.asarray(counts, dtype=np.float64)
        positives, negatives = counts @ labels, counts @ (1 - labels)
        if np.any(positives == 0) or np.any(negatives == 0):
            return float("nan")
        rates = (counts @ true_positive / positives + counts @ true_negative / negatives) / 2
        return float(100.0 * rates.mean())

    return statistic


def resampled_mean_iou(confusions: np.ndarray) -> Callable[[np.ndarray], float]:
    """``counts -> mean IoU %`` of the summed per-image confusions (N, K, K), over the classes
    present in truth or prediction (as Table 4)."""
    flat = np.asarray(confusions, dtype=np.float64).reshape(len(confusions), -1)
    classes = confusions.shape[1]

    def statistic(counts: np.ndarray) -> float:
        total = (np.asarray(counts, dtype=np.float64) @ flat).reshape(classes, classes)
        intersection = np.diag(total)
        union = total.sum(axis=0) + total.sum(axis=1) - intersection
        present = union > 0
        return float(100.0 * np.mean(intersection[present] / union[present])) if present.any() \
            else float("nan")

    return statistic


@dataclass(frozen=True)
class Comparison:
    """One claim "A vs B" of the paper on one measure."""

    label: str             # e.g. "SSP + SSG vs Avg. Pooling"
    measure: str           # "error" | "average_precision" | "balanced_accuracy" | "mean_iou"
    model_a: str
    model_b: str
    paper_difference: float | None  # A − B in the paper (None: not in the paper)
    lower_is_better: bool


#: Table 2's pre-cropped numbers behind the paper's differences (A − B).
_PAPER_ERROR = {"avgpool": 9.14, "ssg": 8.38, "ssp": 8.33, "ssp+ssg": 8.20, "spp": 9.49,
                "naive": 9.13, "bbox": 8.76}
_PAPER_AP = {"avgpool": 79.74, "ssg": 80.55, "ssp": 81.02, "ssp+ssg": 81.45, "spp": 77.69,
             "naive": 79.74, "bbox": 79.95}
_PAPER_BALANCED = {"avgpool": 86.73, "ssg": 87.82, "ssp": 88.24}
#: Table 4's average IoU: without / with attributes.
_PAPER_IOU = {"alone": 61.84, "joint": 65.66}
MODEL_NAMES = {"avgpool": "Avg. Pooling", "ssg": "SSG", "ssp": "SSP", "ssp+ssg": "SSP + SSG",
               "spp": "SPPNet*", "naive": "Naive Approach", "bbox": "BBox",
               "joint": "parser trained with attributes", "alone": "parser alone"}
MEASURE_NAMES = {"error": "error %", "average_precision": "AP %",
                 "balanced_accuracy": "balanced accuracy % (weighted BCE)",
                 "mean_iou": "mean IoU % (Table 4)"}


def _paper_difference(table: Mapping[str, float], a: str, b: str) -> float | None:
    return round(table[a] - table[b], 2) if a in table and b in table else None


def paper_comparisons() -> list[Comparison]:
    """Every claim of Table 2 / Table 4 we test, in the order of the claims table."""
    comparisons = []
    for model in ("ssp+ssg", "ssp", "ssg", "spp", "naive", "bbox"):
        label = f"{MODEL_NAMES[model]} vs {MODEL_NAMES['avgpool']}"
        comparisons.append(Comparison(label, "error", model, "avgpool",
                                      _paper_difference(_PAPER_ERROR, model, "avgpool"), True))
        comparisons.append(Comparison(label, "average_precision", model, "avgpool",
                                      _paper_difference(_PAPER_AP, model, "avgpool"), False))
        if model in ("ssp+ssg", "ssp", "ssg"):
            comparisons.append(Comparison(label, "balanced_accuracy", model, "avgpool",
                                          _paper_difference(_PAPER_BALANCED, model, "avgpool"),
                                          False))
    comparisons.append(Comparison("parser trained with attributes vs alone", "mean_iou", "joint",
                                  "alone", _paper_difference(_PAPER_IOU, "joint", "alone"), False))
    return comparisons


@dataclass(frozen=True)
class ComparisonResult:
    comparison: Comparison
    difference: float
    low: float
    high: float
    method: str
    wilcoxon_p: float | None = None
    attributes_favouring: tuple[int, int] | None = None  # (A, B), McNemar per attribute

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    @property
    def winner(self) -> int:
        """1: A better, -1: B better (the interval excludes 0), 0: not distinguishable."""
        if not self.excludes_zero:
            return 0
        return 1 if (self.difference < 0) == self.comparison.lower_is_better else -1

    @property
    def verdict(self) -> str:
        """"<A> better", "<B> better" or "not distinguishable at this scale"."""
        if not self.winner:
            return "not distinguishable at this scale"
        winner = self.comparison.model_a if self.winner > 0 else self.comparison.model_b
        return f"{MODEL_NAMES[winner]} better"


def compare(comparisons: Sequence[Comparison], labels: np.ndarray,
            probabilities: Mapping[str, np.ndarray], balanced: Mapping[str, np.ndarray],
            confusions: Mapping[str, np.ndarray] | None, n_resamples: int,
            seed: int = 0) -> list[ComparisonResult]:
    """Score every comparison on the test split.

    ``labels`` (N, 40) 0/1; ``probabilities`` / ``balanced``: model -> (N, 40) test scores of the
    plainly trained / weighted-BCE fine-tuned models (decisions at 0.5, as Table 2);
    ``confusions``: "alone" / "joint" -> (M, 7, 7) per-image parsing confusions (None: the
    parsing comparison is skipped). All bootstraps share ``seed``, so they resample the same test
    images."""
    labels = np.asarray(labels).astype(np.uint8)
    n = len(labels)
    with_positives = np.flatnonzero(labels.sum(axis=0) > 0)
    with_both = np.flatnonzero((labels.sum(axis=0) > 0) & (labels.sum(axis=0) < n))
    results = []
    for comparison in comparisons:
        a, b = comparison.model_a, comparison.model_b
        if comparison.measure == "mean_iou":
            if confusions is None:
                continue
            stat_a, stat_b = resampled_mean_iou(confusions[a]), resampled_mean_iou(confusions[b])
            units = len(confusions[a])
        elif comparison.measure == "average_precision":
            stat_a = ResampledAveragePrecision(labels, probabilities[a], with_positives)
            stat_b = ResampledAveragePrecision(labels, probabilities[b], with_positives)
            units = n
        elif comparison.measure == "balanced_accuracy":
            stat_a = resampled_balanced_accuracy(labels, balanced[a] >= 0.5, with_both)
            stat_b = resampled_balanced_accuracy(labels, balanced[b] >= 0.5, with_both)
            units = n
        else:
            wrong_a = (probabilities[a] >= 0.5) != labels
            wrong_b = (probabilities[b] >= 0.5) != labels
            per_image_a, per_image_b = 100.0 * wrong_a.mean(axis=1), 100.0 * wrong_b.mean(axis=1)

            def stat_a(counts, values=per_image_a):
                return float(counts @ values / counts.sum())

            def stat_b(counts, values=per_image_b):
                return float(counts @ values / counts.sum())

            units = n
        interval = paired_bootstrap_difference(
            lambda idx, f=stat_a, m=units: f(np.bincount(idx, minlength=m)),
            lambda idx, f=stat_b, m=units: f(np.bincount(idx, minlength=m)),
            units, n_resamples=n_resamples, seed=seed)
        extra = {}
        if comparison.measure == "error":
            extra["wilcoxon_p"] = wilcoxon_signed_rank(per_image_a, per_image_b)
            tests = [mcnemar_test(~wrong_a[:, j], ~wrong_b[:, j]) for j in range(labels.shape[1])]
            significant = [t for t in tests if t.p_value < MCNEMAR_LEVEL]
            extra["attributes_favouring"] = (sum(t.a_only > t.b_only for t in significant),
                                             sum(t.b_only > t.a_only for t in significant))
        results.append(ComparisonResult(comparison, interval.estimate, interval.low, interval.high,
                                        interval.method, **extra))
    return results


def claims_table(results: Sequence[ComparisonResult], notes: Sequence[str]) -> Table:
    """``claims_intervals``: one row per comparison (see the module docstring); every cell a
    number or ``n/a: <reason>``, yes / no as 1 / 0."""
    rows = []
    for result in results:
        comparison = result.comparison
        paper = (comparison.paper_difference if comparison.paper_difference is not None
                 else na("not in the paper"))
        if comparison.paper_difference is None:
            same_sign = na("no paper difference")
        else:
            same_sign = int(np.sign(result.difference) == np.sign(comparison.paper_difference))
        if result.wilcoxon_p is None:
            wilcoxon = na("bootstrap only: the measure is not a per-image mean")
            favour_a = favour_b = na("error rows only")
        else:
            wilcoxon = float(result.wilcoxon_p)
            favour_a, favour_b = result.attributes_favouring
        undefined = "every bootstrap resample left the measure undefined"
        rows.append([f"{comparison.label}: {MEASURE_NAMES[comparison.measure]}", paper,
                     float(result.difference), cell_or_na(float(result.low), undefined),
                     cell_or_na(float(result.high), undefined), int(result.excludes_zero),
                     result.winner, same_sign, wilcoxon, favour_a, favour_b])
    columns = ["Comparison (A vs B): measure", "Paper: A − B", "Ours: A − B", "95 % CI low",
               "95 % CI high", "Interval excludes 0", "Better: A (1), B (−1), not distinguishable (0)",
               "Same sign as the published difference", "Wilcoxon p (per-image error)",
               "Attributes where A is better (McNemar)", "Attributes where B is better (McNemar)"]
    method = results[0].method if results else "paired bootstrap"
    return Table(name="claims_intervals",
                 title="The paper's comparisons on our test split, with paired 95 % intervals",
                 columns=columns, rows=rows,
                 notes=(f"Intervals: {method} over test images (parsing: over parsing test "
                        f"images). 1 = yes, 0 = no. A model is better only where the interval "
                        f"excludes 0 (lower error, higher AP / balanced accuracy / IoU); otherwise "
                        f"the two are not distinguishable at this scale. McNemar: exact test per "
                        f"attribute over the test images, counted at p < 0.05 / 40 (Bonferroni).",
                        *notes),
                 float_format=_number)


def _number(value: float) -> str:
    """Two decimals; small non-zero values (p-values) in scientific notation."""
    return f"{value:.1e}" if value != 0 and abs(value) < 0.005 else f"{value:.2f}"
