"""Networks, losses and data helpers of ssp_ssg (Kalayeh et al., CVPR 2017)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from common.attributes import HELEN11_FLIP_PERMUTATION, HELEN11_LABELS, PARTS7_LABELS
from ssp_ssg.config import ArchitectureConfig, ReproduceConfig
from ssp_ssg.losses import attribute_loss, deep_supervision_loss, imbalance_class_weights
from ssp_ssg.models import (PREDICTION_LAYERS, BasicAttributeNet, FrozenSegmentation, RegionPooledHead,
                            SegmentationNet, SemanticGatedPooling, SSGAttributeNet,
                            SSPAttributeNet, build_attribute_model, count_parameters,
                            landmark_box_masks, normalise_region_masks, ssp_region_masks)

PAPER = ArchitectureConfig()
TINY = ArchitectureConfig(width_multiplier=1 / 16)


def test_basic_net_has_about_24m_parameters_and_a_14x12_final_map():
    """§4.3.1: "only 24M parameters"; §5: the final conv layer is 14x12 at 218x178 input."""
    with torch.device("meta"):
        net = BasicAttributeNet(PAPER)
        features = net.feature_map(torch.empty(2, 3, 218, 178))
        logits = net(torch.empty(2, 3, 218, 178))
    assert 23.0e6 < count_parameters(net) < 25.0e6
    assert tuple(features.shape) == (2, 1024, 14, 12)
    assert tuple(logits.shape) == (2, 40)


def test_segmentation_net_follows_table_1_sizes():
    with torch.device("meta"):
        net = SegmentationNet(PAPER)
        outputs = net(torch.empty(1, 3, 218, 178))
    assert list(outputs) == list(PREDICTION_LAYERS)
    assert {k: tuple(v.shape) for k, v in outputs.items()} == {
        "deconv43": (1, 7, 28, 23), "deconv33": (1, 7, 55, 45),
        "deconv23": (1, 7, 109, 89), "deconv13": (1, 7, 218, 178)}
    encoder_convs = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.out_channels for m in encoder_convs] == [64, 64, 128, 128, 256, 256, 512, 512]


def test_every_table2_model_runs_and_paper_width_models_stay_near_24m():
    parser = SegmentationNet(TINY)
    images = torch.rand(2, 3, 48, 40)
    landmarks = torch.tensor([[[14., 20.], [26., 20.], [20., 28.], [15., 35.], [25., 35.]]] * 2)
    for name in ("avgpool", "spp", "naive", "bbox", "ssg", "ssp"):
        model = build_attribute_model(name, TINY, parser)
        logits = model(images, landmarks) if name == "bbox" else model(images)
        assert logits.shape == (2, 40), name
    with torch.device("meta"):
        paper_parser = SegmentationNet(PAPER)
        for name in ("ssp", "ssg", "naive"):
            model = build_attribute_model(name, PAPER, paper_parser)
            # the frozen parser is not trained; the attribute part stays near the basic net's size
            assert 23.0e6 < count_parameters(model) < 25.0e6, name


def test_ssg_masks_sum_to_one_per_region_and_gate_before_bn():
    probabilities = torch.softmax(torch.randn(3, 7, 10, 8), dim=1)
    normalised = normalise_region_masks(probabilities)
    torch.testing.assert_close(normalised.sum(dim=(-2, -1)), torch.ones(3, 7))
    empty = torch.zeros(1, 7, 4, 4)
    assert torch.equal(normalise_region_masks(empty), empty)
    # Gating a constant map of ones gives each region copy of each channel a sum of 1.
    gated = SemanticGatedPooling.gate(torch.ones(3, 5, 10, 8), probabilities)
    assert gated.shape == (3, 7 * 5, 10, 8)
    torch.testing.assert_close(gated.sum(dim=(-2, -1)), torch.ones(3, 35))
    # The gated conv of SSG has no BN of its own: BN comes after the gating (§3.1.3).
    net = SSGAttributeNet(TINY, FrozenSegmentation(SegmentationNet(TINY)))
    stage3 = net.backbone.encoder.stages[2]
    assert isinstance(stage3.conv2, torch.nn.Conv2d) and stage3.pool == "ssg"
    assert stage3.gated_pool.bn.num_features == 7 * stage3.conv2.out_channels
    assert [s.pool for s in net.backbone.encoder.stages] == ["max", "max", "ssg", None]


def test_ssp_localisation_weights_sum_to_one_over_regions():
    model = SSPAttributeNet(TINY, FrozenSegmentation(SegmentationNet(TINY)))
    logits, weights = model.forward_with_localisation(torch.rand(4, 3, 48, 40))
    assert logits.shape == (4, 40) and weights.shape == (4, 7, 40)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(4, 40))


def test_ssp_head_matches_a_direct_computation_of_section_3_1_2():
    """logit[b, a] = sum_r softmax_r(L f_r)[a] * (W f_r)[a], with f_r the features averaged within
    region r (mask normalised to sum 1): computed here with plain loops, not the module's einsum."""
    from scipy.special import softmax

    torch.manual_seed(0)
    head = RegionPooledHead(channels=5, num_attributes=3)
    features, masks = torch.randn(2, 5, 4, 3), torch.rand(2, 7, 4, 3)
    masks[1, 2] = 0.0  # an empty region: its features are zero, it still takes part in the softmax
    logits, weights = head(features, masks)
    recognition_w, recognition_b = head.recognition.weight.detach().numpy(), head.recognition.bias.detach().numpy()
    local_w, local_b = head.localisation.weight.detach().numpy(), head.localisation.bias.detach().numpy()
    for b in range(2):
        region_features = []
        for r in range(7):
            mask = masks[b, r].numpy()
            mask = mask / mask.sum() if mask.sum() > 0 else mask
            region_features.append((features[b].numpy() * mask).sum(axis=(1, 2)))
        region_features = np.stack(region_features)                        # (R, C)
        local = softmax(region_features @ local_w.T + local_b, axis=0)      # (R, A), over regions
        expected = (local * (region_features @ recognition_w.T + recognition_b)).sum(axis=0)
        np.testing.assert_allclose(weights[b].detach().numpy(), local, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(logits[b].detach().numpy(), expected, rtol=1e-5, atol=1e-6)


def test_ssp_resizes_small_parts_with_max_and_large_ones_with_average_pooling():
    probabilities = torch.zeros(1, 7, 8, 8)
    eyes, hair = PARTS7_LABELS.index("eyes"), PARTS7_LABELS.index("hair")
    probabilities[0, eyes, 0, 0] = 1.0
    probabilities[0, hair, 0, 0] = 1.0
    resized = ssp_region_masks(probabilities, (2, 2))
    assert resized[0, eyes, 0, 0] == 1.0          # max pooling keeps the small region's peak
    assert resized[0, hair, 0, 0] == pytest.approx(1 / 16)  # average pooling dilutes


def test_bbox_regions_whole_image_plus_fifteen_boxes():
    landmarks = torch.tensor([[[40., 50.], [60., 50.], [50., 65.], [42., 80.], [58., 80.]]])
    masks = landmark_box_masks(landmarks, (109, 89), (7, 6), (1.0, 0.5, 2.0), 1 / 16)
    assert masks.shape == (1, 16, 7, 6)
    assert torch.all(masks[0, 0] == 1)
    cell_area = (109 / 7) * (89 / 6)
    box_area_in_cells = 109 * 89 / 16 / cell_area
    torch.testing.assert_close(masks[0, 1:].sum(dim=(-2, -1)),
                               torch.full((15,), box_area_in_cells), rtol=1e-4, atol=1e-4)


def test_deep_supervision_gives_one_loss_per_scale():
    net = SegmentationNet(TINY)
    mask = torch.randint(0, 7, (2, 48, 40))
    total, per_scale = deep_supervision_loss(net(torch.rand(2, 3, 48, 40)), mask)
    assert list(per_scale) == list(PREDICTION_LAYERS)
    torch.testing.assert_close(total, sum(per_scale.values()))
    total.backward()
    for name in PREDICTION_LAYERS:
        assert net.predictions[name].conv.weight.grad is not None, name


def test_weighted_bce_balances_classes_and_skips_unknown_labels():
    labels = np.zeros((10, 40), dtype=np.uint8)
    labels[:2] = 1                                   # 20 % positives everywhere
    positive, negative = imbalance_class_weights(labels)
    torch.testing.assert_close(positive * 2, negative * 8)   # 2 positives weigh as 8 negatives
    logits = torch.zeros(3, 40)
    targets = torch.ones(3, 40)
    targets[0, 0] = float("nan")
    loss = attribute_loss(logits, targets)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, torch.tensor(np.log(2.0), dtype=torch.float32))


