"""The sample grid of ``common/docs/synthetic_samples.png``: faces, their 7-class parsing masks
(Kalayeh et al. §3.1 classes) and their attributes, plus one face with single attributes
switched on to show where each is drawn."""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from common.attributes import CELEBA_ATTRIBUTES, PARTS7_LABELS
from common.synthetic.render import TEMPLATE_HEIGHT, TEMPLATE_WIDTH, render_face

#: Colour of each PARTS7_LABELS class in the figure.
PARTS7_COLOURS = np.array([[0, 0, 0], [140, 80, 30], [236, 196, 160], [40, 90, 230],
                           [40, 170, 60], [220, 30, 60], [250, 220, 40]], np.uint8)
#: Sweeps: ``(face index, base overrides, [(title, overrides)])``; each face is shown with
#: the base overrides, then with one change at a time (seed 0: face 20 is a young woman,
#: face 17 a man).
SWEEPS = (
    (20, {name: 0 for name in (
        "Eyeglasses", "Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick", "Heavy_Makeup",
        "Bangs", "Wearing_Hat", "Wavy_Hair", "Straight_Hair", "Big_Nose", "Narrow_Eyes",
        "Rosy_Cheeks", "Bushy_Eyebrows", "Arched_Eyebrows", "Wearing_Earrings",
        "Wearing_Necklace", "Blurry", "Big_Lips", "Pointy_Nose", "High_Cheekbones")},
     [(f"+ {name}", {name: 1}) for name in (
         "Eyeglasses", "Smiling", "Mouth_Slightly_Open", "Wearing_Lipstick", "Heavy_Makeup",
         "Big_Lips", "Bangs", "Wearing_Hat", "Wavy_Hair", "Straight_Hair", "Blond_Hair",
         "Black_Hair", "Big_Nose", "Pointy_Nose", "Narrow_Eyes", "Rosy_Cheeks",
         "High_Cheekbones", "Bushy_Eyebrows", "Arched_Eyebrows", "Wearing_Earrings",
         "Wearing_Necklace", "Pale_Skin", "Blurry")]),
    (17, {"Goatee": 0, "Mustache": 0, "Sideburns": 0, "5_o_Clock_Shadow": 0, "No_Beard": 1,
          "Bald": 0, "Receding_Hairline": 0, "Chubby": 0, "Double_Chin": 0,
          "Bags_Under_Eyes": 0, "Young": 1, "Wearing_Necktie": 0, "Oval_Face": 0,
          "Attractive": 1, "Eyeglasses": 0, "Wearing_Hat": 0, "Blurry": 0, "Smiling": 0},
     [(f"+ {name}", {name: 1}) for name in (
         "Goatee", "Mustache", "Sideburns", "5_o_Clock_Shadow")]
     + [("- No_Beard (full beard)", {"No_Beard": 0}), ("+ Bald", {"Bald": 1}),
        ("+ Receding_Hairline", {"Receding_Hairline": 1}), ("+ Gray_Hair", {"Gray_Hair": 1}),
        ("- Young", {"Young": 0}), ("+ Chubby", {"Chubby": 1}),
        ("+ Double_Chin", {"Double_Chin": 1}), ("+ Oval_Face", {"Oval_Face": 1}),
        ("+ Bags_Under_Eyes", {"Bags_Under_Eyes": 1}), ("- Attractive", {"Attractive": 0}),
        ("+ Wearing_Necktie", {"Wearing_Necktie": 1}), ("+ Smiling", {"Smiling": 1}),
        ("- Male", {"Male": 0})]),
)
_SHORT = {"Wearing_": "", "_Hair": " hair", "_Eyebrows": " brows", "Mouth_Slightly_Open": "Open mouth",
          "5_o_Clock_Shadow": "Stubble", "Bags_Under_Eyes": "Eye bags",
          "High_Cheekbones": "Cheekbones", "Receding_Hairline": "Receding"}


def _short(name: str) -> str:
    for long, short in _SHORT.items():
        name = name.replace(long, short)
    return name.replace("_", " ")


