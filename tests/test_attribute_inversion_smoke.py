"""End to end: ``python -m attribute_inversion reproduce --scale smoke`` (run once per session by the
``smoke_reproduction`` fixture) writes Table 1 with its calibration rows and intervals, the figures
and the training logs; ``evaluate --checkpoint`` recomputes every table from the checkpoints, exactly."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.expected import malformed_cells
from common.tables import read_tables
from attribute_inversion.evaluate import CALIBRATION_ROWS
from attribute_inversion.tables import PAPER_TABLE1

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def out_dir(smoke_reproduction):
    return smoke_reproduction("attribute_inversion")


def test_writes_tables_figures_and_run_record(out_dir):
    for name in ("table1", "table1_calibration", "table1_intervals", "table1_details", "judge"):
        assert (out_dir / f"{name}.md").is_file() and (out_dir / f"{name}.csv").is_file()
    assert (out_dir / "fig2_Eyeglasses.png").stat().st_size > 1000
    assert (out_dir / "fig3_dfn_boxplots.png").stat().st_size > 1000
    for curves in ("curves_Eyeglasses_ours", "curves_Eyeglasses_cyclegan", "curves_judge"):
        assert (out_dir / f"{curves}.png").stat().st_size > 1000
    run = json.loads((out_dir / "run.json").read_text())
    assert run["config"]["scale"] == "smoke"
    assert run["extra"]["test_counts"]["Eyeglasses"][0] > 0


def test_training_runs_leave_checkpoints_tensorboard_and_sample_grids(out_dir):
    for model in ("ours", "cyclegan"):
        run_dir = out_dir / "train" / "Eyeglasses" / model
        assert (run_dir / "last.pt").is_file()
        assert list((run_dir / "tb").glob("events.out.tfevents.*"))
        assert list((run_dir / "samples").glob("step_*.png"))
    assert (out_dir / "train" / "judge" / "last.pt").is_file()


def test_table1_holds_computed_numbers_for_eyeglasses_and_na_elsewhere(out_dir):
    table = read_tables(out_dir)["table1"]
    rows = {row[0]: row[1:] for row in table.rows}
    column = {name: index - 1 for index, name in enumerate(table.columns)}
    for model in ("ours", "CycleGAN"):
        fid = rows[f"{model} (this run)"][column["W/Wo eyeglasses FID"]]
        dfn = rows[f"{model} (this run)"][column["W/Wo eyeglasses mean DFN"]]
        assert isinstance(fid, float) and math.isfinite(fid) and fid > 0
        assert isinstance(dfn, float) and 0 < dfn < 5
        assert rows[f"{model} (this run)"][column["Male/Female FID"]] == "n/a: not trained at smoke scale"
        assert rows[f"{model} (paper)"][column["W/Wo eyeglasses FID"]] == PAPER_TABLE1[model]["Eyeglasses"][0]


def test_calibration_rows_and_intervals_are_well_formed(out_dir):
    tables = read_tables(out_dir)
    for table in tables.values():
        assert malformed_cells(table.name, table) == []
        assert len({row[0] for row in table.rows}) == len(table.rows), table.name
    calibration = {row[0]: row[1:] for row in tables["table1_calibration"].rows}
    assert list(calibration) == [f"Eyeglasses / {label}" for label in CALIBRATION_ROWS.values()]
    column = {name: index - 1 for index, name in enumerate(tables["table1_calibration"].columns)}
    positives, negatives = json.loads((out_dir / "run.json").read_text())["extra"]["test_counts"]["Eyeglasses"]
    identity = calibration[f"Eyeglasses / {CALIBRATION_ROWS['paper/identity']}"]
    assert identity[column["FID"]] == pytest.approx(0, abs=1e-6) and identity[column["KID"]] == pytest.approx(0, abs=1e-9)
    assert identity[column["mean DFN"]] == 1.0
    assert identity[column["N (A)"]] == identity[column["N (B)"]] == positives + negatives
    with_floor = calibration[f"Eyeglasses / {CALIBRATION_ROWS['with/floor']}"]
    with_ours = calibration[f"Eyeglasses / {CALIBRATION_ROWS['with/ours']}"]
    assert with_floor[column["N (A)"]] == with_ours[column["N (A)"]] == positives
    assert with_floor[column["N (B)"]] == with_ours[column["N (B)"]]
    intervals = tables["table1_intervals"]
    column = {name: index for index, name in enumerate(intervals.columns)}
    assert len(intervals.rows) == 8
    for row in intervals.rows:
        low, high = row[column["95% CI low"]], row[column["95% CI high"]]
        assert low <= high and row[column["interval excludes 0"]] == int(low > 0 or high < 0)
    table1 = {row[0]: row for row in tables["table1"].rows}
    assert "identity G(x) = x (this run)" in table1 and "real vs real, disjoint faces, same N (this run)" in table1


def test_evaluate_from_the_checkpoints_reproduces_every_table_exactly(out_dir, tmp_path):
    checkpoints = sorted((out_dir / "train").rglob("last.pt"))
    before = {path: path.stat().st_mtime_ns for path in checkpoints}
    command = [sys.executable, "-m", "attribute_inversion", "evaluate", "--checkpoint", str(out_dir),
               "--out", str(tmp_path / "evaluated")]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-6000:]
    reproduced, evaluated = read_tables(out_dir), read_tables(tmp_path / "evaluated")
    assert evaluated.keys() == reproduced.keys()
    for name, table in reproduced.items():
        assert evaluated[name].columns == table.columns, name
        assert evaluated[name].rows == table.rows, name
        assert evaluated[name].notes == table.notes, name
    assert {path: path.stat().st_mtime_ns for path in checkpoints} == before  # nothing trained
    assert json.loads((tmp_path / "evaluated" / "run.json").read_text())["extra"]["mode"] == "evaluate"


def test_export_ships_checks_and_documents_the_generator(out_dir, tmp_path, capsys):
    """``export`` from the finished run: the file, its check against the checkpoint on every test face
    of the attribute through ``invert`` (int8 weights: close, not equal), and the model card with the
    run's calibration rows, intervals and licence."""
    from common.export import CELEBA_MODEL_LICENCE
    from attribute_inversion.__main__ import main
    from attribute_inversion.checkpoints import load_generator

    shipped = tmp_path / "generator_Eyeglasses.pt"
    assert main(["export", "--checkpoint", str(out_dir), "--attribute", "Eyeglasses", "--out", str(shipped)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {shipped}" in printed and "MODEL_CARD_Eyeglasses.md" in printed
    assert load_generator("Eyeglasses", shipped).image_size == 32
    run = json.loads((out_dir / "run.json").read_text())
    test_faces = sum(run["extra"]["test_counts"]["Eyeglasses"])
    assert f"on the {test_faces} test faces" in printed
    difference = float(printed.split("differ from the checkpoint's by ")[1].split(" ")[0])
    assert 0 <= difference < 4
    card = (tmp_path / "MODEL_CARD_Eyeglasses.md").read_text()
    calibration = read_tables(out_dir)["table1_calibration"]
    for label in CALIBRATION_ROWS.values():
        assert f"| {label} |" in card
    assert sum(row[0].startswith("Eyeglasses / ") for row in calibration.rows) == len(CALIBRATION_ROWS)
    assert "| mean DFN |" in card and "| attribute success rate |" in card
    assert "The judge's balanced accuracy" in card and CELEBA_MODEL_LICENCE in card
    assert "n/a" not in card.split("## Table 1")[0]  # the header facts are all present


def test_export_without_the_runs_tables_says_what_to_run(out_dir, tmp_path):
    import shutil

    from attribute_inversion.__main__ import main

    checkpoint_only = tmp_path / "train"
    shutil.copytree(out_dir / "train", checkpoint_only)
    with pytest.raises(SystemExit, match="evaluate --checkpoint"):
        main(["export", "--checkpoint", str(checkpoint_only), "--attribute", "Eyeglasses",
              "--out", str(tmp_path / "generator_Eyeglasses.pt")])
    assert not (tmp_path / "generator_Eyeglasses.pt").exists()
