"""Figures of the paper: Fig. 2-style sample grids (input / ours / CycleGAN rows) and Fig. 3
boxplots of the DFN distribution per attribute, ours vs CycleGAN."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402


def to_uint8_images(images: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [-1,1] -> (B,H,W,3) uint8."""
    scaled = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def save_sample_grid(path: Path, rows: Sequence[tuple[str, torch.Tensor]], title: str | None = None) -> Path:
    """One labelled row per ``(label, images in [-1,1])``, like the sub-figures of Fig. 2."""
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = max(len(images) for _, images in rows)
    stacked = torch.cat([images.detach().float().cpu() for _, images in rows])
    grid = make_grid((stacked.clamp(-1, 1) + 1) / 2, nrow=columns, padding=2, pad_value=1.0)
    height = grid.shape[1] / grid.shape[2] * columns
    figure, axis = plt.subplots(figsize=(1.1 * columns + 1.2, 1.1 * height + (0.4 if title else 0.1)))
    axis.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    row_height = grid.shape[1] / len(rows)
    axis.set_yticks([row_height * (i + 0.5) for i in range(len(rows))])
    axis.set_yticklabels([label for label, _ in rows])
    axis.set_xticks([])
    for spine in axis.spines.values():
        spine.set_visible(False)
    if title:
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def save_dfn_boxplots(path: Path, ratios: Mapping[str, Mapping[str, np.ndarray]], title: str) -> Path:
    """Fig. 3: per attribute, a box of DFN ratios (Eq. 8) for each model side by side.

    ``ratios[attribute][model]`` holds one gamma_i per test image."""
    path.parent.mkdir(parents=True, exist_ok=True)
    attributes = list(ratios)
    models = sorted({model for per_model in ratios.values() for model in per_model},
                    key=lambda name: (name != "ours", name))
    colours = {"ours": "#1f77b4", "CycleGAN": "#ff7f0e"}
    figure, axis = plt.subplots(figsize=(2.2 * len(attributes) + 2, 4))
    width = 0.8 / max(1, len(models))
    for model_index, model in enumerate(models):
        positions = [a + (model_index - (len(models) - 1) / 2) * width for a in range(len(attributes))]
        data = [np.asarray(ratios[attribute].get(model, []), dtype=float) for attribute in attributes]
        boxes = axis.boxplot(data, positions=positions, widths=width * 0.9, patch_artist=True,
                             showmeans=True, manage_ticks=False)
        for box in boxes["boxes"]:
            box.set_facecolor(colours.get(model, "#999999"))
            box.set_alpha(0.7)
        axis.plot([], [], color=colours.get(model, "#999999"), linewidth=8, alpha=0.7, label=model)
    axis.set_xticks(range(len(attributes)))
    axis.set_xticklabels(attributes)
    axis.axhline(1.0, color="grey", linestyle=":", linewidth=1)
    axis.set_ylabel("DFN ratio  ||phi(G(x))|| / ||phi(x)||")
    axis.set_title(title)
    axis.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


#: The logged losses drawn per training run folder (``checkpoints.RUN_FOLDERS``; ``common.curves``): ours
#: (Eqs. 6-7: D's total, G's total and its four terms) and CycleGAN ([5]: G's total and its terms, each
#: D's LSGAN loss); the judge's.
CURVE_LOSSES: dict[str, tuple[str, ...]] = {
    "ours": ("train/d_loss", "train/g_loss", "train/g_adversarial", "train/g_cls_fake", "train/g_rec", "train/g_fm"),
    "cyclegan": ("train/g_loss", "train/g_adversarial", "train/g_cycle", "train/g_identity", "train/d_loss_a",
                 "train/d_loss_b"),
    "judge": ("train/loss",),
}


def save_training_curves(checkpoint_dir: Path, attributes: Sequence[str], out_dir: Path) -> list[Path]:
    """``curves_<attribute>_<ours|cyclegan>.png`` and ``curves_judge.png`` in ``out_dir`` from each
    finished training run's ``log.csv`` under ``checkpoint_dir``: the losses of :data:`CURVE_LOSSES`
    (every step function logs all of its run's; a log without one is an error naming it) and the L1
    change of the fixed sample faces, against the step."""
    from common.curves import plot_training_log

    from .checkpoints import RUN_FOLDERS

    runs = [(Path(checkpoint_dir) / "judge", "judge", "judge")]
    runs += [(Path(checkpoint_dir) / attribute / kind, f"{attribute}_{kind}", kind)
             for attribute in attributes for kind in RUN_FOLDERS.values()]
    written = []
    for folder, name, kind in runs:
        log_csv = folder / "log.csv"
        if not log_csv.is_file():
            continue
        written.append(plot_training_log(log_csv, out_dir / f"curves_{name}.png", title=f"{name} ({folder.name} run)",
                                         loss_columns=CURVE_LOSSES[kind], x_axis="step"))
    return written
