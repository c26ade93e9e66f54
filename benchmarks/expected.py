"""Expected smoke-scale results per package: what holds on every CPU, and measured bands.

Training at smoke scale amplifies last-bit differences between kernel paths (AVX2, AVX-512, the
portable default) into different tables, so one machine's values cannot be a regression test
for another. ``benchmarks/expected/<package>.json`` therefore holds, per table cell, one of:

* **text** (a label, an ``"n/a: <reason>"`` cell): checked exactly;
* ``{"exact": x}``: a number identical in every measured run (configuration values, counts) in a
  column where no value varies (a constant number in a column of trained values gets a band of
  the column's widest half-width: it is a trained value that happened to agree);
* ``{"paper": x}``: a number the paper printed; checked exactly here and, by the test suite,
  against the paper's own text in ``../shared/papers`` so a typo cannot be locked in;
* ``{"band": [lo, hi], "seen": [min, median, max], ...}``: a value that comes out of training,
  checked against the range seen over the measured runs (several seeds x several kernel paths)
  widened by :data:`BAND_MARGIN` times its own width on each side; in a per-attribute table
  (rows named by CelebA attributes) every band of a column is as wide as the widest of that column,
  because each cell is the same statistic on the few test faces of one attribute and the handful
  of measured runs cannot show one attribute's spread on its own;
* ``{"one_of": [...]}``: a text or number that took several values across the runs.

It also lists the figure files every run wrote, and the paper claims
(:mod:`benchmarks.claims`) that held in every measured run; those are checked as claims.

``make expected`` (``python -m benchmarks.expected --measure --write``) re-measures: every package
over seeds 0-4 on the native and the portable kernel paths plus seed 0 on the AVX2 path (11 runs per
package; 65 minutes on the 2-core AMD EPYC on 2026-11-29, two runs at a time). Finished runs are kept in
``results/.expected_runs`` so an interrupted measurement resumes.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from common.attributes import CELEBA_ATTRIBUTES
from common.tables import NA_PREFIX, Table, read_tables
from common.train import cpu_description

EXPECTED_DIR = Path(__file__).resolve().parent / "expected"
REPO_ROOT = Path(__file__).resolve().parents[1]
PAPERS_DIR = REPO_ROOT.parent / "shared" / "papers"
RUNS_DIR = REPO_ROOT / "results" / ".expected_runs"

#: Every paper package, with the ``make`` target that reproduces it.
PACKAGES: dict[str, str] = {
    "ssp_ssg": "reproduce-ssp",
    "celeba_ffhq_labels": "reproduce-celeba-ffhq",
    "celeba_resnet_densenet": "reproduce-resnet-densenet",
    "mtfl_compare": "reproduce-mtfl",
    "attribute_inversion": "reproduce-inversion",
}

#: The paper text each package reproduces (``../shared/papers/README.md``).
PAPER_FILES: dict[str, str] = {
    "celeba_ffhq_labels": "000_30c8e00a2dd8165f.txt",
    "mtfl_compare": "001_e191be6d2b262cb4.txt",
    "ssp_ssg": "002_495528a3803bad09.txt",
    "celeba_resnet_densenet": "003_669410fc98ab7131.txt",
    "attribute_inversion": "004_638e77b1f9da9277.txt",
}

#: Kernel paths a measurement runs under: environment variables that make PyTorch (ATen), oneDNN
#: and MKL take another code path on the same CPU. "avx2" stands in for the AVX2-only machines,
#: "default" is ATen's portable path; "native" is whatever the CPU offers (AVX-512 / AMX here).
KERNEL_PATHS: dict[str, dict[str, str]] = {
    "native": {},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"},
}
#: The measurement ``make expected`` runs: (kernel path, seed) pairs.
DEFAULT_RUNS: tuple[tuple[str, int], ...] = (
    tuple(("native", seed) for seed in range(5)) + tuple(("default", seed) for seed in range(5))
    + (("avx2", 0),))

#: A band is the seen range widened by this multiple of its width on each side. With 10-11 runs
#: the sample range misses about 2/(n+1) of new draws; three times its width (median-centred,
#: roughly +-4.5 sigma for a normal spread) leaves a cell's chance of a false alarm near 1e-5.
BAND_MARGIN = 1.0
#: ... and never narrower than this fraction of the value's magnitude on each side.
BAND_MIN_RELATIVE = 1e-3

#: Differences between two paper numbers (or ours and the paper's), or numbers derived from the
#: paper's, marked so in a row or column label: not printed in the paper, so not checked against it.
DIFFERENCE_MARKERS = ("Δ", "−", " - ", "delta", "derived")
#: Column labels of values that are ours or derived, even in a row about the paper.
DERIVED_COLUMN_MARKERS = ("ours", "this run", "harmonic mean", "95% ci")


def smoke_command(package: str, out_dir: Path | str, seed: int | None = None) -> list[str]:
    command = [sys.executable, "-m", package, "reproduce", "--scale", "smoke"]
    if seed is not None:
        command += ["--seed", str(seed)]
    return command + ["--out", str(out_dir)]


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
            elif not (isinstance(cell, str) and cell.startswith(NA_PREFIX) and len(cell) > len(NA_PREFIX)):
                problems.append(f"{table_name} / {row[0]} / {column}: {cell!r} is neither a number "
                                "nor 'n/a: <reason>'")
    return problems


def is_paper_cell(row_label: str, column: str) -> bool:
    """Whether a cell holds a number the paper printed: its row or column names the paper, neither
    marks a difference, and the column is not one of our own or derived values."""
    labels, column = f"{row_label} | {column}".lower(), column.lower()
    return ("paper" in labels and not any(marker.lower() in labels for marker in DIFFERENCE_MARKERS)
            and not any(marker in column for marker in DERIVED_COLUMN_MARKERS))


# --------------------------------------------------------------------------- building a document
@dataclass(frozen=True)
class MeasuredRun:
    """One smoke reproduction of a measurement: how it ran and what it wrote."""

    kernel_path: str
    seed: int
    tables: dict[str, Table]
    figures: tuple[str, ...]


def _band(values: list[float]) -> dict[str, Any]:
    low, high = min(values), max(values)
    margin = max(BAND_MARGIN * (high - low), BAND_MIN_RELATIVE * max(abs(low), abs(high)))
    return {"band": [low - margin, high + margin],
            "seen": [low, statistics.median(values), high]}


def summarise_cell(row_label: str, column: str, cells: list[Any]) -> Any:
    """The expected entry of one cell from its value in every measured run."""
    numbers = [cell for cell in cells if is_number(cell)]
    texts = sorted({cell for cell in cells if not is_number(cell)}, key=str)
    if len(numbers) == len(cells):
        if all(value == numbers[0] for value in numbers):
            return {"paper": numbers[0]} if is_paper_cell(row_label, column) else {"exact": numbers[0]}
        return _band([float(value) for value in numbers])
    if not numbers:
        return texts[0] if len(texts) == 1 else {"one_of": texts}
    return {**_band([float(value) for value in numbers]), "or_text": texts}


def _band_constant_cells_of_trained_columns(rows: list[list[Any]]) -> None:
    """A number that was the same in every run but sits in a column whose other cells vary is a
    trained value that happened to agree (a precision of 0 for an attribute no run predicted):
    it gets the widest margin measured in its column instead of an exact check."""
    for column_index in range(1, len(rows[0]) if rows else 1):
        margins = [(entry["band"][1] - entry["band"][0]) / 2
                   for entry in (row[column_index] for row in rows) if isinstance(entry, dict) and "band" in entry]
        if not margins:
            continue
        margin = max(margins)
        for row in rows:
            entry = row[column_index]
            if isinstance(entry, dict) and "exact" in entry:
                value = entry["exact"]
                row[column_index] = {"band": [value - margin, value + margin], "seen": [value, value, value],
                                     "margin": "the widest band half-width of its column"}


def is_per_attribute_table(row_labels: list[str]) -> bool:
    """Whether a table has one row per CelebA attribute (at least half its rows are named by one)."""
    return sum(label in CELEBA_ATTRIBUTES for label in row_labels) * 2 >= max(len(row_labels), 1)


def _pool_band_widths_of_columns(rows: list[list[Any]]) -> None:
    """Every band of a per-attribute column widened to the column's widest half-width, around its
    own centre. At smoke scale an attribute has a handful of test faces (often one class only in
    most seeds), so its own seen range, from runs whose data differ by seed, says little about the
    next run; the column's widest spread is the measured spread of that statistic."""
    for column_index in range(1, len(rows[0]) if rows else 1):
        entries = [row[column_index] for row in rows if isinstance(row[column_index], dict)
                   and "band" in row[column_index]]
        if not entries:
            continue
        margin = max((entry["band"][1] - entry["band"][0]) / 2 for entry in entries)
        for entry in entries:
            centre = (entry["band"][0] + entry["band"][1]) / 2
            if (entry["band"][1] - entry["band"][0]) / 2 < margin:
                entry["band"] = [centre - margin, centre + margin]
                entry["margin"] = "the widest band half-width of its column (per-attribute table)"


