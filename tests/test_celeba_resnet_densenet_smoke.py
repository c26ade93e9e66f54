"""celeba_resnet_densenet: the smoke reproduction's outputs and ``predict`` on its checkpoint."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.expected import malformed_cells, smoke_command
from celeba_resnet_densenet.inference import AttributePredictor, predict
from celeba_resnet_densenet.tables import PAPER_TEST_RESULTS
from common.attributes import CELEBA_ATTRIBUTES
from common.metrics import search_thresholds
from common.synthetic import render_face
from common.tables import read_tables

PACKAGE = "celeba_resnet_densenet"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def smoke_dir(smoke_reproduction) -> Path:
    return smoke_reproduction(PACKAGE)


@pytest.fixture(scope="module")
def synthetic_face_path(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A synthetic face not in the smoke sample (index 5000), with its known attributes."""
    face = render_face(5000, seed=0, height=109, width=89)
    path = tmp_path_factory.mktemp("faces") / "face_5000.png"
    Image.fromarray(face.image).save(path)
    return path, face.attributes


def _sklearn_metrics(smoke_dir: Path, backbone: str) -> dict[str, float]:
    """The headline test metrics recomputed with scikit-learn from the saved predictions and the
    saved validation-chosen thresholds."""
    from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, precision_score,
                                 recall_score, roc_auc_score)

    saved = np.load(smoke_dir / f"test_predictions_{backbone}.npz")
    truth, probabilities = saved["labels"].astype(int), saved["probabilities"]
    predicted = (probabilities >= saved["thresholds_validation"]).astype(int)
    both_classes = [c for c in range(truth.shape[1]) if 0 < truth[:, c].sum() < len(truth)]
    return {
        "accuracy": float(accuracy_score(truth.ravel(), predicted.ravel())),
        **{key: float(scorer(truth, predicted, average="samples", zero_division=0))
           for key, scorer in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score))},
        "mean_auroc": float(np.mean([roc_auc_score(truth[:, c], probabilities[:, c]) for c in both_classes])),
        "mean_ap": float(np.mean([average_precision_score(truth[:, c], probabilities[:, c]) for c in both_classes])),
    }


METRIC_KEYS = {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F-score": "f1",
               "Mean AUROC": "mean_auroc", "mAP": "mean_ap"}


