"""Training of attribute_inversion through common.train: determinism and exact resume for ours and
CycleGAN (whose image pools are part of the checkpoint), TensorBoard logs and sample grids; and the
fast path (issue #16): the decoded-image cache (the training pool and held-out faces decoded,
centre-square cropped and scaled once; no later epoch or run opens an image, and the cached faces
train the weights the decoded ones do, flips included, across a resume), and ``--bf16 off|on|auto``
decided once per training run and kept in its folder."""
from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import common.train
from common.checkpoint import load_checkpoint
from common.data.celeba import read_celeba
from attribute_inversion.__main__ import build_config, parse_args
from attribute_inversion.config import (DEFAULT_IMAGE_CACHE_DIR, CycleGANConfig, DataConfig, DiscriminatorConfig,
                                        EvaluationConfig, JudgeConfig, OptimConfig, ReproduceConfig, UNetConfig)
from attribute_inversion.data import attribute_training_set, heldout_test_set, make_split, open_face_images
from attribute_inversion.train import BF16_DECISION_FILE, train_cyclegan, train_inversion, train_judge

ATTRIBUTE = "Mouth_Slightly_Open"


def tiny_config(max_steps: int, cache_dir=None, bf16: str = "off") -> ReproduceConfig:
    """32x32 faces, 4-channel networks, batch 4, constant learning rate (a cut run resumes on the
    same schedule)."""
    return ReproduceConfig(
        scale="test",
        data=DataConfig(attributes=(ATTRIBUTE,), image_size=32, test_images_per_class=2, heldout_fraction=0.3),
        generator=UNetConfig(base_channels=4, max_channels=16),
        discriminator=DiscriminatorConfig(base_channels=4, max_channels=16),
        cyclegan=CycleGANConfig(generator_channels=4, discriminator_channels=4, num_residual_blocks=1, pool_size=3),
        optim=OptimConfig(batch_size=4, max_steps=max_steps, decay_start_fraction=1.0),
        evaluation=EvaluationConfig(grid_images=4), judge=JudgeConfig(channels=4, max_steps=max_steps, batch_size=8),
        checkpoint_every=0, device="cpu", bf16=bf16, image_cache_dir=None if cache_dir is None else str(cache_dir))


@pytest.fixture(scope="module")
def data(synthetic_celeba_root):
    annotations = read_celeba(synthetic_celeba_root)
    return annotations, make_split(annotations, tiny_config(1).data)


def weights(models) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value.clone() for name, model in models.items()
            for key, value in model.state_dict().items()}


def assert_same(first, second):
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.mark.parametrize("train_fn", [train_inversion, train_cyclegan], ids=["ours", "cyclegan"])
def test_training_is_seeded_and_resumes_exactly(train_fn, data, tmp_path):
    annotations, split = data
    straight, _ = train_fn(annotations, split, ATTRIBUTE, tiny_config(4), tmp_path / "straight")
    # A second run from the same seed, cut after 2 steps and resumed, ends with the same weights.
    train_fn(annotations, split, ATTRIBUTE, tiny_config(2), tmp_path / "resumed")
    resumed, result = train_fn(annotations, split, ATTRIBUTE, tiny_config(4), tmp_path / "resumed")
    assert result.step == 4
    assert_same(weights(straight), weights(resumed))

    out = tmp_path / "straight"
    assert (out / "last.pt").is_file()
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert (out / "samples" / "step_000004.png").is_file()