def build_document(package: str, runs: list[MeasuredRun], claims_held: dict[str, str]) -> dict[str, Any]:
    """The expected-results document of ``package`` from its measured runs.

    Tables, rows and columns must be the same in every run (a table that appears in only some
    runs is an error: the pipeline is not deterministic in structure)."""
    if not runs:
        raise ValueError(f"{package}: no measured runs")
    reference = runs[0].tables
    for run in runs[1:]:
        if set(run.tables) != set(reference):
            raise ValueError(f"{package}: seed {run.seed} / {run.kernel_path} wrote tables "
                             f"{sorted(run.tables)}, seed {runs[0].seed} wrote {sorted(reference)}")
    tables: dict[str, Any] = {}
    for name, table in reference.items():
        labels = [str(row[0]) for row in table.rows]
        for run in runs[1:]:
            other = run.tables[name]
            if list(other.columns) != list(table.columns) or [str(r[0]) for r in other.rows] != labels:
                raise ValueError(f"{package}: table {name} has other rows or columns in seed {run.seed} / "
                                 f"{run.kernel_path}")
        rows = []
        for index, label in enumerate(labels):
            row: list[Any] = [label]
            for column_index, column in enumerate(table.columns[1:], start=1):
                cells = [run.tables[name].rows[index][column_index] for run in runs]
                row.append(summarise_cell(label, column, cells))
            rows.append(row)
        _band_constant_cells_of_trained_columns(rows)
        if is_per_attribute_table(labels):
            _pool_band_widths_of_columns(rows)
        tables[name] = {"title": table.title, "columns": list(table.columns), "rows": rows,
                        "notes": list(table.notes)}
    figures = sorted(set.intersection(*(set(run.figures) for run in runs)))
    return {
        "package": package,
        "command": " ".join(["python"] + smoke_command(package, "DIR")[1:]),
        "measured": {
            "date": dt.date.today().isoformat(),
            "cpu": cpu_description(),
            "runs": [{"kernel_path": run.kernel_path, "seed": run.seed} for run in runs],
            "kernel_paths": {name: KERNEL_PATHS[name] for name in sorted({run.kernel_path for run in runs})},
            "band": f"seen range widened by {BAND_MARGIN:g}x its width on each side "
                    f"(at least {BAND_MIN_RELATIVE:g} x |value|)",
        },
        "figures": figures,
        "claims": claims_held,
        "tables": tables,
    }


