"""``python -m attribute_inversion export --checkpoint OUT --attribute A``: a finished generator as a
shipped file, checked and documented.

1. :func:`checkpoints.export_generator` writes ``pretrained/generator_<A>.pt`` (``common.export``:
   int8 weights with a scale per output channel, fp16 elsewhere, at most 10 MiB).
2. :func:`check_shipped_generator` inverts the run's held-out test faces of ``A`` (the image files,
   through the ``invert`` path a user's faces take) once with the written file and once with the
   full-precision checkpoint, and measures how far the two sets of inverted faces are apart (8-bit
   levels) and how often the run's attribute judge sees the inverted attribute in each.
3. :func:`write_model_card` writes ``MODEL_CARD_<A>.md`` beside the file from the run's records
   (``run.json``, ``tables.json``: Table 1's calibration rows and the paired intervals of ours −
   CycleGAN for ``A``) and that check; every number in it is read or computed, none typed.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from common.attributes import ATTRIBUTE_INDEX
from common.export import CELEBA_MODEL_LICENCE
from common.tables import Table, read_tables, wall_time_text

from .checkpoints import (config_from_experiment, data_root_of, export_generator, find_checkpoint_folder,
                          load_judge, read_experiment)
from .data import open_split
from .evaluate import judge_predictions
from .invert import invert_images


def model_card_path(shipped: Path) -> Path:
    """``generator_<A>.pt`` -> ``MODEL_CARD_<A>.md`` in the same folder."""
    return shipped.parent / f"MODEL_CARD_{shipped.stem.removeprefix('generator_')}.md"


@dataclass(frozen=True)
class ShippedGeneratorCheck:
    """The shipped file against the checkpoint it came from, both through ``invert`` on the run's
    held-out test faces of the attribute (PNG outputs, 8-bit levels 0-255)."""

    path: Path
    bytes: int
    attribute: str
    test_faces: int
    mean_abs_difference: float  # mean over faces, pixels and channels of |shipped - checkpoint|
    max_abs_difference: int
    success_rate_shipped: float  # judge sees the inverted attribute in the shipped file's outputs
    success_rate_checkpoint: float


def find_results_folder(checkpoint: str | Path, checkpoint_folder: Path) -> Path:
    """The folder holding the run's ``tables.json``: ``checkpoint`` itself (a run's ``--out``), the
    checkpoint folder's parent (``OUT/train``) or ``<checkpoint folder>/evaluation``
    (``evaluate --checkpoint``). ``FileNotFoundError`` says what to run when none has it."""
    candidates = [Path(checkpoint), checkpoint_folder.parent, checkpoint_folder / "evaluation"]
    for candidate in candidates:
        if (candidate / "tables.json").is_file() and (candidate / "run.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"no tables.json + run.json of this run in {', '.join(str(c) for c in candidates)}: the model card "
        f"is written from the run's Table 1; run 'python -m attribute_inversion evaluate --checkpoint "
        f"{checkpoint_folder}' first")


def _read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def check_shipped_generator(checkpoint_folder: Path, attribute: str, shipped: Path, size_bytes: int, *,
                            batch_size: int = 32, progress: bool = False) -> ShippedGeneratorCheck:
    """Invert the run's test faces of ``attribute`` with ``shipped`` and with the checkpoint (both
    through :func:`invert.invert_images` on the image files, CelebA geometry) and compare."""
    record = read_experiment(checkpoint_folder)
    config = config_from_experiment(record)
    annotations, split = open_split(config.data, data_root_of(record))
    all_paths = annotations.image_paths()
    faces = [all_paths[row] for row in split.test_indices[attribute]]
    judge = load_judge(checkpoint_folder, config)
    column = config.data.attributes.index(attribute)
    inverted_labels = 1 - annotations.attributes[split.test_indices[attribute], ATTRIBUTE_INDEX[attribute]]
    outputs, success = {}, {}
    with tempfile.TemporaryDirectory(prefix="inversion_ship_check_") as scratch:
        for name, source in (("shipped", shipped), ("checkpoint", checkpoint_folder)):
            result = invert_images(faces, Path(scratch) / name, attribute, checkpoint=source, device="cpu",
                                   batch_size=batch_size, grid_images=1, progress=progress)
            if result.unreadable:
                raise ValueError(f"{len(result.unreadable)} test face(s) unreadable, e.g. {result.unreadable[0]}")
            pixels = np.stack([_read_png(path) for path in result.written])  # in the order of ``faces``
            outputs[name] = pixels
            images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            predicted = judge_predictions(judge, images, column, batch_size, torch.device("cpu"))
            success[name] = float((predicted == inverted_labels).mean())
    difference = np.abs(outputs["shipped"].astype(np.int16) - outputs["checkpoint"].astype(np.int16))
    return ShippedGeneratorCheck(shipped, size_bytes, attribute, len(faces), float(difference.mean()),
                                 int(difference.max()), success["shipped"], success["checkpoint"])


class _Cells:
    """Table cells for the card: numbers formatted, each ``n/a: reason`` cell written as ``n/a`` with
    its reason listed once under the table (:meth:`reasons`)."""

    def __init__(self) -> None:
        self.why: list[str] = []

    def __call__(self, value, digits: int) -> str:
        if isinstance(value, (int, float)):
            return f"{value:.{digits}f}"
        text = str(value)
        if text.startswith("n/a: "):
            if text not in self.why:
                self.why.append(text)
            return "n/a"
        return text

    def reasons(self) -> list[str]:
        """The distinct reasons of this table's ``n/a`` cells, as Markdown list items; then forgets them."""
        lines = [f"- {reason}" for reason in self.why]
        self.why = []
        return [""] + lines if lines else []


