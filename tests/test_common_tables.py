"""common.tables: Table validation, Markdown/CSV/JSON writing and reading, run.json."""
from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.tables import Table, cell_or_na, na, percent, read_tables, write_run_record, write_tables

REPO_ROOT = Path(__file__).resolve().parent.parent


def _error_table() -> Table:
    return Table(
        name="table2_error",
        title="Table 2: attribute error (%)",
        columns=["Attribute", "ours", "paper", "delta"],
        rows=[["Smiling", np.float64(7.123456), 7.5, -0.376544],
              ["Male", 2, np.int64(3), -1],
              ["Blurry|soft", na("needs LFWA"), 4.1, cell_or_na(float("nan"), "not computed at smoke scale")]],
        notes=["smoke scale: 64 synthetic faces"],
    )


def test_write_and_read_tables_round_trip(tmp_path):
    table = _error_table()
    written = write_tables([table], tmp_path, float_format=".2f")
    assert [path.name for path in written] == ["table2_error.md", "table2_error.csv", "tables.json"]

    markdown = (tmp_path / "table2_error.md").read_text()
    assert "**Table 2: attribute error (%)**" in markdown
    assert "| Smiling | 7.12 | 7.50 | -0.38 |" in markdown
    assert "| Male | 2 | 3 | -1 |" in markdown          # integers stay integers
    assert r"Blurry\|soft" in markdown                   # pipes escaped
    assert "|---|---:|---:|---:|" in markdown
    assert "- smoke scale: 64 synthetic faces" in markdown

    with open(tmp_path / "table2_error.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["Attribute", "ours", "paper", "delta"]
    assert float(rows[1][1]) == 7.123456                 # full precision in CSV
    assert rows[3][1] == "n/a: needs LFWA" and rows[3][3] == "n/a: not computed at smoke scale"

    stored = json.loads((tmp_path / "tables.json").read_text())
    assert set(stored) == {"table2_error"}
    assert set(stored["table2_error"]) == {"title", "columns", "rows", "notes"}
    again = read_tables(tmp_path)["table2_error"]
    assert again.rows == table.rows and again.columns == table.columns
    assert again.title == table.title and again.notes == table.notes
    assert type(again.rows[1][1]) is int and type(again.rows[0][1]) is float


def test_table_float_format_overrides_and_append(tmp_path):
    first = Table("fid", "FID", ["method", "FID"], [["ours", 12.3456]], float_format=".1f")
    write_tables([first], tmp_path)
    assert "| ours | 12.3 |" in (tmp_path / "fid.md").read_text()
    second = Table("dfn", "DFN", ["method", "gamma"], [["ours", 0.9]])
    write_tables([second], tmp_path, append=True)
    assert set(read_tables(tmp_path)) == {"fid", "dfn"}
    write_tables([second], tmp_path)  # default: tables.json holds exactly the tables given
    assert set(read_tables(tmp_path)) == {"dfn"}


def test_invalid_tables_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match=r"row 1 \('Male'\): 2 cells but 3 columns"):
        Table("t", "T", ["a", "b", "c"], [["Smiling", 1, 2], ["Male", 1]])
    with pytest.raises(ValueError, match=r"column 'b'.*cell_or_na"):
        Table("t", "T", ["a", "b"], [["Smiling", float("nan")]])
    with pytest.raises(ValueError, match="finite"):
        Table("t", "T", ["a", "b"], [["Smiling", np.inf]])
    with pytest.raises(TypeError, match="cell_or_na"):
        Table("t", "T", ["a", "b"], [["Smiling", None]])
    with pytest.raises(ValueError, match="n/a: <reason>"):
        Table("t", "T", ["a", "b"], [["Smiling", "n/a"]])
    with pytest.raises(ValueError, match="file name"):
        Table("../escape", "T", ["a"], [["x"]])
    table = Table("same", "T", ["a"], [["x"]])
    with pytest.raises(ValueError, match="duplicate"):
        write_tables([table, table], tmp_path)
    with pytest.raises(ValueError, match="reason"):
        na("  ")
    with pytest.raises(FileNotFoundError, match="tables.json"):
        read_tables(tmp_path / "missing")


def test_cell_helpers():
    assert cell_or_na(np.float32("nan"), "degenerate") == "n/a: degenerate"
    assert cell_or_na(None, "not run") == "n/a: not run"
    assert cell_or_na(0.25, "unused") == 0.25
    assert percent(0.12345) == "12.35 %"


@dataclasses.dataclass
class _Inner:
    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)


@dataclasses.dataclass
class _Config:
    out: Path = Path("results/x")
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    attributes: tuple = ("Smiling", "Male")


