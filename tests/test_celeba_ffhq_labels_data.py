"""Le & Lee §3.1: the identity-disjoint train / val / test split, datasets at the model input, and the
resume guard of the training folder."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.data.celeba import read_celeba

from celeba_ffhq_labels.config import ExperimentConfig
from celeba_ffhq_labels.data import (IDENTITY_RULE, OFFICIAL_RULE, SET_NAMES, evaluation_dataset, make_splits,
                                     training_dataset)
from celeba_ffhq_labels.train import _experiment_fingerprint
from common.checkpoint import require_same_configuration


@pytest.fixture(scope="module")
def annotations(synthetic_celeba_root):
    return read_celeba(synthetic_celeba_root)


def identities_by_set(annotations, splits) -> dict[str, set]:
    return {name: set(annotations.identities[getattr(splits, name)].tolist()) for name in SET_NAMES}


def assert_identity_disjoint(annotations, splits):
    ids = identities_by_set(annotations, splits)
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    rows = np.concatenate([splits.train, splits.val, splits.test])
    assert len(np.unique(rows)) == len(rows) == len(annotations)


def test_auto_split_uses_the_official_partition_when_it_has_all_three_parts(annotations):
    config = ExperimentConfig.smoke().data
    assert config.split == "auto"
    splits = make_splits(annotations, config)
    assert splits.rule == OFFICIAL_RULE
    for name, code in zip(SET_NAMES, (0, 1, 2)):
        np.testing.assert_array_equal(annotations.partition[getattr(splits, name)], code)
    assert_identity_disjoint(annotations, splits)
    assert splits.identities == {name: len(ids) for name, ids in identities_by_set(annotations, splits).items()}
    assert f"{len(splits.test):,} test images" in splits.describe()


def test_identity_split_has_no_identity_in_two_sets_and_is_seeded(annotations):
    """Like shared/data: every image in the official train partition -> carve-out by identity."""
    train_only = annotations.subset(np.flatnonzero(annotations.partition == 0))
    config = ExperimentConfig.smoke().data
    splits = make_splits(train_only, config)
    assert splits.rule == IDENTITY_RULE
    assert_identity_disjoint(train_only, splits)
    sizes = splits.sizes()
    assert abs(sizes["test"] - config.test_fraction * len(train_only)) <= 4   # whole identities (4 images)
    assert abs(sizes["val"] - config.val_fraction * len(train_only)) <= 4
    again = make_splits(train_only, config)
    for name in SET_NAMES:
        np.testing.assert_array_equal(getattr(again, name), getattr(splits, name))
    other = make_splits(train_only, dataclasses.replace(config, split_seed=1))
    assert not np.array_equal(other.test, splits.test)
    # asked for explicitly, on data with a complete partition, the carve-out ignores the partition
    forced = make_splits(annotations, dataclasses.replace(config, split="identity"))
    assert forced.rule == IDENTITY_RULE
    assert_identity_disjoint(annotations, forced)


def test_official_split_refuses_a_train_only_folder_and_a_carve_out_needs_identities(annotations):
    config = dataclasses.replace(ExperimentConfig.smoke().data, split="official")
    train_only = annotations.subset(np.flatnonzero(annotations.partition == 0))
    with pytest.raises(ValueError, match="no val / test images.*--split identity"):
        make_splits(train_only, config)
    anonymous = dataclasses.replace(train_only, identities=None)
    with pytest.raises(ValueError, match="no identity_CelebA.txt"):
        make_splits(anonymous, dataclasses.replace(config, split="auto"))
    with pytest.raises(ValueError, match="unknown split 'random'"):
        make_splits(annotations, dataclasses.replace(config, split="random"))


def test_scales_split_by_identity_or_official_partition():
    assert ExperimentConfig.paper().data.split == "official"
    cpu = ExperimentConfig.cpu().data
    assert cpu.split == "auto" and cpu.max_images == 10_000  # all the shared images
    assert (cpu.test_fraction, cpu.val_fraction) == (0.2, 0.1)


def test_datasets_give_normalised_images_at_the_model_input(annotations):
    config = ExperimentConfig.smoke()
    splits = make_splits(annotations, config.data)
    train_sample = training_dataset(annotations, splits.train, config.model, config.data)[0]
    test_sample = evaluation_dataset(annotations, splits.test, config.model)[0]
    for sample in (train_sample, test_sample):
        assert sample["image"].shape == (3, *config.model.input_size)
        assert sample["image"].min() < 0 < sample["image"].max()  # ImageNet-normalised
        assert sample["attributes"].shape == (40,)
    np.testing.assert_array_equal(test_sample["attributes"].numpy(),
                                  annotations.attributes[splits.test[0]])


def test_training_folder_refuses_to_resume_with_another_configuration(tmp_path):
    config = ExperimentConfig.smoke()
    require_same_configuration(tmp_path, _experiment_fingerprint(config))
    runtime_only = config.with_overrides(runtime={"device": "cpu"})
    require_same_configuration(tmp_path, _experiment_fingerprint(runtime_only))  # runtime: fine
    with pytest.raises(ValueError, match=r"differs in \['optim'\]"):
        require_same_configuration(tmp_path, _experiment_fingerprint(config.with_overrides(optim={"epochs": 3})))
