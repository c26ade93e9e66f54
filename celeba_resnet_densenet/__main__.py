"""Command line: ``python -m celeba_resnet_densenet {reproduce,grid,predict} ...``.

    reproduce [--scale smoke|cpu|paper] [--data-root DIR] [--out DIR] [--device auto]
        the whole experiment: grids, test metrics, tables, figures, models (pipeline.reproduce)
    grid      [same options]
        only the learning-rate x dropout grids (resumable; grid/<backbone>/grid.csv)
    predict IMAGE [IMAGE ...] [--checkpoint PATH] [--threshold P]
        the attributes present in each image, with their probabilities
    throughput [same options] [--steps N]
        steady-state training images/s of each backbone at the scale's input size and batch
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from celeba_resnet_densenet.config import BACKBONES, ExperimentConfig

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
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
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
    runtime = dataclasses.replace(
        runtime, device=args.device, bf16=args.bf16 or runtime.bf16,
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
    _, _, grids = run_grids(config, args.out)
    for backbone, grid in grids.items():
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
        predictor = AttributePredictor(args.checkpoint, device=args.device)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"model: {predictor.meta['backbone']} from {predictor.checkpoint}")
    failures = 0
    for image in args.images:
        try:
            prediction = predictor([image], threshold=args.threshold)[0]
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
            continue
        print(format_prediction(prediction))
    return 1 if failures else 0


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
    predict = commands.add_parser("predict", help="attributes present in images")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--checkpoint", default=None,
                         help="model file written by reproduce (default: "
                              "results/celeba_resnet_densenet/models/resnet50.pt)")
    predict.add_argument("--threshold", type=float, default=None, help="default: the model's (0.5)")
    predict.add_argument("--device", default="auto")
    predict.set_defaults(handler=_command_predict)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
