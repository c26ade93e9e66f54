"""End-to-end smoke reproduction of ssp_ssg on synthetic faces (run once per test session)."""
from __future__ import annotations

import json

import numpy as np

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ssp_tables(smoke_reproduction):
    out_dir = smoke_reproduction("ssp_ssg")
    return out_dir, json.loads((out_dir / "tables.json").read_text())


def _ours(table: dict, label: str, column: str = "Pre-cropped: ours"):
    row = next(r for r in table["rows"] if r[0] == label)
    return row[table["columns"].index(column)]


def test_avgpool_and_ssp_beat_the_majority_class(ssp_tables):
    _, tables = ssp_tables
    error = tables["table2_error"]
    majority = _ours(error, "Majority class (ours only)")
    for label in ("Ours: Avg. Pooling", "Ours: SSP"):
        assert _ours(error, label) < majority, label
    average_precision = tables["table2_average_precision"]
    assert (_ours(average_precision, "Ours: SSP")
            > _ours(average_precision, "Majority class (ours only)"))


def test_smoke_run_writes_every_table_and_figure(ssp_tables):
    out_dir, tables = ssp_tables
    assert set(tables) == {"table2_error", "table2_average_precision",
                           "table2_balanced_accuracy", "table3_lfwa", "table4_parsing_iou",
                           "training_summary", "claims_intervals", "fig4_localisation_check",
                           "fig4_localisation_summary"}
    for name in tables:
        assert (out_dir / f"{name}.md").is_file() and (out_dir / f"{name}.csv").is_file()
    for figure in ("fig3_parsing_examples.png", "fig4_ssp_localisation_weights.png",
                   "fig5_top50_activations.png", "fig4_localisation_maps.png",
                   "fig_learning_curves.png"):
        assert (out_dir / figure).stat().st_size > 1000, figure
    assert (out_dir / "run.json").is_file()
    # Without LFWA every cell of ours in Table 3 says why it is missing.
    for row in tables["table3_lfwa"]["rows"]:
        assert row[2] == row[4] == "n/a: needs LFWA (--lfwa-root)"
    # Table 4: every parsing class has a computed IoU with and without attributes.
    iou = tables["table4_parsing_iou"]
    assert len(iou["rows"]) == 8
    for row in iou["rows"]:
        assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in (row[2], row[4]))


def test_localisation_weights_figure_data_is_a_distribution(ssp_tables):
    out_dir, _ = ssp_tables
    lines = (out_dir / "fig4_ssp_localisation_weights.csv").read_text().splitlines()
    assert lines[0].split(",") == ["background", "hair", "face_skin", "eyes", "eyebrows",
                                   "mouth", "nose"]
    rows = np.array([[float(v) for v in line.split(",")] for line in lines[1:]])
    assert rows.shape == (40, 7)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, atol=1e-3)
    # Each attribute has its own distribution over regions (a uniform or shared weighting would
    # make every row the same): the rows are far from identical.
    assert np.ptp(rows, axis=0).max() > 0.01


def test_every_claim_has_a_paired_interval_around_its_difference(ssp_tables):
    _, tables = ssp_tables
    claims = tables["claims_intervals"]
    column = {name: claims["columns"].index(name) for name in
              ("Ours: A − B", "95 % CI low", "95 % CI high", "Interval excludes 0")}
    assert len(claims["rows"]) == 16
    for row in claims["rows"]:
        difference, low, high = (row[column[name]] for name in ("Ours: A − B", "95 % CI low", "95 % CI high"))
        assert low <= difference <= high, row
        assert row[column["Interval excludes 0"]] == int(low > 0 or high < 0)
    # the error difference of a claim is the difference of Table 2's cells
    error = {row[0]: row[4] for row in tables["table2_error"]["rows"]}
    first = claims["rows"][0]
    assert first[0] == "SSP + SSG vs Avg. Pooling: error %"
    assert first[column["Ours: A − B"]] == pytest.approx(error["Ours: SSP + SSG"] - error["Ours: Avg. Pooling"])
