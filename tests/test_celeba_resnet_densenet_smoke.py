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


def _sklearn_metric(smoke_dir: Path, backbone: str, key: str) -> float:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    saved = np.load(smoke_dir / f"test_predictions_{backbone}.npz")
    truth, predicted = saved["labels"].astype(int), (saved["probabilities"] >= 0.5).astype(int)
    if key == "accuracy":
        return float(accuracy_score(truth.ravel(), predicted.ravel()))
    scorer = {"precision": precision_score, "recall": recall_score, "f1": f1_score}[key]
    return float(scorer(truth, predicted, average="samples", zero_division=0))


def test_smoke_tables_put_the_paper_beside_ours(smoke_dir):
    tables = read_tables(smoke_dir)
    assert {"test_results", "selected_hyperparameters", "grid_resnet50", "grid_densenet121", "averaging",
            "per_attribute", "epoch_log"} <= set(tables)
    results = tables["test_results"]
    assert len(results.rows) == 12
    assert [row[0] for row in results.rows[:4]] == [f"Majority rule {m}" for m in
                                                    ("Accuracy", "Precision", "Recall", "F-score")]
    for label, ours, paper, delta in results.rows[4:]:
        model, metric = label.split(" ", 1)
        backbone = {"ResNet50": "resnet50", "DenseNet121": "densenet121"}[model]
        key = {"Accuracy": "accuracy", "Precision": "precision", "Recall": "recall", "F-score": "f1"}[metric]
        assert paper == PAPER_TEST_RESULTS[backbone][key]
        # Ours is what scikit-learn computes from the saved test predictions at threshold 0.5.
        assert ours == pytest.approx(_sklearn_metric(smoke_dir, backbone, key), abs=1e-12), label
        assert delta == pytest.approx(ours - paper)
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
    for name in ("training_curves.png", "grid_validation.png", "run.json", "throughput.json"):
        assert (smoke_dir / name).is_file(), name
    with open(smoke_dir / "grid" / "resnet50" / "grid.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["status"] for row in rows] == ["finished", "finished"]
    assert sum(row["selected"] == "yes" for row in rows) == 1


def test_predict_on_a_synthetic_face_after_smoke_training(smoke_dir, synthetic_face_path):
    path, _ = synthetic_face_path
    checkpoint = smoke_dir / "models" / "resnet50.pt"
    present = predict(path, checkpoint=checkpoint)
    assert present, "no attribute predicted present"
    assert list(present) == [name for name in CELEBA_ATTRIBUTES if name in present]  # file order
    assert all(0.5 <= probability <= 1.0 for probability in present.values())
    # the same answer for a PIL image, and the full 40 probabilities behind it
    assert predict(Image.open(path), checkpoint=checkpoint) == pytest.approx(present)
    full = AttributePredictor(checkpoint, device="cpu")([path])[0]
    assert list(full.probabilities) == list(CELEBA_ATTRIBUTES)
    assert full.present == pytest.approx(present)


def test_predict_command_prints_attributes_and_rejects_non_images(smoke_dir, synthetic_face_path, tmp_path):
    path, _ = synthetic_face_path
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is text, not a JPEG\n")
    checkpoint = smoke_dir / "models" / "densenet121.pt"
    completed = subprocess.run(
        [sys.executable, "-m", PACKAGE, "predict", str(path), str(not_an_image), "--checkpoint", str(checkpoint)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].startswith("model: densenet121")
    assert lines[1] == f"{path}:"
    printed = [line.split() for line in lines[2:]]
    assert printed and all(name in CELEBA_ATTRIBUTES and 0.5 <= float(p) <= 1.0 for name, p in printed)
    assert f"{not_an_image}: not a readable image" in completed.stderr
    with pytest.raises(ValueError, match="notes.jpg: not a readable image"):
        predict(not_an_image, checkpoint=checkpoint)


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
