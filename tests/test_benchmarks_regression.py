"""CI table regression: every package's smoke reproduction against benchmarks/expected/<package>.json
(exact structure and paper numbers, measured bands, claims), the paper numbers against the papers'
text, same-machine determinism, and well-formedness of the committed real-data results."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.claims import CLAIMS, Claim, claims_that_held, failed_claims
from benchmarks.expected import (PACKAGES, PAPER_FILES, PAPERS_DIR, MeasuredRun, build_document, check_package,
                                 compare, describe, is_paper_cell, load_expected, malformed_cells,
                                 numbers_in_text, paper_numbers_not_in_text, printed_in, summarise_cell)
from common.tables import Table, read_tables, write_tables

RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Paper packages present in this checkout (a package lands with its __main__.py); each must have
#: its expected results recorded.
LANDED_PACKAGES = [p for p in PACKAGES if (REPO_ROOT / p / "__main__.py").is_file()]


@pytest.mark.slow
@pytest.mark.parametrize("package", LANDED_PACKAGES)
def test_smoke_tables_match_expected(package, smoke_reproduction):
    problems = check_package(package, smoke_reproduction(package))
    assert not problems, (
        f"{package}: {len(problems)} problem(s) against benchmarks/expected/{package}.json "
        "(table | row | column):\n" + "\n".join(f"  {p}" for p in problems)
        + "\nIf the change is intended, re-measure with `make expected` and explain it in the package README.")


@pytest.mark.slow
def test_same_seed_on_the_same_machine_gives_identical_tables(smoke_reproduction, tmp_path):
    """Bands cover other CPUs; on one machine a run is still exactly repeatable (the cheapest package)."""
    from conftest import run_smoke_reproduction

    first = smoke_reproduction("celeba_resnet_densenet")
    second = run_smoke_reproduction("celeba_resnet_densenet", tmp_path, cache=False)
    assert json.loads((first / "tables.json").read_text()) == json.loads((second / "tables.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("package", LANDED_PACKAGES)
def test_every_pipeline_records_its_processes(package, smoke_reproduction):
    """Each package's reproduce registers itself in ``run_processes.json`` (``common.tables``), so the
    wall time of a stopped and resumed run adds up; one uninterrupted process here."""
    from common.tables import PROCESSES_JSON, wall_time_text

    out_dir = smoke_reproduction(package)
    record = json.loads((out_dir / "run.json").read_text())
    entries = json.loads((out_dir / PROCESSES_JSON).read_text())
    assert len(entries) == 1 and entries[0]["end"] is not None
    assert record["processes"]["processes"] == 1 and record["processes"]["processes_without_end"] == 0
    assert wall_time_text(record).endswith("min wall")


@pytest.mark.parametrize("package", LANDED_PACKAGES)
def test_expected_paper_numbers_are_printed_in_the_paper(package):
    """A paper number in the expected tables must appear in the paper's own text, so a typo in a
    package's constants cannot be locked in by re-recording."""
    paper = PAPERS_DIR / PAPER_FILES[package]
    if not paper.is_file():
        pytest.skip(f"paper text not present at {paper}")
    problems = paper_numbers_not_in_text(package, load_expected(package), paper.read_text(encoding="utf-8"))
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("package", LANDED_PACKAGES)
def test_expected_documents_say_how_they_were_measured(package):
    expected = load_expected(package)
    runs = expected["measured"]["runs"]
    assert len({run["seed"] for run in runs}) >= 5
    assert len({run["kernel_path"] for run in runs}) >= 2
    assert expected["figures"], f"{package}: no figure recorded"
    defined = {claim.name for claim in CLAIMS[package]}
    assert set(expected["claims"]) == defined, "claims recorded != claims defined: re-run `make expected`"


def test_summarise_cell_kinds():
    assert summarise_cell("Ours: SSP", "Pre-cropped: paper", [8.33, 8.33]) == {"paper": 8.33}
    assert summarise_cell("Batch size", "This run", [16, 16]) == {"exact": 16}
    assert summarise_cell("x", "y", ["n/a: needs LFWA"] * 3) == "n/a: needs LFWA"
    assert summarise_cell("x", "y", ["a", "b", "a"]) == {"one_of": ["a", "b"]}
    band = summarise_cell("Ours: SSP", "Pre-cropped: ours", [10.0, 12.0, 11.0])
    assert band["band"] == [8.0, 14.0] and band["seen"] == [10.0, 11.0, 12.0]
    mixed = summarise_cell("x", "y", [0.5, "n/a: no positives", 0.7])
    assert mixed["or_text"] == ["n/a: no positives"] and mixed["band"][0] < 0.5 < 0.7 < mixed["band"][1]


def test_paper_cells_are_recognised_and_differences_are_not():
    assert is_paper_cell("Ours: SSP", "Pre-cropped: paper")
    assert is_paper_cell("ours (paper)", "W/Wo eyeglasses FID")
    assert is_paper_cell("Learning rate", "Paper")
    assert not is_paper_cell("Mean AUROC", "Ours - paper")
    assert not is_paper_cell("Region", "Δ paper")
    assert not is_paper_cell("ours - CycleGAN (paper)", "Male/Female FID")
    assert not is_paper_cell("Smile (ours - paper)", "1st: accuracy")
    assert not is_paper_cell("Training images (paper's count derived: 80 % of 202,599)", "Paper")


