"""Expected smoke-scale results per package, in the spirit of detectron2's EXPECTED_RESULTS.

Each paper package's ``python -m <pkg> reproduce --scale smoke`` is deterministic on CPU. Its
tables are stored in ``benchmarks/expected/<package>.json`` with a tolerance per value; the test
suite re-runs every smoke reproduction and fails with a readable diff when a value leaves its
tolerance. ``make expected`` (``python -m benchmarks.expected --write``) re-records the files.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.tables import read_tables

EXPECTED_DIR = Path(__file__).resolve().parent / "expected"
REPO_ROOT = Path(__file__).resolve().parents[1]

#: Every paper package, with the ``make`` target that reproduces it.
PACKAGES: dict[str, str] = {
    "ssp_ssg": "reproduce-ssp",
    "celeba_ffhq_labels": "reproduce-celeba-ffhq",
    "celeba_resnet_densenet": "reproduce-resnet-densenet",
    "mtfl_compare": "reproduce-mtfl",
    "attribute_inversion": "reproduce-inversion",
}

#: Default tolerance of a numeric cell: ``max(abs, rel * |expected|)``. Runs are bit-identical on
#: one machine; the slack covers BLAS kernels that differ between CPU models.
DEFAULT_TOLERANCE = {"rel": 0.02, "abs": 0.01}


def smoke_command(package: str, out_dir: Path | str) -> list[str]:
    return [sys.executable, "-m", package, "reproduce", "--scale", "smoke", "--out", str(out_dir)]


def is_number(cell: Any) -> bool:
    return isinstance(cell, (int, float)) and not isinstance(cell, bool)


def malformed_cells(table_name: str, table: Any) -> list[str]:
    """Cells that are neither a number nor an explicit ``"n/a: reason"`` (the first column is the
    row label and may be any text)."""
    problems = []
    for row in table.rows:
        for column, cell in zip(table.columns[1:], row[1:]):
            if is_number(cell):
                if not math.isfinite(cell):
                    problems.append(f"{table_name} / {row[0]} / {column}: non-finite {cell!r}")
            elif not (isinstance(cell, str) and cell.startswith("n/a: ") and len(cell) > 5):
                problems.append(f"{table_name} / {row[0]} / {column}: {cell!r} is neither a number "
                                "nor 'n/a: <reason>'")
    return problems


@dataclass(frozen=True)
class Mismatch:
    table: str
    row: str
    column: str
    expected: Any
    got: Any
    tolerance: float | None

    def __str__(self) -> str:
        tolerance = "" if self.tolerance is None else f" (tolerance {self.tolerance:g})"
        return f"{self.table} | {self.row} | {self.column}: expected {self.expected!r}, got {self.got!r}{tolerance}"


def record_expected(package: str, out_dir: Path, command: list[str]) -> dict[str, Any]:
    """The expected-results document for the tables a smoke run wrote to ``out_dir``."""
    tables = read_tables(out_dir)
    return {
        "package": package,
        "command": " ".join(["python"] + command[1:-1] + ["DIR"]),
        "recorded": dt.date.today().isoformat(),
        "tolerance": DEFAULT_TOLERANCE,
        "tolerance_overrides": {},
        "tables": {name: {"title": t.title, "columns": list(t.columns), "rows": [list(r) for r in t.rows],
                          "notes": list(t.notes)} for name, t in tables.items()},
    }


def compare(expected: dict[str, Any], out_dir: Path) -> list[Mismatch]:
    """Every cell of ``expected`` checked against the tables in ``out_dir``."""
    got_tables = read_tables(out_dir)
    default = expected.get("tolerance", DEFAULT_TOLERANCE)
    overrides: dict[str, float] = expected.get("tolerance_overrides", {})
    mismatches: list[Mismatch] = []
    for table_name, table in expected["tables"].items():
        if table_name not in got_tables:
            mismatches.append(Mismatch(table_name, "*", "*", "table", "missing", None))
            continue
        got = got_tables[table_name]
        got_rows = {str(row[0]): row for row in got.rows}
        for row in table["rows"]:
            label = str(row[0])
            if label not in got_rows:
                mismatches.append(Mismatch(table_name, label, "*", "row", "missing", None))
                continue
            for column, want in zip(table["columns"][1:], row[1:]):
                if column not in got.columns:
                    mismatches.append(Mismatch(table_name, label, column, "column", "missing", None))
                    continue
                have = got_rows[label][list(got.columns).index(column)]
                if is_number(want) and is_number(have):
                    key = f"{table_name}|{label}|{column}"
                    tolerance = overrides.get(key, max(default["abs"], default["rel"] * abs(want)))
                    if not abs(have - want) <= tolerance:
                        mismatches.append(Mismatch(table_name, label, column, want, have, tolerance))
                elif want != have:
                    mismatches.append(Mismatch(table_name, label, column, want, have, None))
    return mismatches


def expected_path(package: str) -> Path:
    return EXPECTED_DIR / f"{package}.json"


def load_expected(package: str) -> dict[str, Any]:
    path = expected_path(package)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: record it with `make expected`")
    return json.loads(path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="re-record the expected files")
    parser.add_argument("--package", action="append", choices=sorted(PACKAGES),
                        help="only these packages (repeatable); default all")
    args = parser.parse_args(argv)
    failed = False
    for package in args.package or list(PACKAGES):
        with tempfile.TemporaryDirectory() as tmp:
            out_dir = Path(tmp) / package
            command = smoke_command(package, out_dir)
            print("$", " ".join(command), flush=True)
            subprocess.run(command, cwd=REPO_ROOT, check=True)
            if args.write:
                EXPECTED_DIR.mkdir(parents=True, exist_ok=True)
                document = record_expected(package, out_dir, command)
                path = expected_path(package)
                if path.is_file():  # keep hand-reviewed tolerance overrides
                    document["tolerance_overrides"] = json.loads(path.read_text()).get("tolerance_overrides", {})
                path.write_text(json.dumps(document, indent=1) + "\n")
                print(f"wrote {path.relative_to(REPO_ROOT)}")
            else:
                mismatches = compare(load_expected(package), out_dir)
                for mismatch in mismatches:
                    print(f"  {mismatch}")
                print(f"{package}: {'OK' if not mismatches else f'{len(mismatches)} value(s) out of tolerance'}")
                failed |= bool(mismatches)
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
