"""Tu et al., "Face Attribute Inversion": Table 1, Fig. 2 and Fig. 3, and the trained generator.

    python -m attribute_inversion reproduce [--scale smoke|cpu|paper] [--data-root DIR] [--out DIR]
    python -m attribute_inversion evaluate --checkpoint DIR [--out DIR]
    python -m attribute_inversion invert --attribute Eyeglasses IMAGES_OR_FOLDER ... --out DIR [--checkpoint PATH]
    python -m attribute_inversion export --checkpoint DIR --attribute Eyeglasses [--out FILE]
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import types
from pathlib import Path


def _configure_process() -> None:
    """Process set-up for CPU runs on shared machines (to move to common):

    - ``OMP_WAIT_POLICY=PASSIVE``: OpenMP threads sleep instead of spinning while they wait; on an
      oversubscribed CPU spinning threads made a training step 10x slower (measured here).
    - ``tensorboard.compat.notf``: TensorBoard's documented switch to its TensorFlow stub, so that
      ``SummaryWriter`` does not import TensorFlow (seconds of start-up; event files are the same).

    Only when this module runs as the program (``python -m attribute_inversion``): a process that
    imports it, such as the test suite, may use TensorFlow's summaries, which the stub breaks.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))


if __name__ == "__main__":
    _configure_process()

import torch  # noqa: E402,F401  -- after the OpenMP setting; torch before any tensorflow import

from .config import DEFAULT_IMAGE_CACHE_DIR, PAPER_ATTRIBUTES, ReproduceConfig  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m attribute_inversion", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    reproduce = commands.add_parser("reproduce", help="train ours + CycleGAN, write Table 1 and Figs. 2-3")
    reproduce.add_argument("--scale", choices=("smoke", "cpu", "paper"), default="smoke",
                           help="smoke: synthetic faces, ~2.5 min on 2 cores; cpu: real data sized for a 2-core CPU; "
                                "paper: §3.1's setting")
    reproduce.add_argument("--data-root", type=Path, default=None,
                           help="folder holding celeba/ (e.g. ../shared/data) or a CelebA root; "
                                "default: synthetic faces")
    reproduce.add_argument("--out", type=Path, default=Path("results/attribute_inversion"))
    reproduce.add_argument("--checkpoint-dir", type=Path, default=None,
                           help="training runs (checkpoints, TensorBoard, sample grids); default OUT/train")
    reproduce.add_argument("--device", default="auto")
    reproduce.add_argument("--attributes", default=None,
                           help=f"comma-separated subset of {','.join(PAPER_ATTRIBUTES)}")
    reproduce.add_argument("--verify-md5", action="store_true",
                           help="check the CelebA annotation files against their published md5 "
                                "before training")
    reproduce.add_argument("--seed", type=int, default=None,
                           help="seed of the held-out split, the domain sampling and training (default 0)")
    reproduce.add_argument("--max-steps", type=int, default=None, help="training steps per model")
    reproduce.add_argument("--bf16", choices=("off", "on", "auto"), default=None,
                           help="bf16 autocast of every training run: auto times it once against fp32 on this "
                                "CPU (CUDA: on where native); each run keeps its decision in its folder's "
                                "bf16.json, so a resumed run never changes precision (default: off)")
    cache = reproduce.add_mutually_exclusive_group()
    cache.add_argument("--image-cache-dir", type=Path, default=None, metavar="DIR",
                       help="decode, crop and scale the training pool and held-out faces once into a cache "
                            f"here (default at cpu scale: {DEFAULT_IMAGE_CACHE_DIR})")
    cache.add_argument("--no-image-cache", action="store_true", help="decode every image on every read")
    reproduce.add_argument("--channels-last", action="store_true")
    reproduce.add_argument("--compile", action="store_true", help="torch.compile the networks")

    evaluate = commands.add_parser(
        "evaluate", help="recompute Table 1 (and every table and figure) from a reproduce run's finished "
                         "checkpoints, without training")
    evaluate.add_argument("--checkpoint", type=Path, required=True,
                          help="the run's checkpoint folder (reproduce --checkpoint-dir, default OUT/train) "
                               "or its --out folder")
    evaluate.add_argument("--out", type=Path, default=None, help="default: CHECKPOINT_FOLDER/evaluation")
    evaluate.add_argument("--data-root", type=Path, default=None,
                          help="where the run's CelebA copy lives now (default: the path it recorded; "
                               "synthetic faces are re-rendered)")
    evaluate.add_argument("--bootstrap-resamples", type=int, default=None,
                          help="resamples of the ours - CycleGAN intervals (default: the scale's, 300)")
    evaluate.add_argument("--device", default="auto")

    invert = commands.add_parser("invert", help="invert an attribute on your own face images with our generator")
    invert.add_argument("images", nargs="+", type=Path, help="image files and/or folders (searched recursively)")
    invert.add_argument("--attribute", required=True, choices=PAPER_ATTRIBUTES)
    invert.add_argument("--out", type=Path, required=True,
                        help="inverted faces (PNG, same relative names), comparison.png, invert.json")
    invert.add_argument("--checkpoint", type=Path, default=None,
                        help="a reproduce run (its --out or checkpoint folder), an ours run folder or its "
                             "last.pt, or a shipped generator file; default "
                             "attribute_inversion/pretrained/generator_<ATTRIBUTE>.pt")
    invert.add_argument("--geometry", choices=("celeba", "celeba-hq"), default="celeba",
                        help="how your faces are framed: celeba = CelebA's aligned 178x218 frame (any size "
                             "with that aspect ratio), celeba-hq = a CelebA-HQ / FFHQ-like square crop")
    invert.add_argument("--batch-size", type=int, default=32)
    invert.add_argument("--grid-images", type=int, default=16, help="faces shown in comparison.png")
    invert.add_argument("--device", default="auto")

    export = commands.add_parser(
        "export", help="write a finished generator as a shipped model file (<= 10 MiB), check it against its "
                       "checkpoint on the run's test faces and write its model card")
    export.add_argument("--checkpoint", type=Path, required=True, help="a reproduce run's --out or checkpoint folder")
    export.add_argument("--attribute", required=True, choices=PAPER_ATTRIBUTES)
    export.add_argument("--out", type=Path, default=None,
                        help="default attribute_inversion/pretrained/generator_<ATTRIBUTE>.pt (what invert uses)")
    return parser.parse_args(argv)


