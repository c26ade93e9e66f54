"""Le & Lee §3.1: splits, datasets at the model input, and the resume guard of the training folder."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.data.celeba import read_celeba

from celeba_ffhq_labels.config import ExperimentConfig
from celeba_ffhq_labels.data import evaluation_dataset, make_splits, training_dataset
from celeba_ffhq_labels.train import _experiment_fingerprint
from common.checkpoint import require_same_configuration


@pytest.fixture(scope="module")
def annotations(synthetic_celeba_root):
    return read_celeba(synthetic_celeba_root)


def test_random_split_holds_out_twenty_percent_and_is_seeded(annotations):
    config = ExperimentConfig.smoke().data
    splits = make_splits(annotations, config)
    assert len(splits.test) == round(0.2 * len(annotations)) and splits.monitor is splits.test
    assert not set(splits.train) & set(splits.test)
    assert len(splits.train) + len(splits.test) == len(annotations)
    again = make_splits(annotations, config)
    np.testing.assert_array_equal(again.test, splits.test)
    other = make_splits(annotations, dataclasses.replace(config, split_seed=1))
    assert not np.array_equal(other.test, splits.test)


def test_official_split_uses_val_to_monitor_and_refuses_a_train_only_folder(annotations):
    config = dataclasses.replace(ExperimentConfig.smoke().data, split="official")
    splits = make_splits(annotations, config)
    np.testing.assert_array_equal(annotations.partition[splits.monitor], 1)
    np.testing.assert_array_equal(annotations.partition[splits.test], 2)
    train_only = annotations.subset(np.flatnonzero(annotations.partition == 0))
    with pytest.raises(ValueError, match="no val / test images"):
        make_splits(train_only, config)


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
