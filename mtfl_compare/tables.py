"""Tables 1-5 of Canal Garcia et al. in the paper's layout, the paper's numbers beside ours.

Paper numbers are constants here (percent, as printed; table and row cited). Our numbers are
percentages computed by ``mtfl_compare.evaluate``; a value that is undefined (e.g. precision of a
class the model never predicts) or was not run is an ``"n/a: <reason>"`` cell.

Every accuracy has its 95 % Wilson interval beside it (the paper's too, computed from its
accuracy on the 2,995 AFLW test faces); ``paired_comparisons`` compares models on the same test
faces (McNemar, paired bootstrap); ``table_crop_comparison`` sets the crops side by side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from common.metrics.intervals import wilson_interval
from common.tables import Table, na
from mtfl_compare.config import (ATTRIBUTES, ReproduceConfig, describe_reductions, nose_crop,
                                 transfer_crops)
from mtfl_compare.data import CLASS_NAMES
from mtfl_compare.evaluate import BinaryEvaluation, PairedComparison, compare_paired


#: Test-set (AFLW, MTFL's ``testing.txt``) class counts in the tables' class order:
#: smile S / NS and gender F / M (codes 1 / 2 of the smile and gender columns). With them the
#: paper's printed accuracies follow from its per-class recalls (README, "The paper's precision
#: and recall rows").
AFLW_TEST_CLASS_COUNTS: dict[str, tuple[int, int]] = {"smiling": (1632, 1363), "gender": (1822, 1173)}


@dataclass(frozen=True)
class PaperBinaryResult:
    """One block of Tables 3-4: accuracy, per-class precision / recall, confusion rows (%),
    each under its meaning (see :func:`from_printed_rows`)."""

    accuracy: float
    precision: tuple[float, float]
    recall: tuple[float, float]
    confusion: tuple[tuple[float, float], tuple[float, float]]


def from_printed_rows(accuracy: float, printed_precision: tuple[float, float],
                      printed_recall: tuple[float, float],
                      confusion: tuple[tuple[float, float], tuple[float, float]]) -> PaperBinaryResult:
    """A block of Tables 3-4 as printed, stored under its meaning: the row the paper labels
    "Precision" holds the per-class *recall* and the row labelled "Recall" the per-class
    *precision*. Read so, every printed accuracy follows from the recalls and the AFLW class
    counts (within 0.21 points), the class ratios the pairs imply match the test set's, and the
    diagonal of each printed confusion matrix (rows = truth) is the recall; the literal reading
    misses the accuracies by up to 2.9 points (README, "The paper's precision and recall rows";
    ``tests/test_mtfl_compare_paper_numbers.py``)."""
    return PaperBinaryResult(accuracy, precision=printed_recall, recall=printed_precision,
                             confusion=confusion)


#: Table 3 (smile, classes S / NS) and Table 4 (gender, classes F / M):
#: (attribute, crop, approach) -> result. crop "original" = rows "Smile"/"Gender",
#: "nose" = rows "Smile*"/"Gender*"; approach 1 = bottlenecks, 2 = complete fine-tuning.
#: Arguments in the printed order: accuracy, the row printed "Precision" (= recall), the row
#: printed "Recall" (= precision), the confusion matrix.
PAPER_TABLES_3_4: dict[tuple[str, str, int], PaperBinaryResult] = {
    ("smiling", "original", 1): from_printed_rows(68.5, (64.1, 73.8), (75.6, 63.2), ((64, 36), (26, 74))),
    ("smiling", "original", 2): from_printed_rows(87.5, (97.6, 75.4), (82.6, 96.3), ((98, 2), (25, 75))),
    ("smiling", "nose", 1): from_printed_rows(70.1, (63.4, 78.4), (77.9, 64.1), ((63, 37), (22, 78))),
    ("smiling", "nose", 2): from_printed_rows(72.5, (86.7, 55.4), (69.9, 77.7), ((87, 13), (45, 55))),
    ("gender", "original", 1): from_printed_rows(86.3, (87.1, 85.2), (90.1, 81.0), ((87, 13), (15, 85))),
    ("gender", "original", 2): from_printed_rows(83.5, (76.9, 94.3), (95.4, 72.4), ((77, 23), (6, 94))),
    ("gender", "nose", 1): from_printed_rows(86.1, (88.5, 82.4), (88.6, 82.1), ((88, 12), (18, 82))),
    ("gender", "nose", 2): from_printed_rows(85.1, (80.8, 91.7), (93.8, 75.5), ((80, 19), (8, 92))),
}

def cascade_from_printed(accuracy: float, printed_precision: float,
                         printed_recall: float) -> tuple[float, float, float]:
    """A row of Table 5 as printed -> (accuracy, precision, recall) of the positive class (Smile:
    S, Gender: M), under their meaning: as in Tables 3-4 the column printed "Precision" is the
    recall and the column printed "Recall" the precision. Only this reading, with S / M as the
    class, gives every printed accuracy from the AFLW counts (within 0.05 points; the literal
    reading misses by up to 6.9, and F / NS as the class by 3.5 or more either way; README)."""
    return accuracy, printed_recall, printed_precision


#: Table 5, Cascade CNN on the test set: (attribute, learning rate, epochs) -> (accuracy,
#: precision, recall) in % (positive class S / M), from the printed row: accuracy, "Precision",
#: "Recall" (see :func:`cascade_from_printed`).
PAPER_TABLE_5: dict[tuple[str, float, int], tuple[float, float, float]] = {
    ("gender", 1e-3, 63): cascade_from_printed(71.4, 79.4, 60.2),
    ("gender", 1e-3, 125): cascade_from_printed(74.6, 73.8, 65.7),
    ("gender", 1e-4, 63): cascade_from_printed(73.0, 77.0, 62.7),
    ("gender", 1e-4, 125): cascade_from_printed(75.0, 75.4, 65.8),
    ("smiling", 1e-3, 63): cascade_from_printed(67.2, 71.5, 69.3),
    ("smiling", 1e-3, 125): cascade_from_printed(67.6, 68.3, 71.1),
    ("smiling", 1e-4, 63): cascade_from_printed(71.4, 72.4, 74.4),
    ("smiling", 1e-4, 125): cascade_from_printed(71.5, 71.4, 75.1),
}

#: §4.2 "TCDCN implementation": smile, lr 1e-4, 45 epochs: 72.5 % test, 86 % validation accuracy.
PAPER_TCDCN = {"smiling": {"test_accuracy": 72.5, "val_accuracy": 86.0}}

ATTRIBUTE_TITLES = {"smiling": "Smile", "gender": "Gender"}
#: Row-label suffix of the crops in Tables 3-4 (``*`` = nose-centred, as in the paper).
CROP_SUFFIX = {"original": "", "nose": "*", "nose_inter_ocular": "*"}
#: Short crop labels for figure panels.
CROP_SHORT = {"original": "", "nose": "*", "nose_inter_ocular": "* inter-ocular box"}
#: The crops in words (crop table, comparisons).
CROP_TITLES = {"original": "original crop (2.5 x landmark extent)",
               "nose": "nose crop, fixed 150-px box (§3.1)",
               "nose_inter_ocular": "nose crop, inter-ocular box"}
#: The paper's test set size (AFLW, MTFL testing.txt): the n of its accuracies' intervals.
AFLW_TEST_FACES = 2995


@dataclass
class Results:
    """Everything the tables need, filled by ``mtfl_compare.reproduce``."""

    config: ReproduceConfig
    weights_note: str
    data_notes: list[str]          # data source and devices, under every table
    transfer: dict[tuple[str, str, int], BinaryEvaluation] = field(default_factory=dict)
    finetune_stages: dict[tuple[str, str], dict[str, dict]] = field(default_factory=dict)
    cascade: dict[tuple[str, float, int], tuple[BinaryEvaluation, float]] = field(default_factory=dict)
    cascade_epochs: dict[int, int] = field(default_factory=dict)   # paper epochs -> ours
    tcdcn: dict[str, tuple[BinaryEvaluation, float]] = field(default_factory=dict)
    sizes: dict[str, str] = field(default_factory=dict)
    #: (attribute, crop, approach) -> validation accuracy of the InceptionV3 models (None: no split)
    validation_accuracy: dict[tuple[str, str, int], float | None] = field(default_factory=dict)
    #: attribute -> the training-majority class predicted for every test face (the floor)
    majority: dict[str, BinaryEvaluation] = field(default_factory=dict)


def _notes(results: Results, *sections: str) -> list[str]:
    """Data / device notes plus the settings of ``sections`` that differ from the paper."""
    reductions = describe_reductions(results.config, sections)
    return [*results.data_notes] + (
        ["Differs from the paper: " + "; ".join(reductions) + "."] if reductions else [])


def _pct(value: float | None, reason: str):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return na(reason)
    return round(100.0 * float(value), 2)


def format_number(value: float) -> str:
    """Markdown rendering: percentages with one decimal, small hyper-parameters in full."""
    return f"{value:g}" if 0 < abs(value) < 0.1 else f"{value:.1f}"


#: The nine numbers of one approach in Tables 3-4: accuracy, per-class precision and recall,
#: the row-normalised confusion matrix (rows = truth).
def _binary_columns(attribute: str, approach: str) -> list[str]:
    first, second = CLASS_NAMES[attribute]
    return [f"{approach}: accuracy", f"{approach}: precision {first}", f"{approach}: precision {second}",
            f"{approach}: recall {first}", f"{approach}: recall {second}",
            f"{approach}: CM {first}->{first}", f"{approach}: CM {first}->{second}",
            f"{approach}: CM {second}->{first}", f"{approach}: CM {second}->{second}"]


def _binary_cells(result: BinaryEvaluation | PaperBinaryResult | None, reason: str) -> list:
    if result is None:
        return [na(reason)] * 9
    if isinstance(result, PaperBinaryResult):
        return [result.accuracy, *result.precision, *result.recall, *result.confusion[0],
                *result.confusion[1]]
    absent = "class absent from the test set"
    matrix = result.row_normalised
    return [_pct(result.accuracy, "empty test set"),
            *(_pct(v, "class never predicted") for v in result.precision),
            *(_pct(v, absent) for v in result.recall),
            *(_pct(v, absent) for v in matrix.reshape(-1))]


def _interval_cells(evaluation: BinaryEvaluation | None, reason: str) -> list:
    """Accuracy's 95 % Wilson interval [low, high] in % and the number of test faces, or n/a."""
    if evaluation is None:
        return [na(reason)] * 3
    if evaluation.n == 0:
        return [na("empty test set")] * 2 + [0]
    interval = evaluation.accuracy_interval()
    return [round(100 * interval.low, 2), round(100 * interval.high, 2), evaluation.n]


