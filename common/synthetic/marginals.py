"""CelebA's attribute statistics, embedded so synthetic faces never depend on the real files.

The synthetic attributes are drawn from a Gaussian copula fitted to CelebA
(Liu et al., ICCV'15, ``list_attr_celeba.txt`` + ``identity_CelebA.txt``):

* ``positive_rate[a]``: the fraction of the 202,599 images with attribute ``a``;
* ``latent_correlation[a, b]``: the tetrachoric correlation of attributes ``a`` and ``b``, i.e. the
  correlation of two standard normals whose thresholded values reproduce the observed
  joint rate ``P(a=1, b=1)`` (projected onto the positive-definite cone);
* ``identity_correlation[a]``: the tetrachoric correlation of attribute ``a`` between two
  different images of the same identity (how much of ``a`` is a trait of the person).

:func:`compute_celeba_statistics` recomputes all three from the real files;
``python -m common.synthetic.marginals ATTR_FILE IDENTITY_FILE`` regenerates
``celeba_statistics.py`` (the embedded copy), and a test checks the copy against the files.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr, ndtri

from common.attributes import ATTRIBUTE_INDEX, CELEBA_ATTRIBUTES, NUM_ATTRIBUTES

#: Gauss-Legendre nodes on [0, 1] for the bivariate-normal integral below.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(48)
_GL_NODES = 0.5 * (_GL_NODES + 1.0)
_GL_WEIGHTS = 0.5 * _GL_WEIGHTS


@dataclass(frozen=True)
class AttributeStatistics:
    """Copula parameters of CelebA's 40 attributes (see the module docstring)."""

    positive_rate: np.ndarray         # (40,) float64
    latent_correlation: np.ndarray    # (40, 40) float64, unit diagonal, positive definite
    identity_correlation: np.ndarray  # (40,) float64 in [0, 1]