def test_smoke_tables_put_the_paper_beside_ours(smoke_dir):
    tables = read_tables(smoke_dir)
    assert {"test_results", "decision_rules", "comparisons", "selected_hyperparameters", "grid_resnet50",
            "grid_densenet121", "averaging", "per_attribute", "epoch_log"} <= set(tables)
    results = tables["test_results"]
    assert len(results.rows) == 4 + 2 * len(METRIC_KEYS)
    assert [row[0] for row in results.rows[:4]] == [f"Majority rule {m}" for m in
                                                    ("Accuracy", "Precision", "Recall", "F-score")]
    recomputed = {backbone: _sklearn_metrics(smoke_dir, backbone) for backbone in ("resnet50", "densenet121")}
    for label, ours, low, high, paper, delta in results.rows[4:]:
        model, metric = label.split(" ", 1)
        backbone = {"ResNet50": "resnet50", "DenseNet121": "densenet121"}[model]
        key = METRIC_KEYS[metric]
        # Ours is what scikit-learn computes from the saved predictions at the saved thresholds.
        assert ours == pytest.approx(recomputed[backbone][key], abs=1e-9), label
        assert low <= high, label  # a percentile interval need not contain a biased estimate
        if key in PAPER_TEST_RESULTS[backbone]:
            assert paper == PAPER_TEST_RESULTS[backbone][key]
            assert delta == pytest.approx(ours - paper)
        else:
            assert paper.startswith("n/a: ") and delta.startswith("n/a: ")
    assert any("Scale smoke" in note for note in results.notes)
    assert len(tables["per_attribute"].rows) == len(CELEBA_ATTRIBUTES) + 1
    grid = tables["grid_resnet50"]
    assert len(grid.rows) == 6  # the paper's 3 x 2 grid, points outside the smoke grid as n/a
    trained = [row for row in grid.rows if isinstance(row[-1], int)]
    assert [row[0] for row in trained] == ["lr 0.001, dropout 0.3", "lr 0.001, dropout 0.5"]
    assert sum(row[-1] for row in trained) == 1
    assert all(row[-2] == 0 for row in trained if row[-1] == 1), "a diverged point was selected"
    assert all(cell.startswith("n/a: ") for row in grid.rows if row not in trained for cell in row[1:])
    for table in tables.values():  # the CI regression check keys rows on their (unique) label
        assert len({row[0] for row in table.rows}) == len(table.rows), table.name
        assert malformed_cells(table.name, table) == []
    for name in ("training_curves.png", "grid_validation.png", "per_attribute_auroc.png", "run.json",
                 "throughput.json"):
        assert (smoke_dir / name).is_file(), name
    with open(smoke_dir / "grid" / "resnet50" / "grid.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["finished", "finished"]
    assert sum(row["selected"] == "yes" for row in rows) == 1


def test_thresholds_are_chosen_on_validation_only(smoke_dir):
    """The saved validation thresholds are the per-attribute search on the *validation* predictions;
    the prior-corrected ones are 1 - the training prior (balanced weighting at smoke scale)."""
    saved = np.load(smoke_dir / "test_predictions_resnet50.npz")
    assert np.array_equal(saved["thresholds_validation"],
                          search_thresholds(saved["val_labels"], saved["val_probabilities"]))
    assert not set(saved["image_ids"]) & set(saved["val_image_ids"])
    assert np.all((saved["thresholds_prior"] > 0) & (saved["thresholds_prior"] <= 1))
    assert np.all(saved["thresholds_fixed"] == 0.5)
    compared = read_tables(smoke_dir)["comparisons"]
    for a_minus_b, difference, low, high, established in compared.rows:
        assert low <= high, a_minus_b
        assert established == int(low > 0 or high < 0)


def test_predict_on_a_synthetic_face_after_smoke_training(smoke_dir, synthetic_face_path):
    path, _ = synthetic_face_path
    checkpoint = smoke_dir / "models" / "resnet50.pt"
    predictor = AttributePredictor(checkpoint, device="cpu")
    full = predictor([path])[0]
    assert list(full.probabilities) == list(CELEBA_ATTRIBUTES)
    thresholds = np.load(smoke_dir / "test_predictions_resnet50.npz")["thresholds_validation"]
    assert list(full.thresholds.values()) == pytest.approx(thresholds.tolist())
    present = predict(path, checkpoint=checkpoint)
    assert present == pytest.approx(full.present)
    assert list(present) == [name for name in CELEBA_ATTRIBUTES if name in present]  # file order
    assert all(p >= full.thresholds[name] for name, p in present.items())
    # the same answer for a PIL image
    assert predict(Image.open(path), checkpoint=checkpoint) == pytest.approx(present)


def test_predict_command_writes_a_csv_and_skips_unreadable_files(smoke_dir, synthetic_face_path, tmp_path):
    path, _ = synthetic_face_path
    folder = tmp_path / "faces"
    (folder / "nested").mkdir(parents=True)
    Image.open(path).save(folder / "a.png")
    Image.open(path).convert("L").save(folder / "nested" / "grey.jpg")
    (folder / "notes.jpg").write_text("this is text, not a JPEG\n")
    checkpoint = smoke_dir / "models" / "densenet121.pt"
    out_csv = tmp_path / "out" / "predictions.csv"
    completed = subprocess.run(
        [sys.executable, "-m", PACKAGE, "predict", str(folder), "--checkpoint", str(checkpoint),
         "--out", str(out_csv), "--no-progress"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr  # an unreadable file was skipped
    assert completed.stdout.splitlines()[0].startswith("model: densenet121")
    assert "notes.jpg" in completed.stderr
    with open(out_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["image"] for row in rows] == ["a.png", "nested/grey.jpg"]
    predictor = AttributePredictor(checkpoint, device="cpu")
    expected = predictor([folder / "a.png"])[0]
    for name in CELEBA_ATTRIBUTES:
        assert float(rows[0][f"{name}_probability"]) == pytest.approx(expected.probabilities[name], abs=1e-5)
        assert int(rows[0][f"{name}_present"]) == int(name in expected.present)
    with pytest.raises(ValueError, match="notes.jpg: not a readable image"):
        predict(folder / "notes.jpg", checkpoint=checkpoint)


def test_geometry_choices_of_the_command_line_match_the_package():
    from celeba_resnet_densenet.__main__ import GEOMETRIES as CLI_GEOMETRIES
    from celeba_resnet_densenet.inference import GEOMETRIES

    assert CLI_GEOMETRIES == GEOMETRIES


def test_ship_writes_the_network_that_fits_with_a_model_card(smoke_dir, tmp_path, synthetic_face_path):
    """``ship`` ranks by validation AUROC, passes over a network above 10 MB (ResNet50's int8 weights
    are ~23 MB) naming why, and the shipped int8/fp16 weights score like the fp32 ones."""
    from celeba_resnet_densenet.config import ExperimentConfig
    from celeba_resnet_densenet.pipeline import ship_model
    from common.export import SHIPPED_MODEL_MAX_BYTES

    shipped = tmp_path / "pretrained" / "model.pt"
    record = ship_model(ExperimentConfig.smoke(), smoke_dir, shipped)
    assert record["backbone"] == "densenet121"  # ResNet50 never fits 10 MB, whatever its rank
    ranking = sorted(record["validation_ranking"], key=lambda b: -record["validation_ranking"][b]["mean_auroc"])
    ranked_above = ranking[:ranking.index("densenet121")]
    assert sorted(record["passed_over"]) == sorted(ranked_above)
    assert all("over the limit" in why for why in record["passed_over"].values())
    assert shipped.stat().st_size == record["bytes"] <= SHIPPED_MODEL_MAX_BYTES
    assert abs(record["test_mean_auroc_shipped"] - record["test_mean_auroc_fp32"]) < 0.02
    card = (tmp_path / "pretrained" / "MODEL_CARD.md").read_text()
    assert "non-commercial research" in card
    assert f"{record['test_mean_auroc_shipped']:.4f}" in card
    # the shipped file predicts like the full model it came from
    path, _ = synthetic_face_path
    full = AttributePredictor(smoke_dir / "models" / "densenet121.pt", device="cpu")([path])[0]
    compact = AttributePredictor(shipped, device="cpu")([path])[0]
    assert max(abs(full.probabilities[n] - compact.probabilities[n]) for n in CELEBA_ATTRIBUTES) < 0.05
    assert compact.thresholds == full.thresholds


@pytest.mark.slow
def test_sigterm_mid_run_then_rerun_gives_the_uninterrupted_tables(smoke_dir, tmp_path):
    """Kill the smoke reproduction with SIGTERM while it trains, re-run the same command: it
    resumes from last.pt and writes exactly the tables of an uninterrupted run (common.train's
    signal handling, shared by every package)."""
    import json
    import signal
    import time

    out_dir = tmp_path / "killed"
    command = smoke_command(PACKAGE, out_dir)
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_point = out_dir / "grid" / "resnet50" / "lr0.001_dropout0.3"
    deadline = time.monotonic() + 300
    while not (first_point / "last.pt").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "SIGTERM: training stopped at step" in stderr.strip().splitlines()[-1]
    assert not (out_dir / "tables.json").exists()
    subprocess.run(command, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
    assert (json.loads((out_dir / "tables.json").read_text())
            == json.loads((smoke_dir / "tables.json").read_text()))
