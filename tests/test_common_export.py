"""common.export: shipped models (int8 / fp16 weights) round-trip through weights_only loading,
stay under the repository's size limit, and refuse what they cannot store faithfully."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from common.checkpoint import CheckpointError
from common.export import (COMPACT_FORMAT, SHIPPED_MODEL_MAX_BYTES, compact_state_dict, expand_state_dict,
                           load_shipped_model, quantisation_error, save_shipped_model)

#: Per-tensor relative error bound of int8 entries (half a quantisation step), plus float rounding.
INT8_BOUND = 1 / 254 + 1e-6


@pytest.fixture(autouse=True)
def _one_thread():
    """The machine's cores are shared with training jobs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _resnet_with_statistics() -> nn.Module:
    """ResNet-18 (40 outputs) whose BatchNorm running statistics were updated by two batches."""
    model = torchvision.models.resnet18(num_classes=40)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, 3, 64, 64))
    return model.eval()


def test_round_trip_restores_every_tensor_and_the_outputs(tmp_path):
    model = _resnet_with_statistics()
    state_dict = model.state_dict()
    # ResNet-18's 11.7 M parameters take 10.8 MiB even in int8: over SHIPPED_MODEL_MAX_BYTES
    size = save_shipped_model(tmp_path / "resnet18.pt", state_dict, {"arch": "resnet18"},
                              max_bytes=12 * 2**20)
    loaded, meta = load_shipped_model(tmp_path / "resnet18.pt")

    assert size == (tmp_path / "resnet18.pt").stat().st_size
    assert meta == {"arch": "resnet18"}
    assert list(loaded) == list(state_dict)
    for name, original in state_dict.items():
        assert loaded[name].shape == original.shape, name
        assert loaded[name].dtype == original.dtype, name
    assert loaded["bn1.num_batches_tracked"].dtype == torch.int64
    assert loaded["bn1.num_batches_tracked"].item() == 2

    compact = compact_state_dict(state_dict)
    kinds = {name: entry["kind"] for name, entry in compact["tensors"].items()}
    assert kinds["conv1.weight"] == kinds["fc.weight"] == kinds["layer4.1.conv2.weight"] == "int8"
    assert kinds["bn1.running_var"] == kinds["fc.bias"] == "float16"
    assert kinds["bn1.num_batches_tracked"] == "raw"
    scale = compact["tensors"]["layer1.0.conv1.weight"]["scale"]
    assert scale.shape == (64,) and compact["tensors"]["layer1.0.conv1.weight"]["values"].dtype == torch.int8
    errors = quantisation_error(state_dict, compact)
    int8_errors = [errors[name] for name, kind in kinds.items() if kind == "int8"]
    fp16_errors = [errors[name] for name, kind in kinds.items() if kind == "float16"]
    assert 0 < max(int8_errors) <= INT8_BOUND
    assert max(fp16_errors) <= 2**-11
    expanded = expand_state_dict(compact)  # the file holds what compact_state_dict computes
    assert all(torch.equal(loaded[name], expanded[name]) for name in state_dict)

    restored = torchvision.models.resnet18(num_classes=40)
    restored.load_state_dict(loaded)
    restored.eval()
    images = torch.randn(32, 3, 64, 64)
    with torch.no_grad():
        expected, actual = model(images), restored(images)
    assert ((actual - expected).norm() / expected.norm()).item() < 0.1
    assert (actual - expected).abs().max().item() < 0.1 * expected.abs().max().item()
    assert (actual.argmax(1) == expected.argmax(1)).float().mean().item() >= 0.85
    assert ((actual > 0) == (expected > 0)).float().mean().item() >= 0.95


def test_int8_error_is_half_a_step_per_output_channel():
    weight = torch.randn(16, 8, 3, 3) * torch.logspace(-3, 1, 16).reshape(16, 1, 1, 1)
    compact = compact_state_dict({"weight": weight})
    expanded = expand_state_dict(compact)["weight"]
    step = weight.reshape(16, -1).abs().amax(dim=1) / 127
    # each channel is accurate to its own scale, not only to the tensor's largest magnitude
    channel_error = (expanded - weight).reshape(16, -1).abs().amax(dim=1)
    assert (channel_error <= step * (0.5 + 1e-5)).all()
    assert quantisation_error({"weight": weight}, compact)["weight"] <= INT8_BOUND


