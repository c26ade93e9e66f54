"""attribute_inversion, ssp_ssg and mtfl_compare refuse to resume an output folder that was started
with another configuration or data source, before any training, and say how to start over; a
re-run of the same command, or one that changes only how it runs (device, threads, progress
bars, checkpoint cadence), resumes as before.

Each pipeline is run up to its first training step, which is replaced by :class:`ReachedTraining`:
reaching it means the configuration check let the run through."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from common.synthetic import write_mtfl_layout


class ReachedTraining(Exception):
    """Raised in place of the first training step."""


def reach_training(*args, **kwargs):
    """Stands in for the function that starts training."""
    raise ReachedTraining


# --------------------------------------------------------------------------- attribute_inversion


def inversion_config(max_steps: int = 4):
    """A tiny attribute_inversion configuration on 64 faces."""
    from attribute_inversion.config import DataConfig, OptimConfig, ReproduceConfig

    return ReproduceConfig(
        scale="test",
        data=DataConfig(attributes=("Mouth_Slightly_Open",), image_size=32, test_images_per_class=2,
                        heldout_fraction=0.3, synthetic_n=64, synthetic_size=(109, 89)),
        optim=OptimConfig(batch_size=4, max_steps=max_steps), device="cpu")


@pytest.fixture
def inversion_reproduce(monkeypatch, tmp_path):
    """``attribute_inversion``'s ``reproduce`` stopped where the attribute judge would train, with
    synthetic faces rendered under ``tmp_path``."""
    from attribute_inversion import evaluate

    monkeypatch.chdir(tmp_path)  # synthetic faces go to results/.synthetic under the cwd
    monkeypatch.setattr(evaluate, "train_judge", reach_training)

    def run(config, data_root=None):
        evaluate.reproduce(config, tmp_path / "out", data_root=data_root)

    return run


def test_attribute_inversion_refuses_a_folder_trained_on_synthetic_faces_for_real_data(
        inversion_reproduce, synthetic_celeba_root, tmp_path):
    config = inversion_config()
    with pytest.raises(ReachedTraining):
        inversion_reproduce(config)  # first run: records its configuration
    record = tmp_path / "out" / "train" / "experiment.json"
    assert json.loads(record.read_text())["data_source"] == "synthetic"
    with pytest.raises(ReachedTraining):
        inversion_reproduce(config)  # the same command again resumes
    with pytest.raises(ValueError, match=r"differs in \['data_source'.*another --out.*after deleting"):
        inversion_reproduce(config, data_root=synthetic_celeba_root)
    with pytest.raises(ValueError, match=r"differs in \['optim'\]"):
        inversion_reproduce(inversion_config(max_steps=8))


def test_attribute_inversion_resumes_under_other_runtime_settings(inversion_reproduce):
    config = inversion_config()
    with pytest.raises(ReachedTraining):
        inversion_reproduce(config)
    runtime_only = dataclasses.replace(config, device="auto", bf16=True, channels_last=True, compile=True,
                                       checkpoint_every=7)
    runtime_only.evaluation = dataclasses.replace(config.evaluation, eval_batch_size=3, sample_every=5)
    with pytest.raises(ReachedTraining):
        inversion_reproduce(runtime_only)


def test_attribute_inversion_fingerprint_holds_what_the_checkpoints_depend_on(synthetic_celeba_root):
    from attribute_inversion.train import experiment_fingerprint
    from common.data.celeba import read_celeba

    annotations = read_celeba(synthetic_celeba_root)
    config = inversion_config()
    fingerprint = experiment_fingerprint(config, annotations, synthetic=False)
    assert fingerprint["data_source"] == str(synthetic_celeba_root.resolve())
    assert fingerprint["images"] == len(annotations)
    other_seed = dataclasses.replace(config, data=dataclasses.replace(config.data, seed=1))
    assert experiment_fingerprint(other_seed, annotations, synthetic=False)["data"] != fingerprint["data"]
    assert experiment_fingerprint(config, annotations, synthetic=True)["data_source"] == "synthetic"


# --------------------------------------------------------------------------- ssp_ssg


def ssp_inputs(tmp_path: Path, data_root=None, lfwa_root=None, **changes):
    """ssp_ssg's smoke configuration on 64 synthetic faces, ``changes`` applied to it."""
    from ssp_ssg.config import ReproduceConfig
    from ssp_ssg.jobs import ReproductionInputs
    from ssp_ssg.train import RunSettings

    smoke = ReproduceConfig.smoke()
    config = dataclasses.replace(smoke, data=dataclasses.replace(smoke.data, synthetic_n=64), **changes)
    return ReproductionInputs(config=config, out_dir=tmp_path / "out", settings=RunSettings(device="cpu"),
                              data_root=data_root, lfwa_root=lfwa_root,
                              synthetic_cache=tmp_path / "synthetic")


@pytest.fixture
def ssp_reproduce(monkeypatch):
    """``ssp_ssg``'s ``reproduce`` stopped where its training jobs would start."""
    from ssp_ssg import reproduce

    monkeypatch.setattr(reproduce, "run_jobs", reach_training)
    return lambda inputs: reproduce.reproduce(inputs, ["python", "-m", "ssp_ssg"])


