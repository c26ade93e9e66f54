"""Evaluation of attribute_inversion: how the pipeline calls common.metrics' FID (both columns) and
DFN, the landmarks given to the face network, the success rate and Table 1's layout."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from common.metrics.dfn import CELEBA_ALIGNED_LANDMARKS
from common.metrics.fid import fid_from_features
from attribute_inversion.config import EvaluationConfig, ReproduceConfig
from attribute_inversion.evaluate import Inversions, Metrics, cropped_face_landmarks, evaluate_attribute, iqr
from attribute_inversion.tables import PAPER_TABLE1, table1, table1_details


@pytest.mark.parametrize("n_real, n_generated", [(20, 30), (60, 50)])
def test_fid_and_pca_fid_are_common_fid_in_both_branches(rng, n_real, n_generated):
    """Up to pca_dims images in total the PCA projection is exact and Metrics.fid returns one
    sample-space number for both columns; beyond, common.metrics.fid computes each."""
    metrics = Metrics.__new__(Metrics)  # only the FID arithmetic: no networks loaded
    metrics.pca_dims = 64
    dim = 96
    real = rng.normal(size=(n_real, dim))
    generated = rng.normal(size=(n_generated, dim)) * 1.5 + 0.3
    record = metrics.fid(real, generated)
    assert record["fid"] == pytest.approx(fid_from_features(real, generated), rel=1e-7)
    assert record["fid_pca"] == pytest.approx(fid_from_features(real, generated, pca_dim=64), rel=1e-7)
    if n_real + n_generated <= metrics.pca_dims:
        assert record["fid_pca"] == record["fid"]
    else:
        assert record["fid_pca"] < record["fid"]  # a projection can only shrink the distance


def test_face_landmarks_follow_the_centre_square_crop():
    # 178x218 aligned frame -> 178x178 crop starting at row 20, no scaling at size 178.
    assert np.allclose(cropped_face_landmarks(178), CELEBA_ALIGNED_LANDMARKS - [0, 20])
    assert np.allclose(cropped_face_landmarks(89), (CELEBA_ALIGNED_LANDMARKS - [0, 20]) / 2)


def test_iqr_is_the_spread_between_the_quartiles():
    assert iqr(np.arange(1, 101, dtype=float)) == pytest.approx(75.25 - 25.75)


class ConstantJudge(nn.Module):
    """Calls every face positive."""

    def forward(self, image):
        return torch.ones(len(image), 1)


def test_pipeline_calls_fid_and_dfn_on_the_right_pairs():
    """An identity "generator" scores FID 0 and DFN 1 exactly; a generator returning a different
    face set scores FID > 0 and the DFN ratios of the face-norms of those pairs."""
    torch.manual_seed(0)
    config = ReproduceConfig.smoke()
    config.evaluation = EvaluationConfig(eval_batch_size=8)
    faces = torch.rand(6, 3, 32, 32) * 2 - 1
    labels = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    others = faces.flip(0).flip(-1)
    inversions = {"ours": Inversions(faces, faces.clone(), labels),
                  "CycleGAN": Inversions(faces, others, labels)}
    metrics = Metrics(config, torch.device("cpu"))
    results, judge_record, ratios = evaluate_attribute("Eyeglasses", inversions, ConstantJudge(), metrics,
                                                       config, torch.device("cpu"))
    assert results["ours"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(ratios["ours"], 1.0)
    assert results["ours"]["dfn_mean"] == pytest.approx(1.0)
    assert results["CycleGAN"]["fid"] > 1.0
    unit = lambda images: (images + 1) / 2  # noqa: E731
    expected = metrics.face_feature_norms(unit(others)) / metrics.face_feature_norms(unit(faces))
    assert np.allclose(ratios["CycleGAN"], expected)
    # The constant judge calls every output positive: right for the 3 negatives only.
    assert results["ours"]["success_rate"] == pytest.approx(0.5)
    assert judge_record == {"balanced_accuracy": 0.5, "unchanged_success_rate": 0.5}
    assert (results["ours"]["n_positive"], results["ours"]["n_negative"]) == (3, 3)


def test_table1_has_the_paper_layout_and_marks_untrained_attributes():
    record = {"fid": 40.0, "fid_pca": 40.0, "dfn_mean": 0.8, "dfn_iqr": 0.1, "success_rate": 0.7,
              "n_positive": 3, "n_negative": 3}
    results = {"Eyeglasses": {"ours": record, "CycleGAN": {**record, "fid": 50.0, "dfn_mean": 0.7}}}
    table = table1(results, "smoke")
    assert table.columns[0] == "model" and len(table.columns) == 11
    rows = {row[0]: row[1:] for row in table.rows}
    eyeglasses = table.columns.index("W/Wo eyeglasses FID") - 1
    assert rows["ours (this run)"][eyeglasses:eyeglasses + 2] == [40.0, 0.8]
    assert rows["ours - CycleGAN (this run)"][eyeglasses] == pytest.approx(-10.0)
    assert rows["ours (paper)"][eyeglasses:eyeglasses + 2] == list(PAPER_TABLE1["ours"]["Eyeglasses"])
    male = table.columns.index("Male/Female FID") - 1
    assert rows["CycleGAN (this run)"][male] == "n/a: not trained at smoke scale"
    assert rows["ours - CycleGAN (paper)"][male] == pytest.approx(21.1 - 30.7)
    details = table1_details(results)
    assert [row[0] for row in details.rows] == ["Eyeglasses / ours", "Eyeglasses / CycleGAN"]
