"""The smoke-scale reproduction of paper 001 (``python -m mtfl_compare reproduce --scale smoke``):
every table and figure is written, the paper's numbers sit beside ours, the converted ImageNet
weights agree with their source, and each model family learns the synthetic smile attribute."""
from __future__ import annotations

import json

import numpy as np
import pytest

from common.tables import read_tables

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_dir(smoke_reproduction):
    return smoke_reproduction("mtfl_compare")


@pytest.fixture(scope="module")
def evaluations(smoke_dir):
    return json.loads((smoke_dir / "evaluations.json").read_text())


def test_every_table_and_figure_is_written(smoke_dir):
    tables = read_tables(smoke_dir)
    assert {"table1_bottleneck_parameters", "table2_finetune_protocol", "table3_smiling",
            "table4_gender", "table5_cascade_cnn", "table_tcdcn", "summary_accuracy"} <= set(tables)
    for name in ("fig_table3_confusion", "fig_table4_confusion", "fig_table5_confusion",
                 "fig_tcdcn_confusion", "fig4_misclassified_smile"):
        assert (smoke_dir / f"{name}.png").stat().st_size > 1000
    assert (smoke_dir / "table3_smiling.md").read_text().count("|") > 100
    assert json.loads((smoke_dir / "run.json").read_text())["extra"]["tensorflow_devices"]


def test_paper_numbers_sit_beside_ours(smoke_dir):
    tables = read_tables(smoke_dir)

    def rows(name):
        table = tables[name]
        return {row[0]: dict(zip(table.columns, row)) for row in table.rows}

    smile = rows("table3_smiling")
    assert smile["Smile (paper)"]["2nd: accuracy"] == 87.5           # Table 3, 2nd approach
    assert isinstance(smile["Smile (ours)"]["2nd: accuracy"], float)
    assert rows("table4_gender")["Gender (paper)"]["1st: accuracy"] == 86.3
    cascade = rows("table5_cascade_cnn")["Gender, lr 0.0001, 125 epochs"]
    assert cascade["Paper accuracy"] == 75.0 and isinstance(cascade["Accuracy"], float)
    assert rows("table_tcdcn")["Smile"]["Paper test accuracy"] == 72.5
    for table in tables.values():
        assert any("Pretrained weights" in note or "SYNTHETIC" in note for note in table.notes)
    layout = (smoke_dir / "table3_smiling_paper_layout.md").read_text()
    assert "| Smile* (paper) | Accuracy | 70.1 % |" in layout


def test_converted_imagenet_weights_match_the_torchscript(smoke_dir):
    record = json.loads((smoke_dir / "run.json").read_text())["extra"]["pretrained_record"]
    assert record["conv_units"] == 94
    assert record["verification"]["relative_l2_error"] < 1e-4
    assert record["source_sha1_matches_published"]


def _majority_rate(evaluation):
    counts = np.asarray(evaluation["counts"])
    return counts.sum(axis=1).max() / counts.sum()


def test_inception_transfer_learns_the_synthetic_smile_above_the_majority_rule(evaluations):
    """InceptionV3 bottlenecks + softmax (Table 1) beat the majority rule by >= 0.12 in all 11
    measured runs (5 seeds x 2 kernel paths + AVX2). Cascade CNN and TCDCN, trained from scratch
    for a few steps, do not in every run (0.44-0.69 and 0.52-0.86): their values are checked
    against measured bands in benchmarks/expected/mtfl_compare.json instead."""
    evaluation = evaluations["transfer"]["smiling/original/approach1"]
    assert evaluation["n"] >= 32
    assert evaluation["accuracy"] > _majority_rate(evaluation) + 0.05, evaluation


def test_exported_model_predicts_the_test_faces_as_the_reproduction_did(smoke_dir, tmp_path):
    """export -> predict on the reproduction's own test crops, saved as PNG: predict's centre
    square of a square crop is that crop, so its decisions must give the reproduction's
    confusion counts (to within one face per cell: the bottlenecks run in other batches). An
    unreadable file is skipped and named."""
    export_and_predict_like_the_reproduction(smoke_dir, tmp_path)


def export_and_predict_like_the_reproduction(run_dir, work_dir):
    import csv

    from PIL import Image

    from mtfl_compare.__main__ import main
    from mtfl_compare.config import DataConfig
    from mtfl_compare.data import attribute_labels, load_face, open_mtfl
    from mtfl_compare.predict import PROBABILITY_COLUMNS, predict

    model_dir = work_dir / "model"
    assert main(["export", "--run", str(run_dir), "--out", str(model_dir)]) == 0
    assert sum(path.stat().st_size for path in model_dir.iterdir()) < 200_000
    description = json.loads((model_dir / "model.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    evaluations = json.loads((run_dir / "evaluations.json").read_text())
    data = DataConfig(**run["config"]["data"])
    _, test = open_mtfl(data, run["config"]["seed"])
    for attribute, entry in description["attributes"].items():
        folder = work_dir / attribute
        folder.mkdir()
        for row, path in enumerate(test.image_paths):
            face = load_face(path, test.landmarks[row], entry["crop"], data.crop_box, data)
            Image.fromarray(face).save(folder / f"{row:05d}.png")
        (folder / "zz_broken.jpg").write_bytes(b"not an image")
        outcome = predict([folder], work_dir / f"{attribute}.csv", checkpoint=model_dir,
                          cache_dir=data.cache_dir, progress=False)
        assert [path.name for path in outcome.unreadable] == ["zz_broken.jpg"]
        with open(outcome.csv_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert len(rows) == len(test) and all(row["crop"].startswith("centre square") for row in rows)
        predicted = np.array([float(row[PROBABILITY_COLUMNS[attribute]]) >= 0.5 for row in rows], int)
        labels = attribute_labels(test, attribute)[[int(row["image"][:5]) for row in rows]]
        recorded = np.asarray(evaluations["transfer"][f"{attribute}/{entry['crop']}/approach1"]["counts"])
        order = [1, 0] if attribute == "smiling" else [0, 1]      # the tables' class order
        counts = np.array([[np.sum((labels == t) & (predicted == p)) for p in order] for t in order])
        assert np.abs(counts - recorded).max() <= 1, (attribute, counts, recorded)
