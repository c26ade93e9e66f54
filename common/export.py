"""Trained models small enough to ship inside the repository, loadable with ``weights_only=True``.

Why: a model committed to the repository may take at most :data:`SHIPPED_MODEL_MAX_BYTES`
(10 MiB), and must load without unpickling arbitrary objects. fp16 is not enough for the larger
backbones (a DenseNet121, about 7.5 M parameters, is 15 MB in fp16), so big weight tensors are
stored as int8.

How: :func:`compact_state_dict` keeps each floating tensor in the smallest form that stays
accurate, and leaves every other tensor as it is:

- ``int8``: floating tensors with ``ndim >= 2`` and at least ``int8_min_elements`` elements
  (convolution and linear weights). Symmetric quantisation with one float32 scale per index of
  dim 0 (the output channel of a Conv/Linear weight), ``scale = max|w| / 127``, so every value is
  within ``scale / 2`` of the original: a relative error of at most 1/254 of the tensor's largest
  magnitude. An all-zero channel gets scale 1 and zero values.
- ``float16``: the other floating tensors (biases, BatchNorm affine parameters and running
  statistics), unless fp16 cannot hold them: a value beyond fp16's range (BatchNorm's
  ``running_var`` can be), or a non-zero value that fp16 rounds to zero, keeps the tensor ``float32``.
- ``raw``: integer, bool and other non-floating tensors (``num_batches_tracked``), exactly.

:func:`expand_state_dict` dequantises every floating tensor back to its original dtype, so the
model runs in plain floating point (no quantised kernels). The file, written atomically with
:func:`common.checkpoint.write_atomically` and read back with :func:`common.checkpoint.load_checkpoint`
(``weights_only=True``, CRC-checked), holds ``{"compact": {"format": "common.export/1",
"tensors": {name: entry}}, "meta": {...}}``, where ``meta`` holds only plain Python values.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from common.checkpoint import load_checkpoint, write_atomically

#: The most bytes one model file committed to the repository may take.
SHIPPED_MODEL_MAX_BYTES = 10 * 2**20

#: The ``"format"`` tag of :func:`compact_state_dict`'s result.
COMPACT_FORMAT = "common.export/1"
#: Licence line of every shipped model trained on CelebA (its agreement: non-commercial research only);
#: model cards quote it.
CELEBA_MODEL_LICENCE = ("Trained on CelebA images and labels: for non-commercial research and educational "
                        "purposes only, as CelebA's own agreement requires.")

#: What :func:`load_shipped_model` tells the user to do about a file it cannot use.
SHIPPED_MODEL_REMEDY = "re-export the model with common.export.save_shipped_model"

_INT8_LEVELS = 127
_PLAIN_SCALARS = (str, int, float, bool, type(None))


def _dtype_name(dtype: torch.dtype) -> str:
    """``torch.float32`` -> ``"float32"``."""
    return str(dtype).removeprefix("torch.")


def _floating_dtype(name: Any) -> torch.dtype:
    """The floating ``torch.dtype`` called ``name`` (``"float32"``); ``ValueError`` for anything else."""
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{name!r} is not a floating torch dtype")
    return dtype


def _quantise_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantisation of a float32 tensor along dim 0: ``(values, scale)``, with
    ``values`` int8 of ``weight``'s shape and ``scale`` float32 of shape ``(weight.shape[0],)``."""
    rows = weight.reshape(weight.shape[0], -1)
    peak = rows.abs().amax(dim=1)
    scale = torch.where(peak > 0, peak / _INT8_LEVELS, torch.ones_like(peak))
    values = torch.round(rows / scale[:, None]).clamp_(-_INT8_LEVELS, _INT8_LEVELS).to(torch.int8)
    return values.reshape(weight.shape), scale


def compact_state_dict(state_dict: Mapping[str, torch.Tensor], *,
                       int8_min_elements: int = 4096) -> dict[str, Any]:
    """``state_dict`` as ``{"format": COMPACT_FORMAT, "tensors": {name: entry}}`` (see the module
    docstring for the entry kinds), holding only tensors, strings and dicts, so that
    ``torch.load(weights_only=True)`` reads it.

    A floating tensor holding NaN, an infinity or a value beyond float32's range raises
    ``ValueError`` naming it; an entry that is not a tensor raises ``TypeError`` naming it.
    """
    tensors: dict[str, dict[str, Any]] = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu()
        if not tensor.is_floating_point():
            tensors[name] = {"kind": "raw", "values": tensor.clone()}
            continue
        values = tensor.to(torch.float32)
        if not torch.isfinite(values).all():
            raise ValueError(f"state_dict tensor {name!r} holds NaN, infinite or beyond-float32 values; "
                             "a model with non-finite weights is not exported")
        dtype = _dtype_name(tensor.dtype)
        if tensor.ndim >= 2 and tensor.numel() >= max(int8_min_elements, 1):
            quantised, scale = _quantise_int8(values)
            tensors[name] = {"kind": "int8", "values": quantised, "scale": scale, "dtype": dtype}
            continue
        half = values.to(torch.float16)
        if torch.isfinite(half).all() and not ((half == 0) & (values != 0)).any():
            tensors[name] = {"kind": "float16", "values": half, "dtype": dtype}
        else:
            tensors[name] = {"kind": "float32", "values": values.clone(), "dtype": dtype}
    return {"format": COMPACT_FORMAT, "tensors": tensors}