# --------------------------------------------------------------------------- checking a run
@dataclass(frozen=True)
class Mismatch:
    table: str
    row: str
    column: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        return f"{self.table} | {self.row} | {self.column}: expected {describe(self.expected)}, got {self.got!r}"


def describe(entry: Any) -> str:
    """An expected entry in words, for failure messages."""
    if isinstance(entry, dict):
        if "paper" in entry:
            return f"{entry['paper']!r} (the paper's number)"
        if "exact" in entry:
            return f"{entry['exact']!r} (identical in every measured run)"
        if "band" in entry:
            low, median, high = entry["seen"]
            text = (f"within [{entry['band'][0]:.6g}, {entry['band'][1]:.6g}] (measured {low:.6g} .. {high:.6g}, "
                    f"median {median:.6g})")
            return text + (f" or one of {entry['or_text']}" if entry.get("or_text") else "")
        if "one_of" in entry:
            return f"one of {entry['one_of']!r}"
    return repr(entry)


def cell_matches(entry: Any, got: Any) -> bool:
    if isinstance(entry, dict):
        if "paper" in entry or "exact" in entry:
            want = entry.get("paper", entry.get("exact"))
            return is_number(got) and math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12)
        if "band" in entry:
            if is_number(got):
                return entry["band"][0] <= got <= entry["band"][1]
            return got in entry.get("or_text", [])
        if "one_of" in entry:
            return got in entry["one_of"]
        raise ValueError(f"unknown expected entry {entry!r}")
    return got == entry


