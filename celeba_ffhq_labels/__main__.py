"""Command line: ``python -m celeba_ffhq_labels {reproduce,label,export} ...``.

    reproduce [--scale smoke|cpu|paper] [--data-root DIR] [--out DIR] [--device auto] ...
        train on CelebA (identity-disjoint train / val / test), Fig. 3 + tables with intervals,
        validation thresholds, geometry check, classifier.pt, label-transfer example
        (resumes from <out>/train/last.pt when present)
    label --images DIR --out labels.csv [--checkpoint PATH] [--geometry auto|celeba|celeba-hq|resize]
        soft and hard labels for every image of a folder of faces (FFHQ, CelebA-HQ, CelebA, any size),
        with the shipped labeller unless --checkpoint names another
    export --checkpoint RUN/classifier.pt [--out celeba_ffhq_labels/pretrained/NAME.pt]
        a classifier as a shipped model (common.export: int8 / fp16, at most 10 MiB)
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

# OpenMP threads that sleep instead of spinning while they wait: identical results, and on a shared
# CPU the smoke run took 2.5 instead of 7.5 minutes (load ~5 on 2 cores). Must precede torch's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_OUT = "results/celeba_ffhq_labels"
from celeba_ffhq_labels.config import DEFAULT_IMAGE_CACHE_DIR, MODELS, SHIPPED_MODEL_NAME  # noqa: E402  -- light: no torch

#: Where ``label`` looks for its default model and ``export`` writes.
SHIPPED_MODEL_PATH = Path(__file__).resolve().parent / "pretrained" / SHIPPED_MODEL_NAME
_SHIPPED_MODEL_SHOWN = f"celeba_ffhq_labels/pretrained/{SHIPPED_MODEL_NAME}"


def _input_size(text: str) -> tuple[int, int]:
    """``"224"`` -> (224, 224); ``"109x89"`` -> (109, 89) (height x width)."""
    try:
        parts = [int(part) for part in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 32:
        raise argparse.ArgumentTypeError(f"input size must be N or HxW (>= 32), got {text!r}")
    return parts[0], parts[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m celeba_ffhq_labels",
                                     description="Le & Lee: SE-ResNeXt-101 CelebA attribute labels, "
                                                 "transferred to high-resolution faces")
    commands = parser.add_subparsers(dest="command", required=True)

    reproduce = commands.add_parser("reproduce", help="the whole experiment (tables, Fig. 3, labels)")
    reproduce.add_argument("--scale", choices=("smoke", "cpu", "paper"), default="smoke",
                           help="smoke: synthetic pipeline check in about a minute; cpu: real-data "
                                "run sized for a 2-core CPU; paper: SE-ResNeXt-101 at 224x224 "
                                "(default: smoke)")
    reproduce.add_argument("--data-root", default=None,
                           help="folder holding celeba/ (e.g. ../shared/data) or a CelebA root; "
                                "default: synthetic faces")
    reproduce.add_argument("--out", default=DEFAULT_OUT, help=f"results folder (default: {DEFAULT_OUT})")
    reproduce.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda:1 ...")
    reproduce.add_argument("--verify-md5", action="store_true",
                           help="check the CelebA annotation files against their published md5 "
                                "before training")
    reproduce.add_argument("--seed", type=int, default=None,
                           help="seed of the image sample and of training (default 0); the split has its own seed")
    reproduce.add_argument("--split", choices=("auto", "official", "identity"), default=None,
                           help="train / val / test, never one person in two of them: CelebA's "
                                "official partition, a carve-out by identity (70/10/20), or auto: the "
                                "official partition when the images hold all three parts, else by "
                                "identity (default: official at paper scale, auto otherwise)")
    reproduce.add_argument("--pretrained", default=None, metavar="PATH",
                           help="local ImageNet weights of the architecture (timm state dict)")
    reproduce.add_argument("--max-images", type=int, default=None, help="use a random sample")
    reproduce.add_argument("--input-size", type=_input_size, default=None, help="N or HxW")
    reproduce.add_argument("--epochs", type=int, default=None)
    reproduce.add_argument("--batch-size", type=int, default=None)
    reproduce.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    reproduce.add_argument("--num-workers", type=int, default=None, help="DataLoader workers")
    reproduce.add_argument("--model", choices=sorted(MODELS), default=None,
                           help="member of the SE-ResNeXt family, at the scale's input size (default: the "
                                "scale's: seresnext101 at paper scale, reduced otherwise)")
    reproduce.add_argument("--bf16", choices=("auto", "on", "off"), default=None,
                           help="bf16 autocast: auto times it once against fp32 on this CPU (CUDA: on where "
                                "native) and keeps the decision with the run (default: auto; off at smoke "
                                "scale, so its tables do not depend on the CPU)")
    cache = reproduce.add_mutually_exclusive_group()
    cache.add_argument("--image-cache-dir", default=None, metavar="DIR",
                       help=f"decode the training images once into a cache here (default at cpu scale: "
                            f"{DEFAULT_IMAGE_CACHE_DIR})")
    cache.add_argument("--no-image-cache", action="store_true", help="decode every image every epoch")
    reproduce.add_argument("--restart", action="store_true",
                           help="delete <out>/train first instead of resuming from it")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")

    label = commands.add_parser("label", help="soft + hard labels for a folder of face images")
    label.add_argument("--images", required=True, nargs="+",
                       help="image files and / or folders (searched recursively)")
    label.add_argument("--out", required=True, help="CSV to write")
    label.add_argument("--checkpoint", default=None, metavar="PATH",
                       help=f"a results folder of reproduce, its classifier.pt, or a shipped model "
                            f"(default: the shipped labeller, {_SHIPPED_MODEL_SHOWN})")
    label.add_argument("--geometry", choices=("auto", "celeba", "celeba-hq", "resize"), default="auto",
                       help="how the faces are cropped, so they can be mapped to CelebA's aligned frame "
                            "the model was trained on: celeba (aligned 178x218 frame), celeba-hq "
                            "(square CelebA-HQ / FFHQ crop, face much tighter), auto (178:218 -> celeba, "
                            "square -> celeba-hq, anything else an error), resize (no mapping: stretch "
                            "to the model input) (default: auto)")
    label.add_argument("--thresholds", default=None,
                       help="thresholds JSON (default: the validation thresholds stored with the model)")
    label.add_argument("--batch-size", type=int, default=64)
    label.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (decoding)")
    label.add_argument("--device", default="auto")
    label.add_argument("--no-progress", action="store_true")

    export = commands.add_parser("export", help="write a trained classifier as a shipped model (<= 10 MiB)")
    export.add_argument("--checkpoint", required=True, metavar="PATH",
                        help="a results folder of reproduce or its classifier.pt")
    export.add_argument("--out", default=SHIPPED_MODEL_PATH,
                        help=f"model file to write (default: {_SHIPPED_MODEL_SHOWN})")
    ship = commands.add_parser("ship", help="ship a finished reproduce run's classifier with its model card")
    ship.add_argument("--checkpoint", required=True, metavar="DIR", help="the results folder of reproduce")
    ship.add_argument("--out", default=SHIPPED_MODEL_PATH,
                      help=f"model file to write; MODEL_CARD.md goes beside it (default: {_SHIPPED_MODEL_SHOWN})")
    return parser


def _run_reproduce(args: argparse.Namespace, argv: list[str]) -> None:
    from celeba_ffhq_labels.config import ExperimentConfig
    from celeba_ffhq_labels.pipeline import reproduce

    config = ExperimentConfig.for_scale(args.scale, data_root=args.data_root)
    if args.model is not None:
        config = dataclasses.replace(config, model=dataclasses.replace(MODELS[args.model],
                                                                       input_size=config.model.input_size))
    if args.no_image_cache:
        config = dataclasses.replace(config, runtime=dataclasses.replace(config.runtime, image_cache_dir=None))
    config = config.with_pretrained(args.pretrained).with_overrides(
        model={"input_size": args.input_size},
        data={"split": args.split, "max_images": args.max_images},
        optim={"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr},
        runtime={"device": args.device, "num_workers": args.num_workers, "bf16": args.bf16,
                 "image_cache_dir": args.image_cache_dir,
                 "progress": False if args.no_progress else None},
    )
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.verify_md5:
        from common.data.sources import verify_celeba_checksums

        verify_celeba_checksums(args.data_root)
    facts = reproduce(config, args.out, argv=argv, restart=args.restart)
    interval = facts["test_intervals"]["metrics"]["mean_auroc"]
    print(f"mean AUROC {facts['mean_auroc']:.4f} [{interval['low']:.4f}, {interval['high']:.4f}] (paper "
          f"0.7611) on {facts['sizes']['test']} test images ({facts['split']['rule']}); results in {args.out}")


def _run_label(args: argparse.Namespace) -> None:
    from common.gpu import select_device

    from celeba_ffhq_labels.evaluate import read_thresholds
    from celeba_ffhq_labels.transfer import Labeller

    thresholds = read_thresholds(args.thresholds) if args.thresholds else None
    labeller = Labeller.from_file(args.checkpoint, geometry=args.geometry, device=select_device(args.device),
                                  thresholds=thresholds)
    labelled = labeller.label(args.images, args.out, batch_size=args.batch_size, num_workers=args.num_workers,
                              progress=not args.no_progress)
    print(f"labelled {int(labelled.readable.sum())} of {len(labelled.images)} images with "
          f"{labeller.source} -> {args.out}")
    if labelled.unreadable:
        print(f"{len(labelled.unreadable)} unreadable (status 'unreadable' in the CSV): "
              + ", ".join(labelled.unreadable[:10]) + (" ..." if len(labelled.unreadable) > 10 else ""))


def _run_export(args: argparse.Namespace) -> None:
    from celeba_ffhq_labels.models import export_classifier

    path = export_classifier(args.checkpoint, args.out)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.2f} MiB) from {args.checkpoint}")


def _run_ship(args: argparse.Namespace) -> None:
    from celeba_ffhq_labels.pipeline import ship_labeller

    record = ship_labeller(args.checkpoint, args.out)
    print(f"shipped {args.out} ({record['bytes'] / 2**20:.2f} MiB): test mean AUROC {record['test_mean_auroc_shipped']:.4f} "
          f"(full precision {record['test_mean_auroc_fp32_label_path']:.4f}) through the label path")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.command == "reproduce":
        _run_reproduce(args, ["python", "-m", "celeba_ffhq_labels", *argv])
    elif args.command == "label":
        try:
            _run_label(args)
        except (FileNotFoundError, ValueError) as error:
            raise SystemExit(f"error: {error}") from None
    elif args.command == "ship":
        _run_ship(args)
    else:
        _run_export(args)


if __name__ == "__main__":
    main()
