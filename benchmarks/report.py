"""Rebuild ``benchmarks/README.md``: where the project stands on all five papers at a glance.

Built only from committed files: the smoke-scale tables in ``benchmarks/expected/<package>.json``
(synthetic faces, what CI checks) and the real-data runs in ``benchmarks/results/<package>/``
(their ``tables.json``, README with the exact command and scale, and PNG figures). Each table
carries the paper's numbers beside ours, as the package wrote it. Run ``make tables``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.expected import EXPECTED_DIR, PACKAGES
from common.tables import Table, read_tables

BENCHMARKS_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS_DIR / "results"
REPORT_PATH = BENCHMARKS_DIR / "README.md"


@dataclass(frozen=True)
class Headline:
    """One claim of a paper for the at-a-glance table: where ours and the paper's number live in
    the package's tables (the same cells in the smoke tables and in the real-data run)."""

    package: str
    claim: str
    table: str
    ours: tuple[str, str]  # (row label, column)
    paper: tuple[str, str]
    real_run: str = ""  # sub-folder of benchmarks/results/<package>/ holding the real-data run


HEADLINES = [
    Headline("ssp_ssg", "AP %, SSP + SSG, pre-cropped CelebA (Table 2)", "table2_average_precision",
             ("Ours: SSP + SSG", "Pre-cropped: ours"), ("Ours: SSP + SSG", "Pre-cropped: paper"), "cpu_real_v4"),
    Headline("ssp_ssg", "parsing mean IoU %, joint training (Table 4)", "table4_parsing_iou",
             ("Average", "w/ attributes: ours"), ("Average", "w/ attributes: paper"), "cpu_real_v4"),
    Headline("celeba_ffhq_labels", "mean AUROC, 40 attributes (Fig. 3)", "summary",
             ("Mean AUROC (40 attributes)", "Ours"), ("Mean AUROC (40 attributes)", "Paper")),
    Headline("celeba_resnet_densenet", "ResNet50 F-score (Testing)", "test_results",
             ("ResNet50 F-score", "Ours"), ("ResNet50 F-score", "Paper")),
    Headline("celeba_resnet_densenet", "DenseNet121 F-score (Testing)", "test_results",
             ("DenseNet121 F-score", "Ours"), ("DenseNet121 F-score", "Paper")),
    Headline("mtfl_compare", "smile accuracy %, InceptionV3 approach 1, nose crop (Table 3)", "summary_accuracy",
             ("InceptionV3 approach 1, Smile*", "Ours"), ("InceptionV3 approach 1, Smile*", "Paper"), "cpu_real_v2"),
    Headline("mtfl_compare", "gender accuracy %, InceptionV3 approach 1, nose crop (Table 4)", "summary_accuracy",
             ("InceptionV3 approach 1, Gender*", "Ours"), ("InceptionV3 approach 1, Gender*", "Paper"), "cpu_real_v2"),
    Headline("attribute_inversion", "FID, eyeglasses inverted, ours (Table 1)", "table1",
             ("ours (this run)", "W/Wo eyeglasses FID"), ("ours (paper)", "W/Wo eyeglasses FID"), "cpu_real_128"),
    Headline("attribute_inversion", "FID, eyeglasses inverted, CycleGAN (Table 1)", "table1",
             ("CycleGAN (this run)", "W/Wo eyeglasses FID"), ("CycleGAN (paper)", "W/Wo eyeglasses FID"), "cpu_real_128"),
]


def _representative(entry):
    """One cell of an expected document as a table cell: the number (the median of the measured
    runs for a banded value) or the text."""
    if isinstance(entry, dict):
        if "band" in entry:
            return entry["seen"][1]
        if "one_of" in entry:
            return " / ".join(str(value) for value in entry["one_of"])
        return entry.get("paper", entry.get("exact"))
    return entry


def smoke_tables(document: dict) -> dict[str, Table]:
    """The tables of an expected-results document (``benchmarks/expected/<package>.json``), each
    measured value shown as its median over the measured runs."""
    return {name: Table.from_json(name, {**record, "rows": [[_representative(cell) for cell in row]
                                                              for row in record["rows"]]})
            for name, record in document["tables"].items()}