def test_a_model_saves_to_about_a_quarter_of_its_float32_size(tmp_path):
    model = nn.Sequential(nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                          nn.Linear(1024, 1024))
    numel = sum(tensor.numel() for tensor in model.state_dict().values())
    assert numel > 3_000_000
    size = save_shipped_model(tmp_path / "mlp.pt", model.state_dict(), {})
    assert size < 0.3 * 4 * numel


def test_densenet121_fits_the_repository_limit(tmp_path):
    model = torchvision.models.densenet121(num_classes=40)
    size = save_shipped_model(tmp_path / "densenet121.pt", model.state_dict(), {"arch": "densenet121"})
    assert size <= SHIPPED_MODEL_MAX_BYTES
    loaded, _ = load_shipped_model(tmp_path / "densenet121.pt")
    assert all(tensor.dtype in (torch.float32, torch.int64) for tensor in loaded.values())


def test_a_model_over_the_limit_is_not_written_and_an_earlier_one_stays(tmp_path):
    path = tmp_path / "model.pt"
    small = {"weight": torch.randn(8, 8)}
    save_shipped_model(path, small, {"version": 1})
    large = nn.Linear(1024, 1024).state_dict()

    with pytest.raises(ValueError, match=r"1,0\d\d,\d\d\d bytes .*over the limit of 100,000 bytes") as error:
        save_shipped_model(path, large, {"version": 2}, max_bytes=100_000)
    assert str(path) in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # no temp file left
    assert load_shipped_model(path)[1] == {"version": 1}

    with pytest.raises(ValueError, match="over the limit"):
        save_shipped_model(tmp_path / "new.pt", large, {}, max_bytes=100_000)
    assert not (tmp_path / "new.pt").exists()


def test_the_file_loads_with_weights_only_and_meta_round_trips(tmp_path):
    meta = {"arch": "resnet18", "num_classes": 40, "accuracy": 0.9125, "pretrained": False,
            "attributes": ["Smiling", "Male"], "shape": (3, 64, 64), "notes": None,
            "normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}}
    state_dict = {"conv.weight": torch.randn(64, 3, 7, 7), "bn.num_batches_tracked": torch.tensor(5)}
    save_shipped_model(tmp_path / "model.pt", state_dict, meta)

    raw = torch.load(tmp_path / "model.pt", weights_only=True)
    assert raw["compact"]["format"] == COMPACT_FORMAT
    assert raw["meta"] == meta
    loaded, loaded_meta = load_shipped_model(tmp_path / "model.pt")
    assert loaded_meta == meta
    assert loaded["bn.num_batches_tracked"].item() == 5


def test_meta_that_weights_only_cannot_read_is_refused_before_writing(tmp_path):
    state_dict = {"weight": torch.randn(4)}
    with pytest.raises(TypeError, match=r"meta\['metrics'\]\['auc'\] is a float64"):
        save_shipped_model(tmp_path / "a.pt", state_dict, {"metrics": {"auc": np.float64(0.9)}})
    with pytest.raises(TypeError, match=r"meta\['mean'\] is a Tensor"):
        save_shipped_model(tmp_path / "b.pt", state_dict, {"mean": torch.zeros(3)})
    with pytest.raises(TypeError, match="keys must be str"):
        save_shipped_model(tmp_path / "c.pt", state_dict, {"thresholds": {0: 0.5}})
    assert list(tmp_path.iterdir()) == []


def test_files_that_are_not_shipped_models_raise_naming_the_file(tmp_path):
    plain = tmp_path / "plain_state_dict.pt"
    torch.save(nn.Linear(4, 2).state_dict(), plain)
    with pytest.raises(ValueError, match="not a shipped model") as error:
        load_shipped_model(plain)
    assert str(plain) in str(error.value)

    other_format = tmp_path / "other_format.pt"
    torch.save({"compact": {"format": "something/2", "tensors": {}}, "meta": {}}, other_format)
    with pytest.raises(ValueError, match="not a compact state dict") as error:
        load_shipped_model(other_format)
    assert str(other_format) in str(error.value)

    damaged = tmp_path / "damaged.pt"
    save_shipped_model(damaged, {"weight": torch.randn(64, 64)}, {})
    damaged.write_bytes(damaged.read_bytes()[:-20])
    with pytest.raises(CheckpointError, match="save_shipped_model") as error:
        load_shipped_model(damaged)
    assert str(damaged) in str(error.value)

    with pytest.raises(ValueError, match="not a compact state dict"):
        expand_state_dict({"format": "common.export/0", "tensors": {}})
    with pytest.raises(ValueError, match="unknown entry kind 'int4'"):
        expand_state_dict({"format": COMPACT_FORMAT, "tensors": {"w": {"kind": "int4"}}})


@pytest.mark.parametrize("name, shape", [("layer.weight", (64, 128)), ("layer.bias", (64,))])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 1e300])
def test_non_finite_weights_raise_naming_the_tensor(name, shape, bad):
    tensor = torch.randn(shape, dtype=torch.float64)
    tensor[3] = bad
    with pytest.raises(ValueError, match=f"'{name}' holds NaN, infinite"):
        compact_state_dict({"ok": torch.randn(64, 128), name: tensor})