def _rows_of(table: Table, prefix: str) -> list[list]:
    return [row for row in table.rows if str(row[0]).startswith(prefix)]


def write_model_card(results_folder: Path, tables: dict[str, Table], check: ShippedGeneratorCheck) -> Path:
    """``MODEL_CARD_<A>.md`` beside the shipped file: task, data and split, training, geometry, the
    shipped-weights check, Table 1's calibration rows and the paired intervals of ours − CycleGAN
    for the attribute, the judge, limits and licence; all read from the run's records."""
    run = json.loads((results_folder / "run.json").read_text(encoding="utf-8"))
    facts, config = run["extra"], run["config"]
    attribute = check.attribute
    positives, negatives = facts["test_counts"][attribute]
    size = config["data"]["image_size"]
    generator, optim = config["generator"], config["optim"]
    source = (f"CelebA images from `{facts['data_root']}`" if facts.get("data_root")
              else "synthetic faces (`common.synthetic`), not real ones")
    lines = [
        f"# Model card: `{check.path.name}` (Tu et al., \"Face Attribute Inversion\": the U-Net generator "
        f"that inverts {attribute})", "",
        f"- **Task**: a face in, the same face with {attribute} inverted (present <-> absent) out, with no "
        f"label input (§2). `python -m attribute_inversion invert --attribute {attribute} IMAGES_OR_FOLDER "
        "--out DIR` uses this file by default.",
        f"- **Data**: {source}: a training pool of {facts['train_images']:,} faces; "
        f"the held-out faces (other identities: no person in both) give the {positives:,} + {negatives:,} test "
        f"faces with / without {attribute} below.",
        f"- **Training**: `{run['command']}` ({run['start_time']}, {wall_time_text(run)} for the "
        f"whole run); scale `{config['scale']}`: {size}x{size}, U-Net base {generator['base_channels']} / max "
        f"{generator['max_channels']} channels, {optim['max_steps']:,} steps of {optim['batch_size']} (Adam lr "
        f"{optim['learning_rate']}, beta1 {optim['beta1']}, linear decay from "
        f"{optim['decay_start_fraction']:.0%}). The package README lists every reduction against the paper.",
        f"- **Input geometry**: the centred square of CelebA's aligned 178x218 frame, scaled to {size}x{size} "
        "(`invert --geometry celeba`, the default); square CelebA-HQ / FFHQ crops: `--geometry celeba-hq`.",
        f"- **Weights**: int8 per-output-channel for large tensors, fp16 elsewhere (`common.export`), "
        f"{check.bytes / 2**20:.2f} MiB. Through `invert` on the {check.test_faces:,} test faces, its outputs "
        f"differ from the full-precision checkpoint's by {check.mean_abs_difference:.2f} 8-bit levels on average "
        f"(at most {check.max_abs_difference}); the run's judge sees {attribute} inverted in "
        f"{check.success_rate_shipped:.1%} of them with these weights, {check.success_rate_checkpoint:.1%} with "
        "the checkpoint.", "",
        f"## Table 1 for {attribute}, with its calibration rows (this run's test faces)", "",
        "FID / KID on Inception pool3 features, mean DFN (Eq. 8; 1 = the face-recognition feature norm kept), "
        "attribute success rate by the run's judge. The identity row is what returning the input scores; the "
        "floor is real vs real faces at the same N.", "",
        "| comparison (set A vs set B) | N (A) | N (B) | FID | KID | mean DFN | success rate |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    cell = _Cells()
    for row in _rows_of(tables["table1_calibration"], f"{attribute} / "):
        label = str(row[0]).split(" / ", 1)[1]
        lines.append(f"| {label} | {cell(row[1], 0)} | {cell(row[2], 0)} | {cell(row[3], 1)} | "
                     f"{cell(row[4], 3)} | {cell(row[5], 3)} | {cell(row[6], 3)} |")
    lines += cell.reasons()
    lines += ["", "## Ours − CycleGAN on the same faces (95 % paired bootstrap intervals; McNemar for success)", "",
              "| measure | N | ours | CycleGAN | ours − CycleGAN | 95 % CI | McNemar p |",
              "|---|---:|---:|---:|---:|---|---:|"]
    for row in _rows_of(tables["table1_intervals"], f"{attribute}: "):
        measure = str(row[0]).split(": ", 1)[1].removesuffix(", ours - CycleGAN")
        lines.append(f"| {measure} | {cell(row[1], 0)} | {cell(row[2], 3)} | {cell(row[3], 3)} | "
                     f"{cell(row[4], 3)} | [{cell(row[5], 3)}, {cell(row[6], 3)}] | {cell(row[8], 3)} |")
    lines += cell.reasons()
    judge = next((row for row in tables["judge"].rows if row[0] == attribute), None)
    if judge is not None:
        lines += ["", f"The judge's balanced accuracy on the real test faces: {cell(judge[1], 3)}; an unchanged "
                  f"input scores a success rate of {cell(judge[2], 3)}."]
    lines += ["", "## Limits", "",
              f"- A narrow generator trained briefly on {size}x{size} faces ({source}): expect artefacts, and "
              "weaker results on other populations, poses, lighting and faces not aligned like CelebA's (its "
              "real faces are celebrities). Inverting an attribute also changes what correlates with it in the "
              "training data. Not for identification, surveillance or deception.", "",
              "## Licence", "", CELEBA_MODEL_LICENCE, ""]
    card = model_card_path(check.path)
    card.write_text("\n".join(lines), encoding="utf-8")
    return card


def ship_generator(checkpoint: str | Path, attribute: str, out: str | Path | None = None, *,
                   progress: bool = False) -> tuple[ShippedGeneratorCheck, Path]:
    """Export, check and document (module docstring); returns the check and the card's path."""
    folder = find_checkpoint_folder(checkpoint)
    results_folder = find_results_folder(checkpoint, folder)  # before writing anything
    tables = read_tables(results_folder)
    path, size = export_generator(folder, attribute, out)
    check = check_shipped_generator(folder, attribute, path, size, progress=progress)
    return check, write_model_card(results_folder, tables, check)
