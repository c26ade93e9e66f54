"""Every accuracy of mtfl_compare with its 95 % Wilson interval, and models compared on the same
test faces (McNemar, paired bootstrap), as ``../shared/REAL_DATA_PROTOCOL.md`` asks; references
from scipy.stats. No TensorFlow is needed here."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks.expected import malformed_cells
from mtfl_compare.config import config_for_scale
from mtfl_compare.evaluate import compare_paired, evaluate_binary
from mtfl_compare.tables import (Results, build_tables, paired_comparisons, paper_interval_cells,
                                 transfer_model_name)


def wilson_reference(successes: int, n: int, z: float = stats.norm.ppf(0.975)) -> tuple[float, float]:
    """The Wilson score interval written out (Wilson 1927)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def noisy_predictions(rng, labels, accuracy):
    return np.where(rng.random(len(labels)) < accuracy, labels, 1 - labels)


def test_accuracy_interval_is_wilsons(rng):
    labels = rng.integers(0, 2, 2995)
    evaluation = evaluate_binary("smiling", labels, noisy_predictions(rng, labels, 0.7), np.arange(2995))
    interval = evaluation.accuracy_interval()
    correct = int(np.sum(evaluation.predictions == labels))
    assert (interval.low, interval.high) == pytest.approx(wilson_reference(correct, 2995), abs=1e-9)
    assert evaluation.to_json()["accuracy_wilson95"] == [interval.low, interval.high]
    assert paper_interval_cells(87.5)[:2] == pytest.approx(
        [100 * bound for bound in wilson_reference(round(0.875 * 2995), 2995)], abs=0.01)


def test_paired_comparison_pairs_faces_by_their_test_row(rng):
    labels = rng.integers(0, 2, 500)
    rows = np.arange(500)
    better = evaluate_binary("gender", labels, noisy_predictions(rng, labels, 0.85), rows)
    worse_predictions = noisy_predictions(rng, labels, 0.6)
    worse = evaluate_binary("gender", labels, worse_predictions, rows)
    order = rng.permutation(500)[:400]    # another order, and 100 faces the other model lacks
    shuffled = evaluate_binary("gender", labels[order], worse_predictions[order], rows[order])
    full, partial = compare_paired(better, worse), compare_paired(better, shuffled)
    a_right, b_right = better.correct[order], worse.correct[order]
    assert partial.n == 400
    assert partial.mcnemar.a_only == int(np.sum(a_right & ~b_right))
    assert partial.mcnemar.b_only == int(np.sum(b_right & ~a_right))
    assert partial.mcnemar.p_value == pytest.approx(stats.binomtest(
        partial.mcnemar.a_only, partial.mcnemar.a_only + partial.mcnemar.b_only).pvalue)
    assert partial.accuracy_a - partial.accuracy_b == pytest.approx(partial.difference.estimate)
    assert full.verdict == "A better" and compare_paired(worse, better).verdict == "B better"
    same = compare_paired(worse, shuffled)
    assert same.difference.estimate == 0 and same.verdict == "not distinguishable at this scale"
    with pytest.raises(ValueError, match="cannot pair gender with smiling"):
        compare_paired(better, evaluate_binary("smiling", labels, labels, rows))
    with pytest.raises(ValueError, match="disagree on the labels"):
        compare_paired(better, evaluate_binary("gender", 1 - labels, labels, rows))


def fake_results(rng, scale="cpu") -> Results:
    """Every model of one reproduction on 300 test faces, approach 2 clearly the best."""
    config = config_for_scale(scale)
    results = Results(config=config, weights_note="weights", data_notes=["data"])
    labels = {attribute: rng.integers(0, 2, 300) for attribute in ("smiling", "gender")}
    rows = np.arange(300)
    for attribute, truth in labels.items():
        results.majority[attribute] = evaluate_binary(attribute, truth, np.ones(300, int), rows)
        for crop in ("original", "nose", "nose_inter_ocular"):
            for approach, accuracy in ((1, 0.7), (2, 0.9)):
                results.transfer[(attribute, crop, approach)] = evaluate_binary(
                    attribute, truth, noisy_predictions(rng, truth, accuracy), rows)
                results.validation_accuracy[(attribute, crop, approach)] = accuracy
        for rate, validation in ((1e-3, 0.6), (1e-4, 0.65)):
            for epochs in (63, 125):
                results.cascade[(attribute, rate, epochs)] = (
                    evaluate_binary(attribute, truth, noisy_predictions(rng, truth, 0.6), rows), validation)
        results.tcdcn[attribute] = (evaluate_binary(attribute, truth, noisy_predictions(rng, truth, 0.6),
                                                    rows), 0.6)
    results.cascade_epochs = {63: 4, 125: 8}
    results.finetune_stages[("smiling", "nose")] = {
        stage: {"val_accuracy": 0.5, "val_probabilities": [[0.4, 0.6]] * 40,
                "test_accuracy": 0.75, "test_probabilities": [[0.3, 0.7]] * 300}
        for stage in ("new_layers", "all_layers")}
    return results


