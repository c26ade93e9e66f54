"""The one switch between synthetic faces and real CelebA that every paper package uses."""
from __future__ import annotations

import os
from pathlib import Path

from common.data.celeba import CelebAAnnotations, read_celeba


def synthetic_celeba_key(n: int, seed: int, height: int, width: int) -> str:
    """Cache folder name of a synthetic CelebA set: one folder per parameter set."""
    return f"celeba_n{n}_seed{seed}_{height}x{width}"


def resolve_celeba_root(data_root: str | os.PathLike) -> Path:
    """``data_root/celeba`` when that folder exists (e.g. ``../shared/data``), else ``data_root``."""
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise FileNotFoundError(f"data root not found: {data_root}")
    nested = data_root / "celeba"
    return nested if nested.is_dir() else data_root


def open_celeba_source(data_root: str | os.PathLike | None = None, *, synthetic_n: int = 512,
                       synthetic_size: tuple[int, int] = (218, 178), seed: int = 0,
                       cache_dir: str | os.PathLike = "results/.synthetic",
                       verify_md5: bool = False) -> CelebAAnnotations:
    """CelebA annotations from real data, or from synthetic faces when ``data_root`` is None.

    ``data_root=None``: ``synthetic_n`` faces of ``synthetic_size = (height, width)`` rendered by
    ``common.synthetic.write_celeba_layout`` into ``cache_dir/<key>`` (reused when the
    parameters match) and read back with :func:`read_celeba`, exactly like real data.
    Otherwise ``data_root`` is a folder holding ``celeba/`` (e.g. ``../shared/data``) or a CelebA
    root itself; ``verify_md5`` checks its annotation files against torchvision's published md5
    (``common.data.celeba.CELEBA_MD5``; a mismatch raises ``ChecksumError``). Synthetic data has
    no published checksums, so ``verify_md5`` without ``data_root`` raises ``ValueError``.
    """
    if data_root is not None:
        return read_celeba(resolve_celeba_root(data_root), verify_md5=verify_md5)
    if verify_md5:
        raise ValueError("verify_md5 checks real CelebA annotation files against torchvision's "
                         "published md5; synthetic faces have none (give a data root)")
    from common.synthetic import write_celeba_layout

    height, width = synthetic_size
    root = Path(cache_dir) / synthetic_celeba_key(synthetic_n, seed, height, width)
    return read_celeba(write_celeba_layout(root, synthetic_n, seed=seed, height=height, width=width))


def verify_celeba_checksums(data_root: str | os.PathLike | None) -> None:
    """What every package's ``--verify-md5`` does before training: check the annotation files under
    ``data_root`` against their published md5 (``ChecksumError`` names a mismatching file);
    ``ValueError`` without a data root (synthetic faces have no published checksums)."""
    open_celeba_source(data_root, verify_md5=True)
