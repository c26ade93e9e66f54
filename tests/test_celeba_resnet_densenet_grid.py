"""celeba_resnet_densenet: the hyper-parameter grid runner resumes without redoing finished points."""
from __future__ import annotations

import csv
import json

import pytest

from celeba_resnet_densenet.config import ExperimentConfig
from celeba_resnet_densenet.pipeline import experiment_fingerprint
from common.checkpoint import require_same_configuration
from celeba_resnet_densenet.train import GRID_CSV, RESULT_FILE, GridPoint, run_grid

PAPER_GRID = [GridPoint(lr, dropout) for lr, dropout in ExperimentConfig.paper().grid.points()]
#: Made-up validation accuracy per point; lr 0.005 / dropout 0.5 is the best.
VAL_ACCURACY = {"lr0.01_dropout0.3": 0.80, "lr0.01_dropout0.5": 0.81, "lr0.005_dropout0.3": 0.85,
                "lr0.005_dropout0.5": 0.90, "lr0.001_dropout0.3": 0.88, "lr0.001_dropout0.5": 0.87}


class Interrupted(Exception):
    pass


class RecordingTrainer:
    """Stands in for train_grid_point: records calls, can be 'killed' at a chosen point."""

    def __init__(self, interrupt_at: str | None = None):
        self.calls: list[str] = []
        self.interrupt_at = interrupt_at

    def __call__(self, point: GridPoint, folder):
        self.calls.append(point.name)
        assert folder.name == point.name and folder.is_dir()
        (folder / "last.pt").write_text("partial checkpoint")
        if point.name == self.interrupt_at:
            raise Interrupted(point.name)
        return {"best_epoch": 1, "best": {"val_accuracy": VAL_ACCURACY[point.name], "val_loss": 0.5},
                "epochs": [], "train_images_per_second": 1.0, "train_seconds": 1.0}


def _grid_rows(tmp_path):
    with open(tmp_path / GRID_CSV, newline="") as handle:
        return list(csv.DictReader(handle))


def test_grid_resumes_after_interruption_without_redoing_finished_points(tmp_path):
    first = RecordingTrainer(interrupt_at="lr0.005_dropout0.5")
    with pytest.raises(Interrupted):
        run_grid(PAPER_GRID, first, tmp_path, "val_accuracy")
    assert first.calls == ["lr0.01_dropout0.3", "lr0.01_dropout0.5", "lr0.005_dropout0.3", "lr0.005_dropout0.5"]
    rows = _grid_rows(tmp_path)
    assert [row["status"] for row in rows] == ["finished"] * 3 + ["pending"] * 3
    finished_before = {name: (tmp_path / name / RESULT_FILE).read_text() for name in first.calls[:3]}

    second = RecordingTrainer()
    result = run_grid(PAPER_GRID, second, tmp_path, "val_accuracy")
    assert second.calls == ["lr0.005_dropout0.5", "lr0.001_dropout0.3", "lr0.001_dropout0.5"]
    for name, text in finished_before.items():
        assert (tmp_path / name / RESULT_FILE).read_text() == text
    assert result.best["folder"] == "lr0.005_dropout0.5"
    assert [r["folder"] for r in result.results] == [p.name for p in PAPER_GRID]
    rows = _grid_rows(tmp_path)
    assert [row["status"] for row in rows] == ["finished"] * 6
    assert [row["folder"] for row in rows if row["selected"] == "yes"] == ["lr0.005_dropout0.5"]
    assert float(rows[3]["val_accuracy"]) == pytest.approx(0.90)

    third = RecordingTrainer()
    again = run_grid(PAPER_GRID, third, tmp_path, "val_accuracy")
    assert third.calls == [] and again.best["folder"] == "lr0.005_dropout0.5"
    stored = json.loads((tmp_path / "lr0.001_dropout0.3" / RESULT_FILE).read_text())
    assert stored["learning_rate"] == 0.001 and stored["dropout"] == 0.3


def test_grid_selects_lowest_loss_when_the_metric_is_a_loss(tmp_path):
    losses = {point.name: 1.0 + index for index, point in enumerate(PAPER_GRID)}
    losses["lr0.001_dropout0.5"] = 0.1

    def train(point, folder):
        return {"best_epoch": 1, "best": {"val_loss": losses[point.name]}, "epochs": []}

    assert run_grid(PAPER_GRID, train, tmp_path, "val_loss").best["folder"] == "lr0.001_dropout0.5"


def test_grid_folder_refuses_a_different_configuration(tmp_path):
    smoke = ExperimentConfig.smoke()
    require_same_configuration(tmp_path, experiment_fingerprint(smoke, "resnet50"))
    require_same_configuration(tmp_path, experiment_fingerprint(smoke, "resnet50"))  # same config: fine
    with pytest.raises(ValueError, match="another configuration"):
        require_same_configuration(tmp_path, experiment_fingerprint(ExperimentConfig.cpu(), "resnet50"))


def test_a_diverged_point_is_never_selected_even_with_the_best_metric(tmp_path):
    """A point whose record says it diverged (validation loss exploded at every epoch) loses to
    any healthy point, however good its thresholded accuracy looks."""
    def train(point, folder):
        exploded = point.learning_rate == 0.01
        return {"diverged": exploded, "best_epoch": 1,
                "best": {"val_accuracy": 0.99 if exploded else VAL_ACCURACY[point.name],
                         "val_loss": 1.4e12 if exploded else 0.5}, "epochs": []}

    result = run_grid(PAPER_GRID, train, tmp_path, "val_accuracy")
    assert result.best["folder"] == "lr0.005_dropout0.5"
    assert [row["folder"] for row in _grid_rows(tmp_path) if row["selected"] == "yes"] == ["lr0.005_dropout0.5"]


def test_every_point_diverged_is_an_error_that_names_them(tmp_path):
    def train(point, folder):
        return {"diverged": True, "best_epoch": 2, "best": {"val_accuracy": 0.9, "val_loss": float("inf")},
                "epochs": []}

    with pytest.raises(ValueError, match="without diverging.*lr0.01_dropout0.3"):
        run_grid(PAPER_GRID[:2], train, tmp_path, "val_accuracy")


def test_divergence_rule_flags_non_finite_and_exploded_losses():
    from celeba_resnet_densenet.train import DIVERGENCE_FACTOR, diverged

    constant = 0.69
    assert not diverged(0.5, constant) and not diverged(DIVERGENCE_FACTOR * constant, constant)
    assert diverged(DIVERGENCE_FACTOR * constant * 1.01, constant)
    assert diverged(float("nan"), constant) and diverged(float("inf"), constant)
    assert diverged(1.39e12, constant)
