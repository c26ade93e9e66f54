"""celeba_resnet_densenet with the decoded-image cache (issue #16): a run decodes every image once,
its epochs and later runs read pixels from the cache, and the pixels are the ones FaceDataset gives."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from celeba_resnet_densenet.config import DataConfig, ExperimentConfig, GridConfig, RuntimeConfig
from celeba_resnet_densenet.data import cached_split_datasets, load_sample, split_datasets
from celeba_resnet_densenet.pipeline import run_grids


def _tiny_config(cache_dir: Path) -> ExperimentConfig:
    return ExperimentConfig.smoke(
        backbones=("densenet121",),
        data=DataConfig(sample_size=96, image_size=(64, 64), synthetic_n=96, synthetic_size=(109, 89)),
        grid=GridConfig(learning_rates=(0.001,), dropouts=(0.3,)),
        runtime=RuntimeConfig(progress=False, tensorboard=False, image_cache_dir=str(cache_dir)))


def test_a_cached_run_decodes_each_image_once_and_a_second_run_none(tmp_path, decoded):
    config = _tiny_config(tmp_path / "cache")
    sample, _, runs = run_grids(config, tmp_path / "first")
    assert runs["densenet121"].final["epochs_trained"] == 2
    images = [path.name for path in sample.annotations.image_paths()]
    assert sorted(decoded) == sorted(images)  # the cache build; both epochs and validation read the cache
    decoded.clear()
    run_grids(config, tmp_path / "second")
    assert decoded == []  # a later run reads the same cache


def test_cached_pixels_are_the_pixels_face_dataset_decodes(tmp_path):
    config = _tiny_config(tmp_path / "cache")
    sample = load_sample(config.data, None)
    no_flip = dataclasses.replace(config.data, hflip=False)
    cached = cached_split_datasets(sample, no_flip, tmp_path / "cache", progress=False)
    decoded_each_time = split_datasets(sample, no_flip)
    for split in ("train", "test"):
        for index in (0, len(cached[split]) - 1):
            a, b = cached[split][index], decoded_each_time[split][index]
            assert torch.equal(a["attributes"], b["attributes"])
            assert torch.allclose(a["image"], b["image"], atol=1e-5), (split, index)
    assert json.loads(next((tmp_path / "cache").glob("*.json")).read_text())["n_images"] == len(sample.annotations)


def test_flips_are_drawn_from_torch_and_only_on_train(tmp_path):
    config = _tiny_config(tmp_path / "cache")
    sample = load_sample(config.data, None)
    flipped = dataclasses.replace(config.data, hflip=True)
    datasets = cached_split_datasets(sample, flipped, tmp_path / "cache", progress=False)
    torch.manual_seed(0)
    draws = [datasets["train"][0]["image"] for _ in range(16)]
    assert any(not torch.equal(draws[0], image) for image in draws)  # some draws flip
    assert all(torch.equal(draws[0], image) or torch.equal(draws[0], image.flip(-1)) for image in draws)
    assert all(torch.equal(datasets["val"][0]["image"], datasets["val"][0]["image"]) for _ in range(4))
    torch.manual_seed(0)
    again = [datasets["train"][0]["image"] for _ in range(16)]
    assert all(torch.equal(a, b) for a, b in zip(draws, again))  # seeded: a resumed run repeats them
    assert np.isfinite(draws[0].numpy()).all()


SHARED_CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.real_data
def test_the_shipped_model_labels_held_out_real_faces():
    """The model shipped in ``celeba_resnet_densenet/pretrained`` on 300 images of the identity-
    disjoint test split of the shared CelebA copy, through ``predict``'s own path (files on disk,
    geometry step, stored thresholds): a floor well under the committed run's test mean AUROC, so a
    broken export, preprocessing or threshold file fails it on any CPU."""
    from celeba_resnet_densenet.inference import SHIPPED_MODEL, AttributePredictor
    from common.metrics import auroc

    if not (SHARED_CELEBA / "celeba").is_dir():
        pytest.skip("needs ../shared/data (CelebA)")
    config = ExperimentConfig.cpu(data_root=str(SHARED_CELEBA))
    sample = load_sample(config.data, config.data_root)
    rows = sample.splits["test"][:300]
    predictor = AttributePredictor(SHIPPED_MODEL, device="cpu")
    assert predictor.meta["image_size"] == list(config.data.image_size)
    paths = [sample.annotations.image_paths()[i] for i in rows]
    predictions = predictor(paths)
    probabilities = np.array([[p.probabilities[name] for name in predictor.attribute_names] for p in predictions])
    labels = sample.annotations.attributes[rows]
    assert float(np.nanmean(auroc(labels, probabilities))) > 0.80
    decisions = probabilities >= predictor.thresholds
    majority = labels.mean(axis=0) >= 0.5
    assert float((decisions == labels).mean()) > float((majority == labels).mean())