def test_flipping_swaps_left_and_right_parsing_labels(tmp_path):
    """A Helen mask's left eye / brow become the right ones after a horizontal flip (§5)."""
    from ssp_ssg.data import HelenParsingDataset, hflip_labels

    left_eye, right_eye = HELEN11_LABELS.index("left_eye"), HELEN11_LABELS.index("right_eye")
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[1, 1] = left_eye
    flipped = hflip_labels(mask, HELEN11_FLIP_PERMUTATION)
    assert flipped[1, 4] == right_eye and flipped[1, 1] == 0

    # The same through the Helen loader, in Smith et al.'s layout.
    image_id = "100_1"
    (tmp_path / "images").mkdir()
    label_dir = tmp_path / "labels" / image_id
    label_dir.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 10, 3), dtype=np.uint8)).save(tmp_path / "images" / f"{image_id}.jpg")
    hard = np.zeros((8, 10), dtype=np.uint8)
    hard[2:4, 1:3] = left_eye
    hard[2:4, 7:9] = HELEN11_LABELS.index("right_eyebrow")
    for label in range(len(HELEN11_LABELS)):
        Image.fromarray(((hard == label) * 255).astype(np.uint8)).save(
            label_dir / f"{image_id}_lbl{label:02d}.png")
    (tmp_path / "exemplars.txt").write_text(f"1 , {image_id}\n")
    plain = HelenParsingDataset(tmp_path, "train", (8, 10), flip_probability=0.0)[0]["mask"]
    mirrored = HelenParsingDataset(tmp_path, "train", (8, 10), flip_probability=1.0)[0]["mask"]
    eyes, brows = PARTS7_LABELS.index("eyes"), PARTS7_LABELS.index("eyebrows")
    assert plain[2, 1] == eyes and plain[2, 8] == brows
    assert mirrored[2, 8] == eyes and mirrored[2, 1] == brows
    assert torch.equal(mirrored, plain.flip(-1))