def compare(expected: dict[str, Any], out_dir: Path) -> list[Mismatch]:
    """Every table, row, column and cell of ``expected`` checked against the tables in ``out_dir``;
    tables, rows or columns the run wrote beyond the expected ones are reported too."""
    got_tables = read_tables(out_dir)
    mismatches: list[Mismatch] = []
    for name in sorted(set(got_tables) - set(expected["tables"])):
        mismatches.append(Mismatch(name, "*", "*", "no such table", "an unexpected table"))
    for table_name, table in expected["tables"].items():
        if table_name not in got_tables:
            mismatches.append(Mismatch(table_name, "*", "*", "table", "missing"))
            continue
        got = got_tables[table_name]
        if list(got.columns) != list(table["columns"]):
            mismatches.append(Mismatch(table_name, "*", "columns", table["columns"], list(got.columns)))
            continue
        got_rows = {str(row[0]): row for row in got.rows}
        want_labels = [str(row[0]) for row in table["rows"]]
        if [str(row[0]) for row in got.rows] != want_labels:
            mismatches.append(Mismatch(table_name, "rows", "*", want_labels, [str(r[0]) for r in got.rows]))
        for row in table["rows"]:
            label = str(row[0])
            if label not in got_rows:
                continue
            for column_index, (column, entry) in enumerate(zip(table["columns"][1:], row[1:]), start=1):
                have = got_rows[label][column_index]
                if not cell_matches(entry, have):
                    mismatches.append(Mismatch(table_name, label, column, entry, have))
    return mismatches


def missing_figures(expected: dict[str, Any], out_dir: Path) -> list[str]:
    return [name for name in expected.get("figures", [])
            if not (out_dir / name).is_file() or (out_dir / name).stat().st_size == 0]


def paper_cells(expected: dict[str, Any]) -> Iterable[tuple[str, str, str, float]]:
    """(table, row, column, value) of every paper number in an expected document."""
    for table_name, table in expected["tables"].items():
        for row in table["rows"]:
            for column, entry in zip(table["columns"][1:], row[1:]):
                if isinstance(entry, dict) and "paper" in entry:
                    yield table_name, str(row[0]), column, entry["paper"]


_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d*\.\d+|\d+)(?:\s*[eE]\s*([-−–]?\d+))?")
_POWER_OF_TEN = re.compile(r"10\s*(?:\^|\*\*)?\s*\(?\s*([-−–])\s*(\d+)\)?")


def numbers_in_text(text: str) -> set[float]:
    """Every number printed in ``text``: plain, with thousands separators, ``1e-4``, ``10^-4``."""
    found: set[float] = set()
    for match in _NUMBER.finditer(text):
        mantissa = float(match.group(1).replace(",", ""))
        if match.group(2):
            found.add(mantissa * 10.0 ** int(match.group(2).replace("−", "-").replace("–", "-")))
        found.add(mantissa)
    for match in _POWER_OF_TEN.finditer(text):
        found.add(10.0 ** -int(match.group(2)))
    return found


def printed_in(value: float, printed: set[float]) -> bool:
    """Whether ``value`` is one of the printed numbers, as is or converted between a fraction and
    a percentage."""
    candidates = (value, value / 100.0, value * 100.0)
    return any(math.isclose(candidate, number, rel_tol=1e-9, abs_tol=1e-12)
               for candidate in candidates for number in printed)


def paper_numbers_not_in_text(package: str, expected: dict[str, Any], paper_text: str) -> list[str]:
    """Paper numbers of an expected document that the paper's text does not print."""
    printed = numbers_in_text(paper_text)
    return [f"{table} | {row} | {column}: {value!r} is not printed in {PAPER_FILES[package]}"
            for table, row, column, value in paper_cells(expected) if not printed_in(value, printed)]


def expected_path(package: str) -> Path:
    return EXPECTED_DIR / f"{package}.json"


