"""The networks compared by Canal Garcia et al. ("Prediction of Attributes", KTH 2018).

* InceptionV3 from ``tf_slim.nets.inception_v3`` (§3.3, Fig. 1) for both transfer approaches:
  its 2048-d ``PreLogits`` is the "bottleneck" of approach 1 and its ``Logits`` / ``AuxLogits``
  are replaced by new 2-class layers in approach 2.
* :func:`softmax_top_layer` — the single softmax layer retrained on cached bottlenecks (§3.3,
  Table 1; TensorFlow's image-retraining tutorial).
* :func:`cascade_cnn` — Cascade CNN (§3.4, Fig. 2): four convolutions with DeepID2+'s filter
  settings, four max-pools, one inception layer (as in DeepID3), one fully connected layer, ReLU.
* :func:`tcdcn` — TCDCN (§3.4, Fig. 3; Zhang et al. TPAMI 2016): four convolutions, three
  max-pools and a 256-d fully connected layer, ReLU.

The InceptionV3 builders are TF1-style graph code (tf-slim) and must run inside
``tf.Graph().as_default()``; the Keras networks are built eagerly.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

from mtfl_compare.tf_runtime import import_tensorflow, import_tf_slim

#: Variable scope of slim's InceptionV3; the checkpoints written by ``convert_weights`` use it.
INCEPTION_SCOPE = "InceptionV3"
#: The layers replaced and trained from scratch in approach 2 (paper §3.3, "Complete fine-tuning").
NEW_LAYER_SCOPES = (f"{INCEPTION_SCOPE}/Logits", f"{INCEPTION_SCOPE}/AuxLogits")
#: Smallest square input slim's InceptionV3 with its auxiliary head accepts (Mixed_6e >= 5x5).
MIN_INCEPTION_INPUT = 107
#: Pooling choices for the last block's pooling branch (``Mixed_7c/Branch_3``).
BRANCH_POOL_CHOICES = ("avg", "max")


@contextlib.contextmanager
def _mixed_7c_branch_pool(kind: str) -> Iterator[None]:
    """Build ``Mixed_7c``'s pooling branch with ``kind`` ("avg" = slim as published, "max").

    The 2015 ImageNet graph (inception-2015-12-05, the one FID uses) max-pools in the pooling
    branch of its last block, where slim's 2016 network average-pools; with the converted 2015
    weights ``"max"`` reproduces the original features exactly. slim offers no switch, so while
    the graph is built, ``avg_pool2d`` calls under the scope ``Mixed_7c/Branch_3`` are routed to
    ``max_pool2d`` (same kernel, stride and padding from the surrounding ``arg_scope``).
    """
    if kind not in BRANCH_POOL_CHOICES:
        raise ValueError(f"mixed_7c_branch_pool must be one of {BRANCH_POOL_CHOICES}, got {kind!r}")
    if kind == "avg":
        yield
        return
    tf = import_tensorflow()
    import_tf_slim()
    from tf_slim.layers import layers as slim_layers
    from tf_slim.nets import inception_v3 as slim_inception_v3

    original_layers = slim_inception_v3.layers_lib

    class _LayersWithMaxPoolInMixed7c:
        """``tf_slim.layers.layers`` with ``avg_pool2d`` replaced inside Mixed_7c/Branch_3."""

        def __getattr__(self, name):
            return getattr(original_layers, name)

        @staticmethod
        def avg_pool2d(inputs, kernel_size, *args, **kwargs):
            name_scope = tf.compat.v1.get_default_graph().get_name_scope()
            if name_scope.endswith("Mixed_7c/Branch_3"):
                return slim_layers.max_pool2d(inputs, kernel_size, *args, **kwargs)
            return slim_layers.avg_pool2d(inputs, kernel_size, *args, **kwargs)

    # arg_scope recognises decorated ops by this key; the router must look like avg_pool2d.
    _LayersWithMaxPoolInMixed7c.avg_pool2d._key_op = slim_layers.avg_pool2d._key_op
    slim_inception_v3.layers_lib = _LayersWithMaxPoolInMixed7c()
    try:
        yield
    finally:
        slim_inception_v3.layers_lib = original_layers


def inception_v3_prelogits(images, mixed_7c_branch_pool: str = "max"):
    """The 2048-d "bottleneck" (``PreLogits``, global average pool of ``Mixed_7c``) of slim's
    InceptionV3 in inference mode (paper §3.3, approach 1). ``images``: float (N,H,W,3) in [-1, 1].

    Only the convolutional base is built (no Logits), so the variables are exactly those of an
    ImageNet checkpoint's feature extractor. Returns a (N, 2048) tensor.
    """
    tf = import_tensorflow()
    slim = import_tf_slim()
    from tf_slim.nets import inception_v3 as slim_inception_v3

    with slim.arg_scope(slim_inception_v3.inception_v3_arg_scope()):
        with slim.arg_scope([slim.batch_norm, slim.dropout], is_training=False):
            with _mixed_7c_branch_pool(mixed_7c_branch_pool):
                features, _ = slim_inception_v3.inception_v3_base(images, scope=INCEPTION_SCOPE)
    return tf.reduce_mean(features, axis=[1, 2], name="PreLogits")


@dataclass
class InceptionClassifier:
    """Tensors of slim's InceptionV3 with a new ``num_classes``-way Logits / AuxLogits head."""

    logits: object
    aux_logits: object
    prelogits: object