def test_write_run_record(tmp_path):
    path = write_run_record(tmp_path, ["python", "-m", "pkg", "reproduce", "--out", "a b"], _Config(),
                            start_time=0.0, extra={"n_images": np.int64(64)})
    record = json.loads(path.read_text())
    assert record["command"] == "python -m pkg reproduce --out 'a b'"
    assert record["config"] == {"out": "results/x", "inner": {"lr": 1e-3, "betas": [0.9, 0.999]},
                                "attributes": ["Smiling", "Male"]}
    assert record["extra"] == {"n_images": 64}
    assert record["versions"]["numpy"] == np.__version__
    assert record["versions"]["python"].startswith("3.")
    assert record["start_time"].startswith("1970-01-01") or record["start_time"].startswith("1969-12-31")
    assert record["wall_seconds"] > 1e9
    assert "platform" in record and "git" in record


def test_run_record_never_imports_tensorflow(tmp_path):
    code = ("import sys; from common.tables import write_run_record; "
            f"write_run_record({str(tmp_path)!r}, None, {{'a': 1}}); "
            "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'")
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr
    record = json.loads((tmp_path / "run.json").read_text())
    assert "tensorflow" not in record["versions"] and record["versions"]["torch"]


def test_run_record_names_the_commit_the_process_started_from(tmp_path, monkeypatch):
    """A checkout that changes while a run goes: ``git`` keeps the state at the process's start (the
    code it loaded), ``git_when_written`` the state at the end; unchanged, only ``git`` is written."""
    import common.tables as tables

    started = {"commit": "a" * 40, "dirty": False}
    monkeypatch.setattr(tables, "_GIT_AT_PROCESS_START", started)
    monkeypatch.setattr(tables, "_git_state", lambda _repo: {"commit": "b" * 40, "dirty": True})
    record = json.loads(write_run_record(tmp_path / "changed", ["x"], None).read_text())
    assert record["git"] == started and record["git_when_written"] == {"commit": "b" * 40, "dirty": True}
    monkeypatch.setattr(tables, "_git_state", lambda _repo: dict(started))
    record = json.loads(write_run_record(tmp_path / "same", ["x"], None).read_text())
    assert record["git"] == started and "git_when_written" not in record


def _in_subprocess(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


def test_run_record_sums_the_wall_time_of_a_stopped_and_resumed_run(tmp_path):
    """A run stopped and resumed spans several processes: each one's start and end go to
    ``run_processes.json`` (the end at exit; a killed process leaves it empty), and ``run.json``
    sums them, so a model card can say how long the whole run took."""
    from common.tables import PROCESSES_JSON, wall_time_text

    folder = str(tmp_path / "run")
    first = _in_subprocess("import time; from common.tables import record_process_start; "
                           f"record_process_start({folder!r}, time.time() - 600)")
    assert first.returncode == 0, first.stderr
    killed = _in_subprocess("import os, signal, time; from common.tables import record_process_start; "
                            f"record_process_start({folder!r}, time.time() - 300); "
                            "os.kill(os.getpid(), signal.SIGKILL)")
    assert killed.returncode == -9
    last = _in_subprocess("import time; from common.tables import record_process_start, write_run_record; "
                          f"record_process_start({folder!r}, time.time() - 60); "
                          f"write_run_record({folder!r}, ['x'], None, start_time=time.time() - 60)")
    assert last.returncode == 0, last.stderr
    entries = json.loads((tmp_path / "run" / PROCESSES_JSON).read_text())
    assert [entry["end"] is None for entry in entries] == [False, True, False]
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["processes"]["processes"] == 3 and record["processes"]["processes_without_end"] == 1
    assert 655 <= record["processes"]["wall_seconds_all_processes"] <= 720   # 600 + 60, the killed one unknown
    assert 59 <= record["wall_seconds"] <= 120                                # the last process only
    assert wall_time_text(record) == ("at least 11 min wall over 3 processes (stopped and resumed); 1 of them "
                                      "ended without recording when (killed)")
    record["processes"]["processes_without_end"] = 0
    assert wall_time_text(record) == "11 min wall over 3 processes (stopped and resumed)"
    record["processes"]["processes"] = 1
    assert wall_time_text(record) == "11 min wall"
    del record["processes"]
    assert wall_time_text(record) == "1 min wall (the process that finished the run)"


def test_a_restarted_run_forgets_earlier_processes_and_a_removed_folder_is_left_alone(tmp_path):
    from common.tables import PROCESSES_JSON

    folder = str(tmp_path / "run")
    for fresh in (False, False, True):
        completed = _in_subprocess("from common.tables import record_process_start; "
                                   f"record_process_start({folder!r}, fresh={fresh})")
        assert completed.returncode == 0, completed.stderr
    assert len(json.loads((tmp_path / "run" / PROCESSES_JSON).read_text())) == 1
    removed = _in_subprocess("import shutil; from common.tables import record_process_start; "
                             f"record_process_start({folder!r}); shutil.rmtree({folder!r})")
    assert removed.returncode == 0 and "Traceback" not in removed.stderr, removed.stderr
    assert not (tmp_path / "run").exists()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / PROCESSES_JSON).write_text("{}")
    with pytest.raises(ValueError, match=PROCESSES_JSON):
        write_run_record(tmp_path / "bad", ["x"], None)
