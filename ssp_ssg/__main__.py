"""Command line of the SSP / SSG reproduction (Kalayeh, Gong & Shah, CVPR 2017).

    python -m ssp_ssg reproduce [--scale smoke|cpu|paper] [--data-root DIR] [--out DIR]
    python -m ssp_ssg evaluate --checkpoint RUN_DIR [--out DIR]
        recompute every table and figure of a finished reproduce run (its --out) without training
    python -m ssp_ssg predict IMAGES_OR_FOLDER ... --out DIR [--checkpoint PATH]
                              [--attributes A B ...] [--geometry auto|celeba|celeba-hq|resize]
        the 40 probabilities per image (CSV) and SSP localisation heat maps (PNG)
    python -m ssp_ssg export --checkpoint RUN_DIR [--out FILE]
        the run's SSP net as a shipped model file (<= 10 MiB; default: the package's)
    python -m ssp_ssg ship --checkpoint RUN_DIR [--out FILE]
        export, check the written file against the checkpoint on the run's test images through
        the predict path, and write MODEL_CARD.md beside it
    python -m ssp_ssg throughput [--models avgpool,ssp,parser] [--input 109x89] [--width-multiplier 1.0]
        [--batch-size 32] [--modes fp32,bf16-cl] [--threads N]
    python -m ssp_ssg masks-grid --data-root DIR [--masks-root DIR] --out PNG

Pseudo parsing masks for real images are made by ``python -m ssp_ssg.pseudo_masks`` in the
separate ``.venv-masks`` (see README).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

# OpenMP threads that sleep instead of spinning while they wait: identical results, far faster on a
# shared 2-core CPU. Must precede torch's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: F401  -- torch before anything that might import tensorflow

from ssp_ssg.config import ReproduceConfig

DEFAULT_MASKS_ROOT = Path("results/.pseudo_masks/celeba")
#: ``--bf16`` when not given: timed per network at the real-data scales, fp32 at smoke scale
#: (measured: benchmarks/results/ssp_ssg/cpu_real_v4/bf16_channels_last.md).
SCALE_BF16 = {"smoke": "off", "cpu": "auto", "paper": "auto"}
#: ``--channels-last`` when not given: on at the real-data scales (1.17-1.30x channels-first in fp32,
#: more with bf16, same table), off at smoke scale.
SCALE_CHANNELS_LAST = {"smoke": False, "cpu": True, "paper": True}
#: ``predict --geometry`` choices (``common.inference.GEOMETRIES``; a test keeps them equal),
#: spelled out so that building the parser does not import the inference code.
GEOMETRIES = ("auto", "celeba", "celeba-hq", "resize")


def apply_overrides(config, assignments: list[str]):
    """``["optim.attribute_steps=200", "data.image_size=109,89"]`` -> a new config."""
    for assignment in assignments:
        if "=" not in assignment:
            raise ValueError(f"--set expects key=value, got {assignment!r}")
        key, text = assignment.split("=", 1)
        config = _replace_path(config, key.split("."), text, key)
    return config


def _replace_path(obj, path: list[str], text: str, full_key: str):
    names = {f.name for f in dataclasses.fields(obj)}
    if path[0] not in names:
        raise ValueError(f"--set {full_key}: {type(obj).__name__} has no field {path[0]!r} "
                         f"(fields: {sorted(names)})")
    current = getattr(obj, path[0])
    if len(path) > 1:
        return dataclasses.replace(obj, **{path[0]: _replace_path(current, path[1:], text, full_key)})
    return dataclasses.replace(obj, **{path[0]: _parse_like(current, text, full_key)})


def _parse_like(current, text: str, key: str):
    if text.lower() == "none":
        return None
    if isinstance(current, bool):
        return text.lower() in ("1", "true", "yes")
    if isinstance(current, tuple):
        items = [item for item in text.split(",") if item]
        kind = type(current[0]) if current else str
        return tuple(kind(item) for item in items)
    kind = type(current) if current is not None else (float if "." in text else int)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"--set {key}: cannot read {text!r} as {kind.__name__}") from None


def _reproduce(args) -> int:
    from ssp_ssg.jobs import ReproductionInputs
    from ssp_ssg.reproduce import reproduce
    from ssp_ssg.train import RunSettings

    if args.verify_md5:
        from common.data.sources import verify_celeba_checksums

        verify_celeba_checksums(args.data_root)

    config = apply_overrides(ReproduceConfig.for_scale(args.scale), args.set or [])
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    threads = args.threads if args.threads is not None else config.torch_threads
    if threads is not None:
        torch.set_num_threads(threads)
    masks_root = args.masks_root
    if masks_root is None and args.data_root is not None:
        masks_root = DEFAULT_MASKS_ROOT
    settings = RunSettings(device=args.device, seed=config.seed, log_every=config.log_every,
                           checkpoint_every=config.checkpoint_every,
                           bf16=args.bf16 if args.bf16 is not None else SCALE_BF16[config.scale],
                           channels_last=(args.channels_last if args.channels_last is not None
                                          else SCALE_CHANNELS_LAST[config.scale]),
                           compile=args.compile,
                           num_workers=config.num_workers if args.num_workers is None else args.num_workers,
                           tensorboard=config.scale == "paper", progress=not args.no_progress)
    if args.parallel_jobs is not None:
        config = dataclasses.replace(config, parallel_jobs=args.parallel_jobs)
    if threads is not None:
        config = dataclasses.replace(config, torch_threads=threads)
    inputs = ReproductionInputs(config=config, out_dir=args.out, settings=settings,
                                data_root=args.data_root, masks_root=masks_root,
                                helen_root=args.helen_root, lfwa_root=args.lfwa_root)
    results = reproduce(inputs, ["python", "-m", "ssp_ssg", *sys.argv[1:]])
    _print_summary(args.out, results)
    return 0


def _print_summary(out_dir: Path, results: dict) -> None:
    scores, summary = results["scores"], results["localisation"]
    print(f"results in {out_dir}: error % AvgPool {scores['avgpool'].error:.2f}, "
          f"SSG {scores['ssg'].error:.2f}, SSP {scores['ssp'].error:.2f}, "
          f"SSP+SSG {scores['ssp+ssg'].error:.2f} (majority {results['majority'].error:.2f}); "
          f"parsing mIoU {results['iou'][0]:.2f} -> {results['iou'][1]:.2f} with attributes; "
          f"Fig. 4: {summary.matches} of {summary.assessed} attributes weigh their own region most "
          f"(chance {summary.expected_by_chance:.1f}, p = {summary.p_value:.3g})")
    for result in results["comparisons"]:
        comparison = result.comparison
        print(f"  {comparison.label}, {comparison.measure}: {result.difference:+.2f} "
              f"[{result.low:+.2f}, {result.high:+.2f}] -> {result.verdict}")


def _evaluate(args) -> int:
    from ssp_ssg.reproduce import evaluate_run
    from ssp_ssg.train import RunSettings

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    settings = RunSettings(device=args.device, progress=not args.no_progress)
    try:
        results = evaluate_run(args.checkpoint, args.out, settings,
                               ["python", "-m", "ssp_ssg", *sys.argv[1:]],
                               bootstrap_resamples=args.bootstrap_resamples)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"evaluate: {error}") from None
    out_dir = args.out if args.out is not None else "<run>/evaluation"
    _print_summary(out_dir, results)
    return 0


def _predict(args) -> int:
    from ssp_ssg.inference import Predictor, load_ssp_model

    try:
        predictor = Predictor(load_ssp_model(args.checkpoint, args.device), args.geometry,
                              args.attributes or ())
        report = predictor.predict(args.images, args.out, batch_size=args.batch_size,
                                   progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"predict: {error}") from None
    print(f"model: {predictor.loaded.source}")
    decisions = " and decisions" if predictor.loaded.thresholds is not None else ""
    print(f"{report.images} image(s): probabilities{decisions} in {report.csv_path}")
    if report.heatmaps:
        print(f"heat maps of {', '.join(predictor.heatmap_attributes)}: {len(report.heatmaps)} PNG(s) "
              f"in {report.heatmaps[0].parent}")
    if report.unreadable:
        names = ", ".join(str(path) for path in report.unreadable[:20])
        more = f" and {len(report.unreadable) - 20} more" if len(report.unreadable) > 20 else ""
        print(f"{len(report.unreadable)} unreadable file(s) skipped: {names}{more} "
              f"(listed in {Path(args.out) / 'unreadable.txt'})", file=sys.stderr)
        return 1
    return 0


def _export(args) -> int:
    from ssp_ssg.inference import SHIPPED_MODEL, export_model

    try:
        path, size = export_model(args.checkpoint, args.out or SHIPPED_MODEL)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"export: {error}") from None
    print(f"wrote {path} ({size / 2**20:.2f} MiB)")
    return 0


def _ship(args) -> int:
    from ssp_ssg.inference import MODEL_CARD_NAME, SHIPPED_MODEL, ship_model

    try:
        check = ship_model(args.checkpoint, args.out or SHIPPED_MODEL, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"ship: {error}") from None
    print(f"wrote {check.path} ({check.bytes / 2**20:.2f} MiB) and {check.path.parent / MODEL_CARD_NAME}; "
          f"{check.test_images} test images: error {check.shipped_error:.2f} % / AP "
          f"{check.shipped_average_precision:.2f} % shipped, {check.checkpoint_error:.2f} % / "
          f"{check.checkpoint_average_precision:.2f} % full precision")
    return 0


def _throughput(args) -> int:
    from ssp_ssg.throughput import measure_models

    height, width = (int(v) for v in args.input.lower().split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        rows = measure_models(args.models.split(","), (height, width), args.width_multiplier,
                              args.batch_size, args.steps, args.device, modes=args.modes.split(","))
    except ValueError as error:
        raise SystemExit(f"throughput: {error}") from None
    for row in rows:
        print(row)
    return 0


def _masks_grid(args) -> int:
    from ssp_ssg.figures import pseudo_mask_grid

    path = pseudo_mask_grid(args.data_root, args.masks_root, args.out, args.count)
    print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ssp_ssg", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    reproduce = commands.add_parser("reproduce", help="train, evaluate, write Tables 2-4 and Figs. 4-5")
    reproduce.add_argument("--scale", choices=("smoke", "cpu", "paper"), default="smoke",
                           help="smoke: synthetic faces in about a minute; cpu: the real-data "
                                "CPU run; paper: the paper's sizes and iterations")
    reproduce.add_argument("--data-root", type=Path, default=None,
                           help="real data (a folder with celeba/, e.g. ../shared/data, or a "
                                "CelebA root); default: synthetic faces")
    reproduce.add_argument("--out", type=Path, default=Path("results/ssp_ssg"))
    reproduce.add_argument("--device", default="auto")
    reproduce.add_argument("--verify-md5", action="store_true",
                           help="check the CelebA annotation files against their published md5 "
                                "before training")
    reproduce.add_argument("--seed", type=int, default=None,
                           help="training seed (initialisation, batch order, augmentation); default: the scale's")
    reproduce.add_argument("--masks-root", type=Path, default=None,
                           help=f"pseudo parsing masks (default with --data-root: {DEFAULT_MASKS_ROOT})")
    reproduce.add_argument("--helen-root", type=Path, default=None,
                           help="Helen in Smith et al.'s layout: train / test the parser on it (§4.1)")
    reproduce.add_argument("--lfwa-root", type=Path, default=None, help="LFWA, for Table 3")
    reproduce.add_argument("--bf16", choices=("off", "on", "auto"), default=None,
                           help="bf16 autocast: auto = decided per network once (native on CUDA, "
                                "timed on CPUs with native bf16, off elsewhere); default: auto at the "
                                "cpu and paper scales (1.6-1.9x on an AVX512_BF16 EPYC, 0.82x for the "
                                "SSP net on an AMX Xeon), off at smoke scale (its expected bands are fp32)")
    reproduce.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                           help="NHWC activations; default: on at the cpu and paper scales (1.2-1.3x "
                                "in fp32 on the EPYC), off at smoke scale")
    reproduce.add_argument("--compile", action="store_true", help="torch.compile the models")
    reproduce.add_argument("--num-workers", type=int, default=None)
    reproduce.add_argument("--parallel-jobs", type=int, default=None,
                           help="networks trained side by side (default: the scale's parallel_jobs)")
    reproduce.add_argument("--threads", type=int, default=None,
                           help="torch CPU threads (default: the scale's torch_threads)")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")
    reproduce.add_argument("--set", action="append", metavar="KEY=VALUE",
                           help="override a config field, e.g. optim.attribute_steps=500 or "
                                "data.image_size=109,89 (repeatable)")
    reproduce.set_defaults(handler=_reproduce)

    evaluate = commands.add_parser("evaluate", help="recompute the tables and figures of a finished "
                                                    "reproduce run without training")
    evaluate.add_argument("--checkpoint", type=Path, required=True,
                          help="the reproduce run's --out folder (or its checkpoints folder)")
    evaluate.add_argument("--out", type=Path, default=None, help="default: RUN/evaluation")
    evaluate.add_argument("--bootstrap-resamples", type=int, default=None,
                          help="resamples behind each claim's interval (default: the scale's)")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    evaluate.add_argument("--no-progress", action="store_true")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="the 40 attributes of your face images (CSV) "
                                                  "and SSP localisation heat maps (PNG)")
    predict.add_argument("images", nargs="+", metavar="IMAGES_OR_FOLDER")
    predict.add_argument("--out", type=Path, required=True, help="folder for predictions.csv and heatmaps/")
    predict.add_argument("--checkpoint", type=Path, default=None,
                         help="an export file or a reproduce run's --out folder (default: the "
                              "shipped model, ssp_ssg/pretrained/)")
    predict.add_argument("--attributes", nargs="+", default=None, metavar="A",
                         help="draw localisation heat maps of these attributes (CelebA names)")
    predict.add_argument("--geometry", choices=GEOMETRIES, default="auto",
                         help="how the faces are cropped: celeba (aligned 178x218 frame), celeba-hq "
                              "(square crop), auto (by aspect ratio), resize (stretch as is)")
    predict.add_argument("--batch-size", type=int, default=32)
    predict.add_argument("--device", default="auto")
    predict.add_argument("--no-progress", action="store_true")
    predict.set_defaults(handler=_predict)

    export = commands.add_parser("export", help="write a run's SSP net as a shipped model (<= 10 MiB)")
    export.add_argument("--checkpoint", type=Path, required=True, help="a reproduce run's --out folder")
    export.add_argument("--out", type=Path, default=None,
                        help="model file (default: ssp_ssg/pretrained/ssp_celeba_cpu.pt)")
    export.set_defaults(handler=_export)

    ship = commands.add_parser("ship", help="export + check on the run's test images + MODEL_CARD.md")
    ship.add_argument("--checkpoint", type=Path, required=True, help="a finished reproduce run's --out folder")
    ship.add_argument("--out", type=Path, default=None,
                      help="model file (default: ssp_ssg/pretrained/ssp_celeba_cpu.pt)")
    ship.add_argument("--no-progress", action="store_true")
    ship.set_defaults(handler=_ship)

    throughput = commands.add_parser("throughput", help="training img/s of attribute nets and the parser")
    throughput.add_argument("--models", default="avgpool,ssp")
    throughput.add_argument("--input", default="109x89", help="HxW")
    throughput.add_argument("--width-multiplier", type=float, default=1.0)
    throughput.add_argument("--batch-size", type=int, default=32)
    throughput.add_argument("--steps", type=int, default=3)
    throughput.add_argument("--device", default="auto")
    throughput.add_argument("--modes", default="fp32",
                            help="comma-separated: fp32, fp32-cl, bf16, bf16-cl (bf16 autocast, channels_last)")
    throughput.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    throughput.set_defaults(handler=_throughput)

    grid = commands.add_parser("masks-grid", help="PNG of real images with their pseudo masks")
    grid.add_argument("--data-root", type=Path, required=True)
    grid.add_argument("--masks-root", type=Path, default=DEFAULT_MASKS_ROOT)
    grid.add_argument("--out", type=Path, required=True)
    grid.add_argument("--count", type=int, default=8)
    grid.set_defaults(handler=_masks_grid)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