def _cell(tables: dict[str, Table], table: str, row: str, column: str):
    """The cell, or why there is none (a missing table, row or column is reported, not hidden)."""
    if table not in tables:
        return f"n/a: no table {table}"
    found = next((r for r in tables[table].rows if str(r[0]) == row), None)
    if found is None or column not in tables[table].columns:
        return f"n/a: no cell {row} / {column}"
    return found[list(tables[table].columns).index(column)]


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _glance_table() -> list[str]:
    lines = ["| package | claim | paper | ours, smoke (synthetic) | ours, real data (CPU scale) | real − paper |",
             "|---|---|---:|---:|---:|---:|"]
    for headline in HEADLINES:
        expected = EXPECTED_DIR / f"{headline.package}.json"
        smoke = smoke_tables(json.loads(expected.read_text())) if expected.is_file() else {}
        real_dir = RESULTS_DIR / headline.package / headline.real_run
        real = read_tables(real_dir) if (real_dir / "tables.json").is_file() else {}
        paper = _cell(real or smoke, headline.table, *headline.paper)
        ours_smoke = _cell(smoke, headline.table, *headline.ours) if smoke else "n/a: no expected smoke results"
        ours_real = _cell(real, headline.table, *headline.ours) if real else "n/a: no real-data run committed"
        numeric = all(isinstance(v, (int, float)) for v in (paper, ours_real))
        delta = _format(ours_real - paper) if numeric else "n/a"
        lines.append(f"| [`{headline.package}`](#{headline.package}) | {headline.claim} | {_format(paper)} | "
                     f"{_format(ours_smoke)} | {_format(ours_real)} | {delta} |")
    return lines + [""]


def _package_title(package: str) -> str:
    readme = BENCHMARKS_DIR.parent / package / "README.md"
    if readme.is_file():
        for line in readme.read_text().splitlines():
            if line.startswith("# "):
                return line[2:].strip()
    return package


def _smoke_section(package: str) -> list[str]:
    path = EXPECTED_DIR / f"{package}.json"
    if not path.is_file():
        return ["_No expected smoke results recorded yet (`make expected`)._", ""]
    document = json.loads(path.read_text())
    measured = document["measured"]
    runs = measured["runs"]
    seeds, kernel_paths = {r["seed"] for r in runs}, sorted({r["kernel_path"] for r in runs})
    lines = [f"### Smoke scale, synthetic faces (measured {measured['date']}, checked by CI)", "",
             f"`{document['command']}`: values that come out of training are the median of {len(runs)} runs "
             f"({len(seeds)} seeds x kernel paths {', '.join(kernel_paths)}, {measured['cpu']}); CI checks "
             f"them against the bands in `benchmarks/expected/{package}.json`.", ""]
    claims = document.get("claims", {})
    if claims:
        lines += ["Paper claims at smoke scale (`benchmarks/claims.py`; checked by CI only where they held in "
                  "every measured run):", ""]
        lines += [f"- **{name}**: {status}" for name, status in claims.items()] + [""]
    for table in smoke_tables(document).values():
        lines += [table.to_markdown(), ""]
    return lines


def _real_sections(package: str) -> list[str]:
    package_dir = RESULTS_DIR / package
    result_dirs = sorted({p.parent for p in package_dir.glob("**/tables.json")})
    if not result_dirs:
        return ["### Real data", "", "_No real-data run committed yet._", ""]
    lines = []
    for result_dir in result_dirs:
        relative = result_dir.relative_to(BENCHMARKS_DIR)
        lines += [f"### Committed run: `{relative}`", ""]
        readme = next((d / "README.md" for d in (result_dir, result_dir.parent, package_dir)
                       if (d / "README.md").is_file()), None)
        if readme is not None:
            lines += [f"Command, scale and timing: [{readme.relative_to(BENCHMARKS_DIR)}]"
                      f"({readme.relative_to(BENCHMARKS_DIR)})", ""]
        for name, table in read_tables(result_dir).items():
            lines += [table.to_markdown(), ""]
        for figure in sorted(result_dir.glob("*.png")):
            lines += [f"![{figure.stem}]({figure.relative_to(BENCHMARKS_DIR)})", ""]
    return lines


def build_report() -> str:
    lines = ["# Where we stand", "",
             "Generated by `make tables` (`python -m benchmarks.report`) from committed results; do not edit.",
             "Every table shows the paper's numbers beside ours. Smoke-scale numbers come from synthetic",
             "faces and tiny models (they check the pipeline, not the paper); real-data numbers come from",
             "CPU-scale runs on the 10,000 CelebA images / MTFL in `../shared/data`, with the scale stated",
             "beside them. Throughput and CPU benchmarks: [RESULTS.md](RESULTS.md).", ""]
    lines += ["| package | paper | reproduce |", "|---|---|---|"]
    for package, target in PACKAGES.items():
        lines.append(f"| [`{package}`](#{package}) | {_package_title(package)} | `make {target}` |")
    lines += ["", "## At a glance", "",
              "One headline number per claim, read from the tables below. Real-data runs are CPU-scale",
              "(thousands of images, minutes of training; scale in each run's README), so the gap to the",
              "paper measures the scale as much as the method.", ""]
    lines += _glance_table()
    for package in PACKAGES:
        lines += [f"## {package}", "", f"_{_package_title(package)}_ — [package README](../{package}/README.md)", ""]
        lines += _smoke_section(package)
        lines += _real_sections(package)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    REPORT_PATH.write_text(build_report())
    print(f"wrote {REPORT_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
