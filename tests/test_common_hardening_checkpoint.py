"""common.checkpoint hardening: unreadable checkpoints raise CheckpointError naming the file and the
remedy (never unsafe loading); the run-configuration record is written atomically."""
from __future__ import annotations

import datetime
import json

import pytest
import torch

from common import checkpoint
from common.checkpoint import CheckpointError, load_checkpoint, require_same_configuration, save_checkpoint

WEIGHTS = torch.arange(1000, dtype=torch.float32)


def _valid_checkpoint_bytes(tmp_path) -> bytes:
    path = save_checkpoint(tmp_path / "valid.pt", {"model": {"weight": WEIGHTS}, "step": 7})
    return path.read_bytes()


def _flip_byte_in_tensor_data(data: bytes) -> bytes:
    """The checkpoint with one byte of the stored weights changed (the zip structure intact)."""
    offset = data.index(WEIGHTS.numpy().tobytes()) + 400
    damaged = bytearray(data)
    damaged[offset] ^= 0xFF
    return bytes(damaged)


DAMAGE = {
    "empty": lambda data: b"",
    "truncated_half": lambda data: data[: len(data) // 2],
    "truncated_tail": lambda data: data[:-10],
    "garbage": lambda data: b"this is not a checkpoint at all",
    "flipped_tensor_byte": _flip_byte_in_tensor_data,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_unreadable_checkpoint_names_the_file_and_the_remedy(tmp_path, damage):
    path = tmp_path / "last.pt"
    path.write_bytes(DAMAGE[damage](_valid_checkpoint_bytes(tmp_path)))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith(f"{path}: unreadable checkpoint (corrupt, truncated or empty)")
    assert "--restart" in message and "delete the file" in message
    assert "weights_only" not in message


def test_checkpoint_with_arbitrary_objects_is_refused_without_suggesting_unsafe_loading(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"saved_on": datetime.date(2026, 1, 1)}, path)  # not loadable with weights_only=True
    with pytest.raises(CheckpointError, match="objects other than tensors") as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value) and "weights_only" not in str(caught.value)


def test_intact_checkpoint_still_loads(tmp_path):
    _valid_checkpoint_bytes(tmp_path)
    state = load_checkpoint(tmp_path / "valid.pt")
    assert state["step"] == 7 and torch.equal(state["model"]["weight"], WEIGHTS)


def test_configuration_record_interrupted_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def killed_before_rename(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "replace", killed_before_rename)
    with pytest.raises(KeyboardInterrupt):
        require_same_configuration(tmp_path, {"lr": 0.1})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    require_same_configuration(tmp_path, {"lr": 0.1})
    assert json.loads((tmp_path / checkpoint.RUN_CONFIGURATION_RECORD).read_text()) == {"lr": 0.1}


def test_truncated_configuration_record_is_reported_as_unreadable(tmp_path):
    record = tmp_path / checkpoint.RUN_CONFIGURATION_RECORD
    record.write_text('{"lr": 0.', encoding="utf-8")
    with pytest.raises(ValueError, match="unreadable run record") as caught:
        require_same_configuration(tmp_path, {"lr": 0.1}, remedy="pass --restart")
    assert str(caught.value).startswith(str(record)) and str(caught.value).endswith("pass --restart")


def test_configuration_fingerprint_drops_top_level_and_nested_fields():
    import dataclasses

    from common.checkpoint import configuration_fingerprint

    @dataclasses.dataclass
    class Data:
        root: str = "r"
        cache_dir: str = "c"

    @dataclasses.dataclass
    class Config:
        lr: float = 0.1
        device: str = "cpu"
        data: Data = dataclasses.field(default_factory=Data)

    assert configuration_fingerprint(Config(), without=("device", "data.cache_dir")) == {
        "lr": 0.1, "data": {"root": "r"}}
    with pytest.raises(KeyError):
        configuration_fingerprint(Config(), without=("data.missing",))
