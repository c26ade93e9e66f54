"""Training loops of the three model families (TensorFlow, as in the paper).

* :func:`train_keras_classifier` — eager/``tf.function`` loop for the bottleneck softmax layer
  (approach 1, Table 1), the Cascade CNN and TCDCN (§3.4). Checkpoints are TF-format
  (``tf.train.Checkpoint`` + ``CheckpointManager``: model, optimizer, step) and a rerun resumes
  from the latest one; batches are a deterministic function of (seed, step), so a resumed run
  is the uninterrupted one.
* :class:`InceptionV3Session` — slim's InceptionV3 in one TF1 graph: bottleneck extraction
  (approach 1) and the two-stage RMSprop fine-tuning of Table 2 (approach 2), checkpointed with
  ``tf.compat.v1.train.Saver`` (TF format, resumable).

Both log every evaluation to ``log.csv`` and TensorBoard (``tb/``) in the run folder, and stop
with :class:`NonFiniteTrainingError` at the first NaN or infinite training loss, or before
checkpointing non-finite weights. The torch ``common.train.Trainer`` cannot drive TensorFlow
models; this module is its TensorFlow counterpart with the same conventions (resume, CSV +
TensorBoard logs, seeded batch order, stop on a non-finite loss).
"""
from __future__ import annotations

import csv
import functools
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from mtfl_compare.config import FineTuneConfig
from mtfl_compare.losses import inception_finetune_loss, softmax_cross_entropy, weight_decay_loss
from mtfl_compare.tf_runtime import import_tensorflow, tf1_tensor_semantics


# --------------------------------------------------------------------------- non-finite values


class NonFiniteTrainingError(FloatingPointError):
    """A training loss or a weight about to be checkpointed is NaN or infinite; the message names
    the step. The TensorFlow counterpart of ``common.train.NonFiniteLossError`` (which needs torch)."""


def require_finite_loss(loss: float, step: int, run_dir: Path) -> None:
    """Stop training at the first non-finite loss, before anything of that step is logged or
    checkpointed."""
    if not math.isfinite(loss):
        raise NonFiniteTrainingError(f"loss is {loss} at step {step} of {run_dir}; training stopped "
                                     f"(lower the learning rate or check the inputs)")


def require_finite_weights(variables: Iterable[tuple[str, np.ndarray]], step: int, run_dir: Path) -> None:
    """Refuse to checkpoint ``(name, value)`` variables holding a NaN or infinite value."""
    non_finite = [name for name, value in variables if not np.isfinite(value).all()]
    if non_finite:
        raise NonFiniteTrainingError(
            f"non-finite weights at step {step} of {run_dir} ({len(non_finite)} variables, e.g. "
            f"{non_finite[:3]}); training stopped without checkpointing them (lower the learning "
            f"rate or check the inputs)")


# --------------------------------------------------------------------------- batching and logs


@functools.lru_cache(maxsize=8)
def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


def batch_positions(n: int, batch_size: int, step: int, seed: int) -> np.ndarray:
    """Positions of the examples in training step ``step``: consecutive slices of a fresh random
    permutation per epoch (an epoch = ``n`` examples), so any step can be recomputed on resume."""
    if n <= 0:
        raise ValueError("cannot draw batches from an empty training set")
    start, positions = step * batch_size, []
    while len(positions) < batch_size:
        epoch, offset = divmod(start, n)
        take = min(batch_size - len(positions), n - offset)
        positions.extend(_epoch_order(seed, epoch, n)[offset:offset + take])
        start += take
    return np.asarray(positions, dtype=np.int64)


def steps_for_epochs(epochs: float, n: int, batch_size: int) -> int:
    """Training steps that show every example ``epochs`` times."""
    return int(math.ceil(epochs * n / batch_size))


class TrainingLog:
    """``log.csv`` (one row per evaluation, columns added as they appear) and TensorBoard
    scalars under ``tb/``. Rows past ``resume_step`` (from an interrupted run) are dropped."""

    def __init__(self, run_dir: Path, resume_step: int = 0):
        tf = import_tensorflow()
        self.csv_path = Path(run_dir) / "log.csv"
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict] = []
        if self.csv_path.is_file():
            with self.csv_path.open(newline="") as handle:
                self.rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= resume_step]
        self._writer = tf.summary.create_file_writer(str(Path(run_dir) / "tb"))
        self._rewrite()

    def _rewrite(self) -> None:
        fields = ["step"] + sorted({key for row in self.rows for key in row} - {"step"})
        tmp_path = self.csv_path.with_name("log.csv.tmp")
        with tmp_path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp_path, self.csv_path)

    def write(self, step: int, values: dict[str, float]) -> None:
        tf = import_tensorflow()
        self.rows.append({"step": step, **{key: float(value) for key, value in values.items()}})
        self._rewrite()
        with self._writer.as_default(step=step):
            for key, value in values.items():
                if math.isfinite(float(value)):
                    tf.summary.scalar(key, float(value))

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()