def save_sample_grid(path: str | Path, n: int = 16, seed: int = 0, columns: int = 4,
                     height: int = TEMPLATE_HEIGHT, width: int = TEMPLATE_WIDTH,
                     sweeps=SWEEPS, dpi: int = 100) -> Path:
    """Save ``n`` faces (image | 7-class mask, attributes below, ``columns`` faces a row),
    then the ``sweeps`` (default :data:`SWEEPS`): a face with one attribute changed at a
    time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    faces = [render_face(index, seed, height, width) for index in range(n)]
    sweep, sweep_titles = [], []
    for index, base, changes in sweeps:
        sweep.append(render_face(index, seed, height, width, overrides=base))
        sweep_titles.append(f"image {index} (base)")
        for title, change in changes:
            sweep.append(render_face(index, seed, height, width, overrides={**base, **change}))
            sweep_titles.append(title.replace("_", " "))
        while len(sweep) % (2 * columns + 1):     # each sweep starts on a new row
            sweep.append(None)
            sweep_titles.append("")

    panel_w = 1.3                                   # inches per image panel
    panel_h = panel_w * height / width
    caption_h, title_h, gap = 0.62, 0.2, 0.08
    sample_rows = -(-n // columns)
    sweep_columns = 2 * columns + 1
    sweep_rows = -(-len(sweep) // sweep_columns)
    header_h = 0.55
    sample_block_h = sample_rows * (title_h + panel_h + caption_h)
    sweep_block_h = 0.35 + sweep_rows * (title_h + panel_h + gap)
    figure_w = sweep_columns * (panel_w + gap) + gap
    figure_h = header_h + sample_block_h + sweep_block_h
    figure = plt.figure(figsize=(figure_w, figure_h))

    def add_axes(left_in, top_in, w_in, h_in):
        axis = figure.add_axes((left_in / figure_w, 1 - (top_in + h_in) / figure_h,
                                w_in / figure_w, h_in / figure_h))
        axis.axis("off")
        return axis

    pair_w = (figure_w - gap) / columns
    for k, face in enumerate(faces):
        row, column = divmod(k, columns)
        top = header_h + row * (title_h + panel_h + caption_h)
        left = gap + column * pair_w
        names = [_short(CELEBA_ATTRIBUTES[i]) for i in np.flatnonzero(face.attributes)
                 if CELEBA_ATTRIBUTES[i] != "No_Beard"]
        figure.text((left + pair_w / 2 - gap / 2) / figure_w, 1 - (top + 0.05) / figure_h,
                    f"image {face.index}, identity {face.identity}", ha="center", va="top",
                    fontsize=7, weight="bold")
        image_axis = add_axes(left, top + title_h, panel_w, panel_h)
        image_axis.imshow(face.image)
        mask_axis = add_axes(left + panel_w + 0.04, top + title_h, panel_w, panel_h)
        mask_axis.imshow(PARTS7_COLOURS[face.mask_parts7])
        figure.text((left + pair_w / 2 - gap / 2) / figure_w,
                    1 - (top + title_h + panel_h + 0.03) / figure_h,
                    textwrap.fill(", ".join(names) or "(no attribute)", 58), ha="center",
                    va="top", fontsize=5.6)
    sweep_top = header_h + sample_block_h + 0.1
    figure.text(0.5, 1 - sweep_top / figure_h,
                "the same face with one attribute changed at a time (identity, pose, lighting "
                "and colours fixed)", ha="center", va="top", fontsize=8, weight="bold")
    for k, (face, title) in enumerate(zip(sweep, sweep_titles)):
        if face is None:
            continue
        row, column = divmod(k, sweep_columns)
        top = sweep_top + 0.25 + row * (title_h + panel_h + gap)
        left = gap + column * (panel_w + gap)
        figure.text((left + panel_w / 2) / figure_w, 1 - (top + 0.02) / figure_h, title,
                    ha="center", va="top", fontsize=6.5)
        add_axes(left, top + title_h, panel_w, panel_h).imshow(face.image)
    handles = [Patch(facecolor=PARTS7_COLOURS[i] / 255, edgecolor="grey", label=label)
               for i, label in enumerate(PARTS7_LABELS)]
    figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.22 / figure_h),
                  ncol=len(handles), fontsize=7, frameon=False, handlelength=1.2)
    figure.text(0.5, 1 - 0.05 / figure_h,
                "common.synthetic: faces, 7-class parsing masks (Kalayeh et al. §3.1) and "
                "attributes", ha="center", va="top", fontsize=9, weight="bold")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, dpi=dpi, format="png")
    plt.close(figure)
    # A 256-colour palette keeps the committed PNG small (the faces carry sensor noise).
    with Image.open(buffer) as rendered:
        rendered.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(
            path, optimize=True)
    return path