def write_lfwa(root: Path, images_from: Path) -> Path:
    """A tiny LFWA in CelebA's list_attr format: 4 people, 2 images each, under ``lfw/``."""
    sources = sorted(images_from.glob("img_align_celeba/*.jpg"))[:8]
    image_ids = [f"Person_{i // 2}/Person_{i // 2}_000{i % 2 + 1}.jpg" for i in range(len(sources))]
    for image_id, source in zip(image_ids, sources):
        (root / "lfw" / image_id).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / "lfw" / image_id)
    rows = [f"{image_id} {1 if i % 2 else -1} {-1 if i % 3 else 1}" for i, image_id in enumerate(image_ids)]
    (root / "list_attr_lfwa.txt").write_text("\n".join([str(len(rows)), "Smiling Male", *rows]) + "\n")
    return root


def test_ssp_ssg_refuses_another_configuration_or_data_source(ssp_reproduce, synthetic_celeba_root, tmp_path):
    inputs = ssp_inputs(tmp_path)
    with pytest.raises(ReachedTraining):
        ssp_reproduce(inputs)
    assert (tmp_path / "out" / "checkpoints" / "experiment.json").is_file()
    runtime_only = ssp_inputs(tmp_path, checkpoint_every=5, log_every=1, num_workers=2, torch_threads=2,
                              parallel_jobs=1, figure_images=2)
    runtime_only = dataclasses.replace(runtime_only, settings=dataclasses.replace(
        runtime_only.settings, device="auto", progress=False, num_workers=2))
    with pytest.raises(ReachedTraining):
        ssp_reproduce(runtime_only)
    with pytest.raises(ValueError, match=r"differs in \['celeba'.*'parsing_masks'\].*another --out"):
        ssp_reproduce(ssp_inputs(tmp_path, data_root=synthetic_celeba_root))
    with pytest.raises(ValueError, match=r"differs in \['seed'\]"):
        ssp_reproduce(ssp_inputs(tmp_path, seed=1))


def test_ssp_ssg_lfwa_can_be_added_later_but_not_swapped(ssp_reproduce, synthetic_celeba_root, tmp_path):
    first_lfwa = write_lfwa(tmp_path / "lfwa_a", synthetic_celeba_root)
    other_lfwa = write_lfwa(tmp_path / "lfwa_b", synthetic_celeba_root)
    with pytest.raises(ReachedTraining):
        ssp_reproduce(ssp_inputs(tmp_path))  # CelebA tables only
    with pytest.raises(ReachedTraining):
        ssp_reproduce(ssp_inputs(tmp_path, lfwa_root=first_lfwa))  # then Table 3 added
    assert (tmp_path / "out" / "checkpoints" / "lfwa_ssp" / "experiment.json").is_file()
    with pytest.raises(ValueError, match=r"lfwa_ssg.*differs in \['lfwa'\]"):
        ssp_reproduce(ssp_inputs(tmp_path, lfwa_root=other_lfwa))


# --------------------------------------------------------------------------- mtfl_compare


def mtfl_config(tmp_path: Path, data_root=None):
    """mtfl_compare's smoke configuration on 12 + 4 faces, InceptionV3 randomly initialised."""
    from mtfl_compare.config import config_for_scale

    config = config_for_scale("smoke")
    config.out_dir = str(tmp_path / "out")
    config.random_init = True  # no weight conversion in a test
    config.data = dataclasses.replace(config.data, data_root=data_root, synthetic_train=12, synthetic_test=4,
                                      cache_dir=str(tmp_path / "cache"))
    return config


@pytest.fixture
def mtfl_reproduce(monkeypatch):
    """``mtfl_compare``'s ``reproduce`` stopped where approach 1 would train."""
    from mtfl_compare import reproduce

    monkeypatch.setattr(reproduce._Reproduction, "approach_1", reach_training)
    return reproduce.reproduce


def test_mtfl_compare_refuses_another_data_source(mtfl_reproduce, tmp_path):
    with pytest.raises(ReachedTraining):
        mtfl_reproduce(mtfl_config(tmp_path))
    assert (tmp_path / "out" / "runs" / "experiment.json").is_file()
    with pytest.raises(ReachedTraining):
        mtfl_reproduce(mtfl_config(tmp_path))  # the same command again resumes
    real_layout = write_mtfl_layout(tmp_path / "mtfl", n_train=12, n_test=4, seed=0)
    with pytest.raises(ValueError, match=r"differs in \['data'\].*another --out.*after deleting"):
        mtfl_reproduce(mtfl_config(tmp_path, data_root=str(real_layout)))


def test_mtfl_compare_fingerprint_ignores_where_and_how_a_run_executes(tmp_path):
    from mtfl_compare.data import open_mtfl
    from mtfl_compare.reproduce import experiment_fingerprint
    from mtfl_compare.train import PretrainedWeights

    config = mtfl_config(tmp_path)
    train, test = open_mtfl(config.data, config.seed)
    scratch = PretrainedWeights(None, "random", "scratch-seed0", "avg")
    fingerprint = experiment_fingerprint(config, scratch, train, test)
    moved = mtfl_config(tmp_path / "elsewhere")
    moved.device = "cpu"
    moved.finetune = dataclasses.replace(moved.finetune, checkpoint_every=1)
    assert experiment_fingerprint(moved, scratch, train, test) == fingerprint
    imagenet = PretrainedWeights("ckpt", "ImageNet", "fid2015-a16e4d89", "max")
    changed = experiment_fingerprint(config, imagenet, train, test)
    assert {key for key in fingerprint if changed[key] != fingerprint[key]} == {
        "pretrained_weights", "mixed_7c_branch_pool"}
    assert fingerprint["rows"] == [12, 4] and fingerprint["data"]["data_root"] == "synthetic"

