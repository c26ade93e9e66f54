"""``python -m celeba_resnet_densenet compare``: finished runs paired on the same test images (issue #19's
balanced vs unweighted comparison at equal budget)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from celeba_resnet_densenet.__main__ import main
from celeba_resnet_densenet.pipeline import compare_runs
from common.tables import read_tables


def _write_run(path, labels, probabilities, thresholds, image_ids):
    np.savez_compressed(path, probabilities=probabilities, labels=labels, image_ids=image_ids,
                        thresholds_validation=thresholds, thresholds_fixed=np.full(labels.shape[1], 0.5))
    return path


@pytest.fixture
def two_runs(tmp_path):
    """A weak and a strong run on the same 300 test images x 4 attributes."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(300, 4)).astype(np.uint8)
    noise = rng.normal(size=labels.shape)
    weak = 1 / (1 + np.exp(-(0.3 * (2.0 * labels - 1) + noise)))
    strong = 1 / (1 + np.exp(-(3.0 * (2.0 * labels - 1) + noise)))
    ids = np.array([f"{i:06d}.jpg" for i in range(300)])
    thresholds = np.full(4, 0.5)
    return (_write_run(tmp_path / "weak.npz", labels, weak, thresholds, ids),
            _write_run(tmp_path / "strong.npz", labels, strong, thresholds, ids), labels, weak, strong)


def test_compare_runs_pairs_the_runs_and_writes_the_table(two_runs, tmp_path):
    weak_path, strong_path, labels, weak, strong = two_runs
    rows = compare_runs([weak_path, strong_path], ["weak", "strong"], tmp_path / "out", n_resamples=200)
    by_metric = {row["metric"]: row["interval"] for row in rows}
    assert set(by_metric) == {"accuracy", "f1", "mean_auroc", "mean_ap"}
    expected_auroc = np.mean([roc_auc_score(labels[:, j], strong[:, j]) - roc_auc_score(labels[:, j], weak[:, j])
                              for j in range(4)])
    assert by_metric["mean_auroc"].estimate == pytest.approx(expected_auroc)
    expected_accuracy = ((strong >= 0.5) == labels).mean() - ((weak >= 0.5) == labels).mean()
    assert by_metric["accuracy"].estimate == pytest.approx(expected_accuracy)
    assert all(interval.low > 0 for interval in by_metric.values())  # clearly better: every interval above 0
    table = read_tables(tmp_path / "out")["run_comparison"]
    assert [row[0] for row in table.rows][-4:] == ["strong - weak: Accuracy", "strong - weak: F-score",
                                                   "strong - weak: Mean AUROC", "strong - weak: mAP"]
    assert all(row[4] == 1 for row in table.rows[-4:])
    record = json.loads((tmp_path / "out" / "run_comparison.json").read_text())
    assert [run["name"] for run in record["runs"]] == ["weak", "strong"]


def test_compare_refuses_runs_on_other_test_images(two_runs, tmp_path):
    weak_path, _, labels, weak, _ = two_runs
    other = _write_run(tmp_path / "other.npz", labels, weak, np.full(4, 0.5),
                       np.array([f"x{i}.jpg" for i in range(300)]))
    with pytest.raises(ValueError, match="not the test images of"):
        compare_runs([weak_path, other], ["a", "b"], tmp_path / "out")
    with pytest.raises(ValueError, match="one name for each"):
        compare_runs([weak_path, other], ["a"], tmp_path / "out")


def test_compare_command_prints_the_differences(two_runs, tmp_path, capsys):
    weak_path, strong_path, *_ = two_runs
    assert main(["compare", str(weak_path), str(strong_path), "--names", "weak", "strong",
                 "--out", str(tmp_path / "cli"), "--resamples", "200"]) == 0
    assert "strong - weak, accuracy: +" in capsys.readouterr().out
    assert (tmp_path / "cli" / "run_comparison.md").is_file()