def test_numbers_in_text_reads_the_ways_papers_print_numbers():
    printed = numbers_in_text("an error of 9.14% on 162,770 images, lr 1e-4 or 10^-3, AUROC .7611; (5)")
    for value in (9.14, 162770, 1e-4, 1e-3, 0.7611, 5):
        assert printed_in(value, printed), value
    assert printed_in(0.0914, printed) and printed_in(76.11, printed)  # fraction <-> percent
    assert not printed_in(9.41, printed) and not printed_in(8.33, printed)


def _write(tmp_path, rows):
    write_tables([Table("t1", "demo", ["model", "error %", "paper %"], rows)], tmp_path)
    return tmp_path


def _document(runs_rows):
    runs = [MeasuredRun("native", seed, {"t1": Table("t1", "demo", ["model", "error %", "paper %"], rows)},
                        ("fig.png",)) for seed, rows in enumerate(runs_rows)]
    return build_document("ssp_ssg", runs, {})


def test_compare_accepts_a_run_inside_the_bands_and_names_every_cell_outside(tmp_path):
    expected = _document([[["A", 10.0, 9.14], ["B", "n/a: needs LFWA", 8.2]],
                          [["A", 12.0, 9.14], ["B", "n/a: needs LFWA", 8.2]]])
    assert compare(expected, _write(tmp_path / "in", [["A", 14.0, 9.14], ["B", "n/a: needs LFWA", 8.2]])) == []
    mismatches = compare(expected, _write(tmp_path / "out", [["A", 14.5, 9.41], ["B", 3.0, 8.2]]))
    assert [str(m) for m in mismatches] == [
        "t1 | A | error %: expected within [8, 14] (measured 10 .. 12, median 11), got 14.5",
        "t1 | A | paper %: expected 9.14 (the paper's number), got 9.41",
        "t1 | B | error %: expected 'n/a: needs LFWA', got 3.0"]
    missing_row = compare(expected, _write(tmp_path / "rows", [["A", 11.0, 9.14]]))
    assert [(m.table, m.row) for m in missing_row] == [("t1", "rows")]


def test_a_constant_number_in_a_trained_column_gets_the_column_margin():
    """A precision of 0.0 in every run, beside precisions that vary, is not locked in exactly."""
    expected = _document([[["A", 10.0, 9.14], ["B", 0.0, 8.2]], [["A", 12.0, 9.14], ["B", 0.0, 8.2]]])
    rows = {row[0]: row for row in expected["tables"]["t1"]["rows"]}
    assert rows["B"][1]["band"] == [-3.0, 3.0] and rows["B"][2] == {"paper": 8.2}


def test_per_attribute_columns_share_their_widest_band():
    """In a table with a row per CelebA attribute, an attribute whose value barely moved across the
    measured runs gets the column's widest half-width, centred on its own range; other tables keep
    each cell's own band."""
    runs = [[["Bald", 0.50, 0.1], ["Smiling", 0.40, 0.2]], [["Bald", 0.50, 0.1], ["Smiling", 0.80, 0.2]],
            [["Bald", 0.52, 0.1], ["Smiling", 0.60, 0.2]]]
    rows = {row[0]: row for row in _document(runs)["tables"]["t1"]["rows"]}
    assert rows["Smiling"][1]["band"] == pytest.approx([0.0, 1.2])
    assert rows["Bald"][1]["band"] == pytest.approx([0.51 - 0.6, 0.51 + 0.6])
    assert rows["Bald"][2] == {"paper": 0.1}
    renamed = [[[f"row {label}", *values] for label, *values in run] for run in runs]
    rows = {row[0]: row for row in _document(renamed)["tables"]["t1"]["rows"]}
    assert rows["row Bald"][1]["band"] == pytest.approx([0.48, 0.54])


def test_build_document_refuses_runs_with_different_structure():
    with pytest.raises(ValueError, match="other rows or columns"):
        _document([[["A", 1.0, 2.0]], [["B", 1.0, 2.0]]])


def test_claims_are_checked_only_where_they_held_in_every_run():
    def tables(ours, majority):
        return {"t": Table("t", "demo", ["model", "error"], [["ours", ours], ["majority", majority]])}

    claim = Claim("beats majority", "ours < majority",
                  lambda t: t["t"].rows[0][1] < t["t"].rows[1][1])
    CLAIMS["demo"] = (claim,)
    try:
        always = claims_that_held("demo", [tables(1.0, 2.0), tables(1.5, 2.0)])
        assert always["beats majority"].startswith("checked: held in 2/2")
        assert failed_claims("demo", always, tables(1.0, 2.0)) == []
        assert failed_claims("demo", always, tables(3.0, 2.0)) == [
            "claim failed: beats majority (ours < majority); it held in 2/2 measured runs (ours < majority)"]
        sometimes = claims_that_held("demo", [tables(1.0, 2.0), tables(3.0, 2.0)])
        assert sometimes["beats majority"].startswith("not checked: held in 1/2")
        assert failed_claims("demo", sometimes, tables(3.0, 2.0)) == []
    finally:
        del CLAIMS["demo"]


def test_describe_spells_out_each_kind():
    assert describe({"exact": 16}) == "16 (identical in every measured run)"
    assert describe({"one_of": ["a", "b"]}) == "one of ['a', 'b']"


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


def test_malformed_cells_flags_text_and_nan():
    table = Table("t", "demo", ["model", "a", "b"], [["A", 1.0, "n/a: needs LFWA"]])
    assert malformed_cells("t", table) == []
    table.rows[0][1] = "8.3%"
    assert len(malformed_cells("t", table)) == 1
