"""Does bf16 autocast change what a network learns? (issue #16: "show that a bf16 run's validation
metric matches fp32 within noise on one package").

On celeba_resnet_densenet's real-data CPU scale, one grid point (DenseNet121, lr 0.001, dropout 0.3,
2 epochs on 2,000 training images, the whole identity-disjoint validation split) is trained three
times: fp32 with seed 0, bf16 autocast with seed 0, and fp32 with seed 1. The bf16 - fp32 difference
in validation mean AUROC and accuracy (at the prior-corrected thresholds, nothing tuned) is set
beside the seed-to-seed difference of two fp32 runs, both as paired bootstrap intervals over the
validation images (``common.metrics.intervals``). "Within noise" means the bf16 effect's interval
overlaps the seed effect's range.

    python -m benchmarks.bf16_validation --data-root ../shared/data --out results/bf16_validation

About 3 x 2-3 minutes on 2 cores; writes ``bf16_vs_fp32.md`` / ``.json`` under ``--out`` (commit them
under ``benchmarks/results/celeba_resnet_densenet/``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from celeba_resnet_densenet.config import ExperimentConfig
from celeba_resnet_densenet.data import split_attributes
from celeba_resnet_densenet.evaluate import predict_logits, resampled_statistics, sigmoid
from celeba_resnet_densenet.losses import prior_corrected_thresholds
from celeba_resnet_densenet.pipeline import run_grids
from celeba_resnet_densenet.train import load_point_model
from common.metrics import apply_thresholds
from common.metrics.intervals import paired_bootstrap_difference
from common.train import cpu_description

log = logging.getLogger(__name__)

#: (label, bf16, seed) of the three runs.
RUNS = (("fp32, seed 0", "off", 0), ("bf16, seed 0", "on", 0), ("fp32, seed 1", "off", 1))
METRICS = {"mean_auroc": "validation mean AUROC", "accuracy": "validation accuracy (prior-corrected thresholds)"}


def train_and_predict(data_root: str, out_dir: Path, bf16: str, seed: int) -> dict:
    """One grid point trained in ``out_dir`` (resumable) -> validation labels, probabilities, decisions."""
    base = ExperimentConfig.cpu(data_root=data_root)
    config = dataclasses.replace(
        base, backbones=("densenet121",), seed=seed,
        grid=dataclasses.replace(base.grid, learning_rates=(0.001,), dropouts=(0.3,)),
        runtime=dataclasses.replace(base.runtime, bf16=bf16, progress=False, tensorboard=False))
    sample, datasets, runs = run_grids(config, out_dir, retrain_selected=False)
    run = runs["densenet121"]
    model, _ = load_point_model(run.folder)
    logits, labels = predict_logits(model, datasets["val"], batch_size=config.optim.eval_batch_size)
    probabilities = sigmoid(logits)
    thresholds = prior_corrected_thresholds(split_attributes(sample, "train"), config.optim.class_weighting)
    return {"labels": labels, "probabilities": probabilities,
            "decisions": apply_thresholds(probabilities, thresholds), "train_seconds": run.final["train_seconds"],
            "train_images_per_second": run.final["train_images_per_second"]}


def compare(results: dict[str, dict]) -> list[dict]:
    """Paired bootstrap intervals of (bf16 - fp32) and (fp32 seed 1 - fp32 seed 0) per metric."""
    reference = results["fp32, seed 0"]
    labels = reference["labels"]
    for label, result in results.items():
        if result["labels"].shape != labels.shape or (result["labels"] != labels).any():
            raise ValueError(f"{label}: other validation images than fp32, seed 0 (the split must not change)")
    rows = []
    for other in ("bf16, seed 0", "fp32, seed 1"):
        for metric in METRICS:
            a = resampled_statistics(labels, results[other]["probabilities"], results[other]["decisions"])[metric]
            b = resampled_statistics(labels, reference["probabilities"], reference["decisions"])[metric]
            interval = paired_bootstrap_difference(a, b, len(labels))
            rows.append({"comparison": f"{other} - fp32, seed 0", "metric": metric, **interval.as_dict()})
    return rows


def markdown(rows: list[dict], results: dict[str, dict]) -> str:
    lines = ["# bf16 autocast vs fp32: celeba_resnet_densenet, DenseNet121 grid point", "",
             f"CPU: {cpu_description()}. lr 0.001, dropout 0.3, 2 epochs on 2,000 of the 8,000 training images, "
             "109x89, batch 64; validation: the 1,000 identity-disjoint validation images of the shared CelebA copy "
             "(the split has its own seed and is the same in all three runs). Seed 1 changes the initialisation, "
             "the batch order and which 2,000 training images the grid point sees: its difference is the run-to-run "
             "noise the bf16 difference is measured against.",
             "", "| run | train img/s | train seconds |", "|---|---:|---:|"]
    lines += [f"| {label} | {result['train_images_per_second']:.1f} | {result['train_seconds']:.0f} |"
              for label, result in results.items()]
    lines += ["", "| difference | metric | estimate | 95 % CI (paired bootstrap over validation images) |",
              "|---|---|---:|---|"]
    lines += [f"| {row['comparison']} | {METRICS[row['metric']]} | {row['estimate']:+.4f} | "
              f"[{row['low']:+.4f}, {row['high']:+.4f}] |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", required=True, help="folder holding celeba/ (e.g. ../shared/data)")
    parser.add_argument("--out", default="results/bf16_validation")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out = Path(args.out)
    results = {label: train_and_predict(args.data_root, out / label.replace(", ", "_").replace(" ", ""), bf16, seed)
               for label, bf16, seed in RUNS}
    rows = compare(results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bf16_vs_fp32.md").write_text(markdown(rows, results), encoding="utf-8")
    (out / "bf16_vs_fp32.json").write_text(json.dumps({"cpu": cpu_description(), "comparisons": rows}, indent=1)
                                           + "\n", encoding="utf-8")
    print(markdown(rows, results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