# --------------------------------------------------------------------------- Keras models


@dataclass
class TrainOutcome:
    steps: int
    history: list[dict]
    snapshots: dict[int, str] = field(default_factory=dict)   # step -> checkpoint prefix
    wall_seconds: float = 0.0


def _as_model_input(tf, batch):
    """uint8 images -> float in [-1, 1] (x / 127.5 - 1); float features pass through."""
    if batch.dtype == tf.uint8:
        return tf.cast(batch, tf.float32) / 127.5 - 1.0
    return tf.cast(batch, tf.float32)


def inference_function(model):
    """``tf.function`` computing a Keras classifier's logits in inference mode."""
    tf = import_tensorflow()

    @tf.function(reduce_retracing=True, autograph=False)
    def forward(batch):
        return model(_as_model_input(tf, batch), training=False)

    return forward


def predict_logits(model, inputs: np.ndarray, batch_size: int = 256, forward=None) -> np.ndarray:
    """Logits of a Keras classifier for every example, in inference mode."""
    tf = import_tensorflow()
    forward = forward or inference_function(model)
    outputs = [forward(tf.constant(inputs[start:start + batch_size])).numpy()
               for start in range(0, len(inputs), batch_size)]
    return np.concatenate(outputs) if outputs else np.zeros((0, model.output_shape[-1]), np.float32)


def train_keras_classifier(model, optimizer, train_inputs: np.ndarray, train_labels: np.ndarray,
                           val_inputs: np.ndarray, val_labels: np.ndarray, *, steps: int,
                           batch_size: int, eval_every: int, run_dir: str | os.PathLike, seed: int,
                           snapshot_steps: Sequence[int] = (), checkpoint_every: int | None = None,
                           ) -> TrainOutcome:
    """Minimise softmax cross-entropy for ``steps`` steps; evaluate on the validation split every
    ``eval_every`` steps (and at the end); keep a TF checkpoint every ``checkpoint_every`` steps
    (default: every evaluation) and a permanent one at each of ``snapshot_steps``.

    ``train_inputs`` are uint8 images (scaled to [-1, 1]) or float features. A rerun with the same
    ``run_dir`` restores the latest checkpoint and continues (a finished run trains no further).
    """
    tf = import_tensorflow()
    run_dir = Path(run_dir)
    started = time.time()
    step_variable = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    optimizer.build(model.trainable_variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step_variable)
    manager = tf.train.CheckpointManager(checkpoint, str(run_dir / "checkpoints"), max_to_keep=2)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    start_step = int(step_variable.numpy())
    log = TrainingLog(run_dir, start_step)
    checkpoint_every = checkpoint_every or eval_every
    snapshots = {int(s): str(run_dir / f"snapshot-{int(s)}") for s in snapshot_steps if 0 < s <= steps}

    @tf.function(reduce_retracing=True, autograph=False)
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(_as_model_input(tf, images), training=True)
            loss = softmax_cross_entropy(logits, labels)
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        correct = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1), tf.cast(labels, tf.int64)),
                                         tf.float32))
        return loss, correct

    forward = inference_function(model)
    losses, accuracies = [], []
    for step in range(start_step, steps):
        positions = batch_positions(len(train_labels), batch_size, step, seed)
        loss, correct = train_step(tf.constant(train_inputs[positions]),
                                   tf.constant(train_labels[positions]))
        done = step + 1
        loss = float(loss)
        require_finite_loss(loss, done, run_dir)
        losses.append(loss)
        accuracies.append(float(correct))
        step_variable.assign(done)
        if done % eval_every == 0 or done == steps:
            values = {"train_loss": float(np.mean(losses)), "train_accuracy": float(np.mean(accuracies))}
            losses, accuracies = [], []
            if len(val_labels):
                val_logits = predict_logits(model, val_inputs, forward=forward)
                values["val_loss"] = float(softmax_cross_entropy(val_logits, val_labels))
                values["val_accuracy"] = float(np.mean(np.argmax(val_logits, 1) == val_labels))
            log.write(done, values)
        write_snapshot = done in snapshots and not Path(snapshots[done] + ".index").is_file()
        save_checkpoint = done % checkpoint_every == 0 or done == steps
        if write_snapshot or save_checkpoint:
            require_finite_weights(((v.path, v.numpy()) for v in model.weights), done, run_dir)
        if write_snapshot:
            checkpoint.write(snapshots[done])
        if save_checkpoint:
            manager.save(checkpoint_number=done)
    log.close()
    return TrainOutcome(steps=steps, history=list(log.rows), snapshots=snapshots,
                        wall_seconds=time.time() - started)


