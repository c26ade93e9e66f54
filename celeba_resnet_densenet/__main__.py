"""Command line: ``python -m celeba_resnet_densenet {reproduce,grid,predict} ...``.

    reproduce [--scale smoke|cpu|paper] [--data-root DIR] [--out DIR] [--device auto]
        the whole experiment: grids, test metrics, tables, figures, models (pipeline.reproduce)
    grid      [same options]
        only the learning-rate x dropout grids (resumable; grid/<backbone>/grid.csv), without
        retraining the selected point after a reduced-budget grid
    predict IMAGE_OR_FOLDER [...] [--out CSV] [--checkpoint PATH] [--geometry auto|celeba|celeba-hq|resize]
        the 40 probabilities and decisions of every image, with the shipped model by default
    ship [same options as reproduce]
        write the better network of a finished run (validation AUROC, <= 10 MB) as the shipped model
    throughput [same options] [--steps N]
        steady-state training images/s of each backbone at the scale's input size and batch
    compare RUN_A.npz RUN_B.npz [...] --names A B [...] --out DIR
        finished runs (their test_predictions_<backbone>.npz) paired on the same test images, e.g.
        --class-weighting balanced vs none at the same budget
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

# OpenMP threads that sleep instead of spinning while they wait: identical results, and on a shared
# 2-core CPU a spinning run crawls (a real-data run beside another job took minutes per 10 steps).
# Must precede torch's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from celeba_resnet_densenet.config import BACKBONES, ExperimentConfig
from celeba_resnet_densenet.losses import CLASS_WEIGHTINGS
#: ``predict --geometry`` choices: celeba_resnet_densenet.inference.GEOMETRIES (a test keeps them equal),
#: spelled out so that building the parser does not import torch.
GEOMETRIES = ("auto", "celeba", "celeba-hq", "resize")

DEFAULT_OUT = "results/celeba_resnet_densenet"


def _image_size(text: str) -> tuple[int, int]:
    """``"224"`` -> (224, 224); ``"109x89"`` -> (109, 89) (height x width)."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW, got {text!r}")
    return parts[0], parts[1]


def _pretrained(text: str) -> tuple[str, str]:
    backbone, _, path = text.partition("=")
    if backbone not in BACKBONES or not path:
        raise argparse.ArgumentTypeError(f"--pretrained takes BACKBONE=PATH with BACKBONE in {BACKBONES}, got {text!r}")
    return backbone, path


def _add_experiment_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", choices=("smoke", "cpu", "paper"), default="smoke",
                        help="smoke: synthetic pipeline check in about a minute; cpu: real-data run "
                             "sized for a 2-core CPU; paper: the paper's sizes (default: smoke)")
    parser.add_argument("--data-root", default=None,
                        help="folder holding celeba/ (e.g. ../shared/data) or a CelebA root; "
                             "default: synthetic faces")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"results folder (default: {DEFAULT_OUT})")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--models", nargs="+", choices=BACKBONES, default=None, help="backbones to run")
    parser.add_argument("--sample-size", type=int, default=None, help="images in the CelebA sample")
    parser.add_argument("--image-size", type=_image_size, default=None, help="input size N or HxW")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=None)
    parser.add_argument("--dropouts", type=float, nargs="+", default=None)
    parser.add_argument("--selection-metric", default=None,
                        choices=("val_accuracy", "val_f1", "val_precision", "val_recall", "val_loss"))
    parser.add_argument("--pretrained", type=_pretrained, action="append", default=[],
                        metavar="BACKBONE=PATH", help="local torchvision ImageNet state dict for a backbone")
    parser.add_argument("--verify-md5", action="store_true",
                        help="check the CelebA annotation files against their published md5 "
                             "before training")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--class-weighting", choices=CLASS_WEIGHTINGS, default=None,
                        help="BCE class weights per attribute (default: balanced, the paper's 'balanced the "
                             "dataset using class weights'; see losses.py)")
    parser.add_argument("--grid-subset-size", type=int, default=None,
                        help="train grid points on this many training images, then retrain the selected one")
    parser.add_argument("--grid-epochs", type=int, default=None, help="epochs per grid point (reduced budget)")
    parser.add_argument("--bf16", choices=("off", "on", "auto"), default=None,
                        help="bf16 autocast: auto = where it measures faster on this CPU / native on CUDA "
                             "(default: the scale's: auto at cpu scale, off otherwise)")
    parser.add_argument("--image-cache-dir", default=None,
                        help="decoded-image cache folder for real data (default at cpu scale: "
                             "results/.image_cache)")
    parser.add_argument("--no-image-cache", action="store_true", help="decode every image every epoch")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--num-workers", type=int, default=None, help="DataLoader workers")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bars")