def parse_attributes(text: str) -> tuple[str, ...]:
    """``--attributes`` -> attribute names, in the order given.

    Raises ``SystemExit`` listing Table 1's names for an empty list or name (``","``,
    ``"Male,,Young"``), a name given twice (each attribute trains its own models once) or an
    unknown name."""
    valid = f"give a comma-separated subset of {','.join(PAPER_ATTRIBUTES)}"
    attributes = tuple(name.strip() for name in text.split(","))
    if not any(attributes):
        raise SystemExit(f"--attributes {text!r} names no attribute; {valid}")
    if "" in attributes:
        raise SystemExit(f"--attributes {text!r} has an empty name; {valid}")
    repeated = sorted({name for name in attributes if attributes.count(name) > 1})
    if repeated:
        raise SystemExit(f"--attributes {text!r} repeats {repeated}; {valid}")
    unknown = [name for name in attributes if name not in PAPER_ATTRIBUTES]
    if unknown:
        raise SystemExit(f"--attributes {text!r}: unknown attribute(s) {unknown}; {valid}")
    return attributes


def build_config(args: argparse.Namespace) -> ReproduceConfig:
    config = ReproduceConfig.for_scale(args.scale)
    if args.attributes is not None:
        config.data = dataclasses.replace(config.data, attributes=parse_attributes(args.attributes))
    if args.seed is not None:
        config.data = dataclasses.replace(config.data, seed=args.seed)
    if args.max_steps is not None:
        config.optim = dataclasses.replace(config.optim, max_steps=args.max_steps)
    config.device = args.device
    if args.bf16 is not None:
        config.bf16 = args.bf16
    if args.no_image_cache:
        config.image_cache_dir = None
    elif args.image_cache_dir is not None:
        config.image_cache_dir = str(args.image_cache_dir)
    config.channels_last = config.channels_last or args.channels_last
    config.compile = config.compile or args.compile
    return config


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    command = [sys.executable, "-m", "attribute_inversion", *argv]
    if args.command == "evaluate":
        return evaluate_command(args, command)
    if args.command == "invert":
        return invert_command(args)
    if args.command == "export":
        return export_command(args)
    from .evaluate import reproduce

    config = build_config(args)
    if args.verify_md5:
        from common.data.sources import verify_celeba_checksums

        verify_celeba_checksums(args.data_root)
    written = reproduce(config, args.out, data_root=args.data_root, checkpoint_dir=args.checkpoint_dir,
                        argv=command)
    print((args.out / "table1.md").read_text(encoding="utf-8"))
    print(f"wrote {', '.join(sorted(written))} to {args.out}")
    return 0


def evaluate_command(args: argparse.Namespace, command: list[str]) -> int:
    from .evaluate import evaluate_checkpoints

    try:
        out_dir, _ = evaluate_checkpoints(args.checkpoint, args.out, data_root=args.data_root, device=args.device,
                                          bootstrap_resamples=args.bootstrap_resamples, argv=command)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"evaluate: {error}") from None
    print((out_dir / "table1.md").read_text(encoding="utf-8"))
    print(f"wrote Table 1 and the other tables and figures, recomputed from {args.checkpoint}, to {out_dir}")
    return 0


def invert_command(args: argparse.Namespace) -> int:
    from .invert import invert_images

    try:
        result = invert_images(args.images, args.out, args.attribute, checkpoint=args.checkpoint,
                               geometry=args.geometry, device=args.device, batch_size=args.batch_size,
                               grid_images=args.grid_images)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"invert: {error}") from None
    print(f"generator: {result.generator.source} ({result.generator.description})")
    print(f"wrote {len(result.written)} inverted face(s) ({args.attribute}) and {result.grid.name} to {args.out}")
    if result.unreadable:
        print(f"skipped {len(result.unreadable)} unreadable file(s): "
              + ", ".join(str(path) for path in result.unreadable))
    return 0


def export_command(args: argparse.Namespace) -> int:
    from .ship import ship_generator

    try:
        check, card = ship_generator(args.checkpoint, args.attribute, args.out, progress=True)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"export: {error}") from None
    print(f"wrote {check.path} ({check.bytes / 2 ** 20:.2f} MiB) and {card.name}; on the {check.test_faces} test "
          f"faces its outputs differ from the checkpoint's by {check.mean_abs_difference:.2f} 8-bit levels on "
          f"average, judge success {check.success_rate_shipped:.1%} (checkpoint {check.success_rate_checkpoint:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
