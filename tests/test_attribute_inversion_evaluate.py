"""Evaluation of attribute_inversion: how the pipeline calls common.metrics' FID (both columns), KID
and DFN, the landmarks given to the face network, the success rate, Table 1's layout, its
calibration rows (identity, real vs real on disjoint sets of the stated N, target domain) and the
ours - CycleGAN interval columns."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from common.attributes import ATTRIBUTE_INDEX
from common.metrics.dfn import CELEBA_ALIGNED_LANDMARKS
from common.metrics.fid import fid_from_features
from common.metrics.kid import kid_from_features
from attribute_inversion.calibration import (PairedDistances, ReferenceDistances, disjoint_real_sample,
                                             split_target_domain)
from attribute_inversion.checkpoints import config_from_experiment
from attribute_inversion.config import EvaluationConfig, ReproduceConfig
from attribute_inversion.evaluate import (CALIBRATION_ROWS, HeldoutFeatures, Inversions, Metrics, cropped_face_landmarks,
                                          evaluate_attribute, iqr)
from attribute_inversion.tables import PAPER_TABLE1, table1, table1_details, table1_intervals


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


def heldout_with(metrics, faces: torch.Tensor, labels: torch.Tensor, attribute: str = "Eyeglasses") -> HeldoutFeatures:
    """Held-out features of ``faces`` (rows 0..N-1) labelled ``labels`` for ``attribute``."""
    attributes = np.zeros((len(faces), 40), np.uint8)
    attributes[:, ATTRIBUTE_INDEX[attribute]] = labels.numpy().astype(np.uint8)
    return HeldoutFeatures(np.arange(len(faces)), metrics.inception.features((faces + 1) / 2), attributes)


@pytest.fixture(scope="module")
def metrics():
    config = ReproduceConfig.smoke()
    config.evaluation = EvaluationConfig(eval_batch_size=8)
    return Metrics(config, torch.device("cpu"))


def small_config(resamples: int = 40) -> ReproduceConfig:
    config = ReproduceConfig.smoke()
    config.evaluation = EvaluationConfig(eval_batch_size=8, bootstrap_resamples=resamples)
    return config


def test_pipeline_calls_fid_and_dfn_on_the_right_pairs(metrics):
    """An identity "generator" scores FID 0, KID 0 and DFN 1 exactly; a generator returning a
    different face set scores FID > 0 and the DFN ratios of the face-norms of those pairs."""
    torch.manual_seed(0)
    config = small_config()
    faces = torch.rand(6, 3, 32, 32) * 2 - 1
    labels = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    others = faces.flip(0).flip(-1)
    inversions = {"ours": Inversions(faces, faces.clone(), labels, np.arange(6)),
                  "CycleGAN": Inversions(faces, others, labels, np.arange(6))}
    evaluation = evaluate_attribute("Eyeglasses", inversions, ConstantJudge(), metrics, config,
                                    torch.device("cpu"), heldout_with(metrics, faces, labels))
    results, judge_record, ratios = evaluation.results, evaluation.judge, evaluation.ratios
    assert results["ours"]["fid"] == pytest.approx(0.0, abs=1e-6)
    assert results["ours"]["kid"] == pytest.approx(0.0, abs=1e-9)
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
    # No held-out face outside the test set: the floor of the paper's comparison says why.
    assert evaluation.calibration["paper/floor"]["fid"].startswith("n/a: no held-out faces")


@pytest.fixture(scope="module")
def calibrated(metrics):
    """8 test faces (4 with, 4 without) among 24 held-out faces (10 with, 14 without); ours returns
    its input flipped left-right, CycleGAN another face."""
    torch.manual_seed(1)
    faces = torch.rand(24, 3, 32, 32) * 2 - 1
    labels = torch.tensor([1.0] * 10 + [0.0] * 14)
    test_rows = np.array([0, 1, 2, 3, 10, 11, 12, 13])
    inputs, test_labels = faces[test_rows], labels[test_rows]
    inversions = {"ours": Inversions(inputs, inputs.flip(-1), test_labels, test_rows),
                  "CycleGAN": Inversions(inputs, inputs.roll(1, 0) * 0.8, test_labels, test_rows)}
    heldout = heldout_with(metrics, faces, labels)
    evaluation = evaluate_attribute("Eyeglasses", inversions, ConstantJudge(), metrics, small_config(),
                                    torch.device("cpu"), heldout)
    return evaluation, heldout, test_rows


def test_calibration_rows_are_all_present_and_the_identity_scores_zero_and_dfn_one(calibrated):
    evaluation, _, _ = calibrated
    assert list(evaluation.calibration) == list(CALIBRATION_ROWS)
    identity = evaluation.calibration["paper/identity"]
    assert identity["fid"] == pytest.approx(0.0, abs=1e-6) and identity["kid"] == pytest.approx(0.0, abs=1e-9)
    assert identity["dfn_mean"] == 1.0 and (identity["n_a"], identity["n_b"]) == (8, 8)
    assert identity["success_rate"] == evaluation.judge["unchanged_success_rate"]
    ours = evaluation.calibration["paper/ours"]
    assert ours["fid"] == evaluation.results["ours"]["fid"] and ours["kid"] == evaluation.results["ours"]["kid"]
    for key in ("with/identity", "without/identity"):
        assert evaluation.calibration[key]["dfn_mean"] == 1.0
        assert evaluation.calibration[key]["fid"] > 0  # the other domain
    table = table1({"Eyeglasses": evaluation.results}, "smoke", calibration={"Eyeglasses": evaluation.calibration})
    rows = {row[0]: row[1:] for row in table.rows}
    eyeglasses = table.columns.index("W/Wo eyeglasses FID") - 1
    assert rows["identity G(x) = x (this run)"][eyeglasses:eyeglasses + 2] == [identity["fid"], 1.0]
    assert list(rows)[:6] == ["ours (this run)", "CycleGAN (this run)", "ours (paper)", "CycleGAN (paper)",
                              "ours - CycleGAN (this run)", "ours - CycleGAN (paper)"]


def test_real_vs_real_rows_use_disjoint_sets_of_the_stated_size(calibrated):
    """The paper comparison's floor: the 8 test faces against 8 other held-out faces (4 + 4); the
    target-domain floors: as many faces of the target domain as inputs (4), against the rest."""
    evaluation, heldout, test_rows = calibrated
    labels = heldout.labels("Eyeglasses")
    floor = evaluation.calibration["paper/floor"]
    assert (floor["n_a"], floor["n_b"]) == (8, 8)
    sample = disjoint_real_sample(test_rows, labels[test_rows], heldout.rows, labels, seed=0,
                                  purpose=ATTRIBUTE_INDEX["Eyeglasses"])
    assert not np.intersect1d(sample.side_rows, sample.other_rows).size
    assert labels[sample.other_rows].sum() == labels[sample.side_rows].sum() == 4
    assert floor["fid"] == pytest.approx(fid_from_features(heldout.of(sample.side_rows), heldout.of(sample.other_rows)))
    # G(with) vs real without: 4 inputs; 14 faces without -> 4 floor + 10 reference.
    assert [evaluation.calibration[f"with/{kind}"]["n_a"] for kind in ("ours", "identity", "floor")] == [4, 4, 4]
    assert {evaluation.calibration[f"with/{kind}"]["n_b"] for kind in ("ours", "identity", "floor")} == {10}
    # G(without) vs real with: 4 inputs; 10 faces with -> 4 floor + 6 reference.
    assert evaluation.calibration["without/floor"]["n_a"] == 4
    assert evaluation.calibration["without/ours"]["n_b"] == 6
    assert evaluation.calibration["without/floor"]["dfn_mean"].startswith("n/a: ")


def test_interval_columns_are_consistent(calibrated):
    evaluation, _, _ = calibrated
    comparisons = evaluation.comparisons
    assert [c.measure for c in comparisons] == [
        "FID, real vs G(real)", "KID, real vs G(real)", "FID, G(with) vs real without",
        "KID, G(with) vs real without", "FID, G(without) vs real with", "KID, G(without) vs real with",
        "mean DFN", "attribute success rate"]
    table = table1_intervals({"Eyeglasses": comparisons}, resamples=40)
    column = {name: index for index, name in enumerate(table.columns)}
    assert len(table.rows) == len(comparisons)
    for row, comparison in zip(table.rows, comparisons):
        low, high, excludes = row[column["95% CI low"]], row[column["95% CI high"]], row[column["interval excludes 0"]]
        assert low <= high
        assert excludes == int(low > 0 or high < 0)
        assert row[column["ours - CycleGAN"]] == pytest.approx(row[column["ours"]] - row[column["CycleGAN"]])
        reading = next(note for note in table.notes if note.startswith(f"Eyeglasses, {comparison.measure}:"))
        assert ("excludes 0" in reading) == bool(excludes)
        assert ("not distinguishable" in reading) == (not excludes)
        if comparison.measure == "attribute success rate":
            assert 0 <= row[column["McNemar p"]] <= 1
        else:
            assert row[column["McNemar p"]].startswith("n/a: ")
    # The constant judge: both models succeed on exactly the negatives, so no difference at all.
    success = comparisons[-1]
    assert (success.interval.low, success.interval.high, success.mcnemar.p_value) == (0.0, 0.0, 1.0)


def test_resampled_statistics_on_all_faces_equal_the_table_values(rng):
    real = np.abs(rng.normal(size=(12, 40)))
    generated = {"ours": real + 0.1 * rng.normal(size=real.shape), "CycleGAN": np.abs(rng.normal(size=(12, 40)))}
    everything = np.arange(12)
    paired = PairedDistances(real, generated)
    reference = np.abs(rng.normal(size=(30, 40))) + 0.2
    against = ReferenceDistances(generated, reference)
    for model, features in generated.items():
        assert paired.fid(model)(everything) == pytest.approx(fid_from_features(real, features), rel=1e-10)
        assert paired.kid(model)(everything) == pytest.approx(kid_from_features(real, features, paired=True), rel=1e-10)
        assert against.fid(model)(everything) == pytest.approx(fid_from_features(features, reference), rel=1e-10)
        assert against.kid(model)(everything) == pytest.approx(kid_from_features(features, reference), rel=1e-10)
    # A resample (rows drawn twice) gives the FID of the resampled feature sets.
    rows = np.array([0, 0, 3, 5, 5, 5, 7, 8, 9, 11, 2, 2])
    for model, features in generated.items():
        assert paired.fid(model)(rows) == pytest.approx(fid_from_features(real[rows], features[rows]), rel=1e-9)
        assert against.fid(model)(rows) == pytest.approx(fid_from_features(features[rows], reference), rel=1e-9)
        assert against.kid(model)(rows) == pytest.approx(kid_from_features(features[rows], reference), rel=1e-9)
    # With more samples than dimensions the covariance branch is used, as in fid_from_features.
    wide = ReferenceDistances({"ours": np.abs(rng.normal(size=(12, 8)))}, np.abs(rng.normal(size=(30, 8))))
    assert wide.fid("ours")(everything) == pytest.approx(fid_from_features(wide.sets["ours"], wide.reference))
    assert wide.distances("ours")["kid"] == pytest.approx(kid_from_features(wide.sets["ours"], wide.reference))


def test_target_domain_and_floor_sets():
    domain = np.arange(100, 120)
    floor, reference = split_target_domain(domain, 5, seed=0)
    assert len(floor) == 5 and len(reference) == 15 and not np.intersect1d(floor, reference).size
    assert np.array_equal(np.sort(np.concatenate([floor, reference])), domain)
    floor, reference = split_target_domain(domain, 50, seed=0)  # more inputs than the domain: half each
    assert len(floor) == len(reference) == 10
    # 3 + 5 test faces; outside them 2 with and 9 without: the class mix is kept by shrinking both sides.
    test_rows, test_labels = np.arange(8), np.array([1, 1, 1, 0, 0, 0, 0, 0])
    heldout_rows = np.arange(19)
    heldout_labels = np.concatenate([test_labels, [1, 1], np.zeros(9, int)])
    sample = disjoint_real_sample(test_rows, test_labels, heldout_rows, heldout_labels, seed=0)
    assert sample.reduced and len(sample.side_rows) == len(sample.other_rows) == 2 + 3
    assert heldout_labels[sample.other_rows].sum() == heldout_labels[sample.side_rows].sum() == 2
    assert set(sample.side_rows) <= set(test_rows) and not set(sample.other_rows) & set(test_rows)
    reason = disjoint_real_sample(test_rows, test_labels, test_rows, test_labels, seed=0)
    assert isinstance(reason, str) and "outside the test set" in reason


def test_configuration_comes_back_from_the_run_record():
    from attribute_inversion.train import experiment_fingerprint

    class Annotations:
        root = "/data/celeba"

        def __len__(self):
            return 123

    for scale in ("smoke", "cpu", "paper"):
        config = ReproduceConfig.for_scale(scale)
        config.data = dataclasses.replace(config.data, attributes=("Male", "Eyeglasses"), seed=3)
        record = json.loads(json.dumps(experiment_fingerprint(config, Annotations(), synthetic=False)))
        rebuilt = config_from_experiment(record)
        assert rebuilt.data.attributes == ("Male", "Eyeglasses") and rebuilt.data.seed == 3
        assert experiment_fingerprint(rebuilt, Annotations(), synthetic=False) == experiment_fingerprint(
            config, Annotations(), synthetic=False)
        assert rebuilt.evaluation == ReproduceConfig.for_scale(scale).evaluation
    with pytest.raises(ValueError, match="not in this version"):
        config_from_experiment({**record, "data": {**record["data"], "colour": 1}})


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
