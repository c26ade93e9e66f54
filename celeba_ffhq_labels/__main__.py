"""Command line: ``python -m celeba_ffhq_labels {reproduce,label} ...``.

    reproduce [--scale smoke|cpu|paper] [--data-root DIR] [--out DIR] [--device auto] ...
        train on CelebA, Fig. 3 + tables, thresholds, classifier.pt, label-transfer example
        (resumes from <out>/train/last.pt when present)
    label --images DIR --out labels.csv [--checkpoint PATH] [--thresholds JSON]
        soft and hard labels for every image of a folder of faces (FFHQ, CelebA-HQ, any size)
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

# OpenMP threads that sleep instead of spinning while they wait: identical results, and on a shared
# CPU the smoke run took 2.5 instead of 7.5 minutes (load ~5 on 2 cores). Must precede torch's import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

DEFAULT_OUT = "results/celeba_ffhq_labels"
DEFAULT_CHECKPOINT = f"{DEFAULT_OUT}/classifier.pt"


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
    reproduce.add_argument("--split", choices=("random", "official"), default=None,
                           help="random 80/20 as in the paper (default) or CelebA's partition")
    reproduce.add_argument("--pretrained", default=None, metavar="PATH",
                           help="local ImageNet weights of the architecture (timm state dict)")
    reproduce.add_argument("--max-images", type=int, default=None, help="use a random sample")
    reproduce.add_argument("--input-size", type=_input_size, default=None, help="N or HxW")
    reproduce.add_argument("--epochs", type=int, default=None)
    reproduce.add_argument("--batch-size", type=int, default=None)
    reproduce.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    reproduce.add_argument("--num-workers", type=int, default=None, help="DataLoader workers")
    reproduce.add_argument("--restart", action="store_true",
                           help="delete <out>/train first instead of resuming from it")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bars")

    label = commands.add_parser("label", help="soft + hard labels for a folder of face images")
    label.add_argument("--images", required=True, help="folder of images (searched recursively)")
    label.add_argument("--out", required=True, help="CSV to write")
    label.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                       help=f"classifier written by reproduce (default: {DEFAULT_CHECKPOINT})")
    label.add_argument("--thresholds", default=None,
                       help="thresholds JSON (default: the ones stored in the checkpoint)")
    label.add_argument("--batch-size", type=int, default=64)
    label.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (decoding)")
    label.add_argument("--device", default="auto")
    label.add_argument("--no-progress", action="store_true")
    return parser


def _run_reproduce(args: argparse.Namespace, argv: list[str]) -> None:
    from celeba_ffhq_labels.config import ExperimentConfig
    from celeba_ffhq_labels.pipeline import reproduce

    config = ExperimentConfig.for_scale(args.scale, data_root=args.data_root)
    config = config.with_overrides(
        model={"input_size": args.input_size, "pretrained_path": args.pretrained},
        data={"split": args.split, "max_images": args.max_images},
        optim={"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.lr},
        runtime={"device": args.device, "num_workers": args.num_workers,
                 "progress": False if args.no_progress else None},
    )
    if args.seed is not None:
        config = dataclasses.replace(config, seed=args.seed)
    if args.verify_md5:
        from common.data.sources import verify_celeba_checksums

        verify_celeba_checksums(args.data_root)
    facts = reproduce(config, args.out, argv=argv, restart=args.restart)
    print(f"mean AUROC {facts['mean_auroc']:.4f} (paper 0.7611) on {facts['sizes']['test']} held-out "
          f"images; results in {args.out}")


def _run_label(args: argparse.Namespace) -> None:
    from common.gpu import select_device

    from celeba_ffhq_labels.evaluate import read_thresholds
    from celeba_ffhq_labels.models import load_classifier
    from celeba_ffhq_labels.transfer import label_folder

    model, model_config = load_classifier(args.checkpoint)
    thresholds = (read_thresholds(args.thresholds) if args.thresholds
                  else model.decision_thresholds.numpy().astype("float64"))
    labelled = label_folder(model, model_config, args.images, args.out, thresholds,
                            batch_size=args.batch_size, device=select_device(args.device),
                            progress=not args.no_progress, num_workers=args.num_workers)
    print(f"labelled {int(labelled.readable.sum())} of {len(labelled.images)} images -> {args.out}")
    if labelled.unreadable:
        print(f"{len(labelled.unreadable)} unreadable (status 'unreadable' in the CSV): "
              + ", ".join(labelled.unreadable[:10]) + (" ..." if len(labelled.unreadable) > 10 else ""))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.command == "reproduce":
        _run_reproduce(args, ["python", "-m", "celeba_ffhq_labels", *argv])
    else:
        _run_label(args)


if __name__ == "__main__":
    main()
