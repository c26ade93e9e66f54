"""Command line for the image-quality metrics.

    python -m common.metrics fid DIR_A DIR_B [--pca-dim 1024] [--batch-size 50] [--device auto] [--json OUT]
    python -m common.metrics dfn ORIGINALS_DIR GENERATED_DIR [--batch-size 64] [--json OUT]

``fid`` prints the 2048-d FID and, with ``--pca-dim``, paper 004's PCA variant from the same
features. ``dfn`` pairs the images of both folders by relative path (the sets must match) and prints
the mean, median and IQR of ``gamma = ||phi(G(x))|| / ||phi(x)||`` (paper 004 §3.3.1).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.data.folder import list_images


def _fid(args: argparse.Namespace) -> dict:
    from common.metrics.fid import InceptionFeatureExtractor, fid_from_features

    extractor = InceptionFeatureExtractor(device=args.device, batch_size=args.batch_size)
    features_a = extractor.features(args.dir_a)
    skipped_a = len(extractor.skipped)
    features_b = extractor.features(args.dir_b)
    result = {"dir_a": str(args.dir_a), "dir_b": str(args.dir_b), "n_a": len(features_a),
              "n_b": len(features_b), "skipped_a": skipped_a, "skipped_b": len(extractor.skipped),
              "fid": fid_from_features(features_a, features_b)}
    print(f"FID (2048-d pool3): {result['fid']:.4f}   ({result['n_a']} vs {result['n_b']} images)")
    if args.pca_dim:
        result[f"fid_pca{args.pca_dim}"] = fid_from_features(features_a, features_b, pca_dim=args.pca_dim)
        print(f"FID (PCA-{args.pca_dim}):       {result[f'fid_pca{args.pca_dim}']:.4f}")
    return result


def _dfn(args: argparse.Namespace) -> dict:
    from common.metrics.dfn import FaceFeatureNorm, dfn_summary

    originals, generated = list_images(args.originals), list_images(args.generated)
    original_names = [path.relative_to(args.originals).as_posix() for path in originals]
    generated_names = [path.relative_to(args.generated).as_posix() for path in generated]
    if original_names != generated_names:
        missing = sorted(set(original_names) ^ set(generated_names))[:5]
        raise SystemExit(f"dfn: the folders must hold the same relative image paths; "
                         f"{len(original_names)} vs {len(generated_names)} images, e.g. unmatched {missing}")
    gammas = FaceFeatureNorm(batch_size=args.batch_size).dfn(originals, generated)
    summary = dfn_summary(gammas)
    print(f"DFN over {summary['n']} pairs: mean {summary['mean']:.4f}  median {summary['median']:.4f}  "
          f"IQR {summary['iqr']:.4f} (Q1 {summary['q1']:.4f}, Q3 {summary['q3']:.4f}); "
          f"{summary['n_missing']} unreadable")
    return {"originals": str(args.originals), "generated": str(args.generated), **summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m common.metrics", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fid = commands.add_parser("fid", help="Fréchet Inception Distance between two image folders")
    fid.add_argument("dir_a", type=Path)
    fid.add_argument("dir_b", type=Path)
    fid.add_argument("--pca-dim", type=int, default=None, help="also report FID after PCA to this size (paper 004: 1024)")
    fid.add_argument("--batch-size", type=int, default=50)
    fid.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    fid.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")
    fid.set_defaults(run=_fid)
    dfn = commands.add_parser("dfn", help="deep face-feature norm ratios between paired folders")
    dfn.add_argument("originals", type=Path)
    dfn.add_argument("generated", type=Path)
    dfn.add_argument("--batch-size", type=int, default=64)
    dfn.add_argument("--json", type=Path, default=None, help="also write the result to this JSON file")
    dfn.set_defaults(run=_dfn)
    args = parser.parse_args(argv)
    result = args.run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
