"""ssp_ssg's train / validation / test split (data.make_splits) and the cpu scale's settings."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.data.celeba import read_celeba
from ssp_ssg.config import DataConfig, ReproduceConfig
from ssp_ssg.data import make_splits


@pytest.fixture
def annotations(synthetic_celeba_root):
    return read_celeba(synthetic_celeba_root)


def test_official_partition_gives_train_val_test(annotations):
    splits = make_splits(annotations, DataConfig(parsing_train_images=5, parsing_val_images=None,
                                                 parsing_test_images=2))
    assert splits.description.startswith("official partition")
    for name, code in (("train", 0), ("val", 1), ("test", 2)):
        assert np.all(annotations.partition[getattr(splits, name)] == code), name
    assert len(splits.parsing_train) == 5 and set(splits.parsing_train) <= set(splits.train)
    assert np.array_equal(splits.parsing_val, splits.val)
    assert len(splits.parsing_test) == 2 and set(splits.parsing_test) <= set(splits.test)


def test_train_only_images_are_split_by_identity(annotations):
    """The shared copy is official-train only: whole identities go to test, then validation."""
    train_only = dataclasses.replace(annotations, partition=np.zeros(len(annotations), np.int8))
    splits = make_splits(train_only, DataConfig(test_fraction=0.25, val_fraction=0.25))
    assert splits.description.startswith("identity split")
    sets = [set(annotations.identities[getattr(splits, name)]) for name in ("train", "val", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(splits.train) + len(splits.val) + len(splits.test) == len(annotations)
    assert abs(len(splits.test) - 16) <= 4 and abs(len(splits.val) - 16) <= 4  # 4 images an identity
    assert set(splits.parsing_train) == set(splits.train)  # parsing_train_images=None: all of them
    with pytest.raises(ValueError, match="val_fraction"):
        make_splits(train_only, DataConfig(test_fraction=0.5, val_fraction=0.5))


def test_cpu_scale_uses_every_image_at_a_quarter_width():
    cpu = ReproduceConfig.cpu()
    assert cpu.data.max_images is None and cpu.data.parsing_train_images is None
    assert cpu.architecture.width_multiplier == 0.25 and tuple(cpu.data.image_size) == (109, 89)
    assert cpu.eval_every > 0 and cpu.optim.batch_size == 32
    assert (cpu.data.test_fraction, cpu.data.val_fraction) == (0.2, 0.1)
