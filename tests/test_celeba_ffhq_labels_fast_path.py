"""celeba_ffhq_labels on the fast path (issue #16): the decoded-image cache (training decodes each
image once, a later run none; the cached pixels are FaceDataset's), RandAugment on the cached uint8
pixels seeded by torch, and the bf16 switch decided once per training folder."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import common.train
from common.data.celeba import read_celeba

from celeba_ffhq_labels.config import MODELS, ExperimentConfig
from celeba_ffhq_labels.data import cached_training_datasets, evaluation_dataset, make_splits
from celeba_ffhq_labels.train import BF16_DECISION_FILE, TRAIN_DIR, train_classifier


def _tiny_config(cache_dir: Path | None, **runtime) -> ExperimentConfig:
    config = ExperimentConfig.smoke(data_root=None)
    config = config.with_overrides(data={"max_images": 96, "synthetic_n": 96}, optim={"epochs": 2, "batch_size": 16},
                                   runtime={"image_cache_dir": None if cache_dir is None else str(cache_dir),
                                            **runtime})
    return dataclasses.replace(config, model=dataclasses.replace(config.model, input_size=(32, 32)))


@pytest.fixture(scope="module")
def annotations(synthetic_celeba_root):
    return read_celeba(synthetic_celeba_root)


def test_cached_training_decodes_each_image_once_and_a_later_run_none(annotations, tmp_path, decoded):
    config = _tiny_config(tmp_path / "cache")
    splits = make_splits(annotations, config.data)
    trained = train_classifier(config, annotations, splits, tmp_path / "first")
    assert trained.result.step == 2 * (len(splits.train) // 16)  # two epochs, one validation each
    names = [path.name for path in annotations.image_paths()]
    expected = sorted(names[row] for row in np.concatenate([splits.train, splits.val]))
    assert sorted(decoded) == expected  # the cache build; both epochs and every validation read the cache
    decoded.clear()
    train_classifier(config, annotations, splits, tmp_path / "second")
    assert decoded == []
    assert trained.bf16_decision == {"use_bf16": False, "reason": "--bf16 off"}


def test_cached_pixels_are_the_pixels_face_dataset_decodes(annotations, tmp_path):
    config = _tiny_config(tmp_path / "cache")
    splits = make_splits(annotations, config.data)
    cached = cached_training_datasets(annotations, splits, config.model, config.data, tmp_path / "cache",
                                      progress=False)
    decoded_each_time = evaluation_dataset(annotations, splits.val, config.model)
    assert len(cached["val"]) == len(splits.val) and len(cached["train"]) == len(splits.train)
    for index in (0, len(splits.val) - 1):
        a, b = cached["val"][index], decoded_each_time[index]
        assert torch.equal(a["attributes"], b["attributes"])
        assert torch.allclose(a["image"], b["image"], atol=1e-5), index


def test_randaugment_on_cached_pixels_is_seeded_by_torch_and_only_on_train(annotations, tmp_path):
    config = _tiny_config(tmp_path / "cache")
    splits = make_splits(annotations, config.data)
    cached = cached_training_datasets(annotations, splits, config.model, config.data, tmp_path / "cache",
                                      progress=False)
    torch.manual_seed(0)
    draws = [cached["train"][0]["image"] for _ in range(8)]
    assert any(not torch.equal(draws[0], image) for image in draws)
    torch.manual_seed(0)
    assert all(torch.equal(a, cached["train"][0]["image"]) for a in draws)  # a resumed run repeats them
    assert torch.equal(cached["val"][0]["image"], cached["val"][0]["image"])


def test_bf16_auto_is_timed_once_and_kept_with_the_training_folder(annotations, tmp_path, monkeypatch):
    calibrations = []

    def fake_calibration(make_model, make_batch, loss_fn, *, batch_size, channels_last):
        calibrations.append(batch_size)
        outputs = make_model()(make_batch(2)[0])
        assert outputs.shape == (2, 40)
        return common.train.Bf16Calibration(
            use_bf16=False, reason="bf16 step 0.80x fp32 (<= 1.10)", cpu="test CPU", native_bf16=True,
            fp32_images_per_second=10.0, bf16_images_per_second=8.0, bf16_speedup=0.8, min_speedup=1.1,
            batch_size=batch_size, steps=3, warmup_steps=1, channels_last=channels_last)

    monkeypatch.setattr(common.train, "calibrate_bf16", fake_calibration)
    config = _tiny_config(None, bf16="auto")
    splits = make_splits(annotations, config.data)
    trained = train_classifier(config, annotations, splits, tmp_path / "run")
    record = json.loads((tmp_path / "run" / TRAIN_DIR / BF16_DECISION_FILE).read_text())
    assert record == trained.bf16_decision and record["use_bf16"] is False and calibrations == [16]
    train_classifier(config, annotations, splits, tmp_path / "run")  # resumes: reads the decision
    assert calibrations == [16]


def test_scales_and_models():
    cpu = ExperimentConfig.cpu()
    assert cpu.runtime.image_cache_dir is not None and cpu.runtime.bf16 == "auto"
    smoke = ExperimentConfig.smoke()
    assert smoke.runtime.image_cache_dir is None and smoke.runtime.bf16 == "off"
    assert MODELS["seresnext101"] == ExperimentConfig.paper().model