def paper_interval_cells(accuracy_percent: float) -> list:
    """The 95 % Wilson interval [low, high] (%) of a paper accuracy on the 2,995 AFLW test faces
    (the correct count rounded from the printed percentage), and that n."""
    interval = wilson_interval(round(accuracy_percent / 100 * AFLW_TEST_FACES), AFLW_TEST_FACES)
    return [round(100 * interval.low, 2), round(100 * interval.high, 2), AFLW_TEST_FACES]


def _not_run(results: Results) -> str:
    return f"not run at scale '{results.config.scale}'"


def table_3_or_4(results: Results, attribute: str, number: int) -> Table:
    """Table 3 (smile) or 4 (gender): both approaches, plain and nose-cropped (``*``, the box of
    ``--crop``) inputs; one row per input and source (ours, paper, difference), each accuracy
    with its 95 % Wilson interval and number of test faces in the last columns. The paper's
    block layout is rendered by :func:`paper_layout_markdown`."""
    interval_columns = [f"{approach}: {name}" for approach in ("1st", "2nd")
                        for name in ("accuracy 95% CI low", "accuracy 95% CI high", "test faces")]
    columns = (["Input"] + _binary_columns(attribute, "1st") + _binary_columns(attribute, "2nd")
               + interval_columns)
    rows = []
    nose = nose_crop(results.config)
    for crop, paper_crop in (("original", "original"), (nose, "nose")):
        label = ATTRIBUTE_TITLES[attribute] + CROP_SUFFIX[crop]
        evaluations = [results.transfer.get((attribute, crop, approach)) for approach in (1, 2)]
        papers = [PAPER_TABLES_3_4[(attribute, paper_crop, approach)] for approach in (1, 2)]
        ours = [cell for evaluation in evaluations
                for cell in _binary_cells(evaluation, _not_run(results))]
        paper = [cell for result in papers for cell in _binary_cells(result, "")]
        delta = [round(a - b, 2) if isinstance(a, float) else na("no value of ours")
                 for a, b in zip(ours, paper)]
        ours_intervals = [cell for evaluation in evaluations
                          for cell in _interval_cells(evaluation, _not_run(results))]
        paper_intervals = [cell for result in papers for cell in paper_interval_cells(result.accuracy)]
        rows += [[f"{label} (ours)", *ours, *ours_intervals],
                 [f"{label} (paper)", *paper, *paper_intervals],
                 [f"{label} (ours - paper)", *delta,
                  *[na("the intervals are in the ours and paper rows")] * 6]]
    box_note = ("* = nose-centred crop with the fixed 150-pixel box of §3.1." if nose == "nose" else
                "* = OUR nose-centred crop with its box scaled by the eye distance (--crop "
                "inter-ocular); the paper's * rows used the fixed 150-pixel box.")
    return Table(
        name=f"table{number}_{attribute}",
        title=(f"Table {number}: test-set results of both InceptionV3 approaches for the "
               f"{'smile' if attribute == 'smiling' else 'gender'} attribute, % "
               f"(* = nose-centred crop, §3.1); CM = confusion matrix, true->predicted, "
               f"row-normalised"),
        columns=columns, rows=rows, float_format=format_number,
        notes=[results.weights_note, *_notes(results, "bottleneck", "finetune"), box_note,
               "1st approach = retrained softmax on cached 2048-d bottlenecks (Table 1); 2nd "
               "approach = tf-slim fine-tuning, reported after step 4 (all layers) of Table 2.",
               "95% CI: Wilson score interval of the accuracy over the test faces; for the paper, "
               f"of its printed accuracy on its {AFLW_TEST_FACES} AFLW test faces.",
               f"Paper rows: Table {number} of Canal Garcia et al., each number under its "
               "meaning: the paper's row printed \"Precision\" is the per-class recall and its "
               "row printed \"Recall\" the precision (they give its accuracies from the AFLW "
               "class counts; see the mtfl_compare README), so precision sits beside precision "
               "and recall beside recall. Its confusion matrices are rounded to whole percent. "
               f"The paper's layout: table{number}_{attribute}_paper_layout.md."])