def test_generator_training_lowers_the_reconstruction_loss(data, tmp_path):
    """Eq. 4's reconstruction term falls from the first 10 steps to the next 10 (log rows are
    10-step means), every logged loss is finite, and the sample grid's L1 change is measured."""
    annotations, split = data
    config = tiny_config(20)
    config.optim = dataclasses.replace(config.optim, learning_rate=2e-3)
    _, result = train_inversion(annotations, split, ATTRIBUTE, config, tmp_path / "ours")
    with open(tmp_path / "ours" / "log.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["train/g_rec"]]
    assert [int(row["step"]) for row in rows] == [10, 20]
    for name in ("train/g_rec", "train/g_fm", "train/g_cls_fake", "train/d_cls_real", "train/g_adversarial"):
        assert all(math.isfinite(float(row[name])) for row in rows), name
    assert float(rows[1]["train/g_rec"]) < float(rows[0]["train/g_rec"]), rows  # measured: 0.381 -> 0.350
    assert result.history[-1]["sample_l1_change"] > 0


def test_judge_is_trained_on_the_training_pool_only(data, tmp_path):
    annotations, split = data
    judge, result = train_judge(annotations, split, tiny_config(3), tmp_path / "judge")
    assert result.step == 3
    assert judge.classifier.out_features == 1


@pytest.mark.parametrize("train_fn", [train_inversion, train_cyclegan], ids=["ours", "cyclegan"])
def test_bf16_autocast_and_channels_last_path_runs(train_fn, data, tmp_path):
    """The GPU settings (bf16 autocast, channels_last) exercised on CPU."""
    annotations, split = data
    config = tiny_config(2)
    config.bf16, config.channels_last = "on", True
    models, result = train_fn(annotations, split, ATTRIBUTE, config, tmp_path / "bf16")
    assert result.step == 2
    for model in models.values():
        assert all(torch.isfinite(p).all() for p in model.parameters())


# --------------------------------------------------------------------------- the image cache


def test_two_epochs_decode_each_image_once_and_a_later_run_none(data, tmp_path, decoded):
    """Two epochs of our GAN (and its test-face sample grids) read every face from the cache built
    at the start: each image of the training pool and the held-out set is decoded once, then never
    again, in this run, its resume or the judge's run."""
    annotations, _ = data
    cache_dir = tmp_path / "cache"
    small_pool = dataclasses.replace(tiny_config(1).data, max_train_images=16)  # a few steps an epoch
    split = make_split(annotations, small_pool)
    steps_per_epoch = len(attribute_training_set(open_face_images(annotations, split, 32), split, ATTRIBUTE,
                                                 small_pool)) // 4
    config = dataclasses.replace(tiny_config(2 * steps_per_epoch + 1, cache_dir), data=small_pool)
    _, result = train_inversion(annotations, split, ATTRIBUTE, config, tmp_path / "ours")
    assert result.step == 2 * steps_per_epoch + 1  # into the third epoch
    names = [path.name for path in annotations.image_paths()]
    cached = np.union1d(split.train_indices, split.heldout_indices)
    assert sorted(decoded) == sorted(names[row] for row in cached)
    decoded.clear()
    resumed = dataclasses.replace(config, optim=dataclasses.replace(config.optim, max_steps=result.step + 1))
    train_inversion(annotations, split, ATTRIBUTE, resumed, tmp_path / "ours")
    train_judge(annotations, split, dataclasses.replace(config, judge=dataclasses.replace(config.judge, max_steps=1)),
                tmp_path / "judge")
    assert decoded == []


def test_cached_faces_train_the_weights_decoded_faces_do_and_resume_exactly(data, tmp_path):
    """The cache stores the pixels decode + crop + resize gives and flips them with the same draw
    from torch's generator, so a cached run cut after 2 steps and resumed ends with the weights of
    an uninterrupted run that decodes every image."""
    annotations, split = data
    decoding, _ = train_inversion(annotations, split, ATTRIBUTE, tiny_config(4), tmp_path / "decoding")
    cache_dir = tmp_path / "cache"
    train_inversion(annotations, split, ATTRIBUTE, tiny_config(2, cache_dir), tmp_path / "cached")
    cached, result = train_inversion(annotations, split, ATTRIBUTE, tiny_config(4, cache_dir), tmp_path / "cached")
    assert result.step == 4
    straight, resumed = weights(decoding), weights(cached)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key


def test_cached_test_faces_are_the_decoded_ones_and_uncached_rows_are_refused(data, tmp_path):
    annotations, split = data
    decoding = heldout_test_set(open_face_images(annotations, split, 32), split, ATTRIBUTE)
    faces = open_face_images(annotations, split, 32, tmp_path / "cache")
    cached = heldout_test_set(faces, split, ATTRIBUTE)
    assert len(cached) == len(decoding) == len(split.test_indices[ATTRIBUTE])
    for position in range(len(cached)):
        a, b = cached[position], decoding[position]
        assert a["index"] == b["index"] == position  # a position in the requested rows, as FaceDataset's
        assert torch.equal(a["attributes"], b["attributes"]) and torch.equal(a["image"], b["image"])
    assert faces.describe()["cached_images"] == len(np.union1d(split.train_indices, split.heldout_indices))
    outside = np.setdiff1d(np.arange(len(annotations)), faces.cached_rows)
    if len(outside):
        with pytest.raises(KeyError, match="not in the image cache"):
            faces.dataset(outside[:1])


def test_reproduce_options_choose_the_cache_and_the_precision():
    assert ReproduceConfig.cpu().image_cache_dir == DEFAULT_IMAGE_CACHE_DIR
    assert ReproduceConfig.smoke().image_cache_dir is None
    assert {ReproduceConfig.for_scale(scale).bf16 for scale in ("smoke", "cpu", "paper")} == {"off"}
    cpu = build_config(parse_args(["reproduce", "--scale", "cpu", "--bf16", "auto", "--image-cache-dir", "/tmp/c"]))
    assert (cpu.bf16, cpu.image_cache_dir) == ("auto", "/tmp/c")
    assert build_config(parse_args(["reproduce", "--scale", "cpu", "--no-image-cache"])).image_cache_dir is None
    with pytest.raises(SystemExit):
        parse_args(["reproduce", "--bf16", "fast"])
    with pytest.raises(SystemExit):
        parse_args(["reproduce", "--image-cache-dir", "/tmp/c", "--no-image-cache"])


# --------------------------------------------------------------------------- bf16


def test_bf16_on_is_recorded_and_a_resumed_run_keeps_it(data, tmp_path, monkeypatch):
    annotations, split = data
    run = tmp_path / "ours"
    train_inversion(annotations, split, ATTRIBUTE, tiny_config(1, bf16="on"), run)
    assert json.loads((run / BF16_DECISION_FILE).read_text()) == {"use_bf16": True, "reason": "--bf16 on"}

    def must_not_time(*args, **kwargs):
        raise AssertionError("a resumed run timed bf16 again")

    monkeypatch.setattr(common.train, "calibrate_bf16", must_not_time)
    models, result = train_inversion(annotations, split, ATTRIBUTE, tiny_config(2, bf16="auto"), run)
    assert result.step == 2 and load_checkpoint(run / "last.pt")["config"]["bf16"] is True
    assert all(torch.isfinite(p).all() for model in models.values() for p in model.parameters())
    with pytest.raises(ValueError, match="started with bf16 on"):
        train_inversion(annotations, split, ATTRIBUTE, tiny_config(3, bf16="off"), run)


@pytest.mark.parametrize("train", ["ours", "cyclegan", "judge"])
def test_bf16_auto_times_each_run_once_on_its_own_networks(train, data, tmp_path, monkeypatch):
    """"auto" calibrates a throwaway copy of the run's networks (a GAN as D(G(x)) under G's
    adversarial terms) once; the decision is kept in the run folder and read on resume."""
    annotations, split = data
    timed = []

    def fake_calibration(make_model, make_batch, loss_fn, *, batch_size, channels_last):
        images, labels = make_batch(2)
        loss = loss_fn(make_model()(images), labels)
        assert loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad
        timed.append(batch_size)
        return common.train.Bf16Calibration(
            use_bf16=False, reason="bf16 step 0.80x fp32 (<= 1.10)", cpu="test CPU", native_bf16=True,
            fp32_images_per_second=10.0, bf16_images_per_second=8.0, bf16_speedup=0.8, min_speedup=1.1,
            batch_size=batch_size, steps=3, warmup_steps=1, channels_last=channels_last)

    monkeypatch.setattr(common.train, "calibrate_bf16", fake_calibration)
    run = {"ours": lambda config, out: train_inversion(annotations, split, ATTRIBUTE, config, out),
           "cyclegan": lambda config, out: train_cyclegan(annotations, split, ATTRIBUTE, config, out),
           "judge": lambda config, out: train_judge(annotations, split, config, out)}[train]
    config = tiny_config(1, bf16="auto")
    run(config, tmp_path / train)
    record = json.loads((tmp_path / train / BF16_DECISION_FILE).read_text())
    assert record["use_bf16"] is False and record["bf16_speedup"] == 0.8
    assert timed == [8 if train == "judge" else 4]
    run(dataclasses.replace(config, optim=dataclasses.replace(config.optim, max_steps=2),
                            judge=dataclasses.replace(config.judge, max_steps=2)), tmp_path / train)
    assert len(timed) == 1