def inception_v3_classifier(images, num_classes: int, is_training: bool, weight_decay: float = 4e-5,
                            dropout_keep_prob: float = 0.8, mixed_7c_branch_pool: str = "max",
                            reuse: bool | None = None,
                            batch_norm_training: bool | None = None) -> InceptionClassifier:
    """``tf_slim.nets.inception_v3`` with new ``Logits`` and ``AuxLogits`` (paper §3.3, approach 2).

    Args:
        images: float (N,H,W,3) in [-1, 1]; H, W >= :data:`MIN_INCEPTION_INPUT`.
        num_classes: 2 for one binary attribute.
        is_training: batch norm on batch statistics (updating the moving averages) and dropout
            on. A Python bool: slim's training and evaluation networks are two towers sharing
            variables (``reuse=True`` for the second), which builds far faster than a tensor switch.
        weight_decay: L2 regulariser scale slim attaches to every conv layer (Table 2: 4e-5);
            :func:`mtfl_compare.losses.weight_decay_loss` keeps only the trained layers' terms.
        mixed_7c_branch_pool: ``"max"`` for the converted 2015 weights, ``"avg"`` for slim's own
            2016-08-28 checkpoint.
        batch_norm_training: batch norm on batch statistics (True) or on its moving averages
            (False, "frozen": the ImageNet statistics, no update ops) while dropout follows
            ``is_training``; None = ``is_training`` (slim's behaviour). Fine-tuning on small
            batches uses False (README deviation 4).
    """
    slim = import_tf_slim()
    from tf_slim.nets import inception_v3 as slim_inception_v3

    if batch_norm_training is None:
        batch_norm_training = is_training
    with slim.arg_scope(slim_inception_v3.inception_v3_arg_scope(weight_decay=weight_decay)):
        # conv2d passes its normalizer_params to batch_norm explicitly, and explicit arguments
        # win over slim's inner arg_scope(is_training=...), so this sets batch norm alone
        conv_arguments = slim.current_arg_scope()[slim.arg_scope_func_key(slim.conv2d)]
        batch_norm = {**conv_arguments["normalizer_params"], "is_training": batch_norm_training}
        with slim.arg_scope([slim.conv2d], normalizer_params=batch_norm), \
                _mixed_7c_branch_pool(mixed_7c_branch_pool):
            logits, end_points = slim_inception_v3.inception_v3(
                images, num_classes=num_classes, is_training=is_training,
                dropout_keep_prob=dropout_keep_prob, reuse=reuse, scope=INCEPTION_SCOPE)
    return InceptionClassifier(logits=logits, aux_logits=end_points["AuxLogits"],
                               prelogits=end_points["PreLogits"])


