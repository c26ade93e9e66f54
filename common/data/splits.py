"""Train / test splits used by the papers, as sorted int64 index arrays, deterministic in ``seed``.

- :func:`official_split`: CelebA's ``list_eval_partition.txt`` (train 162,770 / val 19,867 /
  test 19,962 on the full dataset).
- :func:`random_split`: a random 80/20 split of the images (paper 000, Le & Lee §3.1 "Datasets").
- :func:`random_sample`: ``k`` images drawn without replacement (paper 003, Velamala & Rawat,
  "Training and Validation": a sample of 29,500 CelebA images).
- :func:`identity_split`: no identity on both sides, for held-out sets carved out of a partial
  image folder (shared/data's 10,000 images are all in the official train split).
"""
from __future__ import annotations

import numpy as np

PARTITION_NAMES = ("train", "val", "test")


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")


def official_split(partition: np.ndarray) -> dict[str, np.ndarray]:
    """``{"train", "val", "test"}`` -> indices of the rows whose partition code is 0, 1, 2."""
    if partition is None:
        raise ValueError("no official partition: list_eval_partition.txt was not read")
    partition = np.asarray(partition)
    return {name: np.flatnonzero(partition == code).astype(np.int64)
            for code, name in enumerate(PARTITION_NAMES)}


def random_split(n: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n)`` and hold out ``round(n * test_fraction)`` indices -> (train, test)."""
    _check_fraction(test_fraction)
    order = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    return np.sort(order[n_test:]).astype(np.int64), np.sort(order[:n_test]).astype(np.int64)


def random_sample(n: int, k: int, seed: int = 0) -> np.ndarray:
    """``k`` distinct indices of ``range(n)``, sorted."""
    if not 0 <= k <= n:
        raise ValueError(f"cannot sample {k} of {n} images")
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)).astype(np.int64)


def identity_split(identities: np.ndarray, test_fraction: float = 0.2,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split images by identity so that no identity is on both sides -> (train, test).

    Identities are shuffled and moved to the test side until it holds the number of images
    closest to ``test_fraction`` of all images (at least one identity on each side).
    """
    _check_fraction(test_fraction)
    if identities is None:
        raise ValueError("no identities: identity_CelebA.txt was not read")
    identities = np.asarray(identities)
    unique, inverse, counts = np.unique(identities, return_inverse=True, return_counts=True)
    if len(unique) < 2:
        raise ValueError(f"an identity split needs at least 2 identities, got {len(unique)}")
    order = np.random.default_rng(seed).permutation(len(unique))
    cumulative = np.cumsum(counts[order])
    target = test_fraction * len(identities)
    n_test_identities = int(np.clip(np.argmin(np.abs(cumulative - target)) + 1, 1, len(unique) - 1))
    is_test_identity = np.zeros(len(unique), dtype=bool)
    is_test_identity[order[:n_test_identities]] = True
    is_test = is_test_identity[inverse]
    return np.flatnonzero(~is_test).astype(np.int64), np.flatnonzero(is_test).astype(np.int64)
