"""TensorFlow / tf-slim runtime set-up shared by every part of the package.

The paper (Canal Garcia et al., §3.3–3.4) used TensorFlow with tf-slim; this module makes the
pinned TensorFlow 2.21 + tf-slim 1.1 work together and seeds them:

* torch and torchvision are imported before TensorFlow whenever installed: with the pinned wheels the
  other order segfaults in a process that later loads torch (the converter and the test suite
  load both).
* tf-slim 1.1 imports ``tf_keras.legacy_tf_layers`` (through ``tensorflow.python.layers``),
  which tf-keras 2.21 only ships as ``tf_keras.src.legacy_tf_layers``; the alias is installed in
  ``sys.modules`` before ``tf_slim`` is imported.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Iterator

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def import_tensorflow() -> ModuleType:
    """Import TensorFlow (after torch, when torch is installed) and return the module."""
    if "tensorflow" not in sys.modules:
        for name in ("torch", "torchvision"):  # torchvision after TensorFlow segfaults too
            if importlib.util.find_spec(name) is not None:
                importlib.import_module(name)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


def import_tf_slim() -> ModuleType:
    """Import ``tf_slim`` with the ``tf_keras.legacy_tf_layers`` alias it needs under TF 2.21."""
    import_tensorflow()
    if "tf_keras.legacy_tf_layers" not in sys.modules:
        legacy_layers = importlib.import_module("tf_keras.src.legacy_tf_layers")
        sys.modules["tf_keras.legacy_tf_layers"] = legacy_layers
        for submodule in ("base", "convolutional", "core", "normalization", "pooling"):
            sys.modules[f"tf_keras.legacy_tf_layers.{submodule}"] = importlib.import_module(
                f"tf_keras.src.legacy_tf_layers.{submodule}")
    import tf_slim

    return tf_slim


def seed_tensorflow(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow's kernels deterministic.

    ``enable_op_determinism`` also covers graph-mode sessions (the tf-slim fine-tuning), whose
    graph-level seed is set separately with ``tf.compat.v1.set_random_seed``.
    """
    tf = import_tensorflow()
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def tensorflow_devices() -> list[str]:
    """Names of the devices TensorFlow can use, e.g. ``["CPU:0"]`` (no GPU on the CI machines)."""
    tf = import_tensorflow()
    return [device.name.removeprefix("/physical_device:") for device in tf.config.list_physical_devices()]


@contextlib.contextmanager
def tf1_tensor_semantics() -> Iterator[None]:
    """TF1 identity semantics for tensors and variables while a tf-slim graph is built.

    Under TF2 semantics every ``hash(variable)`` asks whether execution is eager, and the legacy
    layers behind tf-slim hash all global variables each time they add one: building slim's
    InceptionV3 becomes quadratic in its ~800 variables (tens of CPU seconds). TF1 semantics
    (``tf.compat.v1.disable_tensor_equality``, the behaviour tf-slim was written for) make the
    hash ``id(variable)``; the previous setting is restored afterwards.
    """
    tf = import_tensorflow()
    from tensorflow.python.framework import tensor as tensor_lib

    was_enabled = tensor_lib.Tensor._USE_EQUALITY  # no public getter for this switch
    tf.compat.v1.disable_tensor_equality()
    try:
        yield
    finally:
        if was_enabled:
            tf.compat.v1.enable_tensor_equality()