def softmax_top_layer(bottleneck_size: int = 2048, num_classes: int = 2):
    """The retrained final layer of approach 1 (§3.3, Table 1): ``softmax(W x + b)`` on the
    bottleneck, initialised as TensorFlow's retraining tutorial does (truncated normal, σ=0.001).
    Returns a Keras model producing logits."""
    tf = import_tensorflow()
    keras = tf.keras
    bottlenecks = keras.Input(shape=(bottleneck_size,), name="bottleneck")
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.001),
        bias_initializer="zeros", name="final_training_ops")(bottlenecks)
    return keras.Model(bottlenecks, logits, name="bottleneck_softmax")


def _inception_module(x, branch_1x1: int, reduce_3x3: int, branch_3x3: int, reduce_5x5: int,
                      branch_5x5: int, pool_projection: int, name: str):
    """GoogLeNet-style inception layer (1x1, 1x1->3x3, 1x1->5x5, 3x3 max-pool->1x1), ReLU."""
    keras = import_tensorflow().keras
    conv = lambda filters, size, suffix: keras.layers.Conv2D(  # noqa: E731
        filters, size, padding="same", activation="relu", name=f"{name}_{suffix}")
    branch_0 = conv(branch_1x1, 1, "1x1")(x)
    branch_1 = conv(branch_3x3, 3, "3x3")(conv(reduce_3x3, 1, "3x3_reduce")(x))
    branch_2 = conv(branch_5x5, 5, "5x5")(conv(reduce_5x5, 1, "5x5_reduce")(x))
    branch_3 = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branch_3 = conv(pool_projection, 1, "pool_proj")(branch_3)
    return keras.layers.Concatenate(name=name)([branch_0, branch_1, branch_2, branch_3])


def cascade_cnn(input_size: int = 150, num_classes: int = 2, feature_maps: int = 128,
                fc_units: int = 512):
    """Cascade CNN of §3.4 (Fig. 2).

    DeepID2+ (Sun et al. 2014) settings for the four convolutions: 4x4, 3x3, 3x3 and 2x2 kernels,
    stride 1, ``feature_maps`` = 128 maps each, 2x2 max-pooling with stride 2; an inception layer
    (DeepID3) of 128 maps after the fourth convolution, the fourth max-pool, then one fully
    connected layer (DeepID2+'s 512 units) with ReLU and the 2-way softmax output. The
    convolutions share weights everywhere: the paper drops DeepID2+'s locally connected layers.
    Input: (input_size, input_size, 3) in [-1, 1] (150x150 in the paper, §3.1; the training
    loop scales the uint8 crops, README deviation 7).
    """
    keras = import_tensorflow().keras
    images = keras.Input(shape=(input_size, input_size, 3), name="image")
    x = images
    for index, kernel in enumerate((4, 3, 3, 2), start=1):
        x = keras.layers.Conv2D(feature_maps, kernel, activation="relu", name=f"conv{index}")(x)
        if index < 4:
            x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name=f"pool{index}")(x)
    x = _inception_module(x, branch_1x1=32, reduce_3x3=48, branch_3x3=48, reduce_5x5=8,
                          branch_5x5=16, pool_projection=32, name="inception")
    x = keras.layers.MaxPooling2D(2, strides=2, padding="same", name="pool4")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(images, logits, name="cascade_cnn")


def tcdcn(input_size: int = 60, num_classes: int = 2, fc_units: int = 256):
    """TCDCN feature extractor of §3.4 (Fig. 3), after Zhang et al. (TPAMI 2016).

    Input (60, 60, 3) in [-1, 1] (README deviation 7): conv 5x5x20, max-pool 2, conv 5x5x48,
    max-pool 2, conv 3x3x64, max-pool 2, conv 3x3x80 (all valid, stride 1, ReLU), a 256-d fully
    connected layer with ReLU and the 2-way output for one attribute.
    """
    keras = import_tensorflow().keras
    images = keras.Input(shape=(input_size, input_size, 3), name="image")
    x = images
    for index, (filters, kernel) in enumerate(((20, 5), (48, 5), (64, 3), (80, 3)), start=1):
        x = keras.layers.Conv2D(filters, kernel, activation="relu", name=f"conv{index}")(x)
        if index < 4:
            x = keras.layers.MaxPooling2D(2, strides=2, name=f"pool{index}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(images, logits, name="tcdcn")
