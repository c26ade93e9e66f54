"""Atomic, ``weights_only``-loadable checkpoints and the RNG state that makes a resume exact."""
from __future__ import annotations

import dataclasses
import json
import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

#: What :func:`load_checkpoint` tells the user to do about an unreadable checkpoint.
UNREADABLE_CHECKPOINT_REMEDY = "re-run with --restart to start over, or delete the file"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be loaded: empty, truncated, corrupt, or not a checkpoint."""


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """``write(temp_path)`` to a temp file beside ``path``, then rename it onto ``path``.

    A process killed mid-write leaves the previous file (or none), never a partial one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temp_path)
        os.replace(temp_path, path)
    finally:
        temp_path.unlink(missing_ok=True)
    return path


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, then a rename.

    A run killed mid-write leaves the previous checkpoint intact, never a truncated one."""
    return write_atomically(Path(path), lambda temp_path: torch.save(state, temp_path))


def _archive_problem(path: Path) -> str | None:
    """Why ``path`` is not an intact ``torch.save`` zip archive, or ``None`` when it is.

    Every member is read back so that its CRC-32 (written by ``torch.save``) is checked: a flipped
    byte in tensor data is found here, where ``torch.load`` alone would return wrong weights.
    Members stored without a CRC (``torch.serialization.set_crc32_options(False)``) are skipped.
    """
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes)"
    if not zipfile.is_zipfile(path):
        return "it is not the zip archive torch.save writes"
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            if not any(member.filename.endswith("data.pkl") for member in members):
                return "the zip archive holds no data.pkl, so it is not a torch checkpoint"
            for member in members:
                if member.CRC == 0:
                    continue
                with archive.open(member) as stream:
                    while stream.read(1 << 24):
                        pass
    except (zipfile.BadZipFile, EOFError) as error:
        return f"the zip archive is damaged: {error}"
    return None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    remedy: str = UNREADABLE_CHECKPOINT_REMEDY) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``weights_only=True``.

    An empty, truncated or corrupt file, or one holding objects other than tensors and plain
    Python values, raises :class:`CheckpointError` naming the file, the problem and ``remedy``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    problem = _archive_problem(path)
    if problem is None:
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            problem = ("it holds objects other than tensors and plain Python values, so it was not "
                       "written by common.checkpoint.save_checkpoint")
    raise CheckpointError(f"{path}: unreadable checkpoint (corrupt, truncated or empty): {problem}; "
                          f"{remedy}")


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy (legacy global), torch CPU and CUDA generator states, as tensors and
    primitives only so that ``weights_only=True`` can load them."""
    python_version, python_internal, python_gauss = random.getstate()
    numpy_name, numpy_keys, numpy_pos, numpy_has_gauss, numpy_cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": (python_version, torch.tensor(python_internal, dtype=torch.int64), python_gauss),
        "numpy": {
            "name": numpy_name,
            "keys": torch.from_numpy(numpy_keys.astype(np.int64)),
            "pos": int(numpy_pos),
            "has_gauss": int(numpy_has_gauss),
            "cached_gaussian": float(numpy_cached),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    python_version, python_internal, python_gauss = state["python"]
    random.setstate((python_version, tuple(int(v) for v in python_internal.tolist()), python_gauss))
    numpy_state = state["numpy"]
    np.random.set_state((
        numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
        numpy_state["has_gauss"], numpy_state["cached_gaussian"],
    ))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


#: File, in a run or grid folder, recording the configuration the run there was started with.
RUN_CONFIGURATION_RECORD = "experiment.json"


def configuration_fingerprint(config: Any, without: Iterable[str] = ()) -> dict[str, Any]:
    """``dataclasses.asdict(config)`` less the fields named in ``without`` (dotted for nested
    sections: ``"data.cache_dir"``): a package's configuration without what only says how a run
    executes, for :func:`require_same_configuration`."""
    record = dataclasses.asdict(config)
    for dotted in without:
        *sections, name = dotted.split(".")
        section = record
        for key in sections:
            section = section[key]
        del section[name]
    return record


def require_same_configuration(folder: str | os.PathLike, fingerprint: dict[str, Any],
                               record_name: str = RUN_CONFIGURATION_RECORD,
                               remedy: str = "choose another output folder or start over") -> None:
    """Refuse to resume (or add to) ``folder`` when it was started with another configuration.

    The first call records ``fingerprint`` (JSON, written atomically) in ``folder/record_name``;
    later calls compare against it and raise ``ValueError`` naming the record and the keys that
    differ (or that the record is unreadable), so checkpoints of two configurations are never
    silently mixed. Put only what changes the results in the fingerprint (hyper-parameters, data,
    model), not run-time settings such as the device."""
    folder = Path(folder)
    record = folder / record_name
    wanted = json.loads(json.dumps(fingerprint))  # tuples -> lists, as stored
    if record.is_file():
        try:
            stored = json.loads(record.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{record}: unreadable run record (corrupt or truncated: {error}); "
                             f"{remedy}") from None
        if stored != wanted:
            changed = sorted(key for key in set(stored) | set(wanted) if stored.get(key) != wanted.get(key))
            raise ValueError(f"{record}: {folder} holds a run with another configuration (differs in "
                             f"{changed}); {remedy}")
        return
    text = json.dumps(wanted, indent=1) + "\n"
    write_atomically(record, lambda temp_path: temp_path.write_text(text, encoding="utf-8"))