def test_a_zero_output_channel_round_trips_to_zeros():
    weight = torch.randn(32, 16, 3, 3)
    weight[5] = 0
    entry = compact_state_dict({"weight": weight})["tensors"]["weight"]
    assert entry["kind"] == "int8"
    assert torch.isfinite(entry["scale"]).all() and (entry["scale"] > 0).all()
    assert (entry["values"][5] == 0).all()
    expanded = expand_state_dict({"format": COMPACT_FORMAT, "tensors": {"weight": entry}})["weight"]
    assert (expanded[5] == 0).all()
    assert (expanded - weight).abs().max() <= weight.abs().max() * INT8_BOUND


def test_values_fp16_cannot_hold_stay_float32():
    overflowing = torch.tensor([1.0, 70_000.0, 3.0])  # fp16 tops out at 65,504
    underflowing = torch.tensor([1.0, 1e-9, 3.0])  # fp16 would make this variance 0
    ordinary = torch.tensor([1.0, 60_000.0, 1e-4])
    compact = compact_state_dict({"bn.running_var": overflowing, "other.running_var": underflowing,
                                  "ok.running_var": ordinary})
    kinds = {name: entry["kind"] for name, entry in compact["tensors"].items()}
    assert kinds == {"bn.running_var": "float32", "other.running_var": "float32", "ok.running_var": "float16"}
    expanded = expand_state_dict(compact)
    assert torch.equal(expanded["bn.running_var"], overflowing)
    assert torch.equal(expanded["other.running_var"], underflowing)
    assert (expanded["ok.running_var"] > 0).all() and torch.isfinite(expanded["ok.running_var"]).all()


def test_small_and_one_dimensional_tensors_are_not_quantised_and_dtypes_come_back():
    state_dict = {
        "small.weight": torch.randn(8, 8),  # 64 < int8_min_elements
        "long.bias": torch.randn(10_000),  # 1-D
        "double.weight": torch.randn(64, 128, dtype=torch.float64),
        "brain.weight": torch.randn(64, 128).to(torch.bfloat16),
        "mask": torch.tensor([True, False]),
        "index": torch.arange(5, dtype=torch.int32),
    }
    compact = compact_state_dict(state_dict)
    kinds = {name: entry["kind"] for name, entry in compact["tensors"].items()}
    assert kinds == {"small.weight": "float16", "long.bias": "float16", "double.weight": "int8",
                     "brain.weight": "int8", "mask": "raw", "index": "raw"}
    expanded = expand_state_dict(compact)
    assert {name: tensor.dtype for name, tensor in expanded.items()} == {
        name: tensor.dtype for name, tensor in state_dict.items()}
    assert torch.equal(expanded["mask"], state_dict["mask"])
    assert torch.equal(expanded["index"], state_dict["index"])
    assert compact_state_dict(state_dict, int8_min_elements=64)["tensors"]["small.weight"]["kind"] == "int8"
