"""Approach 1's bottleneck cache and the TensorFlow training loop (checkpoints, resume, logs)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from common.synthetic import write_mtfl_layout
from mtfl_compare.bottlenecks import BottleneckCache, cached_bottlenecks
from mtfl_compare.config import DataConfig
from mtfl_compare.data import open_mtfl


class CountingExtractor:
    """Stands in for InceptionV3: a deterministic 2048-d feature of each face, counting calls."""

    def __init__(self):
        self.faces_seen = 0

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        self.faces_seen += len(faces)
        means = faces.reshape(len(faces), -1, 3).mean(axis=1)
        return np.repeat(means, 2048 // 3 + 1, axis=1)[:, :2048].astype(np.float32)


@pytest.fixture(scope="module")
def tiny_mtfl(tmp_path_factory):
    root = write_mtfl_layout(tmp_path_factory.mktemp("mtfl"), n_train=6, n_test=2, seed=0)
    config = DataConfig(data_root=str(root))
    train, _ = open_mtfl(config, seed=0)
    return config, train


def test_bottleneck_cache_is_reused_on_the_second_run(tiny_mtfl, tmp_path):
    config, train = tiny_mtfl
    cache = BottleneckCache.create(tmp_path, train.root, "nose", 75, "weights-a")
    extractor = CountingExtractor()
    first = cached_bottlenecks(train, np.arange(6), "nose", 75, config, cache, extractor, batch_size=4)
    assert first.n_computed == 6 and extractor.faces_seen == 6
    files = sorted(cache.folder.rglob("*.npy"))
    assert len(files) == 6 and all("lfw_5590" in str(path) for path in files)
    modified = [path.stat().st_mtime_ns for path in files]

    second = cached_bottlenecks(train, np.arange(6), "nose", 75, config, cache, extractor, batch_size=4)
    assert second.n_computed == 0 and extractor.faces_seen == 6      # InceptionV3 not run again
    np.testing.assert_array_equal(second.features, first.features)
    assert [path.stat().st_mtime_ns for path in files] == modified

    partly = cached_bottlenecks(train, np.array([1, 5]), "nose", 75, config, cache, extractor)
    assert partly.n_computed == 0 and partly.rows.tolist() == [1, 5]
    np.testing.assert_array_equal(partly.features, first.features[[1, 5]])


def test_bottleneck_cache_is_keyed_by_crop_and_weights(tiny_mtfl, tmp_path):
    config, train = tiny_mtfl
    extractor = CountingExtractor()
    for crop, weights in (("nose", "a"), ("original", "a"), ("nose", "b")):
        cache = BottleneckCache.create(tmp_path, train.root, crop, 75, weights)
        result = cached_bottlenecks(train, np.arange(3), crop, 75, config, cache, extractor)
        assert result.n_computed == 3
    assert extractor.faces_seen == 9


def test_bottleneck_of_a_rewritten_image_is_recomputed(tiny_mtfl, tmp_path):
    """Cached features belong to the pixels they came from: an image written again (new size /
    mtime) is run through the network again, the others are still read back."""
    import os

    config, train = tiny_mtfl
    cache = BottleneckCache.create(tmp_path, train.root, "nose", 75, "weights-a")
    extractor = CountingExtractor()
    cached_bottlenecks(train, np.arange(3), "nose", 75, config, cache, extractor)
    image = train.image_paths[1]
    status = os.stat(image)
    os.utime(image, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    again = cached_bottlenecks(train, np.arange(3), "nose", 75, config, cache, extractor)
    assert again.n_computed == 1 and extractor.faces_seen == 4


def _train(run_dir, steps, features, labels):
    from mtfl_compare.tf_runtime import import_tensorflow, seed_tensorflow
    from mtfl_compare.models import softmax_top_layer
    from mtfl_compare.train import train_keras_classifier

    tf = import_tensorflow()
    seed_tensorflow(0)
    model = softmax_top_layer(features.shape[1])
    outcome = train_keras_classifier(
        model, tf.keras.optimizers.SGD(0.5), features[:48], labels[:48], features[48:], labels[48:],
        steps=steps, batch_size=8, eval_every=2, run_dir=run_dir, seed=0, snapshot_steps=[4])
    return model, outcome


def test_keras_training_resumes_from_its_tf_checkpoint_exactly(tmp_path, rng):
    labels = rng.integers(0, 2, 64)
    features = (rng.normal(size=(64, 16)) + 2.0 * labels[:, None]).astype(np.float32)
    uninterrupted, _ = _train(tmp_path / "a", 8, features, labels)
    _train(tmp_path / "b", 4, features, labels)                     # "interrupted" after 4 steps
    resumed, outcome = _train(tmp_path / "b", 8, features, labels)  # rerun continues to step 8
    for expected, actual in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(actual, expected)
    assert (tmp_path / "b" / "checkpoints" / "checkpoint").is_file()
    assert Path(outcome.snapshots[4] + ".index").is_file()
    with open(tmp_path / "b" / "log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["step"]) for row in rows] == [2, 4, 6, 8]
    assert float(rows[-1]["val_accuracy"]) > 0.8                   # separable features are learned
    assert any((tmp_path / "b" / "tb").iterdir())


def test_cnn_outputs_have_two_logits():
    from mtfl_compare.models import cascade_cnn, tcdcn

    images = np.zeros((2, 60, 60, 3), np.float32)
    assert tcdcn(60)(images).shape == (2, 2)
    cascade = cascade_cnn(40, feature_maps=8, fc_units=16)
    assert cascade(images[:, :40, :40]).shape == (2, 2)
    assert {"inception", "conv4", "pool4", "fc"} <= {layer.name for layer in cascade.layers}
    assert sum(layer.name.startswith("conv") for layer in cascade.layers) == 4