def load_expected(package: str) -> dict[str, Any]:
    path = expected_path(package)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: record it with `make expected`")
    return json.loads(path.read_text())


# --------------------------------------------------------------------------- measuring
def run_directory(runs_dir: Path, package: str, kernel_path: str, seed: int) -> Path:
    return runs_dir / package / f"{kernel_path}-seed{seed}"


def run_smoke(package: str, out_dir: Path, seed: int | None, kernel_path: str = "native",
              threads: int | None = None) -> None:
    """``python -m <package> reproduce --scale smoke`` under a kernel path; raises on failure."""
    env = {**os.environ, **KERNEL_PATHS[kernel_path]}
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    command = smoke_command(package, partial, seed)
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} ({kernel_path}) exited {completed.returncode}:\n"
                           f"{completed.stderr[-4000:]}")
    partial.rename(out_dir)


def load_run(run_dir: Path, kernel_path: str, seed: int) -> MeasuredRun:
    figures = tuple(sorted(str(p.relative_to(run_dir)) for p in run_dir.glob("*.png")))
    return MeasuredRun(kernel_path, seed, read_tables(run_dir), figures)


def measure(packages: list[str], runs: Iterable[tuple[str, int]], runs_dir: Path, jobs: int) -> None:
    """Run every (package, kernel path, seed) not measured yet, ``jobs`` at a time (one thread each
    when ``jobs`` > 1: on 2 cores two single-threaded runs finish sooner than two-threaded ones in
    turn, and thread count is one more kernel-path difference the bands should cover)."""
    pending = [(package, kernel_path, seed) for package in packages for kernel_path, seed in runs
               if not (run_directory(runs_dir, package, kernel_path, seed) / "tables.json").is_file()]
    threads = 1 if jobs > 1 else None

    def one(job: tuple[str, str, int]) -> str:
        package, kernel_path, seed = job
        out_dir = run_directory(runs_dir, package, kernel_path, seed)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        run_smoke(package, out_dir, seed, kernel_path, threads)
        return f"{package} {kernel_path} seed {seed}"

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for done in pool.map(one, pending):
            print(f"measured {done}", flush=True)


def write_document(package: str, runs: Iterable[tuple[str, int]], runs_dir: Path) -> Path:
    from benchmarks.claims import claims_that_held

    measured = [load_run(run_directory(runs_dir, package, kernel_path, seed), kernel_path, seed)
                for kernel_path, seed in runs]
    document = build_document(package, measured, claims_that_held(package, [run.tables for run in measured]))
    path = expected_path(package)
    EXPECTED_DIR.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def check_package(package: str, out_dir: Path) -> list[str]:
    """Every problem of a smoke run's results against the expected document, as readable lines."""
    from benchmarks.claims import failed_claims

    expected = load_expected(package)
    tables = read_tables(out_dir)
    problems = [p for name, t in tables.items() for p in malformed_cells(name, t)]
    problems += [str(m) for m in compare(expected, out_dir)]
    problems += [f"figure {name} missing or empty" for name in missing_figures(expected, out_dir)]
    problems += failed_claims(package, expected.get("claims", {}), tables)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true",
                        help="run the smoke reproductions of the measurement (resumes from --runs-dir)")
    parser.add_argument("--write", action="store_true",
                        help="re-record benchmarks/expected/<package>.json from the measured runs")
    parser.add_argument("--package", action="append", choices=sorted(PACKAGES),
                        help="only these packages (repeatable); default all")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    parser.add_argument("--jobs", type=int, default=2, help="smoke runs at a time while measuring")
    args = parser.parse_args(argv)
    packages = args.package or list(PACKAGES)
    if args.measure:
        measure(packages, DEFAULT_RUNS, args.runs_dir, args.jobs)
    if args.write:
        for package in packages:
            print(f"wrote {write_document(package, DEFAULT_RUNS, args.runs_dir).relative_to(REPO_ROOT)}")
    if args.measure or args.write:
        return 0
    failed = False
    for package in packages:
        out_dir = args.runs_dir / "check" / package
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        run_smoke(package, out_dir, seed=None)
        problems = check_package(package, out_dir)
        for problem in problems:
            print(f"  {problem}")
        print(f"{package}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
        failed |= bool(problems)
    return int(failed)


if __name__ == "__main__":
    raise SystemExit(main())
