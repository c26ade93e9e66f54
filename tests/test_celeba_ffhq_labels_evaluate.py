"""Le & Lee §3.2: per-class threshold grid search, metrics, thresholds JSON, Fig. 3 and tables."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import hamming_loss as sklearn_hamming_loss
from sklearn.metrics import roc_auc_score

from benchmarks.expected import malformed_cells
from common.attributes import CELEBA_ATTRIBUTES

from celeba_ffhq_labels.evaluate import (
    INTERVAL_DIFFERENCES,
    INTERVAL_METRICS,
    auroc_figure_order,
    evaluate_scores,
    grid_search_thresholds,
    metric_intervals,
    plot_auroc_bars,
    read_thresholds,
    write_thresholds,
)
from celeba_ffhq_labels.tables import PAPER_MEAN_AUROC, auroc_table, summary_table


def constructed_scores():
    """Three classes whose best thresholds on the 0.01 grid are known by construction."""
    # Class 0: positives 0.35, 0.36, 0.70, 0.90; negatives 0.10, 0.20, 0.50. One error (the 0.50
    # negative) for any t in (0.20, 0.35]; every other t errs at least twice -> first best 0.21.
    # Class 1: one positive at 0.10 below negatives 0.50 0.60 0.70 -> predict all negative,
    # t in (0.70, 1.00] -> 0.71.
    # Class 2: separable at 0.55 / 0.62 -> one error-free interval (0.55, 0.62] -> 0.56.
    columns = [
        ([0.35, 0.36, 0.70, 0.90], [0.10, 0.20, 0.50]),
        ([0.10], [0.50, 0.60, 0.70]),
        ([0.62, 0.80], [0.30, 0.55]),
    ]
    n = max(len(p) + len(q) for p, q in columns)
    labels = np.zeros((n, 3), dtype=np.uint8)
    scores = np.zeros((n, 3))
    for c, (positives, negatives) in enumerate(columns):
        values = positives + negatives
        values += [0.0] * (n - len(values))      # padding: negatives at score 0 (never flipped)
        labels[:len(positives), c] = 1
        scores[:, c] = values
    return labels, scores, np.array([0.21, 0.71, 0.56])


def test_threshold_search_finds_the_known_optimum():
    labels, scores, optimum = constructed_scores()
    np.testing.assert_allclose(grid_search_thresholds(labels, scores), optimum)


def test_threshold_search_matches_brute_force_hamming_on_random_scores(rng):
    labels = (rng.random((200, 5)) < [0.05, 0.2, 0.5, 0.7, 0.9]).astype(np.uint8)
    scores = np.clip(labels * 0.3 + rng.random((200, 5)) * 0.7, 0, 1)
    found = grid_search_thresholds(labels, scores)
    grid = np.round(np.arange(1, 101) / 100, 2)
    for c in range(5):
        losses = [sklearn_hamming_loss(labels[:, c], (scores[:, c] >= t).astype(int)) for t in grid]
        assert found[c] == grid[int(np.argmin(losses))]


def test_evaluate_scores_against_sklearn_and_searched_thresholds_not_worse(rng):
    labels = (rng.random((300, 40)) < 0.3).astype(np.uint8)
    scores = np.clip(0.25 * labels + rng.random((300, 40)), 0, 1)
    thresholds = grid_search_thresholds(labels, scores)
    evaluation = evaluate_scores(labels, scores, thresholds)
    reference = [roc_auc_score(labels[:, c], scores[:, c]) for c in range(40)]
    np.testing.assert_allclose(evaluation.auroc, reference, atol=1e-12)
    assert evaluation.mean_auroc == pytest.approx(np.mean(reference))
    assert evaluation.hamming_loss <= evaluation.hamming_loss_at_half
    assert evaluation.hamming_loss == pytest.approx(
        sklearn_hamming_loss(labels, (scores >= thresholds).astype(int)))
    assert evaluation.all_negative_hamming_loss == pytest.approx(labels.mean())


def test_thresholds_json_round_trip_and_bad_file(tmp_path):
    thresholds = np.round(np.linspace(0.01, 1.0, 40), 2)
    path = write_thresholds(tmp_path / "thresholds.json", thresholds, searched_on="test")
    assert list(json.loads(path.read_text())["thresholds"]) == list(CELEBA_ATTRIBUTES)
    np.testing.assert_allclose(read_thresholds(path), thresholds)
    (tmp_path / "bad.json").write_text('{"thresholds": {"Male": 0.5}}')
    with pytest.raises(ValueError, match="bad.json: thresholds missing"):
        read_thresholds(tmp_path / "bad.json")


def test_figure_order_puts_undefined_last_and_the_plot_is_written(tmp_path):
    values = np.linspace(0.9, 0.5, 40)
    values[[3, 7]] = np.nan
    order = auroc_figure_order(values)
    assert list(order[-2:]) == [3, 7] and order[0] == 0
    path = plot_auroc_bars(values, tmp_path / "fig3.png", "t", PAPER_MEAN_AUROC, "paper")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_intervals_bracket_the_test_metrics_and_pair_the_differences(rng):
    labels = (rng.random((120, 40)) < 0.3).astype(np.uint8)
    labels[:, 39] = 0                                   # one label only: no AUROC, no interval
    scores = np.clip(0.3 * labels + rng.random((120, 40)), 0, 1)
    thresholds = grid_search_thresholds(labels[:60], scores[:60])   # "validation" half
    evaluation = evaluate_scores(labels, scores, thresholds)
    intervals = metric_intervals(labels, scores, thresholds, n_resamples=200)
    assert set(intervals.metrics) == set(INTERVAL_METRICS)
    assert set(intervals.differences) == set(INTERVAL_DIFFERENCES)
    estimates = {"mean_auroc": evaluation.mean_auroc, "hamming_loss": evaluation.hamming_loss,
                 "hamming_loss_at_half": evaluation.hamming_loss_at_half,
                 "all_negative_hamming_loss": evaluation.all_negative_hamming_loss,
                 "mean_accuracy": float(np.mean(evaluation.accuracy))}
    for name, interval in intervals.metrics.items():
        assert interval.estimate == pytest.approx(estimates[name], abs=1e-12), name
        assert interval.low <= interval.estimate <= interval.high and interval.low < interval.high, name
        assert interval.n == 120 and interval.confidence == 0.95
    difference = intervals.differences["thresholds_minus_all_negative"]
    assert difference.estimate == pytest.approx(evaluation.hamming_loss - evaluation.all_negative_hamming_loss)
    assert difference.low <= difference.estimate <= difference.high
    assert intervals.per_attribute_auroc[39] is None
    for column in range(39):
        interval = intervals.per_attribute_auroc[column]
        assert interval.estimate == pytest.approx(evaluation.auroc[column])
        assert interval.low <= interval.estimate <= interval.high
    assert json.loads(json.dumps(intervals.as_dict()))["metrics"]["mean_auroc"]["n"] == 120


def test_tables_are_well_formed_with_undefined_aurocs():
    labels = np.zeros((20, 40), dtype=np.uint8)
    labels[:10, :30] = 1                    # attributes 30..39 have no positives -> NaN AUROC
    scores = np.linspace(0, 1, 20)[:, None].repeat(40, axis=1)
    evaluation = evaluate_scores(labels, scores, np.full(40, 0.5))
    intervals = metric_intervals(labels, scores, np.full(40, 0.5), n_resamples=50)
    transfer = {"labelled": 3, "unreadable": 1, "hamming_loss": 0.25, "all_negative_hamming_loss": 0.3}
    sizes = {"train": 60, "val": 20, "test": 20}
    tables = [auroc_table(evaluation, intervals, "Split: ...", ["note"]),
              summary_table(evaluation, intervals, sizes, transfer, "Split: ...", ["note"])]
    for table in tables:
        assert malformed_cells(table.name, table) == []
        assert table.notes[0] == "Split: ..."
    mean_row = tables[0].rows[-1]
    assert mean_row[1] == PAPER_MEAN_AUROC and mean_row[2] == pytest.approx(np.nanmean(evaluation.auroc))
    assert mean_row[3] <= mean_row[2] <= mean_row[4]
    assert tables[0].rows[35][2].startswith("n/a: ") and tables[0].rows[35][3].startswith("n/a: ")
    summary = {row[0]: row[1:] for row in tables[1].rows}
    assert summary["Validation images (checkpoint, thresholds)"][1] == 20