def config_from_arguments(args: argparse.Namespace) -> ExperimentConfig:
    """The scale's configuration with the command-line overrides applied."""
    config = ExperimentConfig.for_scale(args.scale)
    data, optim, grid, runtime = config.data, config.optim, config.grid, config.runtime
    if args.sample_size is not None:
        data = dataclasses.replace(data, sample_size=args.sample_size,
                                   synthetic_n=max(data.synthetic_n, args.sample_size))
    if args.image_size is not None:
        data = dataclasses.replace(data, image_size=args.image_size)
    if args.batch_size is not None:
        optim = dataclasses.replace(optim, batch_size=args.batch_size)
    if args.epochs is not None:
        optim = dataclasses.replace(optim, epochs=args.epochs)
    if args.learning_rates is not None:
        grid = dataclasses.replace(grid, learning_rates=tuple(args.learning_rates))
    if args.dropouts is not None:
        grid = dataclasses.replace(grid, dropouts=tuple(args.dropouts))
    if args.selection_metric is not None:
        grid = dataclasses.replace(grid, selection_metric=args.selection_metric)
    if args.class_weighting is not None:
        optim = dataclasses.replace(optim, class_weighting=args.class_weighting)
    if args.grid_subset_size is not None:
        grid = dataclasses.replace(grid, subset_size=args.grid_subset_size)
    if args.grid_epochs is not None:
        grid = dataclasses.replace(grid, epochs=args.grid_epochs)
    image_cache_dir = None if args.no_image_cache else (args.image_cache_dir or runtime.image_cache_dir)
    runtime = dataclasses.replace(
        runtime, device=args.device, bf16=args.bf16 or runtime.bf16, image_cache_dir=image_cache_dir,
        channels_last=runtime.channels_last and not args.no_channels_last,
        compile=args.compile or runtime.compile,
        num_workers=runtime.num_workers if args.num_workers is None else args.num_workers,
        progress=runtime.progress and not args.no_progress)
    seed = config.seed if args.seed is None else args.seed
    if args.seed is not None:
        data = dataclasses.replace(data, seed=args.seed)
    return dataclasses.replace(
        config, data_root=args.data_root, data=data, optim=optim, grid=grid, runtime=runtime, seed=seed,
        backbones=tuple(args.models) if args.models else config.backbones,
        pretrained_weights=tuple(args.pretrained))


def _command_reproduce(args: argparse.Namespace) -> int:
    from celeba_resnet_densenet.pipeline import reproduce

    if args.verify_md5:
        from common.data.sources import verify_celeba_checksums

        verify_celeba_checksums(args.data_root)
    metrics = reproduce(config_from_arguments(args), args.out, argv=["python", "-m", "celeba_resnet_densenet", *args.argv])
    for backbone, values in metrics.items():
        print(f"{backbone}: " + ", ".join(f"{key} {value:.4f}" for key, value in values.items()))
    print(f"tables, figures and models written to {args.out}")
    return 0


def _command_grid(args: argparse.Namespace) -> int:
    from pathlib import Path

    from celeba_resnet_densenet.pipeline import run_grids

    config = config_from_arguments(args)
    _, _, runs = run_grids(config, args.out, retrain_selected=False)
    for backbone, run in runs.items():
        grid = run.grid
        print(f"{backbone}: {len(grid.results)} grid points recorded in {Path(grid.out_dir) / 'grid.csv'}")
        for record in grid.results:
            marker = "  <- selected" if record["folder"] == grid.best["folder"] else ""
            print(f"  lr {record['learning_rate']:g} dropout {record['dropout']:g}: "
                  f"{config.grid.selection_metric} {record['best'][config.grid.selection_metric]:.4f} "
                  f"(epoch {record['best_epoch']}){marker}")
    return 0


def _command_throughput(args: argparse.Namespace) -> int:
    import json

    from celeba_resnet_densenet.pipeline import measure_throughput

    results = measure_throughput(config_from_arguments(args), steps=args.steps, warmup_steps=args.warmup_steps)
    print(json.dumps(results, indent=1))
    return 0


