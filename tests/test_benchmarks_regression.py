"""CI table regression: every package's smoke reproduction against benchmarks/expected/<package>.json,
and well-formedness of the committed real-data results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.expected import PACKAGES, compare, load_expected, malformed_cells
from common.tables import Table, read_tables

RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


REPO_ROOT = Path(__file__).resolve().parents[1]
#: Paper packages present in this checkout (a package lands with its __main__.py); each must have
#: its expected results recorded.
LANDED_PACKAGES = [p for p in PACKAGES if (REPO_ROOT / p / "__main__.py").is_file()]


@pytest.mark.slow
@pytest.mark.parametrize("package", LANDED_PACKAGES)
def test_smoke_tables_match_expected(package, smoke_reproduction):
    expected = load_expected(package)
    out_dir = smoke_reproduction(package)
    problems = [p for name, t in read_tables(out_dir).items() for p in malformed_cells(name, t)]
    assert not problems, "malformed cells:\n" + "\n".join(problems)
    mismatches = compare(expected, out_dir)
    assert not mismatches, (
        f"{package}: {len(mismatches)} value(s) left their tolerance (table | row | column):\n"
        + "\n".join(f"  {m}" for m in mismatches)
        + "\nIf the change is intended, re-record with `make expected` and explain it in the package README.")


def committed_result_dirs() -> list[Path]:
    return sorted(p.parent for p in RESULTS_DIR.glob("*/**/tables.json"))


@pytest.mark.parametrize("result_dir", committed_result_dirs(), ids=lambda p: str(p.relative_to(RESULTS_DIR)))
def test_committed_results_are_well_formed(result_dir):
    tables = read_tables(result_dir)
    assert tables, f"{result_dir} has no tables"
    problems = [p for name, t in tables.items() for p in malformed_cells(name, t)]
    assert not problems, "\n".join(problems)
    assert (result_dir / "run.json").is_file() or (result_dir.parent / "run.json").is_file() or \
        (result_dir / "README.md").is_file() or (result_dir.parent / "README.md").is_file(), \
        f"{result_dir}: no run.json / README.md with the command that produced it"


def test_compare_reports_cell_out_of_tolerance(tmp_path):
    from common.tables import write_tables

    write_tables([Table("t1", "demo", ["model", "error %"], [["A", 10.0], ["B", "n/a: needs LFWA"]])], tmp_path)
    expected = {"tolerance": {"rel": 0.0, "abs": 0.5},
                "tables": {"t1": {"columns": ["model", "error %"], "rows": [["A", 11.0], ["B", "n/a: needs LFWA"]]}}}
    mismatches = compare(expected, tmp_path)
    assert len(mismatches) == 1
    assert str(mismatches[0]) == "t1 | A | error %: expected 11.0, got 10.0 (tolerance 0.5)"
    expected["tables"]["t1"]["rows"][0][1] = 10.3
    assert compare(expected, tmp_path) == []
    expected["tables"]["t2"] = {"columns": ["x"], "rows": []}
    assert [m.got for m in compare(expected, tmp_path)] == ["missing"]


def test_malformed_cells_flags_text_and_nan():
    table = Table("t", "demo", ["model", "a", "b"], [["A", 1.0, "n/a: needs LFWA"]])
    assert malformed_cells("t", table) == []
    table.rows[0][1] = "8.3%"
    assert len(malformed_cells("t", table)) == 1