def test_scales_keep_the_paper_architecture_at_paper_scale():
    paper, smoke = ReproduceConfig.paper(), ReproduceConfig.smoke()
    assert paper.architecture.width_multiplier == 1.0
    assert paper.optim.learning_rate == 0.001 and paper.optim.weight_decay == 0.0005
    assert paper.optim.batch_size == 32
    assert (paper.optim.attribute_steps, paper.optim.segmentation_steps) == (40_000, 75_000)
    assert tuple(paper.data.image_size) == (218, 178)
    assert smoke.architecture.width_multiplier < 1 and smoke.optim.attribute_steps < 1_000


def test_cosine_schedule_anneals_the_lr_to_zero_over_the_steps_and_constant_keeps_it():
    from ssp_ssg.config import OptimConfig
    from ssp_ssg.train import adagrad, lr_schedule

    model = torch.nn.Linear(3, 2)
    assert lr_schedule(adagrad(model, OptimConfig()), OptimConfig(), 10) is None  # §5: constant
    optim = OptimConfig(learning_rate=0.005, lr_schedule="cosine")
    optimizer = adagrad(model, optim)
    scheduler = lr_schedule(optimizer, optim, 10)
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.005) and rates[5] == pytest.approx(0.0025)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert ReproduceConfig.cpu().optim.lr_schedule == "cosine"
    assert ReproduceConfig.paper().optim.lr_schedule == "constant"
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        OptimConfig(lr_schedule="linear")


