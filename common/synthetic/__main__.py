"""``python -m common.synthetic --out DIR --n N [--seed S] [--height H --width W]
[--layout celeba|helen|mtfl] [--grid PNG]``: write a synthetic dataset (and a sample grid)."""
from __future__ import annotations

import argparse
import sys
import time

from common.synthetic.layouts import write_celeba_layout, write_helen_layout, write_mtfl_layout
from common.synthetic.render import TEMPLATE_HEIGHT, TEMPLATE_WIDTH


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m common.synthetic",
        description="Write procedural faces with visible CelebA attributes in an official layout.")
    parser.add_argument("--out", required=True, help="dataset root to create (or reuse)")
    parser.add_argument("--n", type=int, required=True,
                        help="number of faces (MTFL: training faces; testing gets n // 4, >= 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=TEMPLATE_HEIGHT,
                        help="image height (celeba / helen; MTFL images are 150-250 px)")
    parser.add_argument("--width", type=int, default=TEMPLATE_WIDTH)
    parser.add_argument("--layout", choices=("celeba", "helen", "mtfl"), default="celeba")
    parser.add_argument("--grid", default=None,
                        help="also save a PNG grid of samples with their parsing masks here")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    if args.layout == "celeba":
        root = write_celeba_layout(args.out, args.n, args.seed, args.height, args.width,
                                   progress=True)
    elif args.layout == "helen":
        root = write_helen_layout(args.out, args.n, args.seed, args.height, args.width,
                                  progress=True)
    else:
        root = write_mtfl_layout(args.out, args.n, max(args.n // 4, 1), args.seed, progress=True)
    print(f"{args.layout} layout ready at {root} ({time.perf_counter() - started:.1f} s)")
    if args.grid:
        from common.synthetic.figure import save_sample_grid

        save_sample_grid(args.grid, seed=args.seed)
        print(f"sample grid written to {args.grid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