def paper_layout_markdown(table: Table, attribute: str) -> str:
    """Table 3 or 4 in the paper's layout: per input, Accuracy / Precision / Recall rows with
    the per-class values and, beside them, the confusion matrix row of the class named. The
    paper rows show its numbers under their meaning, so its printed "Precision" row (the
    recall) appears here in the Recall row and vice versa (:func:`from_printed_rows`)."""
    first, second = CLASS_NAMES[attribute]
    header = ["Attribute", "Metrics"]
    for approach in ("First approach", "Second approach"):
        header += [f"{approach}: {first}", second, "CM", first, second]
    lines = [f"**{table.title}**", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * len(header)) + "|"]

    def show(cell, percent_sign=False):
        if isinstance(cell, (int, float)):
            return format_number(float(cell)) + (" %" if percent_sign else "")
        return str(cell)

    for row in table.rows:
        if row[0].endswith("(ours - paper)"):
            continue
        block = [[row[0], "Accuracy"], ["", "Precision"], ["", "Recall"]]
        for offset in (1, 10):
            accuracy, p1, p2, r1, r2, c11, c12, c21, c22 = row[offset:offset + 9]
            block[0] += [show(accuracy, True), "", "", first, second]
            block[1] += [show(p1), show(p2), first, show(c11, True), show(c12, True)]
            block[2] += [show(r1), show(r2), second, show(c21, True), show(c22, True)]
        lines += ["| " + " | ".join(cells) + " |" for cells in block]
    lines += [""] + [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def _test_and_validation_cells(evaluation, val_accuracy: float | None) -> list:
    """Test accuracy with its 95 % Wilson interval and number of test faces, positive-class
    precision and recall, validation accuracy (%), each an ``n/a`` with its reason where
    undefined: the "ours" cells of Table 5 and the TCDCN table."""
    return [_pct(evaluation.accuracy, "empty test set"), *_interval_cells(evaluation, ""),
            _pct(evaluation.positive_precision, "class never predicted"),
            _pct(evaluation.positive_recall, "class absent"),
            _pct(val_accuracy, "no validation split")]


def table_5(results: Results) -> Table:
    """Table 5: Cascade CNN, learning rate x epochs, for both attributes (test set)."""
    columns = ["Attribute, learning rate, epochs (paper)", "Learning rate", "Epochs (paper)",
               "Epochs (ours)", "Accuracy", "Accuracy 95% CI low", "Accuracy 95% CI high",
               "Test faces", "Precision", "Recall", "Val. accuracy",
               "Paper accuracy", "Paper precision", "Paper recall", "Δ accuracy"]
    rows = []
    not_run = na(f"not run at scale '{results.config.scale}'")
    for attribute in ("gender", "smiling"):
        for (paper_attribute, rate, epochs), paper in PAPER_TABLE_5.items():
            if paper_attribute != attribute:
                continue
            entry = results.cascade.get((attribute, rate, epochs))
            if entry is None:
                ours, delta = [not_run] * 7, not_run
            else:
                evaluation, val_accuracy = entry
                ours = _test_and_validation_cells(evaluation, val_accuracy)
                delta = round(100 * evaluation.accuracy - paper[0], 2)
            rows.append([f"{ATTRIBUTE_TITLES[attribute]}, lr {rate:g}, {epochs} epochs", rate, epochs,
                         results.cascade_epochs.get(epochs, not_run), *ours, *paper, delta])
    return Table(
        name="table5_cascade_cnn",
        title="Table 5: Cascade CNN on the test set with different learning rates and epochs, %",
        columns=columns, rows=rows, float_format=format_number,
        notes=[*_notes(results, "cascade"),
               "Precision / recall are those of the positive class (Smile: S, Gender: M). The "
               "paper does not name the class and prints the two crosswise: its \"Precision\" "
               "column is the recall of S / M and its \"Recall\" column the precision, the only "
               "reading that gives its accuracies from the AFLW class counts (mtfl_compare "
               "README); the paper columns here hold them under their meaning.",
               "The shorter schedule of each learning rate is the longer run's checkpoint after "
               "that many epochs (same seed, constant learning rate, so it equals a separate run).",
               f"Input: {CROP_TITLES[nose_crop(results.config)]}; 80/20 train/validation split of "
               "training.txt (§3.4). 95% CI: Wilson interval of the accuracy."])


def table_tcdcn(results: Results) -> Table:
    """§4.2 "TCDCN implementation" (no table in the paper): smile (and gender, added here)."""
    columns = ["Attribute", "Learning rate", "Epochs (paper)", "Epochs (ours)", "Test accuracy",
               "Test accuracy 95% CI low", "Test accuracy 95% CI high", "Test faces",
               "Precision", "Recall", "Val. accuracy", "Paper test accuracy",
               "Paper val. accuracy", "Δ test accuracy"]
    config = results.config.tcdcn
    not_run = na(f"not run at scale '{results.config.scale}'")
    rows = []
    for attribute in ATTRIBUTES:
        entry = results.tcdcn.get(attribute)
        paper = PAPER_TCDCN.get(attribute)
        paper_cells = ([paper["test_accuracy"], paper["val_accuracy"]] if paper
                       else [na("the paper ran TCDCN on smile only")] * 2)
        if entry is None:
            ours, delta = [not_run] * 7, not_run
        else:
            evaluation, val_accuracy = entry
            ours = _test_and_validation_cells(evaluation, val_accuracy)
            delta = (round(100 * evaluation.accuracy - paper["test_accuracy"], 2) if paper
                     else na("no paper number"))
        rows.append([ATTRIBUTE_TITLES[attribute], config.learning_rate, 45,
                     config.epochs if entry is not None else not_run, *ours, *paper_cells, delta])
    return Table(name="table_tcdcn", title="TCDCN (§4.2) on the test set, %", columns=columns,
                 rows=rows, float_format=format_number,
                 notes=[*_notes(results, "tcdcn"),
                        "Precision / recall of the positive class (S, M). Input: "
                        f"{CROP_TITLES[nose_crop(results.config)]} resized to "
                        f"{config.input_size}x{config.input_size}. 95% CI: Wilson interval."])


def table_1(results: Results) -> Table:
    """Table 1 (bottleneck retraining parameters): the paper's values and this run's."""
    ours = results.config.bottleneck
    not_run = na(f"not run at scale '{results.config.scale}'")
    rows = [["Learning rate", 0.01, ours.learning_rate],
            ["Train batch size", 100, ours.batch_size],
            ["Number of training steps", 4000, ours.train_steps],
            ["Training steps evaluate every", 10, ours.eval_every],
            ["Validation percentage", 10, round(100 * ours.validation_fraction, 2)],
            ["Input size (pixels)", 299, ours.input_size],
            ["Training images (before the validation split)", 10000,
             results.sizes.get("bottleneck_train", not_run)],
            ["Test images", 2995, results.sizes.get("bottleneck_test", not_run)]]
    return Table(name="table1_bottleneck_parameters",
                 title="Table 1: parameters for the bottlenecks computation and retraining",
                 columns=["Parameter", "Paper", "This run"], rows=rows, float_format=format_number,
                 notes=[results.weights_note, *results.data_notes])


def table_2(results: Results) -> Table:
    """Table 2 (fine-tuning protocol) with the validation / test accuracy after steps 1 and 4,
    each with its 95 % Wilson interval."""
    ours = results.config.finetune
    not_run = na(f"not run at scale '{results.config.scale}'")
    not_a_proportion = [na("not an accuracy")] * 2
    rows = [["Step 1: learning rate (new layers, RMSprop)", 0.01, ours.new_layers_learning_rate],
            ["Step 1: steps", 1000, ours.new_layers_steps],
            ["Step 4: learning rate (all layers, RMSprop)", 0.001, ours.all_layers_learning_rate],
            ["Step 4: steps", 500, ours.all_layers_steps],
            ["Batch size", 100, ours.batch_size],
            ["Weight decay", 4e-5, ours.weight_decay],
            ["Batch norm on batch statistics while training (1 = yes, 0 = frozen)", 1,
             int(ours.batch_norm_training)],
            ["Input size (pixels)", 299, ours.input_size],
            ["Training images (before the validation split)", 10000,
             results.sizes.get("finetune_train", not_run)],
            ["Test images", 2995, results.sizes.get("finetune_test", not_run)]]
    rows = [row + not_a_proportion for row in rows]
    for (attribute, crop), stages in sorted(results.finetune_stages.items()):
        label = f"{ATTRIBUTE_TITLES[attribute]}, {CROP_TITLES[crop]}"
        for stage, steps in (("new_layers", "steps 2-3"), ("all_layers", "steps 5-6")):
            record = stages.get(stage)
            for split in ("val", "test"):
                value = record.get(f"{split}_accuracy") if record else None
                if value is None:
                    interval = [na("no accuracy")] * 2
                else:
                    n = len(record[f"{split}_probabilities"])
                    bounds = wilson_interval(round(value * n), n)
                    interval = [round(100 * bounds.low, 2), round(100 * bounds.high, 2)]
                rows.append([f"{label}: {split} accuracy after {steps} (%)",
                             na("not reported in the paper"), _pct(value, not_run[len("n/a: "):]),
                             *interval])
    return Table(name="table2_finetune_protocol",
                 title="Table 2: the complete fine-tuning approach (tf-slim), parameters and stages",
                 columns=["Parameter", "Paper", "This run", "This run 95% CI low",
                          "This run 95% CI high"], rows=rows, float_format=format_number,
                 notes=[results.weights_note, *results.data_notes,
                        "95% CI: Wilson interval of the accuracy over the validation / test faces."])


def transfer_model_name(crop: str, approach: int) -> str:
    return f"InceptionV3 approach {approach}, {CROP_TITLES[crop]}"


def table_summary(results: Results) -> Table:
    """Every model's test accuracy with its 95 % Wilson interval next to the paper's, with the
    difference; the majority rule (each attribute's training-majority class for every test face)
    first, as the floor."""
    rows = []

    def row(name: str, evaluation: BinaryEvaluation, paper: float | str) -> list:
        ours = _pct(evaluation.accuracy, "empty test set")
        if isinstance(paper, str):
            return [name, ours, *_interval_cells(evaluation, ""), paper, *[paper] * 3]
        return [name, ours, *_interval_cells(evaluation, ""), paper, *paper_interval_cells(paper)[:2],
                round(100 * evaluation.accuracy - paper, 2)]

    majority_classes = []
    for attribute, evaluation in sorted(results.majority.items()):
        majority = evaluation.class_names[int(np.argmax(evaluation.counts.sum(axis=0)))]
        majority_classes.append(f"{ATTRIBUTE_TITLES[attribute]}: {majority}")
        rows.append(row(f"Majority rule (the training majority class), {ATTRIBUTE_TITLES[attribute]}",
                        evaluation, na("the paper gives no floor")))
    chosen_nose = nose_crop(results.config)
    for (attribute, crop, approach), evaluation in sorted(results.transfer.items()):
        label = f"InceptionV3 approach {approach}, {ATTRIBUTE_TITLES[attribute]}{CROP_SUFFIX[crop]}"
        if crop in ("original", chosen_nose):   # the rows of Tables 3-4
            paper = PAPER_TABLES_3_4[(attribute, "original" if crop == "original" else "nose",
                                      approach)].accuracy
        else:                                   # the other nose box (crop comparison)
            label += " (inter-ocular box)" if crop == "nose_inter_ocular" else " (fixed box)"
            paper = na("the paper's * rows are the box of --crop only")
        rows.append(row(label, evaluation, paper))
    for (attribute, rate, epochs), (evaluation, _) in sorted(results.cascade.items()):
        rows.append(row(f"Cascade CNN, {ATTRIBUTE_TITLES[attribute]}, lr {rate:g}, {epochs} epochs "
                        f"(ours {results.cascade_epochs.get(epochs)})", evaluation,
                        PAPER_TABLE_5[(attribute, rate, epochs)][0]))
    for attribute, (evaluation, _) in sorted(results.tcdcn.items()):
        paper = PAPER_TCDCN.get(attribute)
        rows.append(row(f"TCDCN, {ATTRIBUTE_TITLES[attribute]}", evaluation,
                        paper["test_accuracy"] if paper else na("the paper ran TCDCN on smile only")))
    return Table(name="summary_accuracy", title="Test accuracy of every model, ours vs the paper, %",
                 columns=["Model, attribute", "Ours", "Ours 95% CI low", "Ours 95% CI high",
                          "Test faces", "Paper", "Paper 95% CI low", "Paper 95% CI high",
                          "Δ (ours - paper)"], rows=rows,
                 float_format=format_number,
                 notes=[results.weights_note, *_notes(results),
                        "Majority rule: every test face gets the class most frequent in training ("
                        + "; ".join(majority_classes) + ").",
                        f"* = nose-centred crop, {CROP_TITLES[chosen_nose]} (--crop); the paper's * "
                        "rows used the fixed 150-px box.",
                        "95% CI: Wilson score interval; the paper's from its printed accuracy on "
                        f"its {AFLW_TEST_FACES} AFLW test faces. Paired comparisons of our models: "
                        "paired_comparisons.md."])


def table_crop_comparison(results: Results) -> Table:
    """The crops side by side (issue #20): one row per attribute, crop and InceptionV3 approach,
    test accuracy with its 95 % Wilson interval and the validation accuracy. The paired tests
    between the fixed and the inter-ocular nose box are in :func:`table_paired_comparisons`."""
    rows = []
    for attribute in ATTRIBUTES:
        for crop in CROP_TITLES:
            for approach in (1, 2):
                evaluation = results.transfer.get((attribute, crop, approach))
                reason = (_not_run(results) if crop in transfer_crops(results.config) else
                          "the other nose box is trained only with compare_nose_boxes (scales cpu, smoke)")
                validation = results.validation_accuracy.get((attribute, crop, approach))
                rows.append([f"{ATTRIBUTE_TITLES[attribute]}, {transfer_model_name(crop, approach)}",
                             _pct(evaluation.accuracy, "empty test set") if evaluation else na(reason),
                             *_interval_cells(evaluation, reason),
                             _pct(validation, "no validation split") if evaluation else na(reason)])
    data = results.config.data
    return Table(name="table_crop_comparison",
                 title="InceptionV3 test accuracy by crop and approach, % (95% Wilson interval)",
                 columns=["Attribute, model", "Accuracy", "Accuracy 95% CI low",
                          "Accuracy 95% CI high", "Test faces", "Val. accuracy"],
                 rows=rows, float_format=format_number,
                 notes=[results.weights_note, *_notes(results, "bottleneck", "finetune"),
                        f"Fixed box: {data.crop_box} pixels of every image around the nose (§3.1). "
                        f"Inter-ocular box: {data.inter_ocular_box_ratio:.3g} x the distance between "
                        f"the eye landmarks around the nose (median AFLW test face: the fixed "
                        f"box), so LFW (median eye distance 41 px), Net (85 px) and AFLW (45 px) "
                        f"faces get one zoom. Original: {data.face_box_scale:g} x the landmarks' "
                        "extent around their centre. Where a box leaves the image it is black.",
                        "Tables 3-4 and the CNNs use the nose box of --crop "
                        f"({data.nose_box})."])


#: The paired comparisons' name of the Cascade CNN run chosen on validation (the run itself, which
#: varies, is named in the table's notes).
BEST_CASCADE_NAME = "Cascade CNN (the Table 5 run with the best validation accuracy)"


def _best_cascade(results: Results, attribute: str) -> tuple[str, BinaryEvaluation] | None:
    """(a description of the Cascade CNN run of ``attribute`` with the best validation accuracy,
    first on ties; its evaluation)."""
    entries = [(key, evaluation, validation) for key, (evaluation, validation) in results.cascade.items()
               if key[0] == attribute]
    if not entries:
        return None
    (_, rate, epochs), evaluation, _ = max(
        entries, key=lambda entry: -1.0 if math.isnan(entry[2]) else entry[2])
    return (f"lr {rate:g}, paper's {epochs} epochs = our {results.cascade_epochs.get(epochs)}", evaluation)


def paired_comparisons(results: Results) -> list[tuple[str, str, str, PairedComparison]]:
    """``(attribute, model A, model B, comparison)`` on the test faces both models saw: approach
    1 vs 2 on each crop; on the nose crop of ``--crop`` every pair of approach 1, approach 2, the
    Cascade CNN with the best validation accuracy and TCDCN; fixed vs inter-ocular nose box for
    each approach."""
    comparisons = []
    for attribute in ATTRIBUTES:
        models: dict[str, BinaryEvaluation] = {}
        pairs = []
        for crop in transfer_crops(results.config):
            names = [transfer_model_name(crop, approach) for approach in (1, 2)]
            for approach, name in zip((1, 2), names):
                if (attribute, crop, approach) in results.transfer:
                    models[name] = results.transfer[(attribute, crop, approach)]
            pairs.append(tuple(names))
        nose = nose_crop(results.config)
        nose_models = [transfer_model_name(nose, 1), transfer_model_name(nose, 2)]
        cascade = _best_cascade(results, attribute)
        if cascade:
            models[BEST_CASCADE_NAME] = cascade[1]
            nose_models.append(BEST_CASCADE_NAME)
        if attribute in results.tcdcn:
            models["TCDCN"] = results.tcdcn[attribute][0]
            nose_models.append("TCDCN")
        pairs += [(a, b) for index, a in enumerate(nose_models) for b in nose_models[index + 1:]
                  if (a, b) not in pairs]
        for approach in (1, 2):
            pairs.append(tuple(transfer_model_name(crop, approach) for crop in ("nose", "nose_inter_ocular")))
        for a, b in pairs:
            if a in models and b in models:
                comparisons.append((attribute, a, b, compare_paired(models[a], models[b])))
    return comparisons


#: The verdict column of ``paired_comparisons`` as numbers (table cells are numbers or n/a).
VERDICT_CODES = {"A better": 1, "B better": -1, "not distinguishable at this scale": 0}


def table_paired_comparisons(results: Results, comparisons) -> Table:
    """:func:`paired_comparisons` as a table: accuracy difference with its paired-bootstrap 95 %
    interval and the exact McNemar test."""
    rows = [[f"{ATTRIBUTE_TITLES[attribute]}: A = {a} | B = {b}", comparison.n,
             round(100 * comparison.accuracy_a, 2), round(100 * comparison.accuracy_b, 2),
             round(100 * comparison.difference.estimate, 2), round(100 * comparison.difference.low, 2),
             round(100 * comparison.difference.high, 2), comparison.mcnemar.a_only,
             comparison.mcnemar.b_only, comparison.mcnemar.p_value, VERDICT_CODES[comparison.verdict]]
            for attribute, a, b, comparison in comparisons]
    return Table(name="paired_comparisons",
                 title="Models compared on the same test faces: accuracy difference A - B (points) "
                       "and McNemar's test",
                 columns=["Attribute: models", "Test faces", "Accuracy A",
                          "Accuracy B", "Δ A - B", "Δ 95% CI low", "Δ 95% CI high",
                          "A right, B wrong", "B right, A wrong", "McNemar p",
                          "Verdict (1 A better, -1 B better, 0 not distinguishable)"],
                 rows=rows, float_format=format_number,
                 notes=[*_notes(results),
                        "Δ 95% CI: paired bootstrap over the common test faces (2,000 resamples, "
                        "percentile); McNemar: exact two-sided binomial test on the faces exactly "
                        "one model got right. Verdict: a model is better only when the interval "
                        "excludes 0.",
                        "CNNs and the nose-crop InceptionV3 models see the nose crop of --crop "
                        f"({results.config.data.nose_box} box).",
                        f"{BEST_CASCADE_NAME}: " + "; ".join(
                            f"{ATTRIBUTE_TITLES[attribute]} {chosen[0]}" for attribute in ATTRIBUTES
                            if (chosen := _best_cascade(results, attribute)) is not None) + "."])


def build_tables(results: Results, comparisons) -> list[Table]:
    """Every table; ``comparisons`` from :func:`paired_comparisons`."""
    return [table_1(results), table_2(results), table_3_or_4(results, "smiling", 3),
            table_3_or_4(results, "gender", 4), table_5(results), table_tcdcn(results),
            table_summary(results), table_crop_comparison(results),
            table_paired_comparisons(results, comparisons)]