def test_training_summary_reports_the_validation_change_over_the_last_quarter(tmp_path):
    from ssp_ssg.reproduce import late_validation_change

    log = tmp_path / "log.csv"
    log.write_text("step,train/loss,eval/val_error,eval/val_average_precision,"
                   "eval/val_balanced_accuracy\n"
                   "100,0.5,14.0,50.0,60.0\n200,0.4,13.5,54.0,61.0\n"
                   "300,0.3,13.2,55.5,63.0\n400,0.3,13.1,56.0,64.5\n")
    assert late_validation_change(log, "attributes", balanced=False) == [300, 55.5, 56.0, 0.5]
    assert late_validation_change(log, "attributes", balanced=True) == [300, 63.0, 64.5, 1.5]
    log.write_text("step,train/loss,eval/val_mean_iou\n800,2.0,70.0\n1600,1.9,76.25\n")
    assert late_validation_change(log, "segmentation", balanced=False) == [800, 70.0, 76.25, 6.25]
    log.write_text("step,train/loss,eval/val_mean_iou\n1600,1.9,76.25\n")
    assert all("n/a: fewer than two" in cell
               for cell in late_validation_change(log, "joint", balanced=False))
    assert all("n/a: no training log" in cell
               for cell in late_validation_change(tmp_path / "none.csv", "attributes", False))


def test_config_overrides_from_the_command_line():
    from ssp_ssg.__main__ import apply_overrides

    config = apply_overrides(ReproduceConfig.smoke(),
                             ["optim.attribute_steps=7", "data.image_size=109,89",
                              "data.max_images=None", "architecture.ssg_pools=pool3,pool4"])
    assert config.optim.attribute_steps == 7
    assert config.data.image_size == (109, 89) and config.data.max_images is None
    assert config.architecture.ssg_pools == ("pool3", "pool4")
    with pytest.raises(ValueError, match="no field"):
        apply_overrides(config, ["optim.nonexistent=1"])


@pytest.mark.parametrize("argv, bf16, channels_last", [
    (["--scale", "smoke"], "off", False),
    (["--scale", "cpu"], "auto", True),
    (["--scale", "cpu", "--bf16", "on", "--no-channels-last"], "on", False),
    (["--scale", "smoke", "--bf16", "auto", "--channels-last"], "auto", True),
])
def test_reproduce_precision_and_layout_defaults_follow_the_scale(monkeypatch, argv, bf16, channels_last):
    import ssp_ssg.__main__ as cli
    import ssp_ssg.reproduce

    seen = {}
    monkeypatch.setattr(ssp_ssg.reproduce, "reproduce", lambda inputs, _argv: seen.setdefault("inputs", inputs))
    monkeypatch.setattr(cli, "_print_summary", lambda *_args: None)
    monkeypatch.setattr(torch, "set_num_threads", lambda _n: None)
    assert cli.main(["reproduce", *argv]) == 0
    settings = seen["inputs"].settings
    assert (settings.bf16, settings.channels_last) == (bf16, channels_last)


def test_pseudo_mask_module_imports_no_torch_and_builds_polygons():
    """pseudo_masks must run in .venv-masks (numpy, PIL, tqdm, mediapipe only)."""
    code = ("import sys, ssp_ssg.pseudo_masks; "
            "bad = [m for m in ('torch', 'tensorflow', 'common') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    from ssp_ssg.pseudo_masks import chain_edges, convex_hull

    square = [(0, 1), (1, 2), (2, 3), (3, 0)]
    assert sorted(chain_edges(square)[0]) == [0, 1, 2, 3]
    assert [len(c) for c in chain_edges([(0, 1), (1, 2), (5, 6)])] == [3, 2]
    hull = convex_hull(np.array([[0, 0], [2, 0], [2, 2], [0, 2], [1, 1]], dtype=float))
    assert len(hull) == 4


def test_throughput_times_attribute_nets_and_the_parser_in_every_requested_mode():
    """``python -m ssp_ssg throughput --modes``: one positive rate per model and mode, the parser
    under its deep-supervision loss, BBox with fixed landmarks; an unknown mode is refused."""
    from ssp_ssg.throughput import measure_models

    rows = measure_models(["avgpool", "bbox", "parser"], (109, 89), 1 / 16, batch_size=2, steps=1,
                          device="cpu", modes=("fp32", "bf16-cl"))
    assert [(row["model"], row["mode"]) for row in rows] == [
        (model, mode) for model in ("avgpool", "bbox", "parser") for mode in ("fp32", "bf16-cl")]
    assert all(row["images_per_second"] > 0 for row in rows)
    with pytest.raises(ValueError, match="unknown mode"):
        measure_models(["avgpool"], (109, 89), 1 / 16, batch_size=2, steps=1, device="cpu", modes=("fp16",))
