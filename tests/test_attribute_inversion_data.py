"""Data of attribute_inversion: crop, oversampling, held-out test sets, CycleGAN's unpaired domains."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.attributes import ATTRIBUTE_INDEX
from common.data.celeba import read_celeba
from attribute_inversion.config import DataConfig
from attribute_inversion.data import (CentreSquareCrop, FaceImages, UnpairedDomains, attribute_training_set,
                                      cyclegan_training_set, make_split, oversampled_indices, heldout_test_set)

ATTRIBUTE = "Mouth_Slightly_Open"  # varies within identities, so both classes are held out


def test_centre_square_crop_keeps_the_centred_width_square():
    image = Image.new("RGB", (89, 109))
    image.putpixel((44, 10), (255, 0, 0))  # top row of the crop: (109 - 89) / 2 = 10
    cropped = CentreSquareCrop()(image)
    assert cropped.size == (89, 89)
    assert cropped.getpixel((44, 0)) == (255, 0, 0)


def test_oversampling_balances_the_classes_and_keeps_every_image():
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])  # 2 positives, 9 negatives
    indices = oversampled_indices(labels, seed=0)
    assert np.array_equal(indices, oversampled_indices(labels, seed=0))
    assert (labels[indices] == 1).sum() == (labels[indices] == 0).sum() == 9
    assert set(indices) == set(range(len(labels)))
    assert np.array_equal(np.sort(indices[labels[indices] == 0]), np.flatnonzero(labels == 0))
    with pytest.raises(ValueError, match="cannot oversample"):
        oversampled_indices(np.zeros(5))


@pytest.fixture(scope="module")
def annotations(synthetic_celeba_root):
    return read_celeba(synthetic_celeba_root)


def test_split_holds_out_test_faces_by_identity_and_caps_the_classes(annotations):
    config = DataConfig(attributes=(ATTRIBUTE,), image_size=32, test_images_per_class=5, heldout_fraction=0.3)
    split = make_split(annotations, config)
    test = split.test_indices[ATTRIBUTE]
    positives, negatives = split.test_counts[ATTRIBUTE]
    assert split.split_by_identity
    assert positives <= 5 and negatives <= 5 and positives + negatives == len(test)
    assert not set(test) & set(split.train_indices)
    assert not set(annotations.identities[test]) & set(annotations.identities[split.train_indices])
    labels = annotations.attributes[test, ATTRIBUTE_INDEX[ATTRIBUTE]]
    assert labels[:positives].all() and not labels[positives:].any()  # positives first
    assert make_split(annotations, config).test_indices[ATTRIBUTE].tolist() == test.tolist()


def test_split_caps_the_training_pool(annotations):
    config = DataConfig(attributes=(ATTRIBUTE,), image_size=32, heldout_fraction=0.3, max_train_images=20)
    assert len(make_split(annotations, config).train_indices) == 20


def test_training_and_test_sets_give_faces_in_tanh_range(annotations):
    config = DataConfig(attributes=(ATTRIBUTE,), image_size=32, test_images_per_class=4, heldout_fraction=0.3)
    split = make_split(annotations, config)
    faces = FaceImages(annotations, config.image_size)
    train = attribute_training_set(faces, split, ATTRIBUTE, config)
    labels = train.attributes[:, ATTRIBUTE_INDEX[ATTRIBUTE]]
    assert labels.sum() * 2 == len(labels)  # oversampled to balance
    sample = heldout_test_set(faces, split, ATTRIBUTE)[0]
    assert sample["image"].shape == (3, 32, 32)
    assert -1.0 <= sample["image"].min() and sample["image"].max() <= 1.0


def test_cyclegan_domains_are_the_negatives_and_positives_of_the_same_pool(annotations):
    config = DataConfig(attributes=(ATTRIBUTE,), image_size=32, heldout_fraction=0.3)
    split = make_split(annotations, config)
    domains = cyclegan_training_set(FaceImages(annotations, config.image_size), split, ATTRIBUTE, config)
    assert isinstance(domains, UnpairedDomains)
    column = ATTRIBUTE_INDEX[ATTRIBUTE]
    assert not domains.domain_a.attributes[:, column].any()
    assert domains.domain_b.attributes[:, column].all()
    assert len(domains.domain_a) + len(domains.domain_b) == len(split.train_indices)
    assert len(domains) == max(len(domains.domain_a), len(domains.domain_b))
    item = domains[0]
    assert item["image_a"].shape == item["image_b"].shape == (3, 32, 32)