def _command_predict(args: argparse.Namespace) -> int:
    from celeba_resnet_densenet.inference import AttributePredictor, format_prediction

    try:
        predictor = AttributePredictor(args.checkpoint, device=args.device, geometry=args.geometry)
        print(f"model: {predictor.meta['backbone']} from {predictor.checkpoint}")
        csv_path, predictions, unreadable = predictor.predict_folder(
            args.images, args.out, batch_size=args.batch_size, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for prediction in predictions[:args.show]:
        print(format_prediction(prediction))
    if len(predictions) > args.show:
        print(f"... and {len(predictions) - args.show} more images")
    print(f"{len(predictions)} image(s): probabilities and decisions written to {csv_path}")
    if unreadable:
        print(f"{len(unreadable)} unreadable image(s) skipped: {', '.join(map(str, unreadable[:20]))}",
              file=sys.stderr)
        return 1
    return 0


def _command_ship(args: argparse.Namespace) -> int:
    from celeba_resnet_densenet.inference import SHIPPED_MODEL
    from celeba_resnet_densenet.pipeline import ship_model

    record = ship_model(config_from_arguments(args), args.out, args.shipped_model or SHIPPED_MODEL)
    print(f"shipped {record['backbone']} ({record['bytes'] / 2**20:.2f} MiB) to "
          f"{args.shipped_model or SHIPPED_MODEL}; test mean AUROC {record['test_mean_auroc_shipped']:.4f} "
          f"(fp32 {record['test_mean_auroc_fp32']:.4f})")
    return 0


def _command_compare(args: argparse.Namespace) -> int:
    from celeba_resnet_densenet.pipeline import compare_runs

    for row in compare_runs(args.predictions, args.names, args.out, seed=args.seed,
                            n_resamples=args.resamples):
        interval = row["interval"]
        print(f"{row['a']} - {row['b']}, {row['metric']}: {interval.estimate:+.4f} "
              f"[{interval.low:+.4f}, {interval.high:+.4f}]")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celeba_resnet_densenet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    reproduce = commands.add_parser("reproduce", help="the whole experiment: tables, figures, models")
    _add_experiment_arguments(reproduce)
    reproduce.set_defaults(handler=_command_reproduce)
    grid = commands.add_parser("grid", help="only the learning-rate x dropout grids (resumable)")
    _add_experiment_arguments(grid)
    grid.set_defaults(handler=_command_grid)
    throughput = commands.add_parser("throughput", help="training images/s of each backbone")
    _add_experiment_arguments(throughput)
    throughput.add_argument("--steps", type=int, default=5, help="timed steps")
    throughput.add_argument("--warmup-steps", type=int, default=2)
    throughput.set_defaults(handler=_command_throughput)
    predict = commands.add_parser("predict", help="the 40 attributes of your images -> CSV")
    predict.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER")
    predict.add_argument("--checkpoint", default=None,
                         help="model file (default: the shipped model, pretrained/MODEL_CARD.md); also "
                              "models/<backbone>.pt of a reproduce run")
    predict.add_argument("--out", default="predictions.csv", help="CSV to write (default: predictions.csv)")
    predict.add_argument("--geometry", choices=GEOMETRIES, default="auto",
                         help="how the faces are cropped: celeba (aligned 178x218 frame), celeba-hq (square "
                              "HQ crop), auto (by aspect ratio), resize (stretch as is)")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--show", type=int, default=5, help="print the present attributes of this many images")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--no-progress", action="store_true")
    predict.set_defaults(handler=_command_predict)
    compare = commands.add_parser("compare", help="finished runs paired on the same test images")
    compare.add_argument("predictions", nargs="+", metavar="RUN.npz",
                         help="test_predictions_<backbone>.npz of each run; the first is the reference")
    compare.add_argument("--names", nargs="+", required=True, help="one name per run, for the table")
    compare.add_argument("--out", required=True, help="folder for run_comparison.{md,csv,json}")
    compare.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    compare.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (default 2000)")
    compare.set_defaults(handler=_command_compare)
    ship = commands.add_parser("ship", help="ship the better network of a finished reproduce run (--out)")
    _add_experiment_arguments(ship)
    ship.add_argument("--shipped-model", default=None, help="where to write it (default: the package's)")
    ship.set_defaults(handler=_command_ship)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
