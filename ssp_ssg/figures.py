"""Figures of Kalayeh et al. (CVPR 2017) as PNG files.

* Fig. 3-style parsing examples: image, ground truth, parser alone, parser trained jointly;
* Fig. 4: SSP's localisation weights, 40 attributes x 7 regions;
* Fig. 5: mean of the 50 most active last-conv channels, AvgPool vs SSP;
* a grid of real images with their pseudo parsing masks (package README).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from common.attributes import CELEBA_ATTRIBUTES, PARTS7_LABELS  # noqa: E402
from common.curves import read_training_log  # noqa: E402

#: One colour per 7-class label: background, hair, face skin, eyes, eyebrows, mouth, nose.
PARTS7_COLOURS = np.array([[0, 0, 0], [140, 70, 20], [250, 200, 160], [0, 60, 255],
                           [0, 190, 0], [230, 0, 0], [255, 230, 0]], dtype=np.uint8)
PARTS7_COLORMAP = ListedColormap(PARTS7_COLOURS / 255.0)


def colour_mask(mask: np.ndarray) -> np.ndarray:
    """(H, W) labels 0..6 -> (H, W, 3) uint8."""
    return PARTS7_COLOURS[np.clip(mask, 0, len(PARTS7_COLOURS) - 1)]


def _image_hwc(image) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 3 and image.shape[0] == 3:
        image = image.transpose(1, 2, 0)
    return np.clip(image, 0.0, 1.0)


def localisation_heatmap(weights: np.ndarray, path: Path,
                         region_names: Sequence[str] = PARTS7_LABELS,
                         attribute_names: Sequence[str] = CELEBA_ATTRIBUTES,
                         title: str = "SSP localisation weights (Fig. 4)") -> Path:
    """Fig. 4: mean softmax weight of each region (columns) for each attribute (rows)."""
    weights = np.asarray(weights)  # (regions, attributes)
    fig, ax = plt.subplots(figsize=(5.2, 11))
    image = ax.imshow(weights.T, cmap="viridis", aspect="auto", vmin=0.0,
                      vmax=max(float(weights.max()), 1e-6))
    ax.set_xticks(range(len(region_names)), [n.replace("_", " ") for n in region_names],
                  rotation=45, ha="right")
    ax.set_yticks(range(len(attribute_names)), [n.replace("_", " ") for n in attribute_names],
                  fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.05)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def top_channel_figure(images: np.ndarray, rows: dict[str, np.ndarray], path: Path,
                       title: str = "Top-50 channels of the last conv layer (Fig. 5)") -> Path:
    """Fig. 5: each image, then one row per model of its top-channel map over the image."""
    n = len(images)
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.6 * n, 2.0 * (1 + len(rows))),
                             squeeze=False)
    for column, image in enumerate(images):
        picture = _image_hwc(image)
        axes[0, column].imshow(picture)
        for row, (label, maps) in enumerate(rows.items(), start=1):
            axes[row, column].imshow(picture)
            axes[row, column].imshow(maps[column], cmap="jet", alpha=0.5,
                                     extent=(-0.5, picture.shape[1] - 0.5, picture.shape[0] - 0.5, -0.5),
                                     interpolation="bilinear")
            if column == 0:
                axes[row, 0].set_ylabel(label)
    axes[0, 0].set_ylabel("input")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def parsing_figure(images: np.ndarray, masks: dict[str, np.ndarray], path: Path,
                   title: str = "Face parsing (cf. Figs. 2-3)") -> Path:
    """Images in the first row, then one row of 7-class masks per entry of ``masks``."""
    n = len(images)
    fig, axes = plt.subplots(1 + len(masks), n, figsize=(1.6 * n, 2.0 * (1 + len(masks))),
                             squeeze=False)
    for column in range(n):
        axes[0, column].imshow(_image_hwc(images[column]))
        for row, (label, values) in enumerate(masks.items(), start=1):
            axes[row, column].imshow(colour_mask(values[column]), interpolation="nearest")
            if column == 0:
                axes[row, 0].set_ylabel(label, fontsize=8)
    axes[0, 0].set_ylabel("input")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [plt.Rectangle((0, 0), 1, 1, color=PARTS7_COLOURS[i] / 255.0)
               for i in range(len(PARTS7_LABELS))]
    fig.legend(handles, [n.replace("_", " ") for n in PARTS7_LABELS], loc="lower center",
               ncol=len(PARTS7_LABELS), fontsize=7, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pseudo_mask_grid(data_root: Path, masks_root: Path, out: Path, count: int = 8) -> Path:
    """Real CelebA images above their pseudo parsing masks (``python -m ssp_ssg.pseudo_masks``)."""
    from PIL import Image

    from common.data.celeba import find_celeba_image_dir
    from common.data.sources import resolve_celeba_root

    image_dir = find_celeba_image_dir(resolve_celeba_root(data_root))
    mask_paths = sorted(Path(masks_root).glob("*.png"))[:count]
    if not mask_paths:
        raise FileNotFoundError(f"no pseudo masks (*.png) in {masks_root}")
    images, masks = [], []
    for mask_path in mask_paths:
        with Image.open(image_dir / f"{mask_path.stem}.jpg") as image:
            images.append(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
        with Image.open(mask_path) as mask:
            masks.append(np.asarray(mask))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return parsing_figure(np.stack(images), {"pseudo mask": np.stack(masks)}, out,
                          title="Real CelebA images and their pseudo parsing masks (mediapipe)")


def localisation_map_figure(images: np.ndarray, maps: np.ndarray, attribute_names: Sequence[str],
                            path: Path, titles: Sequence[Sequence[str]] | None = None,
                            title: str = "SSP localisation maps: sum over regions of w[r, a] * mask_r") -> Path:
    """One row per image: the image, then for each attribute its localisation map (§3.1.2: the
    parser's region probabilities weighted by SSP's per-image localisation weights, in [0, 1])
    over the image, on one colour scale 0..1 for every panel. ``images`` (N, 3, H, W) in [0, 1],
    ``maps`` (N, A, h, w) (drawn stretched over the image); ``titles[i][a]`` labels a panel."""
    n, count = len(images), len(attribute_names)
    fig, axes = plt.subplots(n, 1 + count, figsize=(1.7 * (1 + count), 2.1 * n + 0.4),
                             squeeze=False)
    shown = None
    for row in range(n):
        picture = _image_hwc(images[row])
        extent = (-0.5, picture.shape[1] - 0.5, picture.shape[0] - 0.5, -0.5)
        axes[row, 0].imshow(picture)
        for column, name in enumerate(attribute_names, start=1):
            axes[row, column].imshow(picture)
            shown = axes[row, column].imshow(maps[row, column - 1], cmap="jet", alpha=0.5, vmin=0.0,
                                             vmax=1.0, extent=extent, interpolation="bilinear")
            label = titles[row][column - 1] if titles is not None else name.replace("_", " ")
            axes[row, column].set_title(label, fontsize=7)
    axes[0, 0].set_title("input", fontsize=7)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    fig.colorbar(shown, cax=fig.add_axes((0.93, 0.15, 0.015, 0.7)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curves(logs: dict[str, Path], selected_steps: dict[str, int], path: Path,
                    title: str = "Learning curves: training loss and validation metric") -> Path:
    """One panel per network from its ``common.train`` ``log.csv``: the training loss (left
    axis) and every validation metric it logged (right axis) against the step, with the step of
    the checkpoint validation selected (``best.pt``) marked. Networks without a log are skipped."""
    curves = {}
    for name, log in logs.items():
        if not Path(log).is_file():
            continue
        logged = read_training_log(log)
        steps = logged["step"]
        loss = [(step, value) for step, value in zip(steps, logged.get("train/loss", [])) if not np.isnan(value)]
        validation = {key: [(step, value) for step, value in zip(steps, values) if not np.isnan(value)]
                      for key, values in sorted(logged.items())
                      if key.startswith("eval/") and not np.isnan(values).all()}
        curves[name] = (loss, validation)
    if not curves:
        raise ValueError("no log.csv to draw learning curves from")
    columns = min(4, len(curves))
    rows_count = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows_count, columns, figsize=(3.6 * columns, 2.6 * rows_count),
                             squeeze=False)
    for ax, (name, (loss, validation)) in zip(axes.ravel(), curves.items()):
        if loss:
            ax.plot(*zip(*loss), color="tab:blue", lw=1, marker=".", ms=2, label="train loss")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("step", fontsize=7)
        ax.tick_params(labelsize=6)
        twin = ax.twinx()
        twin.tick_params(labelsize=6)
        for colour, (key, points) in zip(("tab:red", "tab:green", "tab:purple"), validation.items()):
            twin.plot(*zip(*points), color=colour, lw=1, marker=".", ms=3,
                      label=key.removeprefix("eval/"))
        if name in selected_steps:
            ax.axvline(selected_steps[name], color="grey", ls="--", lw=0.8)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=5, loc="upper right")
    for ax in axes.ravel()[len(curves):]:
        ax.axis("off")
    fig.suptitle(title + " (dashed: the selected checkpoint)", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
