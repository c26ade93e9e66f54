"""Held-out real faces through `python -m celeba_ffhq_labels label` with the shipped labeller: 24 test
images of the committed run (people never seen in training) as CelebA crops and as 256x256
CelebA-HQ-style crops (geometry.to_hq_frame), labelled with --geometry auto; prints hamming losses.
Usage: python label_heldout.py RUN_DIR [OUT_DIR]."""
import subprocess, sys
from pathlib import Path
import numpy as np
from PIL import Image
from celeba_ffhq_labels.geometry import to_hq_frame
from common.attributes import CELEBA_ATTRIBUTES
import csv

run = Path(sys.argv[1])                                  # the reproduce run's results folder
out = Path(sys.argv[2]) if len(sys.argv) > 2 else run   # where the CSVs go
images = Path("../shared/data/celeba/img_align_celeba_89x109")
stored = np.load(run / "predictions.npz")
names, labels = stored["test_images"][:24], stored["test_labels"][:24]
demo = Path("/tmp/ffhq_post/faces")
for sub in ("celeba", "hq"):
    (demo / sub).mkdir(parents=True, exist_ok=True)
for name in names:
    with Image.open(images / name) as image:
        image.convert("RGB").save(demo / "celeba" / name)
        to_hq_frame(image.convert("RGB"), 256).save(demo / "hq" / (Path(name).stem + ".png"))
out.mkdir(parents=True, exist_ok=True)
for sub in ("celeba", "hq"):
    csv_path = out / f"label_heldout_{sub}.csv"
    subprocess.run([sys.executable, "-m", "celeba_ffhq_labels", "label", "--images", str(demo / sub), "--out", str(csv_path),
                    "--no-progress"], check=True)
    with open(csv_path, newline="") as handle:
        rows = {Path(r["image"]).stem: r for r in csv.DictReader(handle)}
    hard = np.array([[int(rows[Path(n).stem][f"hard_{a}"]) for a in CELEBA_ATTRIBUTES] for n in names])
    print(sub, "hamming loss", float((hard != labels).mean()), "all-negative", float(labels.mean()),
          "geometries", sorted({rows[Path(n).stem]["geometry"] for n in names}))