def expand_state_dict(compact: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`compact_state_dict`: floating tensors dequantised to their original dtype,
    the others as stored. Anything not in :data:`COMPACT_FORMAT` raises ``ValueError``."""
    if not isinstance(compact, Mapping) or compact.get("format") != COMPACT_FORMAT \
            or not isinstance(compact.get("tensors"), Mapping):
        raise ValueError(f"not a compact state dict of format {COMPACT_FORMAT!r}")
    state_dict: dict[str, torch.Tensor] = {}
    for name, entry in compact["tensors"].items():
        kind = entry.get("kind") if isinstance(entry, Mapping) else None
        if kind == "raw":
            state_dict[name] = entry["values"]
        elif kind == "int8":
            values = entry["values"]
            scale = entry["scale"].to(device=values.device, dtype=torch.float32)
            scale = scale.reshape((-1,) + (1,) * (values.ndim - 1))
            state_dict[name] = (values.to(torch.float32) * scale).to(_floating_dtype(entry["dtype"]))
        elif kind in ("float16", "float32"):
            state_dict[name] = entry["values"].to(_floating_dtype(entry["dtype"]))
        else:
            raise ValueError(f"tensor {name!r} has an unknown entry kind {kind!r}")
    return state_dict


def _require_plain(value: Any, where: str) -> None:
    """Raise ``TypeError`` naming ``where`` unless ``value`` is built only of str / int / float / bool /
    None scalars, lists, tuples and str-keyed dicts (exact types: a NumPy float is refused, since
    ``weights_only`` loading could not read it back)."""
    if type(value) in _PLAIN_SCALARS:
        return
    if type(value) in (list, tuple):
        for index, item in enumerate(value):
            _require_plain(item, f"{where}[{index}]")
    elif type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where} has a key {key!r} of type {type(key).__name__}; keys must be str")
            _require_plain(item, f"{where}[{key!r}]")
    else:
        raise TypeError(f"{where} is a {type(value).__name__}; shipped-model meta may hold only str, int, "
                        "float, bool, None, lists, tuples and str-keyed dicts")


def save_shipped_model(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor],
                       meta: Mapping[str, Any], *, max_bytes: int = SHIPPED_MODEL_MAX_BYTES,
                       int8_min_elements: int = 4096) -> int:
    """Write ``{"compact": compact_state_dict(state_dict), "meta": dict(meta)}`` to ``path`` atomically
    and return the file's size in bytes.

    A file that would exceed ``max_bytes`` is deleted before it replaces ``path`` (a model already
    there stays) and ``ValueError`` says its size and the limit. ``meta`` that ``weights_only``
    loading could not read back raises ``TypeError`` before anything is written."""
    path = Path(path)
    meta = dict(meta)
    _require_plain(meta, "meta")
    payload = {"compact": compact_state_dict(state_dict, int8_min_elements=int8_min_elements), "meta": meta}

    def write_within_limit(temp_path: Path) -> None:
        torch.save(payload, temp_path)
        size = temp_path.stat().st_size
        if size > max_bytes:
            raise ValueError(f"{path}: the shipped model would take {size:,} bytes ({size / 2**20:.2f} MiB), "
                             f"over the limit of {max_bytes:,} bytes ({max_bytes / 2**20:.2f} MiB); "
                             "nothing was written")

    return write_atomically(path, write_within_limit).stat().st_size


def load_shipped_model(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                       ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, meta)`` from a file written by :func:`save_shipped_model`, read with
    ``weights_only=True``; floating tensors come back in their original dtype (float32).

    A corrupt file raises :class:`common.checkpoint.CheckpointError`, and a readable file that is
    not a shipped model ``ValueError``, both naming the file."""
    payload = load_checkpoint(path, map_location=map_location, remedy=SHIPPED_MODEL_REMEDY)
    if not isinstance(payload, dict) or not {"compact", "meta"} <= payload.keys() \
            or not isinstance(payload["meta"], dict):
        raise ValueError(f"{path}: not a shipped model (no 'compact' state dict and 'meta' dict, as "
                         f"common.export.save_shipped_model writes); {SHIPPED_MODEL_REMEDY}")
    try:
        state_dict = expand_state_dict(payload["compact"])
    except ValueError as error:
        raise ValueError(f"{path}: not a shipped model: {error}; {SHIPPED_MODEL_REMEDY}") from None
    return state_dict, payload["meta"]


def quantisation_error(state_dict: Mapping[str, torch.Tensor],
                       compact: Mapping[str, Any]) -> dict[str, float]:
    """For each floating tensor of ``state_dict``, ``max|original - expanded| / max|original|``
    (the absolute difference for an all-zero tensor, 0 for an empty one), where ``expanded`` comes
    from :func:`expand_state_dict` of ``compact``, normally ``compact_state_dict(state_dict)``."""
    expanded = expand_state_dict(compact)
    errors: dict[str, float] = {}
    for name, original in state_dict.items():
        if not original.is_floating_point():
            continue
        if original.numel() == 0:
            errors[name] = 0.0
            continue
        original = original.detach().cpu().to(torch.float64)
        difference = (original - expanded[name].cpu().to(torch.float64)).abs().max().item()
        peak = original.abs().max().item()
        errors[name] = difference / peak if peak > 0 else difference
    return errors
