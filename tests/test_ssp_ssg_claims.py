"""ssp_ssg's claims with paired intervals (claims.py) and validation thresholds, against
scikit-learn and scipy."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, balanced_accuracy_score

from common.metrics import DegenerateClassWarning
from ssp_ssg.claims import (Comparison, ResampledAveragePrecision, claims_table, compare,
                            paper_comparisons, resampled_balanced_accuracy, resampled_mean_iou)
from ssp_ssg.evaluate import accuracy_maximising_thresholds, attribute_scores, intersection_over_union


def _data(n=60, attributes=6, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, attributes)) < 0.35).astype(np.uint8)
    scores = np.round(np.clip(labels * 0.3 + rng.random((n, attributes)) * 0.7, 0, 1), 1)  # ties
    return labels, scores, rng


def test_resampled_average_precision_is_sklearns_weighted_ap_with_ties():
    labels, scores, rng = _data()
    statistic = ResampledAveragePrecision(labels, scores, range(labels.shape[1]))
    for counts in (np.ones(len(labels)), np.bincount(rng.integers(0, len(labels), len(labels)),
                                                      minlength=len(labels))):
        expected = 100 * np.mean([average_precision_score(labels[:, j], scores[:, j], sample_weight=counts)
                                  for j in range(labels.shape[1])])
        assert statistic(counts) == pytest.approx(expected, abs=1e-9)
    no_positive = np.where(labels[:, 0] == 1, 0, 1)
    assert np.isnan(statistic(no_positive))


def test_resampled_balanced_accuracy_and_mean_iou_match_their_references():
    labels, scores, rng = _data(seed=1)
    decisions = scores >= 0.5
    counts = np.bincount(rng.integers(0, len(labels), len(labels)), minlength=len(labels))
    expected = 100 * np.mean([balanced_accuracy_score(labels[:, j], decisions[:, j], sample_weight=counts)
                              for j in range(labels.shape[1])])
    assert resampled_balanced_accuracy(labels, decisions, range(labels.shape[1]))(counts) == \
        pytest.approx(expected)
    confusions = rng.integers(0, 20, size=(8, 7, 7))
    confusions[:, 6, :] = 0
    confusions[:, :, 6] = 0  # class 6 absent from truth and prediction: left out of the mean
    weights = np.array([2, 0, 1, 1, 0, 3, 1, 0])
    with pytest.warns(DegenerateClassWarning, match=r"\[6\]"):
        expected = intersection_over_union(np.tensordot(weights, confusions, axes=1))[1]
    assert resampled_mean_iou(confusions)(weights) == pytest.approx(expected)


def test_compare_finds_a_better_model_and_not_an_identical_one():
    rng = np.random.default_rng(2)
    labels = (rng.random((300, 40)) < 0.3).astype(np.uint8)
    noise = rng.random((300, 40))
    good = np.clip(0.7 * labels + 0.3 * noise, 0, 1)        # separates the classes
    poor = np.clip(0.2 * labels + 0.8 * noise, 0, 1)
    probabilities = {"ssp": good, "avgpool": poor, "ssg": poor.copy()}
    comparisons = [Comparison("SSP vs Avg. Pooling", "error", "ssp", "avgpool", -0.81, True),
                   Comparison("SSP vs Avg. Pooling", "average_precision", "ssp", "avgpool", 1.28, False),
                   Comparison("SSP vs Avg. Pooling", "balanced_accuracy", "ssp", "avgpool", 1.51, False),
                   Comparison("SSG vs Avg. Pooling", "error", "ssg", "avgpool", -0.76, True)]
    results = compare(comparisons, labels, probabilities, probabilities, None, n_resamples=200)
    error, ap, balanced, same = results
    table_difference = attribute_scores(labels, good).error - attribute_scores(labels, poor).error
    assert error.difference == pytest.approx(table_difference)
    assert error.high < 0 and error.verdict == "SSP better" and error.wilcoxon_p < 1e-6
    assert error.attributes_favouring[0] > 0 and error.attributes_favouring[1] == 0
    assert ap.low > 0 and ap.verdict == "SSP better"
    assert balanced.low > 0
    assert same.difference == 0 and not same.excludes_zero
    assert same.verdict == "not distinguishable at this scale"
    table = claims_table(results, ("note",))
    assert [row[5] for row in table.rows] == [1, 1, 1, 0]  # interval excludes 0
    assert [row[6] for row in table.rows] == [1, 1, 1, 0]  # A better / not distinguishable
    assert table.rows[0][0] == "SSP vs Avg. Pooling: error %" and table.rows[0][7] == 1
    assert table.rows[1][8].startswith("n/a: ")
    for row in table.rows:  # the benchmark check's rule: numbers or "n/a: <reason>"
        assert all(isinstance(c, (int, float)) or c.startswith("n/a: ") for c in row[1:]), row


def test_paper_comparisons_cover_every_claim_of_table_2_and_4():
    comparisons = paper_comparisons()
    pairs = {(c.model_a, c.measure) for c in comparisons}
    for model in ("ssp+ssg", "ssp", "ssg", "spp", "naive", "bbox"):
        assert {(model, "error"), (model, "average_precision")} <= pairs
    assert {("ssp+ssg", "balanced_accuracy"), ("ssp", "balanced_accuracy"),
            ("ssg", "balanced_accuracy"), ("joint", "mean_iou")} <= pairs
    by_key = {(c.model_a, c.measure): c.paper_difference for c in comparisons}
    assert by_key[("ssp+ssg", "error")] == pytest.approx(8.20 - 9.14)
    assert by_key[("joint", "mean_iou")] == pytest.approx(65.66 - 61.84)
    assert by_key[("ssp+ssg", "balanced_accuracy")] is None  # Table 2 has no SSP + SSG there


def test_validation_thresholds_maximise_accuracy_closest_to_one_half():
    labels, scores, _ = _data(n=40, attributes=5, seed=3)
    thresholds = accuracy_maximising_thresholds(labels, scores)
    for j, threshold in enumerate(thresholds):
        best = max(accuracy_score(labels[:, j], scores[:, j] >= t) for t in np.linspace(0, 1.01, 203))
        assert accuracy_score(labels[:, j], scores[:, j] >= threshold) == pytest.approx(best)
    # perfectly separable at any cut in (0.2, 0.8): the midpoint of the gap, not 0.5's neighbour
    separable = accuracy_maximising_thresholds(np.array([[0], [0], [1], [1]]),
                                               np.array([[0.1], [0.2], [0.8], [0.9]]))
    assert separable[0] == pytest.approx(0.5)
    all_negative = accuracy_maximising_thresholds(np.zeros((3, 1)), np.array([[0.2], [0.6], [0.9]]))
    assert all_negative[0] > 0.9
