"""Fig. 4 made checkable (localisation.py), SSP's per-image localisation maps and its
per-region (unshared) branches."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from common.attributes import ATTRIBUTE_INDEX, CELEBA_ATTRIBUTES, PARTS7_LABELS
from ssp_ssg.config import ArchitectureConfig
from ssp_ssg.localisation import DESCRIBED_REGIONS, localisation_tables, match_summary
from ssp_ssg.models import RegionPooledHead, SegmentationNet, build_attribute_model, localisation_maps


def test_every_attribute_has_regions_or_a_reason():
    assert set(DESCRIBED_REGIONS) == set(CELEBA_ATTRIBUTES)
    for name, regions in DESCRIBED_REGIONS.items():
        if isinstance(regions, str):
            assert regions, name
        else:
            assert regions and set(regions) <= set(PARTS7_LABELS), name
    assert DESCRIBED_REGIONS["Smiling"] == ("mouth",) and DESCRIBED_REGIONS["Bald"] == ("hair",)
    assert isinstance(DESCRIBED_REGIONS["Male"], str)


def _weights_with_top(top: dict[str, str]) -> np.ndarray:
    """(7, 40) weights whose largest entry per attribute is the region named in ``top``."""
    weights = np.full((len(PARTS7_LABELS), len(CELEBA_ATTRIBUTES)), 0.1)
    for name, region in top.items():
        weights[PARTS7_LABELS.index(region), ATTRIBUTE_INDEX[name]] = 0.4
    return weights


def test_table_marks_matches_and_tests_them_against_chance():
    right = {name: regions[0] for name, regions in DESCRIBED_REGIONS.items() if not isinstance(regions, str)}
    right["Bald"] = "nose"  # one miss
    per_attribute, summary_table, summary = localisation_tables(_weights_with_top(right), ("note",))
    rows = {row[0].split(":")[0]: row for row in per_attribute.rows}
    regions = len(PARTS7_LABELS)
    assert rows["Bald"][0] == "Bald: describes hair"
    assert rows["Bald"][1 + PARTS7_LABELS.index("nose")] == pytest.approx(0.4)  # the largest weight, visible
    assert max(rows["Bald"][1:1 + regions]) == rows["Bald"][1 + PARTS7_LABELS.index("nose")]
    assert rows["Bald"][1 + regions:] == [pytest.approx(0.1), 0]
    assert rows["Eyeglasses"][0] == "Eyeglasses: describes eyes or eyebrows"
    assert rows["Eyeglasses"][1 + regions:] == [pytest.approx(0.5), 1]  # eyes 0.4 + eyebrows 0.1
    assert rows["Male"][-2].startswith("n/a: ") and rows["Male"][-1].startswith("n/a: ")
    assert summary.assessed == 35 and summary.matches == 34
    chances = [len(r) / 7 for r in DESCRIBED_REGIONS.values() if not isinstance(r, str)]
    assert summary.expected_by_chance == pytest.approx(sum(chances))
    assert summary.p_value < 1e-15
    assert summary_table.rows[1] == ["Matches (largest weight on a describing region)", 34]


def test_chance_test_is_the_binomial_test_when_every_attribute_has_one_region():
    hair = [name for name, regions in DESCRIBED_REGIONS.items() if regions == ("hair",)]
    top = ["hair"] * 4 + ["nose"] * (len(hair) - 4)
    summary = match_summary(top, hair)
    assert (summary.assessed, summary.matches) == (len(hair), 4)
    expected = stats.binomtest(4, len(hair), 1 / 7, alternative="greater").pvalue
    assert summary.p_value == pytest.approx(expected)
    assert match_summary(["background"] * len(hair), hair).p_value == pytest.approx(1.0)


def test_localisation_maps_weight_the_region_probabilities():
    region_probs = torch.softmax(torch.randn(2, 7, 5, 4), dim=1)
    weights = torch.zeros(2, 7, 3)
    weights[:, 1, 0] = 1.0                      # attribute 0: all on hair
    weights[:, :, 1] = 1.0 / 7                  # attribute 1: uniform -> flat 1/7
    weights[:, 3, 2], weights[:, 4, 2] = 0.5, 0.5
    maps = localisation_maps(weights, region_probs, (5, 4))
    torch.testing.assert_close(maps[:, 0], region_probs[:, 1])
    torch.testing.assert_close(maps[:, 1], torch.full_like(maps[:, 1], 1 / 7))
    torch.testing.assert_close(maps[:, 2], 0.5 * (region_probs[:, 3] + region_probs[:, 4]))
    assert localisation_maps(weights, region_probs, (10, 8)).shape == (2, 3, 10, 8)


def test_unshared_ssp_branches_give_each_region_its_own_weights():
    features, masks = torch.randn(2, 8, 3, 3), torch.rand(2, 7, 3, 3)
    head = RegionPooledHead(8, 5, num_regions=7, shared=False)
    logits, localisation = head(features, masks)
    pooled = torch.einsum("bchw,brhw->brc", features, masks / masks.sum(dim=(-2, -1), keepdim=True))
    recognition = torch.stack([pooled[:, r] @ head.recognition.weight[r] + head.recognition.bias[r]
                               for r in range(7)], dim=1)
    scores = torch.stack([pooled[:, r] @ head.localisation.weight[r] + head.localisation.bias[r]
                          for r in range(7)], dim=1)
    torch.testing.assert_close(localisation, torch.softmax(scores, dim=1))
    torch.testing.assert_close(logits, (torch.softmax(scores, dim=1) * recognition).sum(dim=1))
    assert not torch.allclose(head.recognition.weight[0], head.recognition.weight[1])
    tiny = ArchitectureConfig(width_multiplier=1 / 16, ssp_shared_branches=False)
    ssp = build_attribute_model("ssp", tiny, SegmentationNet(tiny))
    shared = build_attribute_model("ssp", ArchitectureConfig(width_multiplier=1 / 16), SegmentationNet(tiny))
    assert ssp(torch.rand(2, 3, 48, 40)).shape == (2, 40)
    head_parameters = sum(p.numel() for p in ssp.head.parameters())
    assert head_parameters == 7 * sum(p.numel() for p in shared.head.parameters())