def restore_snapshot(model, snapshot_prefix: str) -> None:
    """Load the model weights of a snapshot written by :func:`train_keras_classifier`."""
    tf = import_tensorflow()
    tf.train.Checkpoint(model=model).read(snapshot_prefix).expect_partial()


# --------------------------------------------------------------------------- InceptionV3 (slim)


@dataclass
class PretrainedWeights:
    """Where InceptionV3 starts from (§3.3: ImageNet)."""

    checkpoint: str | None            # TF checkpoint prefix; None = random initialisation
    description: str                  # e.g. "2015 ImageNet weights (converted) ..."
    identifier: str                   # short id used in cache keys
    mixed_7c_branch_pool: str         # "max" for the converted 2015 weights, "avg" for slim's
    record: dict | None = None        # conversion record (convert_weights), when converted


@dataclass
class FineTuneOutcome:
    """Approach 2 results: test/validation predictions after step 1 (new layers) and step 4
    (all layers) of Table 2."""

    stages: dict[str, dict[str, list]]   # stage -> {"val_probabilities", "test_probabilities"}
    history: list[dict]
    wall_seconds: float
    #: stage -> training images/s of this call's steps of that stage, the stage's first step
    #: excluded (graph warm-up), as ``common.train.Trainer`` times its steps; only stages that ran
    #: at least two steps here.
    images_per_second: dict[str, float] = field(default_factory=dict)


