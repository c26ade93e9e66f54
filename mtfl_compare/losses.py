"""Losses of Canal Garcia et al.: softmax cross-entropy for every model (§3.3, §3.4) and, for
the slim fine-tuning (Table 2), slim's auxiliary-logits term and weight decay."""
from __future__ import annotations

from typing import Sequence

from mtfl_compare.tf_runtime import import_tensorflow


def softmax_cross_entropy(logits, labels):
    """Mean softmax cross-entropy of integer ``labels`` (the retrained top layer, Cascade CNN,
    TCDCN). Works eagerly, inside ``tf.function`` and in graphs."""
    tf = import_tensorflow()
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.int64), logits=logits))


def inception_finetune_loss(logits, aux_logits, labels, aux_weight: float = 0.4):
    """slim's ``train_image_classifier`` loss: cross-entropy of the logits plus ``aux_weight``
    times that of the auxiliary logits (graph mode, approach 2)."""
    return (softmax_cross_entropy(logits, labels)
            + aux_weight * softmax_cross_entropy(aux_logits, labels))


def weight_decay_loss(trained_scopes: Sequence[str] | None):
    """Sum of slim's L2 regularisers (Table 2: weight decay 4e-5) of the layers being trained.

    ``trained_scopes`` = ``("InceptionV3/Logits", "InceptionV3/AuxLogits")`` in step 1 (only the
    new layers are trained, so only they are decayed) and ``None`` (every layer) in step 4.
    Graph mode: reads the ``REGULARIZATION_LOSSES`` collection slim filled.
    """
    tf = import_tensorflow()
    terms = tf.compat.v1.losses.get_regularization_losses()
    if trained_scopes is not None:
        terms = [term for term in terms
                 if any(term.op.name.startswith(scope + "/") for scope in trained_scopes)]
    if not terms:
        raise ValueError(f"no regularisation losses under {trained_scopes}")
    return tf.add_n(terms, name="weight_decay")
