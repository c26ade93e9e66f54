"""Mean AUROC of this run (54 epochs) minus the 18-epoch run it replaced (commit efd9f01), paired bootstrap over
the same 1,999 test images (same split, same labels). Run from the repository root."""
import io
import subprocess

import numpy as np

from common.metrics import auroc
from common.metrics.intervals import paired_bootstrap_difference

PREDICTIONS = "benchmarks/results/celeba_ffhq_labels/predictions.npz"
new = np.load(PREDICTIONS)
old = np.load(io.BytesIO(subprocess.run(["git", "show", f"efd9f01:{PREDICTIONS}"], capture_output=True,
                                        check=True).stdout))
if not ((new["test_images"] == old["test_images"]).all() and (new["test_labels"] == old["test_labels"]).all()):
    raise SystemExit("the two runs were not scored on the same test images")
labels = new["test_labels"]


def mean_auroc(scores):
    return lambda rows: float(np.nanmean(auroc(labels[rows], scores[rows])))


print(paired_bootstrap_difference(mean_auroc(new["test_scores"]), mean_auroc(old["test_scores"]), len(labels),
                                  n_resamples=2000, seed=0))