class InceptionV3Session:
    """slim's InceptionV3 with a new 2-way head, built once per input size.

    Serves approach 1 (``bottlenecks``: PreLogits of the pretrained network, inference mode)
    and approach 2 (``finetune``: Table 2's two RMSprop stages). Inputs are uint8 faces of
    ``input_size`` pixels, scaled to [-1, 1] inside the graph.
    """

    def __init__(self, input_size: int, pretrained: PretrainedWeights, config: FineTuneConfig,
                 seed: int):
        tf = import_tensorflow()
        from mtfl_compare.models import (INCEPTION_SCOPE, MIN_INCEPTION_INPUT, NEW_LAYER_SCOPES,
                                         inception_v3_classifier)

        if input_size < MIN_INCEPTION_INPUT:
            raise ValueError(f"InceptionV3 with its auxiliary head needs inputs of at least "
                             f"{MIN_INCEPTION_INPUT}x{MIN_INCEPTION_INPUT}, got {input_size}")
        self.input_size, self.pretrained, self.config, self.seed = input_size, pretrained, config, seed
        self.graph = tf.Graph()
        with self.graph.as_default(), tf1_tensor_semantics():
            tf.compat.v1.set_random_seed(seed)
            self.images = tf.compat.v1.placeholder(tf.uint8, [None, input_size, input_size, 3], "images")
            self.labels = tf.compat.v1.placeholder(tf.int64, [None], "labels")
            scaled = tf.cast(self.images, tf.float32) / 127.5 - 1.0
            towers = {}
            for is_training in (True, False):   # training tower, then the evaluation tower
                towers[is_training] = inception_v3_classifier(
                    scaled, num_classes=2, is_training=is_training,
                    weight_decay=config.weight_decay, dropout_keep_prob=config.dropout_keep_prob,
                    mixed_7c_branch_pool=pretrained.mixed_7c_branch_pool,
                    reuse=None if is_training else True,
                    batch_norm_training=config.batch_norm_training and is_training)
            training, inference = towers[True], towers[False]
            self.softmax = tf.nn.softmax(inference.logits)
            self.prelogits = tf.reshape(inference.prelogits, [-1, inference.prelogits.shape[-1]])
            self.cross_entropy = inception_finetune_loss(training.logits, training.aux_logits,
                                                         self.labels, config.aux_loss_weight)
            self.batch_accuracy = tf.reduce_mean(tf.cast(
                tf.equal(tf.argmax(training.logits, 1), self.labels), tf.float32))
            self.global_step = tf.compat.v1.train.get_or_create_global_step()
            trainable = tf.compat.v1.trainable_variables()
            new_layers = [v for v in trainable if v.op.name.startswith(NEW_LAYER_SCOPES)]
            update_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.UPDATE_OPS)
            self.train_ops = {}
            for stage, variables, scopes, rate in (
                    ("new_layers", new_layers, NEW_LAYER_SCOPES, config.new_layers_learning_rate),
                    ("all_layers", trainable, None, config.all_layers_learning_rate)):
                loss = self.cross_entropy + weight_decay_loss(scopes)
                optimizer = tf.compat.v1.train.RMSPropOptimizer(
                    rate, decay=config.rmsprop_decay, momentum=config.rmsprop_momentum,
                    epsilon=config.rmsprop_epsilon, name=f"RMSProp_{stage}")
                # batch-norm moving averages are updated in every step, as slim's trainer does
                self.train_ops[stage] = tf.group(
                    optimizer.minimize(loss, self.global_step, var_list=variables), *update_ops)
            self.initialise = tf.compat.v1.global_variables_initializer()
            model_variables = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.MODEL_VARIABLES)
            self.pretrained_variables = {
                v.op.name: v for v in model_variables
                if v.op.name.startswith(INCEPTION_SCOPE + "/") and not v.op.name.startswith(NEW_LAYER_SCOPES)}
            self.pretrained_saver = (tf.compat.v1.train.Saver(self.pretrained_variables)
                                     if pretrained.checkpoint else None)
            self.saver = tf.compat.v1.train.Saver(max_to_keep=2)
        self.model_variables = model_variables  # weights and batch-norm statistics
        self.graph.finalize()
        self.session = None
        if pretrained.checkpoint:
            self._check_checkpoint(pretrained.checkpoint)

    def _check_checkpoint(self, checkpoint: str) -> None:
        tf = import_tensorflow()
        stored = dict(tf.train.list_variables(checkpoint))
        missing = [name for name in self.pretrained_variables if name not in stored]
        if missing:
            raise ValueError(f"{checkpoint}: {len(missing)} InceptionV3 variables are missing, e.g. "
                             f"{missing[:3]} (expected a tf-slim inception_v3 checkpoint)")
        for name, variable in self.pretrained_variables.items():
            if tuple(stored[name]) != tuple(variable.shape):
                raise ValueError(f"{checkpoint}: {name} has shape {stored[name]}, the network "
                                 f"needs {tuple(variable.shape)}")

    def _new_session(self):
        """The session with every variable (re)initialised.

        One session serves all runs of this input size: a new one would re-optimise the
        13,000-op graph for every kind of ``run`` call (seconds each). Consequence: dropout and
        the new layers' initial values continue one random stream (seeded, so a whole
        reproduction is deterministic), and a resumed run restores weights, optimizer state
        and batch order but draws other dropout masks than the uninterrupted run would have.
        """
        tf = import_tensorflow()
        if self.session is None:
            self.session = tf.compat.v1.Session(graph=self.graph)
        self.session.run(self.initialise)
        return self.session

    def load_pretrained(self) -> None:
        """New session with the ImageNet weights (new head randomly initialised)."""
        session = self._new_session()
        if self.pretrained_saver is not None:
            with self.graph.as_default():
                self.pretrained_saver.restore(session, self.pretrained.checkpoint)

    def bottlenecks(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """2048-d PreLogits of uint8 faces with the pretrained weights (call :meth:`load_pretrained`)."""
        outputs = [self.session.run(self.prelogits, {self.images: images[start:start + batch_size]})
                   for start in range(0, len(images), batch_size)]
        return np.concatenate(outputs).astype(np.float32)

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Softmax of the evaluation tower (batch norm on its moving averages, no dropout)."""
        batch = self.config.batch_size
        outputs = [self.session.run(self.softmax, {self.images: images[start:start + batch]})
                   for start in range(0, len(images), batch)]
        return np.concatenate(outputs) if outputs else np.zeros((0, 2), np.float32)

    def finetune(self, run_dir: str | os.PathLike, train_images: np.ndarray, train_labels: np.ndarray,
                 val_images: np.ndarray, val_labels: np.ndarray, test_images: np.ndarray,
                 test_labels: np.ndarray, log_every: int = 10) -> FineTuneOutcome:
        """Table 2: step 1 trains Logits + AuxLogits for ``new_layers_steps`` RMSprop steps (lr
        0.01), steps 2-3 evaluate on validation and test, step 4 trains all layers for
        ``all_layers_steps`` (lr 0.001), steps 5-6 evaluate again. Weight decay 4e-5 applies to
        the layers being trained. Resumes from ``run_dir/checkpoints``; the step-1 evaluation is
        kept in ``run_dir/stage_new_layers.json``. ``log.csv`` also gets ``samples_per_second``
        (training images/s since its last row, each stage's first step, which builds its kernels,
        not timed; the outcome's ``images_per_second`` per stage).
        """
        tf = import_tensorflow()
        run_dir = Path(run_dir)
        started = time.time()
        config = self.config
        checkpoint_dir = run_dir / "checkpoints"
        latest = tf.train.latest_checkpoint(str(checkpoint_dir))
        if latest:
            session = self._new_session()
            with self.graph.as_default():
                self.saver.restore(session, latest)
        else:
            self.load_pretrained()
            session = self.session
        step = int(session.run(self.global_step))
        total_steps = config.new_layers_steps + config.all_layers_steps
        log = TrainingLog(run_dir, step)
        stages: dict[str, dict[str, list]] = {}

        def evaluate_stage(stage: str) -> None:
            path = run_dir / f"stage_{stage}.json"
            if path.is_file():
                stages[stage] = json.loads(path.read_text())
                return
            record = {"step": int(session.run(self.global_step)),
                      "val_probabilities": self.probabilities(val_images).tolist(),
                      "test_probabilities": self.probabilities(test_images).tolist()}
            for split, labels in (("val", val_labels), ("test", test_labels)):
                predictions = np.argmax(record[f"{split}_probabilities"], axis=1) if len(labels) else []
                record[f"{split}_accuracy"] = float(np.mean(predictions == labels)) if len(labels) else None
            tmp_path = path.with_name(path.name + ".tmp")
            tmp_path.write_text(json.dumps(record))
            os.replace(tmp_path, path)
            stages[stage] = record
            log.write(record["step"], {f"{stage}/{split}_accuracy": record[f"{split}_accuracy"]
                                       for split in ("val", "test") if record[f"{split}_accuracy"] is not None})

        losses, accuracies = [], []
        # per stage: [images, seconds] of the timed steps, all and since the last log row
        timed = {name: [0, 0.0] for name in self.train_ops}
        window = [0, 0.0]
        stages_started: set[str] = set()
        while step < total_steps:
            if step == config.new_layers_steps:
                evaluate_stage("new_layers")
            stage = "new_layers" if step < config.new_layers_steps else "all_layers"
            step_start = time.perf_counter()
            positions = batch_positions(len(train_labels), config.batch_size, step, self.seed)
            _, loss, accuracy = session.run(
                [self.train_ops[stage], self.cross_entropy, self.batch_accuracy],
                {self.images: train_images[positions], self.labels: train_labels[positions]})
            step += 1
            if stage in stages_started:  # a stage's first step builds its kernels: warm-up
                seconds = time.perf_counter() - step_start
                for counter in (timed[stage], window):
                    counter[0] += len(positions)
                    counter[1] += seconds
            stages_started.add(stage)
            require_finite_loss(float(loss), step, run_dir)
            losses.append(loss)
            accuracies.append(accuracy)
            if step % log_every == 0 or step == total_steps or step == config.new_layers_steps:
                values = {"train_loss": float(np.mean(losses)),
                          "train_accuracy": float(np.mean(accuracies))}
                if window[1] > 0:
                    values["samples_per_second"] = window[0] / window[1]
                log.write(step, values)
                losses, accuracies, window = [], [], [0, 0.0]
            if step % config.checkpoint_every == 0 or step == total_steps:
                values = session.run(self.model_variables)
                require_finite_weights(zip((v.op.name for v in self.model_variables), values), step, run_dir)
                with self.graph.as_default():
                    self.saver.save(session, str(checkpoint_dir / "model.ckpt"), global_step=step)
        if "new_layers" not in stages:
            evaluate_stage("new_layers")
        if config.all_layers_steps:
            evaluate_stage("all_layers")
        log.close()
        return FineTuneOutcome(stages=stages, history=list(log.rows), wall_seconds=time.time() - started,
                               images_per_second={name: images / seconds
                                                  for name, (images, seconds) in timed.items() if seconds > 0})

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None


def bottleneck_extractor(inception: InceptionV3Session, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """``images -> (N, 2048)`` with the pretrained weights loaded once."""
    inception.load_pretrained()
    return functools.partial(inception.bottlenecks, batch_size=batch_size)
