"""CPU benchmarks (``make bench``): each metric on 20,000 x 40 scores against scikit-learn's own,
the Fréchet-distance step of FID against ``scipy.linalg.sqrtm``, the synthetic generator's faces/s
and the CelebA annotation parse. Prints a Markdown table and writes ``benchmarks/results/cpu/``."""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import time
from pathlib import Path
from typing import Callable

import numpy as np

from common.tables import Table, na, write_tables

SHARED_CELEBA = Path(__file__).resolve().parents[2] / "shared" / "data" / "celeba"


def best_of(function: Callable[[], object], repeats: int = 3) -> float:
    """Fastest wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def metric_rows(n: int = 20_000, c: int = 40) -> list[list]:
    from sklearn import metrics as skm

    from common import metrics

    rng = np.random.default_rng(0)
    y_true = (rng.random((n, c)) < np.linspace(0.05, 0.5, c)).astype(np.uint8)
    scores = np.clip(y_true * 0.3 + rng.random((n, c)) * 0.7, 0, 1).round(3)  # ties included
    y_pred = (scores > 0.5).astype(np.uint8)
    pairs = {
        "AUROC (40 columns)": (lambda: metrics.auroc(y_true, scores),
                               lambda: [skm.roc_auc_score(y_true[:, j], scores[:, j]) for j in range(c)]),
        "average precision (40 columns)": (lambda: metrics.average_precision(y_true, scores),
                                           lambda: [skm.average_precision_score(y_true[:, j], scores[:, j]) for j in range(c)]),
        "hamming loss": (lambda: metrics.hamming_loss(y_true, y_pred), lambda: skm.hamming_loss(y_true, y_pred)),
        "precision/recall/F1 (samples)": (
            lambda: metrics.precision_recall_f1(y_true, y_pred, average="samples"),
            lambda: skm.precision_recall_fscore_support(y_true, y_pred, average="samples", zero_division=0)),
        "balanced accuracy (40 columns)": (lambda: metrics.balanced_accuracy(y_true, y_pred),
                                           lambda: [skm.balanced_accuracy_score(y_true[:, j], y_pred[:, j]) for j in range(c)]),
        "threshold grid search (100 x 40)": (lambda: metrics.search_thresholds(y_true, scores), None),
    }
    rows = []
    for name, (ours, reference) in pairs.items():
        ours_s = best_of(ours)
        if reference is None:
            rows.append([name, ours_s, na("no scikit-learn equivalent"), na("no scikit-learn equivalent")])
        else:
            reference_s = best_of(reference)
            rows.append([name, ours_s, reference_s, reference_s / ours_s])
    return rows


def frechet_rows(dim: int = 2048) -> list[list]:
    import scipy.linalg

    from common.metrics.fid import frechet_distance

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2 * dim, dim)), rng.normal(size=(2 * dim, dim)) * 1.1 + 0.1
    mu1, mu2 = a.mean(0), b.mean(0)
    sigma1, sigma2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)

    def reference() -> float:
        covmean = scipy.linalg.sqrtm(sigma1 @ sigma2).real
        return float(((mu1 - mu2) ** 2).sum() + np.trace(sigma1 + sigma2 - 2 * covmean))

    ours_s = best_of(lambda: frechet_distance(mu1, sigma1, mu2, sigma2), repeats=1)
    reference_s = best_of(reference, repeats=1)
    agreement = abs(frechet_distance(mu1, sigma1, mu2, sigma2) - reference()) / reference()
    return [[f"Fréchet distance at {dim}-d (relative difference {agreement:.1e})", ours_s, reference_s,
             reference_s / ours_s]]


def generator_rows(n: int = 200) -> list[list]:
    from common.synthetic import generate_faces

    seconds = best_of(lambda: generate_faces(n, seed=0), repeats=1)
    return [[f"synthetic faces 178x218, {n} faces (faces/s = {n / seconds:.0f})", seconds,
             na("no reference implementation"), na("no reference implementation")]]


def parse_rows() -> list[list]:
    from common.data.celeba import read_attribute_file

    path = SHARED_CELEBA / "list_attr_celeba.txt"
    if not path.is_file():
        return [["list_attr_celeba.txt parse (202,599 rows)", na("needs ../shared/data"),
                 na("needs ../shared/data"), na("needs ../shared/data")]]

    def python_split_loop() -> int:
        with path.open() as handle:
            lines = handle.read().splitlines()[2:]
        return len([line.split() for line in lines])

    ours_s, reference_s = best_of(lambda: read_attribute_file(path)), best_of(python_split_loop)
    return [["list_attr_celeba.txt parse (202,599 rows) vs a Python split loop", ours_s, reference_s,
             reference_s / ours_s]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "cpu")
    args = parser.parse_args(argv)
    rows = metric_rows() + frechet_rows() + generator_rows() + parse_rows()
    table = Table("cpu_benchmarks", f"CPU benchmarks ({dt.date.today()}, {platform.processor() or platform.machine()})",
                  ["task", "ours (s)", "reference (s)", "speed-up (reference / ours)"], rows,
                  notes=("Best of 3 wall-clock runs (1 for the slow ones) in one process.",))
    write_tables([table], args.out, float_format=".4g")
    print(table.to_markdown(float_format=".4g"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