def test_every_table_has_intervals_and_the_comparisons_their_verdicts(rng):
    results = fake_results(rng)
    comparisons = paired_comparisons(results)
    tables = {table.name: table for table in build_tables(results, comparisons)}
    for table in tables.values():
        assert malformed_cells(table.name, table) == [], table.name
        assert len({row[0] for row in table.rows}) == len(table.rows), table.name
    summary = {row[0]: dict(zip(tables["summary_accuracy"].columns, row))
               for row in tables["summary_accuracy"].rows}
    floor = summary["Majority rule (the training majority class), Smile"]
    assert any(note.startswith("Majority rule: every test face gets the class most frequent in training (")
               and "Smile: S" in note for note in tables["summary_accuracy"].notes)
    assert floor["Test faces"] == 300 and floor["Ours 95% CI low"] < floor["Ours"] < floor["Ours 95% CI high"]
    assert summary["InceptionV3 approach 2, Smile*"]["Paper"] == 72.5     # the rows benchmarks read
    assert summary["InceptionV3 approach 1, Gender"]["Paper"] == 86.3
    inter_ocular = summary["InceptionV3 approach 2, Smile* (inter-ocular box)"]
    assert inter_ocular["Paper"].startswith("n/a: the paper's * rows are the box of --crop only")
    smile = {row[0]: dict(zip(tables["table3_smiling"].columns, row)) for row in tables["table3_smiling"].rows}
    assert smile["Smile* (paper)"]["2nd: test faces"] == 2995
    assert smile["Smile* (ours)"]["2nd: accuracy 95% CI low"] < smile["Smile* (ours)"]["2nd: accuracy"]
    protocol = {row[0]: row for row in tables["table2_finetune_protocol"].rows}
    test_row = protocol["Smile, nose crop, fixed 150-px box (§3.1): test accuracy after steps 5-6 (%)"]
    assert test_row[2:] == [75.0, *[pytest.approx(100 * b, abs=0.01) for b in wilson_reference(225, 300)]]
    val_row = protocol["Smile, nose crop, fixed 150-px box (§3.1): val accuracy after steps 2-3 (%)"]
    assert val_row[3:] == [pytest.approx(100 * b, abs=0.01) for b in wilson_reference(20, 40)]
    crops = tables["table_crop_comparison"]
    assert len(crops.rows) == 2 * 3 * 2 and all(isinstance(row[1], float) for row in crops.rows)
    table = tables["paired_comparisons"]
    pairs = {tuple(row[0].replace(": A = ", " | B = ").split(" | B = ")): dict(zip(table.columns, row))
             for row in table.rows}
    verdict = "Verdict (1 A better, -1 B better, 0 not distinguishable)"
    a1_a2 = pairs[("Smile", transfer_model_name("original", 1), transfer_model_name("original", 2))]
    assert a1_a2[verdict] == -1 and a1_a2["Δ 95% CI high"] < 0 and a1_a2["McNemar p"] < 1e-3
    boxes = pairs[("Gender", transfer_model_name("nose", 1), transfer_model_name("nose_inter_ocular", 1))]
    assert boxes["Test faces"] == 300
    cascade = [key for key in pairs if key[0] == "Smile" and key[2].startswith("Cascade CNN")]
    assert cascade  # the run with the best validation accuracy, named in the notes
    assert any(note.startswith("Cascade CNN (the Table 5 run with the best validation accuracy): Smile lr 0.0001")
               for note in table.notes)
    assert "TCDCN" in {key[2] for key in pairs if key[0] == "Smile"}


def test_paper_scale_reports_the_second_nose_box_as_not_run(rng):
    results = fake_results(rng, "paper")
    for key in [key for key in results.transfer if key[1] == "nose_inter_ocular"]:
        del results.transfer[key]
    tables = {table.name: table for table in build_tables(results, paired_comparisons(results))}
    rows = [row for row in tables["table_crop_comparison"].rows if "inter-ocular" in row[0]]
    assert rows and all(row[1].startswith("n/a: the other nose box is trained only") for row in rows)
    assert not any("inter-ocular" in row[0] for row in tables["paired_comparisons"].rows)


def test_inter_ocular_crop_option_puts_that_box_in_the_papers_star_rows(rng):
    results = fake_results(rng)
    results.config.data.nose_box = "inter-ocular"
    tables = {table.name: table for table in build_tables(results, paired_comparisons(results))}
    summary = {row[0]: dict(zip(tables["summary_accuracy"].columns, row)) for row in tables["summary_accuracy"].rows}
    ours = results.transfer[("smiling", "nose_inter_ocular", 1)]
    assert summary["InceptionV3 approach 1, Smile*"]["Ours"] == pytest.approx(100 * ours.accuracy, abs=0.01)
    assert summary["InceptionV3 approach 1, Smile* (fixed box)"]["Paper"].startswith("n/a: ")
    assert any("inter-ocular" in note for note in tables["table3_smiling"].notes)