def bivariate_normal_upper(h: np.ndarray, k: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """``P(X > h, Y > k)`` for standard normals with correlation ``rho`` (vectorised).

    Uses Plackett's identity ``d/dr Phi2 = phi2(h, k; r)`` integrated from 0 to ``rho``
    with 48-point Gauss-Legendre quadrature (accurate to ~1e-6 for ``|rho| <= 0.99``)."""
    h, k, rho = np.broadcast_arrays(np.asarray(h, float), np.asarray(k, float),
                                    np.asarray(rho, float))
    r = rho[..., None] * _GL_NODES
    one_minus = 1.0 - r * r
    density = np.exp(-(h[..., None] ** 2 - 2 * h[..., None] * k[..., None] * r
                       + k[..., None] ** 2) / (2 * one_minus)) / (2 * np.pi * np.sqrt(one_minus))
    return ndtr(-h) * ndtr(-k) + rho * (density * _GL_WEIGHTS).sum(-1)


def tetrachoric(rate_a: np.ndarray, rate_b: np.ndarray, joint: np.ndarray,
                iterations: int = 50) -> np.ndarray:
    """Latent normal correlation whose thresholding reproduces ``P(a=1)``, ``P(b=1)``, ``P(a=1,b=1)``.

    Vectorised bisection on ``rho`` in [-0.995, 0.995] (the joint rate is increasing in rho)."""
    h = ndtri(1.0 - np.asarray(rate_a, float))
    k = ndtri(1.0 - np.asarray(rate_b, float))
    joint = np.asarray(joint, float)
    low = np.full(np.broadcast(h, k, joint).shape, -0.995)
    high = np.full_like(low, 0.995)
    for _ in range(iterations):
        middle = 0.5 * (low + high)
        too_low = bivariate_normal_upper(h, k, middle) < joint
        low = np.where(too_low, middle, low)
        high = np.where(too_low, high, middle)
    return 0.5 * (low + high)


def nearest_correlation(matrix: np.ndarray, min_eigenvalue: float = 1e-3) -> np.ndarray:
    """Clip the eigenvalues of a symmetric matrix and rescale it back to unit diagonal."""
    symmetric = 0.5 * (matrix + matrix.T)
    values, vectors = np.linalg.eigh(symmetric)
    clipped = (vectors * np.maximum(values, min_eigenvalue)) @ vectors.T
    scale = 1.0 / np.sqrt(np.diag(clipped))
    result = clipped * scale[:, None] * scale[None, :]
    np.fill_diagonal(result, 1.0)
    return result


def _read_table(path: Path, header_lines: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image names, int8 values)`` of a whitespace-separated CelebA annotation file."""
    import pandas as pd

    frame = pd.read_csv(path, sep=r"\s+", header=None, skiprows=header_lines, index_col=0,
                        engine="c")
    return frame.index.to_numpy(dtype=str), frame.to_numpy(dtype=np.int64)


def compute_celeba_statistics(attribute_file: str | Path,
                              identity_file: str | Path) -> AttributeStatistics:
    """Fit the copula of :class:`AttributeStatistics` to CelebA's annotation files."""
    attribute_file, identity_file = Path(attribute_file), Path(identity_file)
    with open(attribute_file) as handle:
        handle.readline()
        names = handle.readline().split()
    if tuple(names) != CELEBA_ATTRIBUTES:
        raise ValueError(f"{attribute_file}:2: attribute names differ from CELEBA_ATTRIBUTES")
    image_ids, values = _read_table(attribute_file, header_lines=2)
    positives = (values > 0).astype(np.float64)
    identity_ids, identity_values = _read_table(identity_file, header_lines=0)
    if not np.array_equal(identity_ids, image_ids):
        raise ValueError(f"{identity_file}: image ids differ from {attribute_file}")
    identities = identity_values[:, 0]

    rate = positives.mean(0)
    joint = positives.T @ positives / len(positives)
    rows, cols = np.triu_indices(NUM_ATTRIBUTES, 1)
    latent = np.eye(NUM_ATTRIBUTES)
    latent[rows, cols] = tetrachoric(rate[rows], rate[cols], joint[rows, cols])
    latent[cols, rows] = latent[rows, cols]
    latent = nearest_correlation(latent)

    # Same-identity pairs: sum over identities of m(m-1) both-positive ordered pairs over n(n-1).
    _, group = np.unique(identities, return_inverse=True)
    group_size = np.bincount(group).astype(np.float64)
    group_positive = np.stack([np.bincount(group, weights=positives[:, a])
                               for a in range(NUM_ATTRIBUTES)], 1)
    pair_count = (group_size * (group_size - 1)).sum()
    pair_joint = (group_positive * (group_positive - 1)).sum(0) / pair_count
    identity_correlation = np.clip(tetrachoric(rate, rate, pair_joint), 0.0, 1.0)
    return AttributeStatistics(rate, latent, identity_correlation)


def format_statistics_module(statistics: AttributeStatistics) -> str:
    """Python source of ``celeba_statistics.py`` holding ``statistics`` (rounded)."""
    def row(values, digits):
        return "(" + ", ".join(f"{v:.{digits}f}" for v in values) + "),"

    lines = ['"""CelebA attribute statistics embedded for the synthetic generator.',
             "",
             "Generated by ``python -m common.synthetic.marginals list_attr_celeba.txt "
             "identity_CelebA.txt``;",
             'do not edit by hand (see ``common/synthetic/marginals.py``)."""',
             "",
             "#: Fraction of CelebA images with each attribute (CELEBA_ATTRIBUTES order).",
             "POSITIVE_RATE = " + row(statistics.positive_rate, 6)[:-1],
             "",
             "#: Tetrachoric (latent normal) correlation between attributes, 40 x 40.",
             "LATENT_CORRELATION = ("]
    lines += ["    " + row(r, 4) for r in statistics.latent_correlation]
    lines += [")",
              "",
              "#: Tetrachoric correlation of each attribute between two images of one identity.",
              "IDENTITY_CORRELATION = " + row(statistics.identity_correlation, 4)[:-1],
              ""]
    return "\n".join(lines)


def embedded_statistics() -> AttributeStatistics:
    """The statistics embedded in ``celeba_statistics.py`` (independent of any data file)."""
    from common.synthetic import celeba_statistics as table

    return AttributeStatistics(np.array(table.POSITIVE_RATE),
                               np.array(table.LATENT_CORRELATION),
                               np.array(table.IDENTITY_CORRELATION))


#: Attributes that are traits of the person: the identity alone decides them (face shape,
#: skin, hair, sex, age), so all images of one synthetic identity agree on them. The others
#: mix an identity part and a per-image part with CelebA's own same-identity correlation.
IDENTITY_TRAITS: tuple[str, ...] = (
    "Male", "Young", "Pale_Skin", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Bald",
    "Receding_Hairline", "Straight_Hair", "Wavy_Hair", "Big_Nose", "Pointy_Nose", "Big_Lips",
    "Chubby", "Double_Chin", "Oval_Face", "Arched_Eyebrows", "Bushy_Eyebrows",
)
_HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
_BEARD_PARTS = ("Goatee", "Mustache", "Sideburns")


def identity_weights(statistics: AttributeStatistics) -> np.ndarray:
    """Per-attribute share ``rho`` of the identity latent (1 for :data:`IDENTITY_TRAITS`)."""
    rho = statistics.identity_correlation.copy()
    rho[[ATTRIBUTE_INDEX[name] for name in IDENTITY_TRAITS]] = 1.0
    return rho


def sample_latent(rng: np.random.Generator, cholesky: np.ndarray) -> np.ndarray:
    """One draw of the copula's latent normal vector ``N(0, L L^T)``, where ``cholesky`` is
    ``np.linalg.cholesky(statistics.latent_correlation)``."""
    return cholesky @ rng.standard_normal(NUM_ATTRIBUTES)


def attributes_from_latent(identity_latent: np.ndarray, image_latent: np.ndarray,
                           statistics: AttributeStatistics) -> tuple[np.ndarray, np.ndarray]:
    """Threshold ``sqrt(rho) z_identity + sqrt(1 - rho) z_image`` at CelebA's positive rates.

    Each attribute keeps CelebA's marginal rate exactly and two images of one identity have
    latent correlation ``rho``. Returns ``(attributes uint8 (40,), margin (40,))`` where the
    margin (latent minus threshold) ranks competing attributes in :func:`make_consistent`."""
    rho = identity_weights(statistics)
    latent = np.sqrt(rho) * identity_latent + np.sqrt(1.0 - rho) * image_latent
    margin = latent - ndtri(1.0 - statistics.positive_rate)
    return (margin > 0).astype(np.uint8), margin


def make_consistent(attributes: np.ndarray, margin: np.ndarray | None = None) -> np.ndarray:
    """Enforce the rules that let every attribute be drawn unambiguously.

    * women have no facial hair (CelebA: 0.1 % of women are labelled with any) and men
      wear no lipstick or heavy makeup (CelebA: 0.6 % and 0.3 % of men);
    * ``No_Beard`` is 0 exactly when some beard is drawn: a goatee, mustache or sideburns
      force it to 0; ``No_Beard = 0`` alone means a full beard along the jaw;
    * bald heads carry no hair colour, texture, bangs or receding hairline, and women are
      never bald;
    * at most one hair colour and at most one of Straight / Wavy (the strongest latent wins).
    """
    out = np.array(attributes, dtype=np.uint8, copy=True)
    margin = np.zeros(NUM_ATTRIBUTES) if margin is None else np.asarray(margin, float)
    index = ATTRIBUTE_INDEX
    if not out[index["Male"]]:
        for name in _BEARD_PARTS + ("5_o_Clock_Shadow", "Bald"):
            out[index[name]] = 0
        out[index["No_Beard"]] = 1
    else:
        out[index["Wearing_Lipstick"]] = out[index["Heavy_Makeup"]] = 0
    if any(out[index[name]] for name in _BEARD_PARTS):
        out[index["No_Beard"]] = 0
    if out[index["Bald"]]:
        for name in _HAIR_COLOURS + ("Straight_Hair", "Wavy_Hair", "Bangs", "Receding_Hairline"):
            out[index[name]] = 0
    for group in (_HAIR_COLOURS, ("Straight_Hair", "Wavy_Hair")):
        present = [name for name in group if out[index[name]]]
        if len(present) > 1:
            keep = max(present, key=lambda name: margin[index[name]])
            for name in present:
                out[index[name]] = int(name == keep)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attribute_file", type=Path, help="list_attr_celeba.txt")
    parser.add_argument("identity_file", type=Path, help="identity_CelebA.txt")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).with_name("celeba_statistics.py"))
    args = parser.parse_args(argv)
    statistics = compute_celeba_statistics(args.attribute_file, args.identity_file)
    args.output.write_text(format_statistics_module(statistics))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
