"""Geometry check: does the label command's geometry step recover what a tight HQ crop costs?

FFHQ and CelebA-HQ crop the face much tighter than CelebA's aligned frame (``common.inference.FRAMES``:
eyes about 64 px apart at y = 121 in a 256x256 CelebA-HQ face, about 39 px apart at y = 111 in
CelebA's 178x218 frame). FFHQ has no attribute labels, so the check is made on labelled faces:
each **test** image is re-cropped to CelebA-HQ's frame (``map_to_frame`` from the ``celeba`` frame
to the ``celeba-hq`` frame, upsampled to ``hq_size`` x ``hq_size``: the inverse of the geometry
step), then labelled by the same :class:`celeba_ffhq_labels.transfer.Labeller` three ways:

* ``reference``: the test image as it is, in CelebA's frame (what the model was trained on);
* ``no_geometry``: the HQ version resized to the model input as it is (``--geometry resize``);
* ``geometry``: the HQ version mapped back to CelebA's frame (``--geometry celeba-hq``, what
  ``--geometry auto`` does for a square image); outside the HQ crop the border pixels are repeated.

Each is scored against the test labels (mean AUROC, Male AUROC, hamming loss at the validation
thresholds) with 95 % bootstrap intervals over the test images, and the paired difference
geometry - no geometry. On synthetic faces this shows that the check runs; whether the step helps
can only be measured on real faces (CPU or paper scale).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from common.attributes import ATTRIBUTE_INDEX
from common.inference import FRAMES, map_to_frame, run_inference
from common.metrics.intervals import Interval, bootstrap_interval, paired_bootstrap_difference

from celeba_ffhq_labels.evaluate import AttributeEvaluation, evaluate_scores, hamming_statistics, mean_auroc_statistic
from celeba_ffhq_labels.transfer import Labeller

#: The variants of the check: (title in the table, HQ re-crop first?, ``--geometry`` used to label).
VARIANTS: dict[str, tuple[str, bool, str]] = {
    "reference": ("CelebA frame, as trained (reference)", False, "celeba"),
    "no_geometry": ("HQ frame, resized to the input (no geometry step)", True, "resize"),
    "geometry": ("HQ frame, mapped to CelebA's frame (geometry step)", True, "celeba-hq"),
}
#: Metrics of the check that get intervals.
CHECK_METRICS: tuple[str, ...] = ("mean_auroc", "hamming_loss")


def to_hq_frame(image: Image.Image, size: int = 256) -> Image.Image:
    """A face in CelebA's aligned frame (any resolution of 178:218) as CelebA-HQ would crop it:
    ``size`` x ``size``, eyes about ``64 * size / 256`` px apart (the inverse of the geometry step)."""
    return map_to_frame(image, FRAMES["celeba"], FRAMES["celeba-hq"], (size, size))


@dataclass(frozen=True)
class GeometryCheck:
    """Scores and metrics of the three :data:`VARIANTS` on the same test images."""

    hq_size: int
    source_size: tuple[int, int]                       # (height, width) of the first test image
    labels: np.ndarray                                 # (n, 40) of the images read
    scores: dict[str, np.ndarray]                      # variant -> (n, 40)
    evaluations: dict[str, AttributeEvaluation]        # variant -> metrics at the labeller's thresholds
    intervals: dict[str, dict[str, Interval]]          # variant -> CHECK_METRICS -> interval
    difference: dict[str, Interval]                    # CHECK_METRICS -> geometry - no_geometry (paired)
    unreadable: list[str]

    @property
    def n_images(self) -> int:
        return int(self.labels.shape[0])

    def male_auroc(self, variant: str) -> float:
        return float(self.evaluations[variant].auroc[ATTRIBUTE_INDEX["Male"]])

    def as_dict(self) -> dict:
        """JSON-able summary for run.json."""
        return {"n_images": self.n_images, "hq_size": self.hq_size, "source_size": list(self.source_size),
                "unreadable": self.unreadable,
                "variants": {variant: {"title": VARIANTS[variant][0],
                                       "male_auroc": self.male_auroc(variant),
                                       **{name: interval.as_dict()
                                          for name, interval in self.intervals[variant].items()}}
                             for variant in VARIANTS},
                "geometry_minus_no_geometry": {name: interval.as_dict()
                                               for name, interval in self.difference.items()}}


def geometry_check(labeller: Labeller, image_paths: Sequence[str | os.PathLike], labels: np.ndarray, *,
                   hq_size: int = 256, batch_size: int = 64, num_workers: int = 0, progress: bool = False,
                   n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> GeometryCheck:
    """Label ``image_paths`` (faces in CelebA's aligned frame, with true ``labels`` (n, 40)) as the
    three :data:`VARIANTS` with ``labeller`` (its model and validation thresholds) and score each.

    Decoding and batching go through ``common.inference.run_inference``, as ``label`` does; an
    unreadable image is left out of every variant (and listed)."""
    paths = [Path(path) for path in image_paths]
    labels = np.asarray(labels).astype(np.uint8)
    if labels.shape != (len(paths), len(ATTRIBUTE_INDEX)):
        raise ValueError(f"labels must be ({len(paths)}, {len(ATTRIBUTE_INDEX)}), got {labels.shape}")
    scores: dict[str, np.ndarray] = {}
    read_rows: np.ndarray | None = None
    unreadable: list[str] = []
    for variant, (_, hq, geometry) in VARIANTS.items():
        def preprocess(image: Image.Image, hq: bool = hq, geometry: str = geometry):
            return labeller.preprocess(to_hq_frame(image, hq_size) if hq else image, geometry)

        result = run_inference(paths, preprocess, labeller.probabilities, batch_size=batch_size,
                               num_workers=num_workers, progress=progress,
                               description=f"geometry check: {variant}")
        row_of = {path: row for row, path in enumerate(paths)}
        rows = np.array([row_of[path] for path in result.paths], dtype=np.int64)
        if read_rows is None:
            read_rows, unreadable = rows, [str(path) for path in result.unreadable]
        elif not np.array_equal(rows, read_rows):
            raise RuntimeError("the geometry check read different images in its variants")
        scores[variant] = result.outputs.astype(np.float64)
    labels = labels[read_rows]
    n = labels.shape[0]
    options = {"n_resamples": n_resamples, "confidence": confidence, "seed": seed}
    evaluations, intervals, statistics = {}, {}, {}
    for variant, variant_scores in scores.items():
        evaluations[variant] = evaluate_scores(labels, variant_scores, labeller.thresholds)
        statistics[variant] = {"mean_auroc": mean_auroc_statistic(labels, variant_scores),
                               "hamming_loss": hamming_statistics(labels, variant_scores,
                                                                  labeller.thresholds)["hamming_loss"]}
        intervals[variant] = {name: bootstrap_interval(statistics[variant][name], n, **options)
                              for name in CHECK_METRICS}
    difference = {name: paired_bootstrap_difference(statistics["geometry"][name],
                                                    statistics["no_geometry"][name], n, **options)
                  for name in CHECK_METRICS}
    with Image.open(paths[int(read_rows[0])]) as first:
        source_size = (first.height, first.width)
    return GeometryCheck(hq_size=hq_size, source_size=source_size, labels=labels, scores=scores,
                         evaluations=evaluations, intervals=intervals, difference=difference,
                         unreadable=unreadable)
