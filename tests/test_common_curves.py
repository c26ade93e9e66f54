"""common.curves: learning curves from common.train's log.csv."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from common.curves import late_change, main, plot_training_log, read_training_log

LOG = """step,epoch,lr,train/loss,samples_per_second,eval/hamming_loss,eval/mean_auroc
10,0,0.003,0.90,80.0,,
20,0,0.003,0.80,81.0,0.20,0.60
30,1,0.002,0.70,80.5,,
40,1,0.001,0.60,80.1,0.15,0.70
"""


def test_read_training_log_gives_nan_for_empty_cells(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    log = read_training_log(path)
    np.testing.assert_array_equal(log["step"], [10, 20, 30, 40])
    assert np.isnan(log["eval/hamming_loss"][0]) and log["eval/hamming_loss"][3] == 0.15


@pytest.mark.parametrize("text, message", [
    ("epoch,train/loss\n0,0.5\n", "no 'step' column"),
    ("step,epoch,train/loss\n", "no rows yet"),
    ("step,epoch,train/loss\n10,0,0.5\n20,0,oops\n", r"line 3: column 'train/loss' holds 'oops'"),
])
def test_read_training_log_names_file_and_line_of_bad_input(tmp_path, text, message):
    path = tmp_path / "log.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_training_log(path)


def test_plot_training_log_writes_one_panel_per_metric(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    out = plot_training_log(path, tmp_path / "curves.png", title="demo", best_metric="hamming_loss")
    with Image.open(out) as image:
        width, height = image.size
    assert width > 2.5 * height  # loss + two validation panels side by side
    assert main([str(path), str(tmp_path / "cli.png"), "--best-metric", "mean_auroc", "--best-mode", "max"]) == 0
    assert (tmp_path / "cli.png").stat().st_size > 0


GAN_LOG = "step,epoch,lr,train/d_loss,train/g_loss,samples_per_second,eval/sample_l1_change\n" + "".join(
    f"{step},0,0.001,{1.0 / step:.4f},{2.0 - step / 200:.4f},30.0,{'' if step % 40 else 0.1 * step / 40}\n"
    for step in range(10, 210, 10))


def test_plot_training_log_draws_each_named_loss_against_the_step(tmp_path):
    """A GAN's log: one panel per named loss (running mean: the run is within one epoch) and the
    validation metric, against the step; a loss column the log lacks is an error naming the file."""
    path = tmp_path / "log.csv"
    path.write_text(GAN_LOG)
    out = plot_training_log(path, tmp_path / "gan.png", loss_columns=("train/d_loss", "train/g_loss"), x_axis="step")
    with Image.open(out) as image:
        width, height = image.size
    assert width > 2.5 * height  # d_loss, g_loss and sample_l1_change panels in one row
    with pytest.raises(ValueError, match=r"log\.csv: no column\(s\) \['train/g_rec'\]"):
        plot_training_log(path, tmp_path / "x.png", loss_columns=("train/d_loss", "train/g_rec"))
    assert main([str(path), str(tmp_path / "cli.png"), "--losses", "train/d_loss,train/g_loss", "--x", "step"]) == 0
    with pytest.raises(SystemExit, match="no column"):
        main([str(path), str(tmp_path / "cli2.png"), "--losses", "train/loss2"])


def test_late_change_compares_the_last_value_with_the_one_a_quarter_of_the_run_earlier(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(LOG)
    log = read_training_log(path)
    # last step 40: the earlier value is the last one logged at or before step 30
    assert late_change(log, "eval/mean_auroc") == (20.0, 0.60, 40.0, 0.70)
    assert late_change(log, "eval/mean_auroc", fraction=0.5) == (20.0, 0.60, 40.0, 0.70)
    assert late_change(log, "eval/mean_auroc", fraction=0.1) == (20.0, 0.60, 40.0, 0.70)
    assert late_change(log, "eval/missing") is None
    path.write_text("step,eval/ap\n10,0.5\n")
    assert late_change(read_training_log(path), "eval/ap") is None  # one value only
